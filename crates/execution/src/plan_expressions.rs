//! Every expression of one plan node rewritten bottom-up, the column names the SQL gave kept:
//! what the logical rules that replace expressions (`UtcDates`, `SessionTimeZone`,
//! `TimestampText`) share.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// `plan` with `rewrite` applied to each of its expressions' nodes, leaves first; `rewrite`
/// gets the schema the expressions are written against.
pub(crate) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let schema = expression_schema(&plan)?;
    let names = NamePreserver::new(&plan);
    plan.map_expressions(|expr| {
        let name = names.save(&expr);
        let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
        Ok(if rewritten.transformed { rewritten.update_data(|e| name.restore(e)) } else { rewritten })
    })
}

/// The schema `plan`'s expressions are written against: its inputs', or a scan's own.
fn expression_schema(plan: &LogicalPlan) -> Result<DFSchema> {
    let mut schema = DFSchema::empty();
    for input in plan.inputs() {
        schema.merge(input.schema());
    }
    if let LogicalPlan::TableScan(scan) = plan {
        schema.merge(&DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())?);
    }
    Ok(schema)
}
