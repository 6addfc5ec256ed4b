//! `cohort_periods`: the periods a group was active in, counted from its first — one pass for
//! a cohort matrix.
//!
//! ```sql
//! -- weekly cohorts: users by first week, and how many were active k weeks later
//! SELECT cohort, k, count(*) AS users
//! FROM (SELECT cohort, unnest(periods) AS k
//!       FROM (SELECT CAST(date_trunc('week', min(event_time)) AS DATE) AS cohort,
//!                    cohort_periods(event_time, 'week') AS periods
//!             FROM events GROUP BY user_id))
//! GROUP BY cohort, k ORDER BY cohort, k;
//! ```
//!
//! `cohort_periods(ts, period)` → the distinct periods (`'day'`, `'week'` starting on Monday,
//! `'month'`; UTC calendar, as `date_trunc`) in which the group has a row, as offsets from the
//! group's first period, ascending: `[0, 1, 4]` = active in its first period, the next one and
//! four periods later. Rows with a NULL timestamp are ignored; a group without any gets `[]`.
//! The same matrix in plain SQL takes two passes over the events and a join (distinct
//! user-periods, first period per user).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Builder, ListArray, ListBuilder, PrimitiveArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::common::{check_time, is_text, literal_text, SingleGroup, TimeKind, DOC_SECTION_BEHAVIOURAL};
use crate::flat_groups::{list_column, FlatGroups};

const NAME: &str = "cohort_periods";
const USAGE: &str = "cohort_periods(timestamp, 'day' | 'week' | 'month')";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CohortPeriods {
    signature: Signature,
}

impl Default for CohortPeriods {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// A calendar period, numbered from an origin: consecutive periods get consecutive numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            other => plan_err!("{NAME}: unknown period '{other}' (expected day, week or month); usage: {USAGE}"),
        }
    }

    /// The number of the period holding a UTC day (days since 1970-01-01).
    fn of_day(self, day: i64) -> i32 {
        match self {
            Period::Day => day as i32,
            // 1970-01-01 was a Thursday: shifting by 3 puts Monday 1969-12-29 at 0.
            Period::Week => (day + 3).div_euclid(7) as i32,
            Period::Month => {
                use chrono::Datelike;
                let date = chrono::NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).unwrap_or_default();
                date.year() * 12 + date.month0() as i32
            }
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns the distinct periods in which the group has a row, as offsets from the group's first period, \
         ascending ([0, 1, 4]: active in its first period, the next one and four periods later): a cohort \
         matrix in one pass. Periods are UTC calendar days, weeks (from Monday, as date_trunc) or months. \
         Rows with a NULL timestamp are ignored; a group without any gets [].",
        "cohort_periods(timestamp, period)",
    )
    .with_sql_example(
        r#"```sql
-- weekly cohorts: users by first week, and how many were active k weeks later
SELECT cohort, k, count(*) AS users
FROM (SELECT cohort, unnest(periods) AS k
      FROM (SELECT CAST(date_trunc('week', min(event_time)) AS DATE) AS cohort,
                   cohort_periods(event_time, 'week') AS periods
            FROM events GROUP BY user_id))
GROUP BY cohort, k ORDER BY cohort, k;
```"#,
    )
    .with_argument("timestamp", "The event time: TIMESTAMP or DATE.")
    .with_argument("period", "Constant text: 'day', 'week' or 'month'.")
    .build()
});

impl AggregateUDFImpl for CohortPeriods {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!("{NAME} takes 2 arguments, got {}; usage: {USAGE}", arg_types.len());
        }
        if check_time(NAME, arg_types, 0, USAGE)? == TimeKind::Integer {
            return plan_err!("{NAME}: argument 1 must be a TIMESTAMP or DATE, got {}; usage: {USAGE}", arg_types[0]);
        }
        if !is_text(&arg_types[1]) {
            return plan_err!("{NAME}: argument 2 must be the period as text, got {}; usage: {USAGE}", arg_types[1]);
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Int32, true))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[periods]", args.name),
            DataType::new_list(DataType::Int32, true),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (kind, period) = Self::parameters(&args)?;
        Ok(Box::new(SingleGroup::new(Arc::new(move || Box::new(PeriodsAccumulator::new(kind, period)) as _))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let (kind, period) = Self::parameters(&args)?;
        Ok(Box::new(PeriodsAccumulator::new(kind, period)))
    }
}

impl CohortPeriods {
    fn parameters(args: &AccumulatorArgs) -> Result<(TimeKind, Period)> {
        let kind = check_time(NAME, &[args.expr_fields[0].data_type().clone()], 0, USAGE)?;
        Ok((kind, Period::parse(&literal_text(NAME, "period", &args.exprs[1])?)?))
    }
}

/// Per group, the period numbers of its rows (absolute; offsets only in the result).
struct PeriodsAccumulator {
    kind: TimeKind,
    period: Period,
    periods: FlatGroups<i32>,
    /// Per group, the period last stored: a user's rows mostly arrive period by period, so
    /// most repeats are dropped at once instead of being stored and sorted away later.
    last: Vec<i32>,
}

impl PeriodsAccumulator {
    fn new(kind: TimeKind, period: Period) -> Self {
        Self { kind, period, periods: FlatGroups::new(), last: Vec::new() }
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
        let periods: PrimitiveArray<Int32Type> = values.unary_opt(|t| Some(self.period.of_day(t.div_euclid(per_day))));
        Ok(match opt_filter {
            Some(filter) => {
                let keep = datafusion::arrow::buffer::NullBuffer::new(filter.values().clone());
                let nulls = datafusion::arrow::buffer::NullBuffer::union(periods.nulls(), Some(&keep));
                let nulls = datafusion::arrow::buffer::NullBuffer::union(nulls.as_ref(), filter.nulls());
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

impl GroupsAccumulator for PeriodsAccumulator {
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
        let mut out = ListBuilder::with_capacity(Int32Builder::new(), grouped.offsets.len() - 1);
        for periods in grouped.groups_mut() {
            periods.sort_unstable();
            let first = periods.first().copied().unwrap_or_default();
            let mut previous = None;
            for &p in periods.iter() {
                if previous != Some(p) {
                    out.values().append_value(p - first);
                    previous = Some(p);
                }
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let grouped = self.periods.take(emit_to);
        emit_to.take_needed(&mut self.last);
        let offsets = grouped.list_offsets(NAME)?;
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

    #[test]
    fn periods_are_numbered_consecutively_on_the_utc_calendar() {
        // 2025-01-05 is a Sunday, 2025-01-06 a Monday.
        let day = |y, m, d| {
            chrono::NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days()
        };
        assert_eq!(Period::Week.of_day(day(2025, 1, 6)) - Period::Week.of_day(day(2025, 1, 5)), 1);
        assert_eq!(Period::Week.of_day(day(2025, 1, 12)), Period::Week.of_day(day(2025, 1, 6)));
        assert_eq!(Period::Week.of_day(day(1969, 12, 29)), 0);
        assert_eq!(Period::Week.of_day(day(1969, 12, 28)), -1);
        assert_eq!(Period::Month.of_day(day(2025, 2, 1)) - Period::Month.of_day(day(2024, 12, 31)), 2);
        assert_eq!(Period::Day.of_day(day(2025, 1, 2)) - Period::Day.of_day(day(2025, 1, 1)), 1);
        assert!(Period::parse("fortnight").unwrap_err().to_string().contains("unknown period 'fortnight'"));
    }
}
