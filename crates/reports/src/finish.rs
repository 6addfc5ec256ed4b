//! The last step of a report whose answer is not SQL: `experiment(…)` computes its statistics
//! in Rust from the few rows of sums its SQL returns. [`FinishExec`] runs the SQL's plan,
//! collects those rows and hands them to the report's function.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    collect, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};

/// Turns the rows of a report's SQL into the report's answer (already in the output schema).
pub type Finish = Arc<dyn Fn(&[RecordBatch]) -> Result<RecordBatch> + Send + Sync>;

pub struct FinishExec {
    input: Arc<dyn ExecutionPlan>,
    finish: Finish,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl FinishExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        finish: Finish,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let input: Arc<dyn ExecutionPlan> = if input.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(input))
        } else {
            input
        };
        let output = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(FinishExec { input, finish, schema, projection, properties })
    }
}

impl fmt::Debug for FinishExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinishExec").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl DisplayAs for FinishExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FinishExec: report statistics over its SQL's rows")
    }
}

impl ExecutionPlan for FinishExec {
    fn name(&self) -> &str {
        "FinishExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // No expressions of its own: the statistics are Rust over the input's rows.
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => {
                Ok(Arc::new(FinishExec::new(input, self.finish.clone(), self.schema.clone(), self.projection.clone())?))
            }
            Err(_) => internal_err!("FinishExec has one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("FinishExec has one partition, asked for {partition}");
        }
        let (input, finish, projection) = (self.input.clone(), self.finish.clone(), self.projection.clone());
        let answer = async move {
            let rows = collect(input, context).await?;
            let batch = finish(&rows)?;
            match projection {
                Some(p) => Ok(batch.project(&p)?),
                None => Ok(batch),
            }
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            futures::stream::once(answer),
        )))
    }
}
