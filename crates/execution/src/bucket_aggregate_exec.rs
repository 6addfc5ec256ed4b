//! `BucketAggregateExec`: `GROUP BY user_id` over one user bucket per partition, grouping by
//! the Parquet dictionary of `user_id`.
//!
//! Why our own operator rather than DataFusion's `AggregateExec`: DataFusion groups a string
//! key by hashing every row's string (about 40 % of a retention query's time over 20M
//! events, docs/benchmarks.md), and a dictionary key drops it to its slower row format.
//! Event files store `user_id` dictionary-encoded, a few thousand ids for ~50k rows, and the
//! Parquet reader hands out one dictionary per column chunk, shared by its batches. So here
//! each distinct id of a chunk is looked up once, and every row costs one array read
//! ([`UserGroups::assign`]). The aggregates are DataFusion's `GroupsAccumulator`s, driven as
//! `AggregateExec` drives them.
//!
//! Memory: the groups and accumulators are accounted in the session's memory pool. When the
//! pool refuses more, the operator hands over to DataFusion ([`fall_back`]): the groups so far
//! and each further row become partial states, and a final `AggregateExec` merges them,
//! spilling as it needs.
//!
//! ```text
//! AggregateExec: mode=SinglePartitioned, gby=[user_id]      BucketAggregateExec: gby=[user_id]
//!   <filters, projections>                          ==>       <filters, projections>
//!     DataSourceExec: one group per bucket                      DataSourceExec: user_id as Dictionary(Int32, Utf8)
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Int32Type, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_datafusion_err, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::EmitTo;
use datafusion::logical_expr::GroupsAccumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{apply_expression_roots, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{stream, StreamExt, TryStreamExt};

use crate::user_id_dictionary::with_dictionary_reader;
use crate::user_ids::DictionaryUserIds;

/// One stage of `GROUP BY user_id` over bucket partitions whose `user_id` column is a
/// dictionary. Built by [`crate::BucketAggregateRule`]; answers exactly as the
/// `SinglePartitioned` `AggregateExec` it replaces.
#[derive(Debug, Clone)]
pub struct BucketAggregateExec {
    /// Filters and projections over the dictionary scan.
    input: Arc<dyn ExecutionPlan>,
    /// The replaced aggregate: its group-by (one column, `key`), aggregates and filters, and
    /// its input schema (with `user_id` as a string), used when falling back.
    group_by: Arc<PhysicalGroupBy>,
    key: usize,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    string_input_schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BucketAggregateExec {
    /// The operator for `aggregate` (`SinglePartitioned`, grouped by the column `key` of
    /// `dictionary_input`, which is `aggregate`'s input with `user_id` read as a dictionary),
    /// or `None` when one of its aggregates needs what only `AggregateExec` does (DISTINCT,
    /// ORDER BY, no `GroupsAccumulator`).
    pub fn try_new(aggregate: &AggregateExec, key: usize, dictionary_input: Arc<dyn ExecutionPlan>) -> Option<Self> {
        let plain = aggregate
            .aggr_expr()
            .iter()
            .all(|a| a.groups_accumulator_supported() && !a.is_distinct() && a.order_bys().is_empty());
        (plain && *aggregate.mode() == AggregateMode::SinglePartitioned).then(|| Self {
            input: dictionary_input,
            group_by: Arc::new(aggregate.group_expr().clone()),
            key,
            aggregates: aggregate.aggr_expr().to_vec(),
            filters: aggregate.filter_expr().to_vec(),
            string_input_schema: aggregate.input_schema(),
            properties: aggregate.properties().clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl BucketAggregateExec {
    /// The input column it groups by.
    pub fn key(&self) -> usize {
        self.key
    }

    /// The replaced aggregate's input schema, with `user_id` as a string.
    pub fn aggregate_input_schema(&self) -> SchemaRef {
        self.string_input_schema.clone()
    }

    /// The `SinglePartitioned` aggregate this operator answers as, over `input` (a plan with
    /// [`Self::aggregate_input_schema`]): what a plan codec carries, since
    /// DataFusion's encodes every part of it.
    pub fn replaced_aggregate(&self, input: Arc<dyn ExecutionPlan>) -> Result<AggregateExec> {
        AggregateExec::try_new(
            AggregateMode::SinglePartitioned,
            self.group_by.as_ref().clone(),
            self.aggregates.clone(),
            self.filters.clone(),
            input,
            self.string_input_schema.clone(),
        )
    }
}

impl DisplayAs for BucketAggregateExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let aggregates: Vec<&str> = self.aggregates.iter().map(|a| a.name()).collect();
        write!(
            f,
            "BucketAggregateExec: gby=[{}], aggr=[{}]",
            self.string_input_schema.field(self.key).name(),
            aggregates.join(", ")
        )
    }
}

impl ExecutionPlan for BucketAggregateExec {
    fn name(&self) -> &'static str {
        "BucketAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let arguments = self.aggregates.iter().flat_map(|a| a.expressions());
        let filters = self.filters.iter().flatten().cloned();
        apply_expression_roots(self.group_by.input_exprs().into_iter().chain(arguments).chain(filters), f)
    }

    // Each partition must stay one bucket: a repartition below (DataFusion's distribution rule
    // runs again on each Ballista stage) would split users across partitions.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("BucketAggregateExec takes one input, got {}", children.len());
        }
        // The output (groups and aggregate values) does not depend on the input's properties.
        Ok(Arc::new(Self {
            input: children.swap_remove(0),
            metrics: ExecutionPlanMetricsSet::new(),
            ..Self::clone(&self)
        }))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = with_dictionary_reader(&self.input, &context)?.execute(partition, context.clone())?;
        // Spillable in the pool's sense: refused more than its share, it hands over to
        // DataFusion's aggregates, which spill.
        let reservation = MemoryConsumer::new(format!("BucketAggregateExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let fell_back = MetricBuilder::new(&self.metrics).counter("fell_back", partition);
        let run = Run {
            plan: self.clone(),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            fell_back,
            reservation,
            context,
        };
        let output = stream::once(run.aggregate(input)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), output)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's execution.
struct Run {
    plan: BucketAggregateExec,
    baseline: BaselineMetrics,
    /// 1 when the partition was handed over to DataFusion (shown by EXPLAIN ANALYZE).
    fell_back: Count,
    reservation: MemoryReservation,
    context: Arc<TaskContext>,
}

impl Run {
    async fn aggregate(self, mut input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let mut groups = UserGroups::try_new(&self.plan.aggregates)?;
        while let Some(batch) = input.next().await.transpose()? {
            let timer = self.baseline.elapsed_compute().timer();
            groups.update(&batch, &self.plan)?;
            timer.done();
            if self.reservation.try_resize(groups.size()).is_err() {
                self.fell_back.add(1);
                return fall_back(&self.plan, groups, input, &self.context);
            }
        }
        let timer = self.baseline.elapsed_compute().timer();
        let output = groups.evaluate(self.plan.schema())?;
        timer.done();
        self.baseline.record_output(output.num_rows());
        let slices = batches_of(&output, &self.context);
        // The output holds about what the groups held: the reservation lives until it is read.
        let reservation = self.reservation;
        let output = stream::iter(slices).map(move |batch| {
            let _held = &reservation;
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.plan.schema(), output)))
    }
}

/// Hands a partition over to DataFusion once the memory pool refuses to grow: the groups so
/// far become partial states, each further row becomes a state of its own
/// (`convert_to_state`, as DataFusion's partial aggregate does when it skips aggregating),
/// and a final `AggregateExec` merges them all, spilling when it must. No partial aggregate
/// in between: it could not spill, and would hold the memory the final one needs.
fn fall_back(
    plan: &BucketAggregateExec,
    groups: UserGroups,
    rest: SendableRecordBatchStream,
    context: &Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let key_field = plan.string_input_schema.field(plan.key).clone();
    let mut fields = vec![key_field.with_name(plan.group_by.expr()[0].1.clone())];
    for aggregate in &plan.aggregates {
        fields.extend(aggregate.state_fields()?.iter().map(|f| f.as_ref().clone()));
    }
    let states_schema = Arc::new(Schema::new(fields));
    let first = groups.states(states_schema.clone())?;
    let converters = plan.aggregates.iter().map(|a| a.create_groups_accumulator()).collect::<Result<Vec<_>>>()?;
    let (job, schema) = (plan.clone(), states_schema.clone());
    let converted = rest.map(move |batch| {
        let batch = batch?;
        let mut columns = vec![cast(batch.column(job.key), schema.field(0).data_type())?];
        for ((converter, aggregate), filter) in converters.iter().zip(&job.aggregates).zip(&job.filters) {
            let (values, filter) = arguments(aggregate, filter, &batch)?;
            columns.extend(converter.convert_to_state(&values, filter.as_ref())?);
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    });
    // In batches, as any input: the final aggregate can spill between them, and its first
    // allocation is one batch's, not all the groups' (which a tight pool may refuse).
    let states = stream::iter(batches_of(&first, context)).chain(converted);
    let last = AggregateExec::try_new(
        AggregateMode::Final,
        Arc::new(plan.group_by.as_final()),
        plan.aggregates.clone(),
        vec![None; plan.aggregates.len()],
        one_shot(states_schema.clone(), Box::pin(RecordBatchStreamAdapter::new(states_schema, states)))?,
        plan.string_input_schema.clone(),
    )?;
    last.execute(0, context.clone())
}

/// `batch` in slices of the session's batch size (zero-copy).
fn batches_of(batch: &RecordBatch, context: &TaskContext) -> Vec<Result<RecordBatch>> {
    let (rows, size) = (batch.num_rows(), context.session_config().batch_size().max(1));
    (0..rows).step_by(size).map(|at| Ok(batch.slice(at, size.min(rows - at)))).collect()
}

/// A one-partition plan that yields `stream` once.
pub(crate) fn one_shot(schema: SchemaRef, stream: SendableRecordBatchStream) -> Result<Arc<dyn ExecutionPlan>> {
    let partition: Arc<dyn PartitionStream> =
        Arc::new(OneShot { schema: schema.clone(), stream: Mutex::new(Some(stream)) });
    Ok(Arc::new(StreamingTableExec::try_new(schema, vec![partition], None, [], false, None)?))
}

struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for OneShot {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().map(|mut s| s.take()).ok().flatten();
        taken.unwrap_or_else(|| {
            let failed = stream::once(async { exec_err!("BucketAggregateExec's fallback input was read twice") });
            Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), failed))
        })
    }
}

