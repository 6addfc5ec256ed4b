//! A logical optimizer rule: `CAST(t AS DATE)` of a UTC timestamp becomes `utc_date(t)`
//! ([`northstar_functions::UtcDate`], which says why that is faster), wherever the cast is:
//! projections, filters, grouping, joins, a scan's pushed filters. Column names stay those
//! the user's SQL gave (`CAST(events.event_time AS DATE)`), as DataFusion's own simplifier
//! keeps them.
//!
//! ```text
//! Aggregate: groupBy=[[CAST(events.event_time AS Date32)]]   ==>   Aggregate: groupBy=[[utc_date(events.event_time) AS CAST(events.event_time AS Date32)]]
//! ```

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use northstar_functions::{is_utc_zone, utc_date_udf};

use crate::plan_expressions::rewrite_expressions;

/// Rewrites casts of UTC timestamps to dates as `utc_date`.
#[derive(Debug, Default)]
pub struct UtcDates;

impl OptimizerRule for UtcDates {
    fn name(&self) -> &str {
        "utc_dates"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        rewrite_expressions(plan, |e, schema| self.rewrite_cast(e, schema))
    }
}

impl UtcDates {
    fn rewrite_cast(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let inner = match &expr {
            Expr::Cast(Cast { expr: inner, field }) | Expr::TryCast(TryCast { expr: inner, field })
                if field.data_type() == &DataType::Date32 =>
            {
                inner
            }
            _ => return Ok(Transformed::no(expr)),
        };
        // A column the schema does not know (a correlated reference, say) is left alone.
        let is_utc = matches!(inner.get_type(schema), Ok(DataType::Timestamp(_, Some(zone))) if is_utc_zone(&zone));
        if !is_utc {
            return Ok(Transformed::no(expr));
        }
        Ok(Transformed::yes(utc_date_udf().call(vec![inner.as_ref().clone()])))
    }
}
