//! A hash join on `user_id` over user buckets, joined on a user number instead of the id's text.
//!
//! Why: in a join of the events with a per-user aggregate of them (a cohort matrix joined with
//! each user's first week), DataFusion hashes the id of every probe row and compares its text
//! with the build row's. Both inputs of a bucket's partition are numbered by one table of that
//! partition's users ([`SharedUserIds`]), the events from the Parquet dictionary of `user_id`
//! (one hash lookup per distinct id of a column chunk, one array read per row), and the join
//! hashes and compares a `UInt32`.
//!
//! ```text
//! HashJoinExec: on=[(user_id, user_id)]        HashJoinExec: on=[(__user_number, __user_number)],
//!   BucketPartitionsExec                 ==>                  projection=the join's columns as before
//!     <left by bucket>                            BucketPartitionsExec
//!   BucketPartitionsExec                            JoinUserNumbersExec (numbers shared with the right)
//!     <right by bucket>                               <left by bucket>
//!                                                 BucketPartitionsExec
//!                                                   JoinUserNumbersExec (by dictionary where it can)
//!                                                     <right by bucket>
//! ```
//! Answers are the same: within a bucket partition two ids get one number exactly when they
//! are equal, and both sides of a partition number through the same table. Only for ids that
//! cannot be NULL (the events table declares `user_id` NOT NULL), so NULL semantics do not
//! change.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_datafusion_err, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use futures::{stream, StreamExt};

use crate::user_id_dictionary::with_dictionary_reader;
use crate::user_ids::SharedUserIds;
use crate::user_number_sort::{number_users, DictionaryInput};

/// The column holding each row's user number (UInt32, one per user of a bucket partition).
const JOIN_USER_NUMBER: &str = "__join_user_number";

/// The inputs of a bucket-partitioned join, numbered: `left` and `right` (each bucket
/// partitions, `left_key` and `right_key` their `user_id` columns) with a number column
/// appended, the join's `on` moved to the numbers, and a projection restoring `join`'s
/// output columns. `None` when the keys are not both non-NULL text.
pub(crate) struct NumberedJoin {
    pub left: Arc<dyn ExecutionPlan>,
    pub right: Arc<dyn ExecutionPlan>,
    pub on: Vec<(Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>)>,
    pub projection: Vec<usize>,
}

/// `join`'s inputs `left` and `right` (read by bucket, `join.on()[pair]` their user columns)
/// numbered as in the module's plan, or `None` where the keys may be NULL or are not text.
pub(crate) fn numbered_join(
    join: &HashJoinExec,
    pair: usize,
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    dictionary_input: &DictionaryInput<'_>,
) -> Result<Option<NumberedJoin>> {
    let (left_key, right_key) = &join.on()[pair];
    let (Some(left_key), Some(right_key)) = (left_key.downcast_ref::<Column>(), right_key.downcast_ref::<Column>())
    else {
        return Ok(None);
    };
    let text_not_null = |plan: &Arc<dyn ExecutionPlan>, column: usize| {
        let schema = plan.schema();
        let field = schema.field(column);
        !field.is_nullable() && matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View)
    };
    let partitions = left.output_partitioning().partition_count();
    if !text_not_null(&left, left_key.index())
        || !text_not_null(&right, right_key.index())
        || right.output_partitioning().partition_count() != partitions
    {
        return Ok(None);
    }
    // Freed when both sides of a partition have ended.
    let shared = Arc::new(SharedUserIds::new(partitions));
    let numbered = |input: Arc<dyn ExecutionPlan>, key: &Column| -> Result<Arc<dyn ExecutionPlan>> {
        let user_id_type = input.schema().field(key.index()).data_type().clone();
        let input = dictionary_input(&input, key.index())?.unwrap_or(input);
        Ok(Arc::new(JoinUserNumbersExec::try_new(input, key.index(), user_id_type, shared.clone())?))
    };
    let (old_left, old_right) = (join.left().schema(), join.right().schema());
    let left = numbered(left, left_key)?;
    let right = numbered(right, right_key)?;
    let number = |plan: &Arc<dyn ExecutionPlan>| -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(JOIN_USER_NUMBER, plan.schema().fields().len() - 1))
    };
    let mut on = join.on().to_vec();
    on[pair] = (number(&left), number(&right));
    // Each side gained one column at its end: find every output column in the new join.
    let (_, old_columns) = build_join_schema(&old_left, &old_right, join.join_type());
    let (_, new_columns) = build_join_schema(&left.schema(), &right.schema(), join.join_type());
    let output: Vec<usize> = match join.projection.as_deref() {
        Some(projection) => projection.to_vec(),
        None => (0..old_columns.len()).collect(),
    };
    let projection = output
        .iter()
        .map(|&i| {
            let old = &old_columns[i];
            new_columns.iter().position(|new| new.side == old.side && new.index == old.index)
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| internal_datafusion_err!("a numbered join lost one of its output columns"))?;
    Ok(Some(NumberedJoin { left, right, on, projection }))
}

