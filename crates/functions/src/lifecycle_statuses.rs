//! `lifecycle_statuses`: a group's status in each period — new, returning, resurrecting, and
//! dormant in the period after its last active one — the `lifecycle` report in one pass.
//!
//! ```sql
//! -- weekly lifecycle: new, returning, resurrecting and dormant users per week
//! SELECT s['period'] AS week, s['status'] AS status, count(*) AS users
//! FROM (SELECT unnest(lifecycle_statuses(event_time, 'week')) AS s FROM events GROUP BY user_id)
//! GROUP BY 1, 2 ORDER BY 1, 2;
//! ```
//!
//! For the group's distinct active periods p₀ < p₁ < …: p₀ is `new`; pᵢ is `returning` when
//! pᵢ₋₁ is the period just before it, else `resurrecting`; the period after pᵢ is `dormant`
//! when the group is not active in it (also after its last active period).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;

use crate::common::DOC_SECTION_BEHAVIOURAL;
use crate::periods::{period_struct_fields, period_struct_lists, Output, Period, PeriodsFunction, PeriodsOutput};

pub type LifecycleStatuses = PeriodsFunction<Statuses>;

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns the group's lifecycle status per period, as a list of {period, status}: its first active \
         period is 'new'; a later active period is 'returning' when the period before it was active, else \
         'resurrecting'; the period after an active one is 'dormant' when not active itself (also after the \
         last). Periods are UTC calendar days, weeks (from Monday) or months; rows with a NULL timestamp are \
         ignored.",
        "lifecycle_statuses(timestamp, period)",
    )
    .with_sql_example(
        r#"```sql
-- weekly lifecycle: new, returning, resurrecting and dormant users per week
SELECT s['period'] AS week, s['status'] AS status, count(*) AS users
FROM (SELECT unnest(lifecycle_statuses(event_time, 'week')) AS s FROM events GROUP BY user_id)
GROUP BY 1, 2 ORDER BY 1, 2;
```"#,
    )
    .with_argument("timestamp", "The event time: TIMESTAMP or DATE.")
    .with_argument("period", "Constant text: 'day', 'week' or 'month'.")
    .with_related_udf("cohort_periods")
    .build()
});

/// `lifecycle_statuses`' result.
#[derive(Debug)]
pub struct Statuses {
    period: Period,
}

impl Output for Statuses {
    fn evaluate<'a>(&self, groups: impl Iterator<Item = &'a [i32]>, count: usize) -> Result<ArrayRef> {
        let (mut offsets, mut periods, mut statuses) = (Vec::with_capacity(count + 1), vec![], vec![]);
        offsets.push(0i32);
        for active in groups {
            for (i, &p) in active.iter().enumerate() {
                let status = match i {
                    0 => "new",
                    _ if active[i - 1] == p - 1 => "returning",
                    _ => "resurrecting",
                };
                periods.push(self.period.first_day(p));
                statuses.push(status);
                if active.get(i + 1) != Some(&(p + 1)) {
                    periods.push(self.period.first_day(p + 1));
                    statuses.push("dormant");
                }
            }
            offsets.push(periods.len() as i32);
        }
        period_struct_lists(offsets, periods, "status", Arc::new(StringArray::from(statuses)))
    }
}

impl PeriodsOutput for Statuses {
    const NAME: &'static str = "lifecycle_statuses";
    const USAGE: &'static str = "lifecycle_statuses(timestamp, 'day' | 'week' | 'month')";

    fn return_type() -> DataType {
        DataType::new_list(DataType::Struct(period_struct_fields("status", DataType::Utf8)), true)
    }

    fn documentation() -> &'static Documentation {
        &DOCUMENTATION
    }

    fn new(period: Period) -> (Self, Period) {
        (Statuses { period }, period)
    }
}
