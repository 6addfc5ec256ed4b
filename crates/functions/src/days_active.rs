//! `days_active`: per week or month, on how many distinct days the group was active — the
//! `stickiness` report in one pass.
//!
//! ```sql
//! -- weekly stickiness: how many users were active on 1, 2, … 7 days of each week
//! SELECT s['period'] AS week, s['days'] AS days_active, count(*) AS users
//! FROM (SELECT unnest(days_active(event_time, 'week')) AS s FROM events GROUP BY user_id)
//! GROUP BY 1, 2 ORDER BY 1, 2;
//! ```

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;

use crate::common::DOC_SECTION_BEHAVIOURAL;
use crate::periods::{period_struct_fields, period_struct_lists, Output, Period, PeriodsFunction, PeriodsOutput};

pub type DaysActive = PeriodsFunction<DaysPerPeriod>;

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns, for each period in which the group has rows, on how many distinct UTC days it has rows, as a \
         list of {period, days} in period order: `count(DISTINCT date_trunc('day', ts))` per (group, period) in \
         one pass. Periods are UTC calendar days, weeks (from Monday) or months; rows with a NULL timestamp are \
         ignored.",
        "days_active(timestamp, period)",
    )
    .with_sql_example(
        r#"```sql
-- weekly stickiness: how many users were active on 1, 2, … 7 days of each week
SELECT s['period'] AS week, s['days'] AS days_active, count(*) AS users
FROM (SELECT unnest(days_active(event_time, 'week')) AS s FROM events GROUP BY user_id)
GROUP BY 1, 2 ORDER BY 1, 2;
```"#,
    )
    .with_argument("timestamp", "The event time: TIMESTAMP or DATE.")
    .with_argument("period", "Constant text: 'day', 'week' or 'month'.")
    .with_related_udf("lifecycle_statuses")
    .build()
});

/// `days_active`' result: the group's distinct days, counted per period.
#[derive(Debug)]
pub struct DaysPerPeriod {
    period: Period,
}

impl Output for DaysPerPeriod {
    fn evaluate<'a>(&self, groups: impl Iterator<Item = &'a [i32]>, count: usize) -> Result<ArrayRef> {
        let (mut offsets, mut periods, mut days) = (Vec::with_capacity(count + 1), vec![], vec![]);
        offsets.push(0i32);
        for active_days in groups {
            let mut current = None;
            for &day in active_days {
                let period = self.period.of_day(i64::from(day));
                if current != Some(period) {
                    current = Some(period);
                    periods.push(self.period.first_day(period));
                    days.push(0);
                }
                *days.last_mut().expect("a period was pushed") += 1;
            }
            offsets.push(periods.len() as i32);
        }
        period_struct_lists(offsets, periods, "days", Arc::new(Int32Array::from(days)))
    }
}

impl PeriodsOutput for DaysPerPeriod {
    const NAME: &'static str = "days_active";
    const USAGE: &'static str = "days_active(timestamp, 'day' | 'week' | 'month')";

    fn return_type() -> DataType {
        DataType::new_list(DataType::Struct(period_struct_fields("days", DataType::Int32)), true)
    }

    fn documentation() -> &'static Documentation {
        &DOCUMENTATION
    }

    /// Rows are stored as their day; the output counts the days of each period.
    fn new(period: Period) -> (Self, Period) {
        (DaysPerPeriod { period }, Period::Day)
    }
}
