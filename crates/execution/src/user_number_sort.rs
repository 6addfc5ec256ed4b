//! A window partitioned by `user_id` and ordered by one time column, over user buckets, sorted
//! by user number and time with a counting sort instead of by (`user_id` text, time).
//!
//! Why: sessions by `lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time)` spent
//! most of their time in DataFusion's sort: with two keys it sorts each batch with the dynamic
//! comparator (every comparison of two ids a string comparison) and merges hundreds of runs in
//! Arrow's row format (each row's id copied into it, each step a `memcmp`); the window then
//! compares ids again to find each user's rows (docs/benchmarks.md, session sixteen). Here each
//! partition numbers its users as they arrive (from the Parquet dictionary of `user_id` where
//! the scan can read it so, `DictionaryUserIds`: one hash lookup per distinct id of a column
//! chunk, one array read per row; else one hash lookup per row), [`UserSortExec`] places the
//! rows by number (dense from 0: a counting sort) and sorts each user's few rows by time, and
//! the window partitions by the number.
//!
//! ```text
//! BoundedWindowAggExec: PARTITION BY [user_id]     ProjectionExec: the window's columns as before
//!   SortExec: [user_id, t]                   ==>     BoundedWindowAggExec: PARTITION BY [__user_number]
//!     <input read by bucket>                           UserSortExec: [__user_number, t]
//!                                                        UserNumbersExec: + __user_number
//!                                                          <input read by bucket>
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
use datafusion::arrow::compute::{cast, interleave_record_batch, take, SortOptions};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt32Type};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::window::{StandardWindowExpr, WindowExpr};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    apply_expression_roots, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, InputOrderMode,
    Partitioning, PlanProperties,
};
use futures::{stream, StreamExt, TryStreamExt};

use crate::bucket_aggregate_exec::one_shot;
use crate::user_ids::SharedUserIds;
use crate::user_numbers_exec::{with_user_id_type, UserNumbersExec, USER_NUMBER};

/// The column holding each row's sort key when [`UserSortExec`] hands a partition to
/// DataFusion's sort (Decimal128, used as an unsigned 97-bit integer).
const USER_TIME: &str = "__user_time";

/// The input of a window with its scan reading `user_id` (the column given) as a dictionary, or
/// `None` where it cannot.
pub(crate) type DictionaryInput<'a> =
    dyn Fn(&Arc<dyn ExecutionPlan>, usize) -> Result<Option<Arc<dyn ExecutionPlan>>> + 'a;

/// `window` (a window partitioned by column `user_id` alone and ordered by one 64-bit column,
/// over a sort by exactly those two within bucket partitions) in the numbered form above;
/// `None` for any other shape. Users are numbered from `dictionary_input` where it gives one.
pub(crate) fn window_by_user_number(
    window: &Arc<dyn ExecutionPlan>,
    dictionary_input: &DictionaryInput<'_>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
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
    let user_id_type = schema.field(user_id.index()).data_type().clone();
    let input = dictionary_input(sort.input(), user_id.index())?.unwrap_or_else(|| sort.input().clone());
    let partitions = input.output_partitioning().partition_count();
    let shared = Arc::new(SharedUserIds::new(partitions));
    // The ids leave as read: the sort sets them from the table, which it takes.
    let numbered: Arc<dyn ExecutionPlan> =
        Arc::new(UserNumbersExec::try_new(input, user_id.index(), None, shared.clone(), None)?);
    let ordered: Arc<dyn ExecutionPlan> =
        Arc::new(UserSortExec::try_new(numbered, user_id.index(), user_id_type, shared, by_time.clone())?);
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

/// Sorts each partition of its input (whose last column is the user number) by user number,
/// then by the window's time ordering, and declares that order. It does not hold or gather
/// the ids: it sets them after the sort from the partition's table of users, whose order the
/// numbers are (one array read per row, in order).
///
/// Why not DataFusion's `SortExec`: it sorts batches of about 8k rows and merges hundreds of
/// sorted runs with a loser tree (a quarter of sessions by `lag`, docs/benchmarks.md). Users
/// are numbered densely from 0, so here the rows are placed by a counting sort on the number
/// (one pass to count, one to place, each row's time key and location 16 bytes), then each
/// user's few rows are sorted by time, and the output gathered in that order. It holds the
/// partition's input as a sort does; when the memory pool refuses that, the partition is
/// handed to DataFusion's sort, which spills, on one 128-bit key per row ([`sort_keys`]).
#[derive(Debug)]
pub struct UserSortExec {
    input: Arc<dyn ExecutionPlan>,
    user_id: usize,
    /// The text type `user_id` has in the output.
    user_id_type: DataType,
    shared: Arc<SharedUserIds>,
    time: PhysicalSortExpr,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl UserSortExec {
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        user_id: usize,
        user_id_type: DataType,
        shared: Arc<SharedUserIds>,
        time: PhysicalSortExpr,
    ) -> Result<Self> {
        let fields = with_user_id_type(&input.schema(), user_id, user_id_type.clone());
        let schema = Arc::new(Schema::new_with_metadata(fields, input.schema().metadata().clone()));
        let number = schema.fields().len() - 1;
        if schema.field(number).name() != USER_NUMBER || user_id == number {
            return exec_err!("UserSortExec's input does not end with {USER_NUMBER}");
        }
        let Some(time_column) = time.expr.downcast_ref::<Column>() else {
            return exec_err!("UserSortExec orders by a column, not {}", time.expr);
        };
        if !matches!(schema.field(time_column.index()).data_type(), DataType::Int64 | DataType::Timestamp(_, _)) {
            return exec_err!("UserSortExec orders by a 64-bit column, not {}", schema.field(time_column.index()));
        }
        let by_number = PhysicalSortExpr::new(Arc::new(Column::new(USER_NUMBER, number)), SortOptions::default());
        let mut equivalences = EquivalenceProperties::new(schema);
        equivalences.add_ordering([by_number, time.clone()]);
        let properties = PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            input.boundedness(),
        );
        Ok(Self {
            input,
            user_id,
            user_id_type,
            shared,
            time,
            properties: Arc::new(properties),
            metrics: Default::default(),
        })
    }

    /// The time column's index among the held columns (all but `user_id`).
    fn held_time_column(&self) -> usize {
        let time = self.time.expr.downcast_ref::<Column>().map_or(0, Column::index);
        if time > self.user_id {
            time - 1
        } else {
            time
        }
    }
}

