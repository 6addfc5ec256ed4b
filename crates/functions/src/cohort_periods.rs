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

use datafusion::arrow::array::{ArrayRef, Int32Builder, ListBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;

use crate::common::DOC_SECTION_BEHAVIOURAL;
use crate::periods::{Output, Period, PeriodsFunction, PeriodsOutput};

pub type CohortPeriods = PeriodsFunction<Offsets>;

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

/// `cohort_periods`' result: each group's periods as offsets from its first.
#[derive(Debug)]
pub struct Offsets;

impl Output for Offsets {
    fn evaluate<'a>(&self, groups: impl Iterator<Item = &'a [i32]>, count: usize) -> Result<ArrayRef> {
        let mut out = ListBuilder::with_capacity(Int32Builder::new(), count);
        for periods in groups {
            let first = periods.first().copied().unwrap_or_default();
            for &p in periods {
                out.values().append_value(p - first);
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }
}

impl PeriodsOutput for Offsets {
    const NAME: &'static str = "cohort_periods";
    const USAGE: &'static str = "cohort_periods(timestamp, 'day' | 'week' | 'month')";

    fn return_type() -> DataType {
        DataType::new_list(DataType::Int32, true)
    }

    fn documentation() -> &'static Documentation {
        &DOCUMENTATION
    }

    fn new(period: Period) -> (Self, Period) {
        (Offsets, period)
    }
}
