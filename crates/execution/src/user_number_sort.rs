//! A window partitioned by `user_id` and ordered by one time column, over user buckets, sorted
//! by one fixed-width key instead of by (`user_id` text, time).
//!
//! Why: sessions by `lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time)` spent
//! most of their time in DataFusion's sort: with two keys it sorts each batch with the dynamic
//! comparator (every comparison of two ids a string comparison) and merges hundreds of runs in
//! Arrow's row format (each row's id copied into it, each step a `memcmp`); the window then
//! compares ids again to find each user's rows (docs/benchmarks.md, session sixteen). Here each
//! partition numbers its users as they arrive ([`UserIds`], one hash lookup per row), and one
//! 128-bit key per row, (number, null flag, time made to sort as unsigned), sorts the rows by
//! user and time: DataFusion sorts and merges a single primitive column, coalesced into large
//! runs, and the window partitions by the number.
//!
//! ```text
//! BoundedWindowAggExec: PARTITION BY [user_id]     ProjectionExec: the window's columns as before
//!   SortExec: [user_id, t]                   ==>     BoundedWindowAggExec: PARTITION BY [__user_number]
//!     <input read by bucket>                           UserOrderExec: ordered by [__user_number, t]
//!                                                        SortExec: [__user_time]
//!                                                          UserNumbersExec: + __user_number, __user_time
//!                                                            <input read by bucket>
//! ```
//! Answers are the same: within a bucket partition two rows share a number exactly when they
//! share a user, so each window partition holds the same rows in the same order of `t` (ties
//! in `t` may come in another order, as they may in any sort). Numbers are not ids' order, so
//! the rewrite applies only where nothing above reads the window's output order by `user_id`
//! (the rule rewrites windows whose input it reads by bucket, which is already no ordering
//! across partitions; the window's own output ordering is declared on the number).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::window::{StandardWindowExpr, WindowExpr};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    apply_expression_roots, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, InputOrderMode,
    Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::user_ids::UserIds;

/// The column holding each row's user number (UInt32, distinct per user of a partition).
const USER_NUMBER: &str = "__user_number";
/// The column holding each row's sort key (Decimal128, used as an unsigned 97-bit integer).
const USER_TIME: &str = "__user_time";

/// `window` (a window partitioned by column `user_id` alone and ordered by one 64-bit column,
/// over a sort by exactly those two within bucket partitions) in the numbered form above;
/// `None` for any other shape.
pub(crate) fn window_by_user_number(window: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let (exprs, input) = if let Some(w) = window.downcast_ref::<BoundedWindowAggExec>() {
        (w.window_expr(), w.input())
    } else if let Some(w) = window.downcast_ref::<WindowAggExec>() {
        (w.window_expr(), w.input())
    } else {
        return Ok(None);
    };
    let Some(sort) = input.downcast_ref::<SortExec>() else { return Ok(None) };
    if !sort.preserve_partitioning() || sort.fetch().is_some() {
        return Ok(None);
    }
    let [by_user, by_time] = sort.expr().as_ref() else { return Ok(None) };
    let (Some(user_id), Some(time)) = (by_user.expr.downcast_ref::<Column>(), by_time.expr.downcast_ref::<Column>())
    else {
        return Ok(None);
    };
    let schema = sort.input().schema();
    let is_text = matches!(schema.field(user_id.index()).data_type(), DataType::Utf8 | DataType::Utf8View);
    let is_64_bit = matches!(schema.field(time.index()).data_type(), DataType::Int64 | DataType::Timestamp(_, _));
    let same_keys = |w: &Arc<dyn WindowExpr>| {
        matches!(w.partition_by(), [p] if p.downcast_ref::<Column>() == Some(user_id))
            && matches!(w.order_by(), [o] if o.expr.downcast_ref::<Column>() == Some(time) && o.options == by_time.options)
    };
    if !is_text || !is_64_bit || !exprs.iter().all(same_keys) {
        return Ok(None);
    }
    let Some(numbered_exprs) = exprs.iter().map(|w| partitioned_by(w, schema.fields().len())).collect() else {
        return Ok(None);
    };
    let numbered: Arc<dyn ExecutionPlan> =
        Arc::new(UserNumbersExec::try_new(sort.input().clone(), user_id.index(), time.index(), by_time.options)?);
    let key =
        PhysicalSortExpr::new(Arc::new(Column::new(USER_TIME, schema.fields().len() + 1)), SortOptions::default());
    let sorted = Arc::new(SortExec::new([key].into(), numbered).with_preserve_partitioning(true));
    let ordered: Arc<dyn ExecutionPlan> = Arc::new(UserOrderExec::try_new(sorted, by_time.clone())?);
    let rebuilt: Arc<dyn ExecutionPlan> = if window.downcast_ref::<BoundedWindowAggExec>().is_some() {
        Arc::new(BoundedWindowAggExec::try_new(numbered_exprs, ordered, InputOrderMode::Sorted, true)?)
    } else {
        Arc::new(WindowAggExec::try_new(numbered_exprs, ordered, true)?)
    };
    // The window's columns as before: its input's, then each window function's.
    let kept = schema.fields().len();
    let output = window.schema();
    let projection = output.fields().iter().enumerate().map(|(i, field)| {
        let source = if i < kept { i } else { i + 1 };
        (Arc::new(Column::new(field.name(), source)) as Arc<dyn PhysicalExpr>, field.name().clone())
    });
    let projected = ProjectionExec::try_new(projection, rebuilt)?;
    Ok((projected.schema() == output).then(|| Arc::new(projected) as Arc<dyn ExecutionPlan>))
}