impl DisplayAs for UserSortExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "UserSortExec: [{USER_NUMBER}, {}]", self.time)
    }
}

impl ExecutionPlan for UserSortExec {
    fn name(&self) -> &'static str {
        "UserSortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        apply_expression_roots(std::slice::from_ref(&self.time.expr), f)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("UserSortExec takes one input, got {}", children.len());
        }
        let (input, shared) = (children.swap_remove(0), self.shared.clone());
        Ok(Arc::new(Self::try_new(input, self.user_id, self.user_id_type.clone(), shared, self.time.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let reservation = MemoryConsumer::new(format!("UserSortExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let held: Vec<usize> = (0..self.schema().fields().len()).filter(|&i| i != self.user_id).collect();
        let run = SortRun {
            schema: self.schema(),
            held_schema: Arc::new(self.schema().project(&held)?),
            held,
            user_id: self.user_id,
            user_id_type: self.user_id_type.clone(),
            shared: self.shared.clone(),
            partition,
            time: self.held_time_column(),
            options: self.time.options,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            fell_back: MetricBuilder::new(&self.metrics).counter("fell_back", partition),
            reservation,
            context,
        };
        let output = stream::once(run.sort(input)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), output)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's sort.
struct SortRun {
    schema: SchemaRef,
    /// The columns held (all but `user_id`) and their schema.
    held: Vec<usize>,
    held_schema: SchemaRef,
    user_id: usize,
    user_id_type: DataType,
    shared: Arc<SharedUserIds>,
    partition: usize,
    /// The time column among the held ones.
    time: usize,
    options: SortOptions,
    baseline: BaselineMetrics,
    /// 1 when the partition was handed to DataFusion's sort (shown by EXPLAIN ANALYZE).
    fell_back: Count,
    reservation: MemoryReservation,
    context: Arc<TaskContext>,
}

impl SortRun {
    async fn sort(self, mut input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let mut batches = Vec::new();
        while let Some(batch) = input.next().await.transpose()? {
            let batch = batch.project(&self.held)?;
            let grown = self.reservation.try_grow(batch.get_array_memory_size());
            batches.push(batch);
            if grown.is_err() {
                return self.fall_back(batches, input);
            }
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if self.reservation.try_grow(rows * size_of::<(u64, u64)>()).is_err() {
            // The input has ended: not to be polled again.
            let ended = Box::pin(RecordBatchStreamAdapter::new(input.schema(), stream::empty()));
            return self.fall_back(batches, ended);
        }
        let timer = self.baseline.elapsed_compute().timer();
        let order = sorted_rows(&batches, self.time, self.options)?;
        let ids = self.ids()?;
        timer.done();
        let size = self.context.session_config().batch_size().max(1);
        let Self { schema, held_schema, user_id, baseline, reservation, .. } = self;
        let output_schema = schema.clone();
        let output = stream::iter((0..order.len()).step_by(size)).map(move |start| {
            // The reservation lives until the output has been read.
            let _held = &reservation;
            let _timer = baseline.elapsed_compute().timer();
            let indices: Vec<(usize, usize)> =
                order[start..(start + size).min(order.len())].iter().map(|&(_, at)| location(at)).collect();
            let sources: Vec<&RecordBatch> = batches.iter().collect();
            let batch = if sources.is_empty() {
                RecordBatch::new_empty(held_schema.clone())
            } else {
                interleave_record_batch(&sources, &indices)?
            };
            let batch = with_ids(&schema, batch, user_id, &ids)?;
            baseline.record_output(batch.num_rows());
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(output_schema, output)))
    }

    /// The partition's user ids in number order, as the output wants them: once every row has
    /// been numbered (the input has ended).
    fn ids(&self) -> Result<ArrayRef> {
        ids_of(&self.shared, self.partition, &self.user_id_type)
    }

    /// Hands the partition (the batches read so far, then the rest) to DataFusion's sort on
    /// one key per row, and drops the key after.
    fn fall_back(self, held: Vec<RecordBatch>, rest: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let SortRun {
            schema: output_schema,
            held: held_columns,
            held_schema,
            user_id,
            user_id_type,
            shared,
            partition,
            time,
            options,
            fell_back,
            reservation,
            context,
            ..
        } = self;
        fell_back.add(1);
        // Unregistered, so that the pool shares its memory among the sort's consumers only.
        drop(reservation);
        let number = held_schema.fields().len() - 1;
        let mut fields: Vec<Field> = held_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(USER_TIME, DataType::Decimal128(38, 0), false));
        let keyed_schema = Arc::new(Schema::new_with_metadata(fields, held_schema.metadata().clone()));
        let schema = keyed_schema.clone();
        let rest = rest.map(move |batch| Ok(batch?.project(&held_columns)?));
        let keyed = stream::iter(held.into_iter().map(Ok)).chain(rest).map(move |batch: Result<RecordBatch>| {
            let batch = batch?;
            let keys = sort_keys(batch.column(number).as_primitive(), batch.column(time), options)?;
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(keys));
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        });
        let keyed = one_shot(keyed_schema.clone(), Box::pin(RecordBatchStreamAdapter::new(keyed_schema, keyed)))?;
        let key = PhysicalSortExpr::new(Arc::new(Column::new(USER_TIME, number + 1)), SortOptions::default());
        let sorted = SortExec::new([key].into(), keyed).execute(0, context)?;
        let kept: Vec<usize> = (0..=number).collect();
        // The sort has read every row before its first output, so the table is whole then.
        let mut ids: Option<ArrayRef> = None;
        let schema = output_schema.clone();
        let output = sorted.map(move |batch| {
            let batch = batch?.project(&kept)?;
            let ids = match &ids {
                Some(ids) => ids,
                None => ids.insert(ids_of(&shared, partition, &user_id_type)?),
            };
            with_ids(&schema, batch, user_id, ids)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(output_schema, output)))
    }
}

/// The ids of `partition`'s users in number order, as `user_id_type`; the table is emptied.
fn ids_of(shared: &SharedUserIds, partition: usize, user_id_type: &DataType) -> Result<ArrayRef> {
    let ids: ArrayRef = Arc::new(shared.take(partition)?.into_array()?);
    Ok(cast(&ids, user_id_type)?)
}

/// `batch` (the held columns, the user number last) with column `user_id` of `schema` set
/// from `ids` by each row's number.
fn with_ids(schema: &SchemaRef, batch: RecordBatch, user_id: usize, ids: &ArrayRef) -> Result<RecordBatch> {
    let numbers = batch.column(batch.num_columns() - 1).clone();
    let mut columns = batch.columns().to_vec();
    columns.insert(user_id, take(ids, &numbers, None)?);
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Where a row sits: its batch in the high half, its row in the low half, and in the top bit
/// whether its time is NULL.
const NULL_TIME: u64 = 1 << 63;

fn location(at: u64) -> (usize, usize) {
    (((at & !NULL_TIME) >> 32) as usize, (at & 0xffff_ffff) as usize)
}

/// The rows of `batches` (last column the user number, dense from 0) ordered by number, then
/// by column `time` as `options` say: (time key, location) per row.
fn sorted_rows(batches: &[RecordBatch], time: usize, options: SortOptions) -> Result<Vec<(u64, u64)>> {
    let numbers = |batch: &RecordBatch| batch.column(batch.num_columns() - 1).as_primitive::<UInt32Type>().clone();
    // Where each user's rows start (a counting sort: users are numbered 0, 1, 2 … as they came).
    let mut starts: Vec<usize> = Vec::new();
    for batch in batches {
        for &number in numbers(batch).values() {
            let number = number as usize;
            if number >= starts.len() {
                starts.resize(number + 1, 0);
            }
            starts[number] += 1;
        }
    }
    let mut next = 0;
    for start in starts.iter_mut() {
        (*start, next) = (next, next + *start);
    }
    let mut rows = vec![(0u64, 0u64); next];
    let mut placed = starts.clone();
    for (b, batch) in batches.iter().enumerate() {
        let times = cast(batch.column(time), &DataType::Int64)?;
        let times = times.as_primitive::<Int64Type>();
        for (r, &number) in numbers(batch).values().iter().enumerate() {
            let at = ((b as u64) << 32) | r as u64;
            let slot = &mut placed[number as usize];
            rows[*slot] = if times.is_valid(r) { (time_key(times.value(r), options), at) } else { (0, at | NULL_TIME) };
            *slot += 1;
        }
    }
    // Each user's rows by time, NULLs first or last as asked.
    let null_rank = |at: u64| ((at & NULL_TIME != 0) != options.nulls_first) as u8;
    let mut from = 0;
    for &to in starts.iter().skip(1).chain(std::iter::once(&next)) {
        rows[from..to].sort_unstable_by_key(|&(key, at)| (null_rank(at), key));
        from = to;
    }
    Ok(rows)
}

/// `time` as an unsigned integer that sorts as `options` say (sign bit flipped, so that signed
/// order is unsigned order; inverted for DESC).
fn time_key(time: i64, options: SortOptions) -> u64 {
    let unsigned = (time as u64) ^ (1u64 << 63);
    if options.descending {
        !unsigned
    } else {
        unsigned
    }
}

/// The key that sorts rows by (user number, time) ascending as unsigned integers, for
/// DataFusion's sort when [`UserSortExec`] falls back: the number in bits 65 and up, then one
/// bit that places NULL times first or last, then [`time_key`].
fn sort_keys(numbers: &UInt32Array, time: &ArrayRef, options: SortOptions) -> Result<Decimal128Array> {
    let times = cast(time, &DataType::Int64)?;
    let times = times.as_primitive::<Int64Type>();
    let null_bit: u128 = if options.nulls_first { 0 } else { 1 };
    let keys = numbers.values().iter().zip(times.iter()).map(|(&number, time)| {
        let low = match time {
            Some(t) => ((1 - null_bit) << 64) | time_key(t, options) as u128,
            None => null_bit << 64,
        };
        (((number as u128) << 65) | low) as i128
    });
    Ok(Decimal128Array::from_iter_values(keys).with_precision_and_scale(38, 0)?)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;

    fn batch(numbers: &[u32], times: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, true),
            Field::new(USER_NUMBER, DataType::UInt32, false),
        ]));
        let columns: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(times.to_vec())), Arc::new(UInt32Array::from(numbers.to_vec()))];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    /// Rows come out by user number, then by time in the asked direction with NULLs where
    /// asked, across batches; negative times sort before positive ones.
    #[test]
    fn rows_sort_by_user_number_then_time_as_asked() {
        let batches =
            [batch(&[1, 0, 1, 2], &[Some(5), Some(-3), None, Some(7)]), batch(&[0, 1, 0], &[Some(-10), Some(2), None])];
        let order = |descending, nulls_first| {
            let rows = sorted_rows(&batches, 0, SortOptions { descending, nulls_first }).unwrap();
            rows.into_iter().map(|(_, at)| location(at)).collect::<Vec<_>>()
        };
        assert_eq!(order(false, false), [(1, 0), (0, 1), (1, 2), (1, 1), (0, 0), (0, 2), (0, 3)]);
        assert_eq!(order(true, true), [(1, 2), (0, 1), (1, 0), (0, 2), (0, 0), (1, 1), (0, 3)]);
        assert_eq!(order(false, true), [(1, 2), (1, 0), (0, 1), (0, 2), (1, 1), (0, 0), (0, 3)]);
    }
}
