//! `BucketPartitionsExec`: passes its input through, declaring its partitions (one user bucket
//! each, by the value of one of `keys`) as a hash partitioning on `keys` (rows equal in all
//! keys are equal in that one, so in one partition, as the declaration says).
//!
//! Why: a hash join whose two inputs are read by bucket (`BucketAggregateRule`) pairs bucket
//! with bucket, which is exactly the co-partitioning a partitioned join needs. DataFusion
//! checks that co-partitioning on the declared partitionings when it finishes a plan
//! (both inputs `Hash` on the join keys, as many partitions), and a bucket scan declares none.
//! Nothing else reads the declaration: the rule runs after DataFusion's distribution rules, so
//! no repartition is planned from it, and the join it feeds drops the dynamic filter that
//! would route rows by DataFusion's own hash.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    apply_expression_roots, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};

#[derive(Debug)]
pub struct BucketPartitionsExec {
    input: Arc<dyn ExecutionPlan>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
}

impl BucketPartitionsExec {
    /// `input`, whose partition `i` holds the rows whose value of one of `keys` is a user of
    /// bucket `i`.
    pub fn new(input: Arc<dyn ExecutionPlan>, keys: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        let partitions = input.output_partitioning().partition_count();
        let properties =
            input.properties().as_ref().clone().with_partitioning(Partitioning::Hash(keys.clone(), partitions));
        Self { input, keys, properties: Arc::new(properties) }
    }
}

impl DisplayAs for BucketPartitionsExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        write!(
            f,
            "BucketPartitionsExec: keys=[{}], partitions={}",
            keys.join(", "),
            self.properties.partitioning.partition_count()
        )
    }
}

impl ExecutionPlan for BucketPartitionsExec {
    fn name(&self) -> &'static str {
        "BucketPartitionsExec"
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
        apply_expression_roots(&self.keys, f)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("BucketPartitionsExec takes one input, got {}", children.len());
        }
        Ok(Arc::new(Self::new(children.swap_remove(0), self.keys.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
