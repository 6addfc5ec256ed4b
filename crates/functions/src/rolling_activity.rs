//! `rolling_activity`: a group's active days, and how its presence in the rolling 7-day and
//! 30-day windows (WAU, MAU) changes from day to day — daily active, weekly and monthly
//! active users in one pass per user.
//!
//! ```sql
//! -- DAU, and WAU and MAU ending each day
//! SELECT day, dau, sum(wau_change) OVER (ORDER BY day) AS wau, sum(mau_change) OVER (ORDER BY day) AS mau
//! FROM (SELECT c['day'] AS day, sum(c['active']) AS dau, sum(c['wau_change']) AS wau_change,
//!              sum(c['mau_change']) AS mau_change
//!       FROM (SELECT unnest(rolling_activity(event_time)) AS c FROM events GROUP BY user_id)
//!       GROUP BY 1)
//! ORDER BY day;
//! ```
//!
//! A user active on day d is in the window of `n` days ending on each day d … d + n − 1. Over
//! a user's active days those spans merge into runs; a run [s, e] adds the user on day s
//! (`+1`) and removes them on day e + 1 (`−1`). Summed over users and accumulated in day
//! order, the changes give each day's rolling distinct count exactly, from a handful of rows
//! per user instead of a DISTINCT over (user, window day) pairs.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int32Array, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;

use crate::common::DOC_SECTION_BEHAVIOURAL;
use crate::periods::{Output, Period, PeriodsFunction, PeriodsOutput};

pub type RollingActivity = PeriodsFunction<Changes>;

/// The rolling windows, in days: weekly and monthly active users.
const WINDOWS: [i32; 2] = [7, 30];

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns, as a list of {day, active, wau_change, mau_change}, the group's active UTC days (active = 1) \
         and the days on which it enters (+1) or leaves (-1) the rolling 7-day and 30-day windows: summed over \
         groups and accumulated by day (sum(...) OVER (ORDER BY day)), the changes are the weekly and monthly \
         active users ending each day. Rows with a NULL timestamp are ignored.",
        "rolling_activity(timestamp)",
    )
    .with_sql_example(
        r#"```sql
-- DAU, and WAU and MAU ending each day
SELECT day, dau, sum(wau_change) OVER (ORDER BY day) AS wau, sum(mau_change) OVER (ORDER BY day) AS mau
FROM (SELECT c['day'] AS day, sum(c['active']) AS dau, sum(c['wau_change']) AS wau_change,
             sum(c['mau_change']) AS mau_change
      FROM (SELECT unnest(rolling_activity(event_time)) AS c FROM events GROUP BY user_id)
      GROUP BY 1)
ORDER BY day;
```"#,
    )
    .with_argument("timestamp", "The event time: TIMESTAMP or DATE.")
    .with_related_udf("days_active")
    .build()
});

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("day", DataType::Date32, true),
        Field::new("active", DataType::Int32, true),
        Field::new("wau_change", DataType::Int32, true),
        Field::new("mau_change", DataType::Int32, true),
    ])
}

/// `rolling_activity`'s result.
#[derive(Debug)]
pub struct Changes;

impl Output for Changes {
    fn evaluate<'a>(&self, groups: impl Iterator<Item = &'a [i32]>, count: usize) -> Result<ArrayRef> {
        let mut offsets = Vec::with_capacity(count + 1);
        offsets.push(0i32);
        // Columns: day, active, then one change per window.
        let mut columns: [Vec<i32>; 2 + WINDOWS.len()] = Default::default();
        let push =
            |columns: &mut [Vec<i32>; 2 + WINDOWS.len()], day: i32, active: i32, window: Option<(usize, i32)>| {
                columns[0].push(day);
                columns[1].push(active);
                for (w, column) in columns[2..].iter_mut().enumerate() {
                    column.push(window.filter(|(i, _)| *i == w).map_or(0, |(_, change)| change));
                }
            };
        for days in groups {
            for &day in days {
                push(&mut columns, day, 1, None);
            }
            for (w, &n) in WINDOWS.iter().enumerate() {
                let mut run: Option<(i32, i32)> = None;
                for &day in days {
                    run = match run {
                        Some((start, end)) if day <= end + 1 => Some((start, day + n - 1)),
                        Some((start, end)) => {
                            push(&mut columns, start, 0, Some((w, 1)));
                            push(&mut columns, end + 1, 0, Some((w, -1)));
                            Some((day, day + n - 1))
                        }
                        None => Some((day, day + n - 1)),
                    };
                }
                if let Some((start, end)) = run {
                    push(&mut columns, start, 0, Some((w, 1)));
                    push(&mut columns, end + 1, 0, Some((w, -1)));
                }
            }
            offsets.push(columns[0].len() as i32);
        }
        let [day, active, wau, mau] = columns;
        let day: ArrayRef = Arc::new(datafusion::arrow::array::Date32Array::from(day));
        let arrays: Vec<ArrayRef> = vec![
            day,
            Arc::new(Int32Array::from(active)),
            Arc::new(Int32Array::from(wau)),
            Arc::new(Int32Array::from(mau)),
        ];
        let structs = StructArray::try_new(fields(), arrays, None)?;
        let item = Arc::new(Field::new_list_field(DataType::Struct(fields()), true));
        Ok(Arc::new(ListArray::try_new(item, OffsetBuffer::new(offsets.into()), Arc::new(structs), None)?))
    }
}

impl PeriodsOutput for Changes {
    const NAME: &'static str = "rolling_activity";
    const USAGE: &'static str = "rolling_activity(timestamp)";
    const TAKES_PERIOD: bool = false;

    fn return_type() -> DataType {
        DataType::new_list(DataType::Struct(fields()), true)
    }

    fn documentation() -> &'static Documentation {
        &DOCUMENTATION
    }

    fn new(_period: Period) -> (Self, Period) {
        (Changes, Period::Day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Date32Type, Int32Type};

    /// Accumulated changes equal the rolling distinct count computed day by day.
    #[test]
    fn accumulated_changes_are_the_rolling_distinct_counts() {
        let users: [&[i32]; 4] = [&[0, 1, 2, 9, 40], &[5], &[3, 10, 17, 24, 60], &[]];
        let result = Changes.evaluate(users.iter().copied(), users.len()).unwrap();
        let entries = result.as_list::<i32>().values().as_struct().clone();
        let column = |i: usize| entries.column(i).clone();
        let day = column(0);
        let day = day.as_primitive::<Date32Type>();
        for (w, n) in WINDOWS.iter().enumerate() {
            let change = column(2 + w);
            let change = change.as_primitive::<Int32Type>();
            for d in -5..100 {
                let accumulated: i32 = (0..entries.len()).filter(|&i| day.value(i) <= d).map(|i| change.value(i)).sum();
                let expected = users.iter().filter(|days| days.iter().any(|&a| a <= d && d < a + n)).count();
                assert_eq!(accumulated as usize, expected, "window {n}, day {d}");
            }
        }
        let active = column(1);
        assert_eq!(active.as_primitive::<Int32Type>().values().iter().sum::<i32>(), 11);
    }
}
