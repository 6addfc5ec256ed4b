//! A physical optimizer rule: grouped aggregates that include an order-dependent function
//! ([`EVENT_LIST_FUNCTIONS`]: `window_funnel`, `funnel_step_times`, `sequence_match`,
//! `sequence_count`, `session_transitions`) run in one stage after a hash repartition of their
//! input, instead of DataFusion's partial → repartition → final.
//!
//! Why: those functions keep every matching event of a group until the end, so a partial
//! aggregate reduces nothing. Two stages store each event twice, build list columns of all of
//! them, ship those and unpack them again; one stage repartitions the rows (their few columns)
//! and stores each event once. Their `state`/`merge_batch` still serve spilling, and other
//! aggregates in the same GROUP BY are computed in the one stage too.
//!
//! ```text
//! AggregateExec: mode=FinalPartitioned, gby=[user_id]        AggregateExec: mode=SinglePartitioned, gby=[user_id]
//!   RepartitionExec: Hash([user_id])              ==>          RepartitionExec: Hash([user_id])
//!     AggregateExec: mode=Partial, gby=[user_id]                  <the partial aggregate's input>
//!       <input>
//! ```

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use northstar_functions::EVENT_LIST_FUNCTIONS;

#[derive(Debug, Default)]
pub struct SingleStageEventAggregates;

impl PhysicalOptimizerRule for SingleStageEventAggregates {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            Ok(match single_stage(&plan)? {
                Some(rewritten) => Transformed::yes(rewritten),
                None => Transformed::no(plan),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "SingleStageEventAggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The one-stage form of `plan` when it is FinalPartitioned ← Hash repartition ← Partial over
/// an event-list function, with the same output schema; otherwise `None`.
fn single_stage(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(last) = plan.downcast_ref::<AggregateExec>() else { return Ok(None) };
    if *last.mode() != AggregateMode::FinalPartitioned {
        return Ok(None);
    }
    let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else { return Ok(None) };
    let Partitioning::Hash(_, partitions) = repartition.partitioning() else { return Ok(None) };
    let Some(partial) = repartition.input().downcast_ref::<AggregateExec>() else { return Ok(None) };
    let has_event_list = partial.aggr_expr().iter().any(|a| EVENT_LIST_FUNCTIONS.contains(&a.fun().name()));
    if *partial.mode() != AggregateMode::Partial
        || !has_event_list
        || !partial.group_expr().is_single()
        || repartition.preserve_order()
    {
        return Ok(None);
    }
    let keys = Partitioning::Hash(partial.group_expr().input_exprs(), *partitions);
    let rows = Arc::new(RepartitionExec::try_new(partial.input().clone(), keys)?);
    let single = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        partial.group_expr().clone(),
        partial.aggr_expr().to_vec(),
        partial.filter_expr().to_vec(),
        rows,
        partial.input_schema(),
    )?
    .with_limit_options(last.limit_options());
    // Only where nothing above could tell the difference.
    Ok((single.schema() == last.schema()).then(|| Arc::new(single) as Arc<dyn ExecutionPlan>))
}
