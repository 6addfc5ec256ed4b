//! `UserNumbersExec`: numbers each row's user in its partition's table of users (in arrival
//! order), shared with the other operators that number or read the same partition's users: the
//! other side of a join (`user_number_join`), or the sort of a window (`user_number_sort`).
//!
//! Why numbers: a window or join per user then sorts, partitions and compares one `UInt32`
//! instead of the id's text (docs/decisions.md). Where the scan can read `user_id` as a
//! dictionary, each distinct id of a column chunk is looked up once ([`DictionaryUserIds`]).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_datafusion_err, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use futures::{stream, StreamExt};

use crate::user_id_dictionary::with_dictionary_reader;
use crate::user_ids::{DictionaryUserIds, SharedUserIds};

/// The column holding each row's user number (UInt32, one per user of a partition).
pub(crate) const USER_NUMBER: &str = "__user_number";

/// Adds to each row the number of its user in its partition's table ([`SharedUserIds`]).
/// `ids_as`: the text type the ids leave as; `None` leaves them as read (an operator above sets
/// them from the table). `sharers`: how many operators number each partition through the
/// table, the last to end freeing it; `None` when an operator above takes it.
#[derive(Debug)]
pub struct UserNumbersExec {
    input: Arc<dyn ExecutionPlan>,
    user_id: usize,
    ids_as: Option<DataType>,
    shared: Arc<SharedUserIds>,
    sharers: Option<usize>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl UserNumbersExec {
    pub(crate) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        user_id: usize,
        ids_as: Option<DataType>,
        shared: Arc<SharedUserIds>,
        sharers: Option<usize>,
    ) -> Result<Self> {
        let partitions = input.output_partitioning().partition_count();
        if partitions != shared.partitions() {
            return exec_err!("UserNumbersExec: {partitions} partitions, {} tables", shared.partitions());
        }
        let ids_type = ids_as.clone().unwrap_or_else(|| input.schema().field(user_id).data_type().clone());
        let mut fields = with_user_id_type(&input.schema(), user_id, ids_type);
        fields.push(Field::new(USER_NUMBER, DataType::UInt32, false));
        let schema = Arc::new(Schema::new_with_metadata(fields, input.schema().metadata().clone()));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        let properties = Arc::new(properties);
        Ok(Self { input, user_id, ids_as, shared, sharers, properties, metrics: Default::default() })
    }
}

impl DisplayAs for UserNumbersExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        let user_id = schema.field(self.user_id);
        let read = if matches!(user_id.data_type(), DataType::Dictionary(_, _)) { "dictionary" } else { "text" };
        write!(f, "UserNumbersExec: user={} by {read}", user_id.name())
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
            return exec_err!("UserNumbersExec takes one input, got {}", children.len());
        }
        let (input, shared) = (children.swap_remove(0), self.shared.clone());
        Ok(Arc::new(Self::try_new(input, self.user_id, self.ids_as.clone(), shared, self.sharers)?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let by_dictionary = matches!(self.input.schema().field(self.user_id).data_type(), DataType::Dictionary(_, _));
        let input = if by_dictionary { with_dictionary_reader(&self.input, &context)? } else { self.input.clone() };
        let input = input.execute(partition, context.clone())?;
        let reservation = MemoryConsumer::new(format!("UserNumbersExec[{partition}]")).register(context.memory_pool());
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let (schema, user_id, ids_as, shared) = (self.schema(), self.user_id, self.ids_as.clone(), self.shared.clone());
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
            if let Some(text) = &ids_as {
                columns[user_id] = cast(&columns[user_id], text)?;
            }
            columns.push(Arc::new(numbers));
            baseline.record_output(batch.num_rows());
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        });
        let (shared, sharers) = (self.shared.clone(), self.sharers);
        let ended = stream::once(async move {
            match sharers {
                Some(sharers) => shared.user_ended(partition, sharers),
                None => Ok(()),
            }
        });
        let output = numbered.chain(ended.filter_map(|ended| async { ended.err().map(Err) }));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), output)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The fields of `schema`, with column `user_id` of type `ids_type`.
pub(crate) fn with_user_id_type(schema: &Schema, user_id: usize, ids_type: DataType) -> Vec<Field> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[user_id] = fields[user_id].clone().with_data_type(ids_type);
    fields
}

/// Each row's user number in `ids` (new users numbered as they come).
pub(crate) fn number_users(ids: &mut DictionaryUserIds, user_id: &ArrayRef) -> Result<UInt32Array> {
    if user_id.null_count() > 0 {
        return exec_err!("UserNumbersExec: user_id has nulls");
    }
    let numbers: Vec<u32> = match user_id.data_type() {
        DataType::Dictionary(_, _) => {
            let dictionary = user_id
                .as_dictionary_opt::<Int32Type>()
                .ok_or_else(|| internal_datafusion_err!("UserNumbersExec: user_id's dictionary keys are not Int32"))?;
            let mut numbers = Vec::with_capacity(user_id.len());
            ids.number(dictionary, |number| numbers.push(number))?;
            numbers
        }
        DataType::Utf8View => user_id.as_string_view().iter().map(|id| ids.find_or_insert(id.unwrap_or(""))).collect(),
        DataType::Utf8 => user_id.as_string::<i32>().iter().map(|id| ids.find_or_insert(id.unwrap_or(""))).collect(),
        other => return exec_err!("UserNumbersExec: user_id is {other}, not text"),
    };
    Ok(UInt32Array::from(numbers))
}
