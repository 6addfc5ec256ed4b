//! `window_funnel`: the furthest step of a funnel a group's events reach within a window.
//!
//! ```sql
//! SELECT level, count(*) AS users
//! FROM (SELECT user_id,
//!              window_funnel(INTERVAL '1 day', event_time,
//!                            event = 'view_item', event = 'add_to_cart', event = 'purchase') AS level
//!       FROM events GROUP BY user_id)
//! GROUP BY level ORDER BY level;
//! ```
//!
//! ClickHouse's `windowFunnel(window, modes…)(ts, cond1, …)`, answer for answer; the modes go
//! in one text argument: `window_funnel(3600, 'strict_order, strict_increase', ts, …)`.

use std::sync::Arc;

use datafusion::arrow::array::Int32Builder;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility};

use crate::common::SingleGroup;
use crate::event_list::{state_fields, Event, Finisher};
use crate::funnel::{Funnel, FunnelLayout};

const NAME: &str = "window_funnel";
const USAGE: &str = "window_funnel(window, [mode,] timestamp, cond1, ..., condN)";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowFunnel {
    signature: Signature,
}

impl Default for WindowFunnel {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

struct LevelFinisher {
    funnel: Funnel,
    scratch: std::sync::Mutex<Vec<(i64, u8, u32)>>,
}

impl Finisher for LevelFinisher {
    type Builder = Int32Builder;
    fn builder(&self, capacity: usize) -> Int32Builder {
        Int32Builder::with_capacity(capacity)
    }
    fn append_null(&self, out: &mut Int32Builder) {
        out.append_null();
    }
    fn finish(&self, events: &mut Vec<Event>, out: &mut Int32Builder) -> Result<()> {
        let mut scratch = self.scratch.lock().expect("scratch");
        out.append_value(self.funnel.run(events, &mut scratch, false).level as i32);
        Ok(())
    }
}

impl WindowFunnel {
    fn make(args: &AccumulatorArgs) -> Result<Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>> {
        FunnelLayout::accumulator_factory(NAME, args, |funnel, _| LevelFinisher { funnel, scratch: Default::default() })
    }
}

impl AggregateUDFImpl for WindowFunnel {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        FunnelLayout::check(NAME, arg_types, USAGE)?;
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup::new(Self::make(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Self::make(&args)?())
    }
}
