//! Mends a DataFusion 55 bug: `Unnest` keeps its input's functional dependencies, so after
//! `SELECT user_id, unnest(list) … GROUP BY user_id` the planner still believes `user_id` is
//! a key of the unnested rows, and `eliminate_duplicated_expr` drops from `ORDER BY user_id,
//! item` the keys it thinks `user_id` determines: the rows come back in the wrong order.
//! (Upstream's `Unnest::try_new`: "We can use the existing functional dependencies", true only
//! when no row is repeated.) Found by a test of `session_transition_counts`.
//!
//! The mend replaces that rule: a sort with an `Unnest` anywhere below keeps every distinct
//! key (only exact repeats go); every other plan goes to DataFusion's rule unchanged. Why not
//! clear the dependencies on the `Unnest` node: optimizer passes rebuild it (and take them
//! from the input again) before the rule runs.

use datafusion::common::tree_node::Transformed;
use datafusion::common::Result;
use datafusion::logical_expr::{LogicalPlan, Sort};
use datafusion::optimizer::eliminate_duplicated_expr::EliminateDuplicatedExpr;
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// DataFusion's `eliminate_duplicated_expr`, without pruning sort keys above an `Unnest`.
#[derive(Debug, Default)]
pub struct SortKeysAfterUnnest {
    datafusion: EliminateDuplicatedExpr,
}

impl OptimizerRule for SortKeysAfterUnnest {
    fn name(&self) -> &str {
        // The rule it stands in for, so that settings and EXPLAIN naming it still apply.
        self.datafusion.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.datafusion.apply_order()
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Sort(sort) if holds_unnest(&sort.input) => {
                let mut kept: Vec<datafusion::logical_expr::SortExpr> = Vec::with_capacity(sort.expr.len());
                for key in &sort.expr {
                    if !kept.iter().any(|k| k.expr == key.expr) {
                        kept.push(key.clone());
                    }
                }
                let changed = kept.len() != sort.expr.len();
                let sort = LogicalPlan::Sort(Sort { expr: kept, ..sort });
                Ok(if changed { Transformed::yes(sort) } else { Transformed::no(sort) })
            }
            other => self.datafusion.rewrite(other, config),
        }
    }
}

fn holds_unnest(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Unnest(_)) || plan.inputs().into_iter().any(holds_unnest)
}
