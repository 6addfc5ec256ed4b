//! What the per-user activity functions share (`cohort_periods`, `lifecycle_statuses`,
//! `days_active`, `rolling_activity`): UTC calendar periods numbered consecutively, and an accumulator keeping
//! each group's distinct period numbers, which an [`Output`] turns into the function's result.
//!
//! Why per user: the reports these serve (cohort matrices, lifecycle, stickiness) are
//! questions about each user's sorted active periods. In SQL they are DISTINCT (user, period)
//! sets joined to themselves (the previous period, the first one); grouped by `user_id`,
//! one pass reads each user's rows once, bucket by bucket (docs/benchmarks.md).

use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, PrimitiveArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::common::{check_time, is_text, literal_text, SingleGroup, TimeKind};
use crate::flat_groups::{list_column, FlatGroups};

/// A calendar period, numbered from an origin: consecutive periods get consecutive numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_FROM_CE: i64 = 719_163;

impl Period {
    /// `'day'`, `'week'` or `'month'`; `function` and `usage` name the caller in the error.
    pub fn parse(function: &str, usage: &str, text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            other => plan_err!("{function}: unknown period '{other}' (expected day, week or month); usage: {usage}"),
        }
    }

    /// The number of the period holding a UTC day (days since 1970-01-01).
    pub fn of_day(self, day: i64) -> i32 {
        match self {
            Period::Day => day as i32,
            // 1970-01-01 was a Thursday: shifting by 3 puts Monday 1969-12-29 at 0.
            Period::Week => (day + 3).div_euclid(7) as i32,
            Period::Month => {
                use chrono::Datelike;
                let date =
                    chrono::NaiveDate::from_num_days_from_ce_opt((day + EPOCH_FROM_CE) as i32).unwrap_or_default();
                date.year() * 12 + date.month0() as i32
            }
        }
    }

    /// The first day (days since 1970-01-01, a DATE's value) of period `number`.
    pub fn first_day(self, number: i32) -> i32 {
        match self {
            Period::Day => number,
            Period::Week => number * 7 - 3,
            Period::Month => {
                let (year, month0) = (number.div_euclid(12), number.rem_euclid(12) as u32);
                chrono::NaiveDate::from_ymd_opt(year, month0 + 1, 1)
                    .map_or(0, |d| (i64::from(chrono::Datelike::num_days_from_ce(&d)) - EPOCH_FROM_CE) as i32)
            }
        }
    }
}

/// Turns each group's distinct period numbers (ascending) into the function's result column.
pub trait Output: Send + Sync + 'static {
    fn evaluate<'a>(&self, groups: impl Iterator<Item = &'a [i32]>, count: usize) -> Result<ArrayRef>;
}

/// A function `name(timestamp, period)` (or `name(timestamp)`) over a group's distinct periods.
pub trait PeriodsOutput: Output + std::fmt::Debug + Sized {
    const NAME: &'static str;
    const USAGE: &'static str;
    /// Whether the function takes the period argument (else it works on days).
    const TAKES_PERIOD: bool = true;
    fn return_type() -> DataType;
    fn documentation() -> &'static Documentation;
    /// The output for the `period` argument, and the period each row is stored as.
    fn new(period: Period) -> (Self, Period);
}

/// The aggregate UDF of a [`PeriodsOutput`].
#[derive(Debug)]
pub struct PeriodsFunction<O> {
    signature: Signature,
    output: PhantomData<O>,
}

impl<O> Default for PeriodsFunction<O> {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), output: PhantomData }
    }
}

