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

use std::sync::LazyLock;

use datafusion::arrow::array::Int32Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;

use crate::common::{TimeKind, DOC_SECTION_BEHAVIOURAL};
use crate::event_list::{Event, Finisher};
use crate::funnel::{Funnel, FunnelFunction, FunnelOutput};

/// `window_funnel`'s output: the level.
#[derive(Debug)]
pub struct Level;

pub type WindowFunnel = FunnelFunction<Level>;

impl FunnelOutput for Level {
    const NAME: &'static str = "window_funnel";
    const USAGE: &'static str = "window_funnel(window, [mode,] timestamp, cond1, ..., condN)";
    type Finisher = LevelFinisher;

    fn return_type(_kind: TimeKind) -> DataType {
        DataType::Int32
    }

    fn documentation() -> &'static Documentation {
        &DOCUMENTATION
    }

    fn finisher(funnel: Funnel, _kind: TimeKind) -> LevelFinisher {
        LevelFinisher { funnel, scratch: Default::default() }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns the highest step of a funnel (0 to N) that the group's events reach in step order, \
         every step within `window` of step 1 (inclusive): ClickHouse's windowFunnel, answer for answer. \
         Input order does not matter; the latest start of a chain wins. The level is exact: users who \
         reached at least step k are count(*) FILTER (WHERE level >= k).",
        "window_funnel(window, [mode,] timestamp, cond1, ..., condN)",
    )
    .with_sql_example(
        r#"```sql
-- how far users get through view -> cart -> purchase within a day
SELECT level, count(*) AS users
FROM (SELECT user_id,
             window_funnel(INTERVAL '1 day', event_time,
                           event = 'view_item', event = 'add_to_cart', event = 'purchase') AS level
      FROM events GROUP BY user_id)
GROUP BY level ORDER BY level;
```"#,
    )
    .with_argument(
        "window",
        "Constant conversion window, measured from step 1: an INTERVAL (days, hours, minutes, seconds) or an \
         integer (seconds for a TIMESTAMP, days for a DATE, raw units for an integer timestamp).",
    )
    .with_argument(
        "mode",
        "Optional constant text: a comma-separated set of strict_order, strict_deduplication, strict_increase, \
         strict_once, allow_reentry (allow_reentry needs strict_order).",
    )
    .with_argument("timestamp", "The event time: TIMESTAMP (any precision), DATE or an integer.")
    .with_argument("cond1, ..., condN", "1 to 32 boolean conditions, one per step, in funnel order.")
    .with_related_udf("funnel_step_times")
    .build()
});

pub struct LevelFinisher {
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
    fn finish(&self, events: &mut [Event], out: &mut Int32Builder) -> Result<()> {
        let mut scratch = self.scratch.lock().expect("scratch");
        out.append_value(self.funnel.run(events, &mut scratch, false).level as i32);
        Ok(())
    }
}
