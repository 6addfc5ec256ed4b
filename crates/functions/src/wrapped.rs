//! DataFusion's own function inside a Northstar version of it (`date_trunc`, `to_char`,
//! `to_date`, `to_timestamp`): the wrapper keeps the function it wraps for what it does not
//! change, and is equal to (and hashes as) another wrapper of the same function, which is how
//! DataFusion's registry compares functions.

use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

#[derive(Debug)]
pub(crate) struct Wrapped(pub(crate) Arc<ScalarUDF>);

impl PartialEq for Wrapped {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Wrapped {}

impl Hash for Wrapped {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}

impl Deref for Wrapped {
    type Target = ScalarUDF;

    fn deref(&self) -> &ScalarUDF {
        &self.0
    }
}
