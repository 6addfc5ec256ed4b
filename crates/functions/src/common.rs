//! Helpers shared by the behavioural functions: time arguments, literal parameters, condition
//! bitmasks, argument checking, and running a grouped accumulator as a plain one.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, DocSection, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::PhysicalExpr;

/// Where the behavioural functions' [`datafusion::logical_expr::Documentation`] files them.
pub const DOC_SECTION_BEHAVIOURAL: DocSection = DocSection {
    include: true,
    label: "Behavioural Functions",
    description: Some("Product-analytics aggregates over a group's events, in any input order (docs/functions.md)."),
};

/// Most conditions a function takes (as in ClickHouse: they fit a 32-bit mask).
pub const MAX_CONDITIONS: usize = 32;

/// How a function's timestamp argument is read, and what a bare integer window means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// TIMESTAMP: values in microseconds; an integer window is in seconds.
    Timestamp,
    /// DATE: values in days; an integer window is in days.
    Date,
    /// Integers: raw values and a raw window.
    Integer,
}

impl TimeKind {
    pub fn of(data_type: &DataType) -> Option<Self> {
        match data_type {
            DataType::Timestamp(_, _) => Some(TimeKind::Timestamp),
            DataType::Date32 | DataType::Date64 => Some(TimeKind::Date),
            t if t.is_integer() => Some(TimeKind::Integer),
            _ => None,
        }
    }

    /// Units of one second in this kind, for windows given in seconds (`(?t<=V)`).
    pub fn per_second(self) -> i64 {
        match self {
            TimeKind::Timestamp => 1_000_000,
            TimeKind::Date | TimeKind::Integer => 1,
        }
    }

    /// Reads a time column as i64 in this kind's unit (NULLs stay NULL).
    pub fn values(self, array: &ArrayRef) -> Result<ArrayRef> {
        let target = match self {
            TimeKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            TimeKind::Date => DataType::Date32,
            TimeKind::Integer => DataType::Int64,
        };
        let converted = cast(array, &target)?;
        Ok(cast(&converted, &DataType::Int64)?)
    }

    /// Converts a window literal into this kind's unit.
    pub fn window(self, function: &str, value: &ScalarValue) -> Result<i64> {
        let window = match (self, value) {
            (_, v) if v.data_type().is_integer() => {
                let n = v.cast_to(&DataType::Int64)?;
                let ScalarValue::Int64(Some(n)) = n else {
                    return plan_err!("{function}: the window must not be NULL");
                };
                n.checked_mul(self.per_second()).unwrap_or(i64::MAX)
            }
            (TimeKind::Integer, _) => {
                return plan_err!("{function}: with an integer timestamp the window must be an integer, got {value}")
            }
            (kind, ScalarValue::IntervalMonthDayNano(Some(i))) if i.months == 0 => {
                kind.days_and_nanos_in_units(function, i.days as i64, i.nanoseconds)?
            }
            (kind, ScalarValue::IntervalDayTime(Some(i))) => {
                kind.days_and_nanos_in_units(function, i.days as i64, i.milliseconds as i64 * 1_000_000)?
            }
            (_, ScalarValue::IntervalYearMonth(_) | ScalarValue::IntervalMonthDayNano(_)) => {
                return plan_err!("{function}: a window in months or years has no fixed length; use days")
            }
            _ => return plan_err!("{function}: the window must be an INTERVAL or an integer, got {value}"),
        };
        if window < 0 {
            return plan_err!("{function}: the window must not be negative");
        }
        Ok(window)
    }

    fn days_and_nanos_in_units(self, function: &str, days: i64, nanos: i64) -> Result<i64> {
        match self {
            TimeKind::Timestamp => Ok(days * 86_400_000_000 + nanos / 1_000),
            TimeKind::Date if nanos == 0 => Ok(days),
            _ => plan_err!("{function}: with a DATE timestamp the window must be whole days"),
        }
    }
}

/// The value of a literal argument (window, mode, pattern), or a planning error naming it.
pub fn literal_arg<'a>(function: &str, what: &str, expr: &'a Arc<dyn PhysicalExpr>) -> Result<&'a ScalarValue> {
    match expr.downcast_ref::<Literal>() {
        Some(literal) => Ok(literal.value()),
        None => plan_err!("{function}: the {what} must be a constant"),
    }
}

/// Whether any argument from `from` on can be NULL (ClickHouse then answers NULL for a group
/// with no usable row).
pub fn any_nullable(args: &datafusion::logical_expr::function::AccumulatorArgs, from: usize) -> bool {
    args.expr_fields.iter().skip(from).any(|f| f.is_nullable())
}

/// Text of a literal argument.
pub fn literal_text(function: &str, what: &str, expr: &Arc<dyn PhysicalExpr>) -> Result<String> {
    match literal_arg(function, what, expr)? {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Ok(s.clone()),
        other => plan_err!("{function}: the {what} must be a text constant, got {other}"),
    }
}