/// Adds to each row the number of its user in its partition's shared table, passing
/// `user_id` on as text (read as a dictionary where the input does).
#[derive(Debug)]
pub struct JoinUserNumbersExec {
    input: Arc<dyn ExecutionPlan>,
    user_id: usize,
    user_id_type: DataType,
    shared: Arc<SharedUserIds>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl JoinUserNumbersExec {
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        user_id: usize,
        user_id_type: DataType,
        shared: Arc<SharedUserIds>,
    ) -> Result<Self> {
        let partitions = input.output_partitioning().partition_count();
        if partitions != shared.partitions() {
            return exec_err!("JoinUserNumbersExec: {partitions} partitions, {} tables", shared.partitions());
        }
        let mut fields: Vec<Field> = input.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[user_id] = fields[user_id].clone().with_data_type(user_id_type.clone());
        fields.push(Field::new(JOIN_USER_NUMBER, DataType::UInt32, false));
        let schema = Arc::new(Schema::new_with_metadata(fields, input.schema().metadata().clone()));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Ok(Self { input, user_id, user_id_type, shared, properties: Arc::new(properties), metrics: Default::default() })
    }
}

impl DisplayAs for JoinUserNumbersExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        let user_id = schema.field(self.user_id);
        let read = if matches!(user_id.data_type(), DataType::Dictionary(_, _)) { "dictionary" } else { "text" };
        write!(f, "JoinUserNumbersExec: user={} by {read}", user_id.name())
    }
}

impl ExecutionPlan for JoinUserNumbersExec {
    fn name(&self) -> &'static str {
        "JoinUserNumbersExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    // Its column is an index into the input, which no expression rewrite touches.
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    // Each partition must stay one bucket, numbered by its own table.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("JoinUserNumbersExec takes one input, got {}", children.len());
        }
        let (input, shared) = (children.swap_remove(0), self.shared.clone());
        Ok(Arc::new(Self::try_new(input, self.user_id, self.user_id_type.clone(), shared)?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let by_dictionary = matches!(self.input.schema().field(self.user_id).data_type(), DataType::Dictionary(_, _));
        let input = if by_dictionary { with_dictionary_reader(&self.input, &context)? } else { self.input.clone() };
        let input = input.execute(partition, context.clone())?;
        let reservation =
            MemoryConsumer::new(format!("JoinUserNumbersExec[{partition}]")).register(context.memory_pool());
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let (schema, user_id, user_id_type) = (self.schema(), self.user_id, self.user_id_type.clone());
        let shared = self.shared.clone();
        let numbered = input.map(move |batch| {
            let _timer = baseline.elapsed_compute().timer();
            let batch = batch?;
            let numbers = {
                let mut ids = shared.table(partition)?;
                let numbers = number_users(&mut ids, batch.column(user_id))?;
                reservation.try_resize(ids.size())?;
                numbers
            };
            let mut columns = batch.columns().to_vec();
            columns[user_id] = cast(&columns[user_id], &user_id_type)?;
            columns.push(Arc::new(numbers));
            baseline.record_output(batch.num_rows());
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        });
        let shared = self.shared.clone();
        let ended =
            stream::once(async move { shared.user_ended(partition, 2) }).filter_map(|r| async { r.err().map(Err) });
        let output = numbered.chain(ended);
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), output)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
