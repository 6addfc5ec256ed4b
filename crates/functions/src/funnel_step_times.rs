//! `funnel_step_times`: the times of the steps of a group's funnel — what ClickHouse's
//! windowFunnel cannot tell — so SQL can compute time-to-convert per step.
//!
//! ```sql
//! -- median seconds from add_to_cart to purchase among users who purchased
//! SELECT median(date_part('epoch', t[3]) - date_part('epoch', t[2])) AS seconds
//! FROM (SELECT funnel_step_times(INTERVAL '1 day', event_time,
//!                                event = 'view_item', event = 'add_to_cart', event = 'purchase') AS t
//!       FROM events GROUP BY user_id)
//! WHERE cardinality(t) = 3;
//! ```
//!
//! Same arguments and rules as `window_funnel`; the result lists the timestamps of steps
//! 1..level of the earliest chain that reached the level `window_funnel` returns (empty when
//! the level is 0). Element types follow the timestamp: TIMESTAMP, DATE or BIGINT.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Builder, ListArray, ListBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;

use crate::common::{TimeKind, DOC_SECTION_BEHAVIOURAL};
use crate::event_list::{Event, Finisher};
use crate::funnel::{Funnel, FunnelFunction, FunnelOutput};

/// `funnel_step_times`'s output: the times of the steps.
#[derive(Debug)]
pub struct StepTimes;

pub type FunnelStepTimes = FunnelFunction<StepTimes>;

impl FunnelOutput for StepTimes {
    const NAME: &'static str = "funnel_step_times";
    const USAGE: &'static str = "funnel_step_times(window, [mode,] timestamp, cond1, ..., condN)";
    type Finisher = StepTimesFinisher;

    fn return_type(kind: TimeKind) -> DataType {
        DataType::new_list(element_type(kind), true)
    }

    fn documentation() -> &'static Documentation {
        &DOCUMENTATION
    }

    fn finisher(funnel: Funnel, kind: TimeKind) -> StepTimesFinisher {
        StepTimesFinisher { funnel, kind, scratch: Default::default() }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns the times of the funnel steps the group reached, one element per step (its length is \
         window_funnel's level): steps 1..level of the earliest chain that reached that level, so SQL can \
         compute time-to-convert per step. Same arguments and rules as window_funnel; elements are TIMESTAMP \
         (UTC), DATE or BIGINT after the timestamp argument; an empty list for level 0.",
        "funnel_step_times(window, [mode,] timestamp, cond1, ..., condN)",
    )
    .with_sql_example(
        r#"```sql
-- median seconds from add_to_cart to purchase, among users who purchased
SELECT median(date_part('epoch', t[3]) - date_part('epoch', t[2])) AS seconds
FROM (SELECT funnel_step_times(INTERVAL '1 day', event_time,
                               event = 'view_item', event = 'add_to_cart', event = 'purchase') AS t
      FROM events GROUP BY user_id)
WHERE cardinality(t) = 3;
```"#,
    )
    .with_argument("window", "Constant conversion window, measured from step 1, as in window_funnel.")
    .with_argument("mode", "Optional constant text with window_funnel's modes.")
    .with_argument("timestamp", "The event time: TIMESTAMP (any precision), DATE or an integer.")
    .with_argument("cond1, ..., condN", "1 to 32 boolean conditions, one per step, in funnel order.")
    .with_related_udf("window_funnel")
    .build()
});

fn element_type(kind: TimeKind) -> DataType {
    match kind {
        TimeKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        TimeKind::Date => DataType::Date32,
        TimeKind::Integer => DataType::Int64,
    }
}

pub struct StepTimesFinisher {
    funnel: Funnel,
    kind: TimeKind,
    scratch: std::sync::Mutex<Vec<(i64, u8, u32)>>,
}

impl Finisher for StepTimesFinisher {
    type Builder = ListBuilder<Int64Builder>;
    fn builder(&self, capacity: usize) -> Self::Builder {
        ListBuilder::with_capacity(Int64Builder::new(), capacity)
    }
    fn append_null(&self, out: &mut Self::Builder) {
        out.append_null();
    }
    fn finish(&self, events: &mut [Event], out: &mut Self::Builder) -> Result<()> {
        let mut scratch = self.scratch.lock().expect("scratch");
        let result = self.funnel.run(events, &mut scratch, true);
        out.values().append_slice(&result.step_times);
        out.append(true);
        Ok(())
    }
    fn output(&self, array: ArrayRef) -> Result<ArrayRef> {
        let list = array.as_list::<i32>();
        let raw = list.values().as_primitive::<Int64Type>();
        let values: ArrayRef = match self.kind {
            TimeKind::Timestamp => Arc::new(
                TimestampMicrosecondArray::new(raw.values().clone(), raw.nulls().cloned()).with_timezone("UTC"),
            ),
            TimeKind::Date => Arc::new(Date32Array::from(raw.values().iter().map(|&d| d as i32).collect::<Vec<_>>())),
            TimeKind::Integer => list.values().clone(),
        };
        let field = Arc::new(Field::new_list_field(element_type(self.kind), true));
        Ok(Arc::new(ListArray::try_new(field, list.offsets().clone(), values, list.nulls().cloned())?))
    }
}