impl<O> PartialEq for PeriodsFunction<O> {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl<O> Eq for PeriodsFunction<O> {}

impl<O> std::hash::Hash for PeriodsFunction<O> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl<O: PeriodsOutput> PeriodsFunction<O> {
    fn accumulator(args: &AccumulatorArgs) -> Result<PeriodsAccumulator<O>> {
        let kind = check_time(O::NAME, &[args.expr_fields[0].data_type().clone()], 0, O::USAGE)?;
        let period = match O::TAKES_PERIOD {
            true => Period::parse(O::NAME, O::USAGE, &literal_text(O::NAME, "period", &args.exprs[1])?)?,
            false => Period::Day,
        };
        let (output, stored) = O::new(period);
        Ok(PeriodsAccumulator::new(O::NAME, kind, stored, Arc::new(output)))
    }
}

impl<O: PeriodsOutput> AggregateUDFImpl for PeriodsFunction<O> {
    fn name(&self) -> &str {
        O::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(O::documentation())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, usage) = (O::NAME, O::USAGE);
        let arguments = 1 + usize::from(O::TAKES_PERIOD);
        if arg_types.len() != arguments {
            return plan_err!("{name} takes {arguments} argument(s), got {}; usage: {usage}", arg_types.len());
        }
        if check_time(name, arg_types, 0, usage)? == TimeKind::Integer {
            return plan_err!("{name}: argument 1 must be a TIMESTAMP or DATE, got {}; usage: {usage}", arg_types[0]);
        }
        if O::TAKES_PERIOD && !is_text(&arg_types[1]) {
            return plan_err!("{name}: argument 2 must be the period as text, got {}; usage: {usage}", arg_types[1]);
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(O::return_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[periods]", args.name),
            DataType::new_list(DataType::Int32, true),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let first = Self::accumulator(&args)?;
        let (kind, stored, output) = (first.kind, first.stored, first.output.clone());
        Ok(Box::new(SingleGroup::new(Arc::new(move || {
            Box::new(PeriodsAccumulator::new(O::NAME, kind, stored, output.clone())) as _
        }))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Self::accumulator(&args)?))
    }
}

/// A list of `{period DATE, <name> <value type>}` per group, built from flat vectors: the
/// shape of `lifecycle_statuses` and `days_active`.
pub fn period_struct_lists(offsets: Vec<i32>, periods: Vec<i32>, name: &str, values: ArrayRef) -> Result<ArrayRef> {
    let fields = period_struct_fields(name, values.data_type().clone());
    let periods: ArrayRef = Arc::new(PrimitiveArray::<datafusion::arrow::datatypes::Date32Type>::from(periods));
    let structs = datafusion::arrow::array::StructArray::try_new(fields.clone(), vec![periods, values], None)?;
    let item = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
    Ok(Arc::new(ListArray::try_new(item, OffsetBuffer::new(offsets.into()), Arc::new(structs), None)?))
}

/// The struct of [`period_struct_lists`], for return types.
pub fn period_struct_fields(name: &str, value_type: DataType) -> datafusion::arrow::datatypes::Fields {
    vec![Field::new("period", DataType::Date32, true), Field::new(name, value_type, true)].into()
}

/// Per group, the period numbers of its rows (in the `stored` unit; the output maps them).
pub struct PeriodsAccumulator<O: Output> {
    kind: TimeKind,
    stored: Period,
    output: Arc<O>,
    function: &'static str,
    periods: FlatGroups<i32>,
    /// Per group, the period last stored: a user's rows mostly arrive period by period, so
    /// most repeats are dropped at once instead of being stored and sorted away later.
    last: Vec<i32>,
}

impl<O: Output> PeriodsAccumulator<O> {
    pub fn new(function: &'static str, kind: TimeKind, stored: Period, output: Arc<O>) -> Self {
        Self { kind, stored, output, function, periods: FlatGroups::new(), last: Vec::new() }
    }

    fn resize(&mut self, total_num_groups: usize) -> Result<()> {
        self.periods.resize(total_num_groups)?;
        if self.last.len() < total_num_groups {
            self.last.resize(total_num_groups, i32::MIN);
        }
        Ok(())
    }

    /// The period number of each row (NULL for a NULL timestamp or a filtered-out row).
    fn row_periods(&self, times: &ArrayRef, opt_filter: Option<&BooleanArray>) -> Result<PrimitiveArray<Int32Type>> {
        let values = self.kind.values(times)?;
        let values = values.as_primitive::<Int64Type>();
        let per_day = match self.kind {
            TimeKind::Timestamp => 86_400_000_000,
            _ => 1,
        };
        let periods: PrimitiveArray<Int32Type> = values.unary_opt(|t| Some(self.stored.of_day(t.div_euclid(per_day))));
        Ok(match opt_filter {
            Some(filter) => {
                let keep = NullBuffer::new(filter.values().clone());
                let nulls = NullBuffer::union(periods.nulls(), Some(&keep));
                let nulls = NullBuffer::union(nulls.as_ref(), filter.nulls());
                PrimitiveArray::new(periods.values().clone(), nulls)
            }
            None => periods,
        })
    }

