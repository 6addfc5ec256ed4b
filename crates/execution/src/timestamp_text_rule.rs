//! An analyzer rule: `CAST(t AS TEXT)` of a timestamp becomes `timestamp_text(t)`
//! ([`northstar_functions::TimestampText`]), PostgreSQL's text of a timestamp
//! (`2025-01-01 05:30:00+05:30`) instead of Arrow's RFC 3339 (`2025-01-01T05:30:00+05:30`).
//! Runs after [`crate::SessionTimeZone`], so a UTC timestamp is written in the session's zone.
//!
//! ```text
//! CAST(events.event_time AS Utf8)   ==>   timestamp_text(events.event_time)
//! ```

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use northstar_functions::timestamp_text_udf;

use crate::plan_expressions::rewrite_expressions;

/// Writes casts of timestamps to text as `timestamp_text`.
#[derive(Debug, Default)]
pub struct TimestampText;

impl AnalyzerRule for TimestampText {
    fn name(&self) -> &str {
        "timestamp_text"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(as_postgres_text)?.data)
    }
}

fn as_postgres_text(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    rewrite_expressions(plan, text_of_timestamp)
}

fn text_of_timestamp(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let (inner, target) = match &expr {
        Expr::Cast(Cast { expr: inner, field }) | Expr::TryCast(TryCast { expr: inner, field }) => {
            (inner, field.data_type())
        }
        _ => return Ok(Transformed::no(expr)),
    };
    let is_text = matches!(target, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    if !is_text || !matches!(inner.get_type(schema), Ok(DataType::Timestamp(_, _))) {
        return Ok(Transformed::no(expr));
    }
    let text = timestamp_text_udf().call(vec![inner.as_ref().clone()]);
    Ok(Transformed::yes(if target == &DataType::Utf8 {
        text
    } else {
        Expr::Cast(Cast::new(Box::new(text), target.clone()))
    }))
}