/// Checks that arguments `from..` are 1..=`MAX_CONDITIONS` boolean conditions.
pub fn check_conditions(function: &str, arg_types: &[DataType], from: usize, min: usize, usage: &str) -> Result<()> {
    let count = arg_types.len().saturating_sub(from);
    if count < min || count > MAX_CONDITIONS {
        return plan_err!("{function} takes {min} to {MAX_CONDITIONS} conditions, got {count}; usage: {usage}");
    }
    for (i, t) in arg_types.iter().enumerate().skip(from) {
        if !matches!(t, DataType::Boolean | DataType::Null) {
            return plan_err!("{function}: argument {} must be a boolean condition, got {t}; usage: {usage}", i + 1);
        }
    }
    Ok(())
}

/// Whether an argument's type is text, in any of Arrow's string layouts.
pub fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Checks the timestamp argument's type.
pub fn check_time(function: &str, arg_types: &[DataType], index: usize, usage: &str) -> Result<TimeKind> {
    match arg_types.get(index).and_then(TimeKind::of) {
        Some(kind) => Ok(kind),
        None => plan_err!(
            "{function}: argument {} must be a TIMESTAMP, DATE or integer timestamp, got {}; usage: {usage}",
            index + 1,
            arg_types.get(index).map(|t| t.to_string()).unwrap_or_else(|| "nothing".into())
        ),
    }
}

/// Per row: the bitmask of true conditions (bit i for condition i + 1), and whether the row
/// counts at all. As in ClickHouse, a row with a NULL in any argument is ignored, and so is a
/// row the aggregate's FILTER excludes.
pub struct ConditionRows {
    pub masks: Vec<u32>,
    pub valid: Option<NullBuffer>,
}

impl ConditionRows {
    pub fn new(time: &ArrayRef, conditions: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Self> {
        let rows = time.len();
        let mut masks = vec![0u32; rows];
        let mut valid = time.logical_nulls();
        for (bit, condition) in conditions.iter().enumerate() {
            let condition = match condition.data_type() {
                DataType::Boolean => condition.as_boolean().clone(),
                DataType::Null => BooleanArray::new_null(rows),
                other => return exec_err!("condition {} is {other}, not boolean", bit + 1),
            };
            for row in condition.values().set_indices() {
                masks[row] |= 1 << bit;
            }
            valid = NullBuffer::union(valid.as_ref(), condition.logical_nulls().as_ref());
        }
        if let Some(filter) = filter {
            let keep = NullBuffer::new(filter.values().clone());
            let keep = NullBuffer::union(Some(&keep), filter.nulls());
            valid = NullBuffer::union(valid.as_ref(), keep.as_ref());
        }
        Ok(Self { masks, valid })
    }

    pub fn counts(&self, row: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v.is_valid(row))
    }
}

/// Reads the i64 values of a converted time column.
pub fn time_values(array: &ArrayRef) -> &[i64] {
    array.as_primitive::<Int64Type>().values()
}

/// Runs a grouped accumulator as a plain one (a single group), so every function also works
/// without GROUP BY and as a window aggregate, with one implementation of its logic.
pub struct SingleGroup {
    /// A mutex only to make the accumulator `Sync`, as `Accumulator` requires; every access
    /// is through `&mut self`, so it is never contended.
    inner: std::sync::Mutex<Box<dyn GroupsAccumulator>>,
    make: Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>,
}

impl std::fmt::Debug for SingleGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SingleGroup")
    }
}

impl SingleGroup {
    pub fn new(make: Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>) -> Self {
        Self { inner: std::sync::Mutex::new(make()), make }
    }

    /// The current state as exactly one row per state column, left in place.
    fn snapshot(&mut self) -> Result<Vec<ArrayRef>> {
        let inner = self.inner_mut();
        // An accumulator that saw no rows has no group yet: merging its (empty) state with
        // one group creates group 0, so the state below has its one row.
        let state = inner.state(EmitTo::All)?;
        inner.merge_batch(&state, &single_group(&state), 1)?;
        let state = inner.state(EmitTo::All)?;
        inner.merge_batch(&state, &[0], 1)?;
        Ok(state)
    }

    fn inner_mut(&mut self) -> &mut Box<dyn GroupsAccumulator> {
        self.inner.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Accumulator for SingleGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner_mut().update_batch(values, &single_group(values), None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let state = self.snapshot()?;
        let mut fresh = (self.make)();
        fresh.merge_batch(&state, &single_group(&state), 1)?;
        ScalarValue::try_from_array(&fresh.evaluate(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        self.inner.lock().map(|i| i.size()).unwrap_or(0) + size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.snapshot()?.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner_mut().merge_batch(states, &single_group(states), 1)
    }
}

/// Group indices putting every row of `arrays` in group 0 (there may be no rows: an
/// accumulator that saw nothing has an empty state).
fn single_group(arrays: &[ArrayRef]) -> Vec<usize> {
    vec![0; arrays.first().map(|a| a.len()).unwrap_or(0)]
}