/// `aggregate`'s argument columns over `batch`, and its FILTER clause's (checked boolean).
fn arguments(
    aggregate: &AggregateFunctionExpr,
    filter: &Option<Arc<dyn PhysicalExpr>>,
    batch: &RecordBatch,
) -> Result<(Vec<ArrayRef>, Option<BooleanArray>)> {
    let rows = batch.num_rows();
    let values =
        aggregate.expressions().iter().map(|e| e.evaluate(batch)?.into_array(rows)).collect::<Result<Vec<_>>>()?;
    let filter = match filter {
        Some(f) => Some(
            f.evaluate(batch)?
                .into_array(rows)?
                .as_boolean_opt()
                .cloned()
                .ok_or_else(|| internal_datafusion_err!("a FILTER clause is not boolean"))?,
        ),
        None => None,
    };
    Ok((values, filter))
}

/// The groups of one partition: a group per user id, and each aggregate's accumulator.
struct UserGroups {
    ids: DictionaryUserIds,
    group_indices: Vec<usize>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl UserGroups {
    fn try_new(aggregates: &[Arc<AggregateFunctionExpr>]) -> Result<Self> {
        Ok(Self {
            ids: DictionaryUserIds::default(),
            group_indices: Vec::new(),
            accumulators: aggregates.iter().map(|a| a.create_groups_accumulator()).collect::<Result<_>>()?,
        })
    }

    fn update(&mut self, batch: &RecordBatch, plan: &BucketAggregateExec) -> Result<()> {
        let ids = batch
            .column(plan.key)
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| internal_datafusion_err!("user_id is not read as a dictionary"))?;
        self.group_indices.clear();
        let group_indices = &mut self.group_indices;
        self.ids.number(ids, |group| group_indices.push(group as usize))?;
        let total_groups = self.ids.len();
        for ((accumulator, aggregate), filter) in self.accumulators.iter_mut().zip(&plan.aggregates).zip(&plan.filters)
        {
            let (values, filter) = arguments(aggregate, filter, batch)?;
            accumulator.update_batch(&values, &self.group_indices, filter.as_ref(), total_groups)?;
        }
        Ok(())
    }

    /// Bytes held, for the memory pool.
    fn size(&self) -> usize {
        self.ids.size()
            + self.group_indices.capacity() * size_of::<usize>()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// The user ids in group order, as `schema`'s first column wants them.
    fn ids(&mut self, schema: &SchemaRef) -> Result<ArrayRef> {
        let ids: ArrayRef = Arc::new(std::mem::take(&mut self.ids).into_array()?);
        Ok(cast(&ids, schema.field(0).data_type())?)
    }

    /// One row per group: its id and each aggregate's value.
    fn evaluate(mut self, schema: SchemaRef) -> Result<RecordBatch> {
        let mut columns = vec![self.ids(&schema)?];
        for accumulator in &mut self.accumulators {
            columns.push(accumulator.evaluate(EmitTo::All)?);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// One row per group: its id and each aggregate's partial state, as `schema` (a partial
    /// `AggregateExec`'s output).
    fn states(mut self, schema: SchemaRef) -> Result<RecordBatch> {
        let mut columns = vec![self.ids(&schema)?];
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