    fn add(&mut self, group: usize, period: i32) {
        if self.last[group] != period {
            self.last[group] = period;
            self.periods.push(group, period);
        }
    }
}

impl<O: Output> GroupsAccumulator for PeriodsAccumulator<O> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups)?;
        let periods = self.row_periods(&values[0], opt_filter)?;
        for (period, &group) in periods.iter().zip(group_indices) {
            if let Some(period) = period {
                self.add(group, period);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut grouped = self.periods.take(emit_to);
        emit_to.take_needed(&mut self.last);
        let count = grouped.offsets.len() - 1;
        // Sorted and distinct, each group in place; then the output reads the distinct prefix.
        let mut lengths = Vec::with_capacity(count);
        for periods in grouped.groups_mut() {
            periods.sort_unstable();
            let mut distinct = 0;
            for i in 0..periods.len() {
                if i == 0 || periods[i] != periods[distinct - 1] {
                    periods[distinct] = periods[i];
                    distinct += 1;
                }
            }
            lengths.push(distinct);
        }
        let groups = grouped.groups().zip(lengths).map(|(periods, n)| &periods[..n]);
        self.output.evaluate(groups, count)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let grouped = self.periods.take(emit_to);
        emit_to.take_needed(&mut self.last);
        let offsets = grouped.list_offsets(self.function)?;
        Ok(vec![list_column(DataType::Int32, &offsets, Arc::new(PrimitiveArray::<Int32Type>::from(grouped.values)))?])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.resize(total_num_groups)?;
        let lists = values[0].as_list::<i32>();
        let periods = lists.values().as_primitive::<Int32Type>().values();
        let offsets = lists.value_offsets();
        for (row, &group) in group_indices.iter().enumerate() {
            if lists.is_valid(row) {
                for &p in &periods[offsets[row] as usize..offsets[row + 1] as usize] {
                    self.add(group, p);
                }
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let periods = self.row_periods(&values[0], opt_filter)?;
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(
            periods.iter().map(|p| Some(p.into_iter().map(Some).collect::<Vec<_>>())),
        );
        Ok(vec![Arc::new(lists)])
    }

    fn size(&self) -> usize {
        self.periods.size() + self.last.capacity() * size_of::<i32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().signed_duration_since(chrono::NaiveDate::default()).num_days()
    }

    #[test]
    fn periods_are_numbered_consecutively_on_the_utc_calendar() {
        // 2025-01-05 is a Sunday, 2025-01-06 a Monday.
        assert_eq!(Period::Week.of_day(day(2025, 1, 6)) - Period::Week.of_day(day(2025, 1, 5)), 1);
        assert_eq!(Period::Week.of_day(day(2025, 1, 12)), Period::Week.of_day(day(2025, 1, 6)));
        assert_eq!(Period::Week.of_day(day(1969, 12, 29)), 0);
        assert_eq!(Period::Week.of_day(day(1969, 12, 28)), -1);
        assert_eq!(Period::Month.of_day(day(2025, 2, 1)) - Period::Month.of_day(day(2024, 12, 31)), 2);
        assert_eq!(Period::Day.of_day(day(2025, 1, 2)) - Period::Day.of_day(day(2025, 1, 1)), 1);
        let error = Period::parse("f", "usage", "fortnight").unwrap_err().to_string();
        assert!(error.contains("unknown period 'fortnight'"), "{error}");
    }

    #[test]
    fn a_period_starts_on_its_first_day() {
        for d in [day(2025, 1, 1), day(2025, 1, 5), day(2025, 1, 6), day(2024, 2, 29), day(1969, 12, 31)] {
            for (period, first) in [
                (Period::Day, d),
                (Period::Week, d - (d + 3).rem_euclid(7)), // back to Monday
                (Period::Month, {
                    let date = chrono::NaiveDate::default() + chrono::Days::new(0) + chrono::TimeDelta::days(d);
                    d - i64::from(chrono::Datelike::day0(&date))
                }),
            ] {
                assert_eq!(i64::from(period.first_day(period.of_day(d))), first, "{period:?} of day {d}");
            }
        }
    }
}
