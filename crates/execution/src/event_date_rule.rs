//! A logical optimizer rule: the UTC day of the events table's `event_time` is read from the
//! stored `event_date` instead of being computed per row.
//!
//! Why: every write path stores `event_date` as exactly the UTC day of `event_time`
//! (docs/decisions.md, `northstar_storage::date_pruning`), and it is a partition column: one
//! value per file, no bytes read, while `utc_date(event_time)` decodes and converts every
//! row's timestamp (DAU per day by `CAST(event_time AS DATE)` cost 1.4 × the same by
//! `event_date`, docs/benchmarks.md). Filters on it already prune files
//! (`implied_date_filter`); this makes grouping and projecting on it as cheap.
//!
//! ```text
//! Aggregate: groupBy=[[utc_date(events.event_time) AS d, …]]      Aggregate: groupBy=[[events.event_date AS d, …]]
//!   TableScan: events projection=[event_time, user_id]     ==>     TableScan: events projection=[user_id, event_date]
//! ```
//!
//! Only in a projection or aggregate over the scan itself, or over filters and projections
//! passing the scan's qualified `event_time` through, where it can only be the stored column:
//! a subquery may give another value that name.
//! Runs after [`crate::UtcDates`], which writes every such cast as `utc_date`.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, Projection, TableScan, TableScanBuilder};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use northstar_identity::PersonEvents;
use northstar_storage::columns::{EVENT_DATE, EVENT_TIME};
use northstar_storage::EventSnapshot;

/// Reads `utc_date(event_time)` of the events table from `event_date`.
#[derive(Debug, Default)]
pub struct DatesFromEventDate;

impl OptimizerRule for DatesFromEventDate {
    fn name(&self) -> &str {
        "dates_from_event_date"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if !matches!(plan, LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_)) {
            return Ok(Transformed::no(plan));
        }
        let [input] = plan.inputs()[..] else { return Ok(Transformed::no(plan)) };
        let Some(table) = events_scan_below(input)? else { return Ok(Transformed::no(plan)) };
        let names = NamePreserver::new(&plan);
        let mut found = false;
        let exprs = plan
            .expressions()
            .into_iter()
            .map(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|e| {
                    if is_day_of_event_time(&e, &table) {
                        found = true;
                        Ok(Transformed::yes(Expr::Column(Column::new(Some(table.clone()), EVENT_DATE))))
                    } else {
                        Ok(Transformed::no(e))
                    }
                })?;
                Ok(if rewritten.transformed { name.restore(rewritten.data) } else { rewritten.data })
            })
            .collect::<Result<Vec<_>>>()?;
        if !found {
            return Ok(Transformed::no(plan));
        }
        let new_input = with_event_date(input.clone(), &table)?;
        Ok(Transformed::yes(plan.with_new_exprs(exprs, vec![new_input])?))
    }
}

/// The table name of the events scan `plan` is, directly or under filters and projections
/// that pass its `event_time` through.
fn events_scan_below(plan: &LogicalPlan) -> Result<Option<TableReference>> {
    match plan {
        LogicalPlan::Filter(filter) => events_scan_below(&filter.input),
        LogicalPlan::Projection(projection) => Ok(events_scan_below(&projection.input)?
            .filter(|table| projection.expr.iter().any(|e| is_column(e, table, EVENT_TIME)))),
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source)?;
            let is_events =
                provider.downcast_ref::<EventSnapshot>().is_some() || provider.downcast_ref::<PersonEvents>().is_some();
            let schema = provider.schema();
            let has_columns = schema.index_of(EVENT_TIME).is_ok() && schema.index_of(EVENT_DATE).is_ok();
            Ok((is_events && has_columns).then(|| scan.table_name.clone()))
        }
        _ => Ok(None),
    }
}

/// `utc_date(<table>.event_time)`.
fn is_day_of_event_time(expr: &Expr, table: &TableReference) -> bool {
    let Expr::ScalarFunction(function) = expr else { return false };
    function.name() == "utc_date" && matches!(&function.args[..], [arg] if is_column(arg, table, EVENT_TIME))
}

/// `<table>.<name>`, qualified: an unqualified name may be an alias of anything.
fn is_column(expr: &Expr, table: &TableReference, name: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == name && c.relation.as_ref() == Some(table))
}

/// `plan` (an events scan, under filters and projections) with `event_date` among its columns.
fn with_event_date(plan: LogicalPlan, table: &TableReference) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(projection) => {
            let input = with_event_date(Arc::unwrap_or_clone(projection.input), table)?;
            let mut exprs = projection.expr;
            if !exprs.iter().any(|e| is_column(e, table, EVENT_DATE)) {
                exprs.push(Expr::Column(Column::new(Some(table.clone()), EVENT_DATE)));
            }
            Ok(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?))
        }
        LogicalPlan::Filter(filter) => {
            let input = with_event_date(Arc::unwrap_or_clone(filter.input), table)?;
            Ok(LogicalPlan::Filter(Filter::try_new(filter.predicate, Arc::new(input))?))
        }
        LogicalPlan::TableScan(scan) => {
            let date = scan.source.schema().index_of(EVENT_DATE)?;
            let Some(mut projection) = scan.projection.clone() else { return Ok(LogicalPlan::TableScan(scan)) };
            if projection.contains(&date) {
                return Ok(LogicalPlan::TableScan(scan));
            }
            projection.push(date);
            let TableScan { table_name, source, filters, fetch, statistics_requests, .. } = scan;
            let scan = TableScanBuilder::new(table_name, source)
                .with_projection(Some(projection))
                .with_filters(filters)
                .with_fetch(fetch)
                .with_statistics_requests(statistics_requests)
                .build()?;
            Ok(LogicalPlan::TableScan(scan))
        }
        other => Ok(other),
    }
}