/// `window` partitioned by the user number, column `number` of its new input; `None` for a
/// kind of window expression this does not know how to rebuild whole (DataFusion's plain
/// aggregate windows, such as a running `sum`, do not show their FILTER clause).
fn partitioned_by(window: &Arc<dyn WindowExpr>, number: usize) -> Option<Arc<dyn WindowExpr>> {
    let partition_by: Vec<Arc<dyn PhysicalExpr>> = vec![Arc::new(Column::new(USER_NUMBER, number))];
    if let Some(standard) = window.as_any().downcast_ref::<StandardWindowExpr>() {
        let function = standard.get_standard_func_expr().clone();
        let frame = window.get_window_frame().clone();
        return Some(Arc::new(StandardWindowExpr::new(function, &partition_by, window.order_by(), frame)));
    }
    // Sliding aggregate windows rebuild themselves with their filter.
    let expressions = window.all_expressions();
    window.with_new_expressions(expressions.args, partition_by, expressions.order_by_exprs)
}

/// Adds to each row the number of its user within the partition (in arrival order) and the
/// key that sorts rows by (number, time) with the time's sort options.
#[derive(Debug)]
pub struct UserNumbersExec {
    input: Arc<dyn ExecutionPlan>,
    user_id: usize,
    time: usize,
    time_options: SortOptions,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl UserNumbersExec {
    fn try_new(input: Arc<dyn ExecutionPlan>, user_id: usize, time: usize, time_options: SortOptions) -> Result<Self> {
        let mut fields: Vec<Field> = input.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(USER_NUMBER, DataType::UInt32, false));
        fields.push(Field::new(USER_TIME, DataType::Decimal128(38, 0), false));
        let schema = Arc::new(Schema::new_with_metadata(fields, input.schema().metadata().clone()));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Ok(Self { input, user_id, time, time_options, properties: Arc::new(properties), metrics: Default::default() })
    }
}

impl DisplayAs for UserNumbersExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        write!(
            f,
            "UserNumbersExec: user={}, time={}",
            schema.field(self.user_id).name(),
            schema.field(self.time).name()
        )
    }
}

