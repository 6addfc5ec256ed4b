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
//!   BucketPartitionsExec                            UserNumbersExec (numbers shared with the right)
//!     <right by bucket>                               <left by bucket>
//!                                                 BucketPartitionsExec
//!                                                   UserNumbersExec (by dictionary where it can)
//!                                                     <right by bucket>
//! ```
//! Answers are the same: within a bucket partition two ids get one number exactly when they
//! are equal, and both sides of a partition number through the same table. Only for ids that
//! cannot be NULL (the events table declares `user_id` NOT NULL), so NULL semantics do not
//! change.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{internal_datafusion_err, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use crate::user_ids::SharedUserIds;
use crate::user_number_sort::DictionaryInput;
use crate::user_numbers_exec::{UserNumbersExec, USER_NUMBER};

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
        Ok(Arc::new(UserNumbersExec::try_new(input, key.index(), Some(user_id_type), shared.clone(), Some(2))?))
    };
    let (old_left, old_right) = (join.left().schema(), join.right().schema());
    let left = numbered(left, left_key)?;
    let right = numbered(right, right_key)?;
    let number = |plan: &Arc<dyn ExecutionPlan>| -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(USER_NUMBER, plan.schema().fields().len() - 1))
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
