//! Bounds on values built per row that the memory pool does not see.
//!
//! DataFusion's memory pool accounts for operators' buffers (hash tables, sorts), not for the
//! arrays a scalar function returns, so `SELECT repeat('x', 1000000000)` took the process to
//! 4 GB under `--memory-limit 1GiB`. The string functions whose output size is chosen by an
//! argument (`repeat`, `lpad`, `rpad`) are wrapped: before DataFusion's own function runs, the
//! size it would build for the batch is computed from the arguments, and a call over
//! [`MAX_BUILT_BYTES`] is refused as the memory caps refuse (53200), naming the function.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::{cast, kernels::length::length};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The most bytes one call of a wrapped function may build for one batch of rows.
pub const MAX_BUILT_BYTES: i64 = 256 << 20;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's bytes times `n`.
    Repeat,
    /// `lpad(text, n [, fill])`, `rpad`: `n` characters (counted as bytes: ASCII fill).
    Pad,
}

/// Replaces `repeat`, `lpad` and `rpad` in `ctx` with size-checked wrappers of themselves.
pub fn register(ctx: &SessionContext) {
    for (name, growth) in [("repeat", Growth::Repeat), ("lpad", Growth::Pad), ("rpad", Growth::Pad)] {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::from(SizeChecked { inner, growth }));
        }
    }
}

#[derive(Debug)]
struct SizeChecked {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

impl PartialEq for SizeChecked {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name() && self.growth == other.growth
    }
}
impl Eq for SizeChecked {}
impl Hash for SizeChecked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

/// The integer argument per row (NULL and negative count as 0).
fn counts(value: &ColumnarValue, rows: usize) -> DfResult<Vec<i64>> {
    let array = cast(&value.to_array(rows)?, &DataType::Int64)?;
    Ok(array.as_primitive::<Int64Type>().iter().map(|n| n.unwrap_or(0).max(0)).collect())
}

impl SizeChecked {
    /// The bytes the call would build for this batch, saturating.
    fn built_bytes(&self, args: &ScalarFunctionArgs) -> DfResult<i64> {
        let rows = args.number_rows;
        let (Some(text), Some(n)) = (args.args.first(), args.args.get(1)) else { return Ok(0) };
        let n = counts(n, rows)?;
        Ok(match self.growth {
            Growth::Pad => n.iter().fold(0i64, |sum, n| sum.saturating_add(*n)),
            Growth::Repeat => {
                let lengths = cast(&length(&text.to_array(rows)?)?, &DataType::Int64)?;
                let lengths = lengths.as_primitive::<Int64Type>();
                (0..rows).fold(0i64, |sum, row| {
                    let bytes = if lengths.is_null(row) { 0 } else { lengths.value(row) };
                    sum.saturating_add(bytes.saturating_mul(n[row]))
                })
            }
        })
    }
}

impl ScalarUDFImpl for SizeChecked {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let bytes = self.built_bytes(&args)?;
        if bytes > MAX_BUILT_BYTES {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}() would build {bytes} bytes for {} rows, more than the limit of {MAX_BUILT_BYTES} bytes per call",
                self.name(),
                args.number_rows
            )));
        }
        self.inner.invoke_with_args(args)
    }
}