impl ExecutionPlan for UserNumbersExec {
    fn name(&self) -> &'static str {
        "UserNumbersExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    // Its columns are indices into the input, which no expression rewrite touches.
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("UserNumbersExec takes one input, got {}", children.len());
        }
        Ok(Arc::new(Self::try_new(children.swap_remove(0), self.user_id, self.time, self.time_options)?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let reservation = MemoryConsumer::new(format!("UserNumbersExec[{partition}]")).register(context.memory_pool());
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let (schema, user_id, time, options) = (self.schema(), self.user_id, self.time, self.time_options);
        let mut ids = UserIds::default();
        let output = input.map(move |batch| {
            let _timer = baseline.elapsed_compute().timer();
            let batch = batch?;
            let numbers = number_users(&mut ids, batch.column(user_id))?;
            reservation.try_resize(ids.size())?;
            let keys = sort_keys(&numbers, batch.column(time), options)?;
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(numbers));
            columns.push(Arc::new(keys));
            baseline.record_output(batch.num_rows());
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), output)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Each row's user number in `ids` (new users numbered as they come).
fn number_users(ids: &mut UserIds, user_id: &ArrayRef) -> Result<UInt32Array> {
    if user_id.null_count() > 0 {
        return exec_err!("UserNumbersExec: user_id has nulls");
    }
    let numbers: Vec<u32> = match user_id.data_type() {
        DataType::Utf8View => user_id.as_string_view().iter().map(|id| ids.find_or_insert(id.unwrap_or(""))).collect(),
        DataType::Utf8 => user_id.as_string::<i32>().iter().map(|id| ids.find_or_insert(id.unwrap_or(""))).collect(),
        other => return exec_err!("UserNumbersExec: user_id is {other}, not text"),
    };
    Ok(UInt32Array::from(numbers))
}

/// The key that sorts rows by (user number, time) ascending as unsigned integers: the number
/// in bits 65 and up, then one bit that places NULL times first or last, then the time with
/// its sign bit flipped (so that signed order is unsigned order), inverted for DESC.
fn sort_keys(numbers: &UInt32Array, time: &ArrayRef, options: SortOptions) -> Result<Decimal128Array> {
    let times = datafusion::arrow::compute::cast(time, &DataType::Int64)?;
    let times = times.as_primitive::<Int64Type>();
    let null_bit: u128 = if options.nulls_first { 0 } else { 1 };
    let keys = numbers.values().iter().zip(times.iter()).map(|(&number, time)| {
        let low = match time {
            Some(t) => {
                let unsigned = (t as u64) ^ (1u64 << 63);
                let ordered = if options.descending { !unsigned } else { unsigned };
                ((1 - null_bit) << 64) | ordered as u128
            }
            None => null_bit << 64,
        };
        (((number as u128) << 65) | low) as i128
    });
    Ok(Decimal128Array::from_iter_values(keys).with_precision_and_scale(38, 0)?)
}

/// Passes its input (sorted by [`USER_TIME`]) through without that last column, declaring the
/// order the key stands for: by user number, then by the window's time ordering.
#[derive(Debug)]
pub struct UserOrderExec {
    input: Arc<dyn ExecutionPlan>,
    time: PhysicalSortExpr,
    properties: Arc<PlanProperties>,
}

impl UserOrderExec {
    fn try_new(input: Arc<dyn ExecutionPlan>, time: PhysicalSortExpr) -> Result<Self> {
        let input_schema = input.schema();
        let kept = input_schema.fields().len() - 1;
        if input_schema.field(kept).name() != USER_TIME {
            return exec_err!("UserOrderExec's input does not end with {USER_TIME}");
        }
        let schema = Arc::new(input_schema.project(&(0..kept).collect::<Vec<_>>())?);
        let number = PhysicalSortExpr::new(Arc::new(Column::new(USER_NUMBER, kept - 1)), SortOptions::default());
        let mut equivalences = EquivalenceProperties::new(schema);
        equivalences.add_ordering([number, time.clone()]);
        let properties = PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Ok(Self { input, time, properties: Arc::new(properties) })
    }
}

impl DisplayAs for UserOrderExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "UserOrderExec: ordered by [{USER_NUMBER}, {}]", self.time)
    }
}

impl ExecutionPlan for UserOrderExec {
    fn name(&self) -> &'static str {
        "UserOrderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        apply_expression_roots(std::slice::from_ref(&self.time.expr), f)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("UserOrderExec takes one input, got {}", children.len());
        }
        Ok(Arc::new(Self::try_new(children.swap_remove(0), self.time.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let kept: Vec<usize> = (0..schema.fields().len()).collect();
        let output = input.map(move |batch| Ok(batch?.project(&kept)?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), output)))
    }
}
