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

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Builder, ListArray, ListBuilder, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility};

use crate::common::{SingleGroup, TimeKind};
use crate::event_list::{state_fields, Event, Finisher};
use crate::funnel::{Funnel, FunnelLayout};

const NAME: &str = "funnel_step_times";
const USAGE: &str = "funnel_step_times(window, [mode,] timestamp, cond1, ..., condN)";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FunnelStepTimes {
    signature: Signature,
}

impl Default for FunnelStepTimes {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

fn element_type(kind: TimeKind) -> DataType {
    match kind {
        TimeKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        TimeKind::Date => DataType::Date32,
        TimeKind::Integer => DataType::Int64,
    }
}

struct StepTimesFinisher {
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
    fn finish(&self, events: &mut Vec<Event>, out: &mut Self::Builder) -> Result<()> {
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
            TimeKind::Timestamp => Arc::new(TimestampMicrosecondArray::new(raw.values().clone(), raw.nulls().cloned()).with_timezone("UTC")),
            TimeKind::Date => Arc::new(Date32Array::from(raw.values().iter().map(|&d| d as i32).collect::<Vec<_>>())),
            TimeKind::Integer => list.values().clone(),
        };
        let field = Arc::new(Field::new_list_field(element_type(self.kind), true));
        Ok(Arc::new(ListArray::try_new(field, list.offsets().clone(), values, list.nulls().cloned())?))
    }
}

impl FunnelStepTimes {
    fn make(args: &AccumulatorArgs) -> Result<Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>> {
        FunnelLayout::accumulator_factory(NAME, args, |funnel, kind| StepTimesFinisher { funnel, kind, scratch: Default::default() })
    }
}

impl AggregateUDFImpl for FunnelStepTimes {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        FunnelLayout::check(NAME, arg_types, USAGE)?;
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (_, kind) = FunnelLayout::check(NAME, arg_types, USAGE)?;
        Ok(DataType::new_list(element_type(kind), true))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup::new(Self::make(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Self::make(&args)?())
    }
}
