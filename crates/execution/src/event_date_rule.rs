//! A logical optimizer rule: the UTC day of the events table's `event_time`, and its
//! truncation to a week, month, quarter or year, are computed from the stored `event_date`
//! instead of every row's time.
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
//! date_trunc('week', events.event_time)                      ==>   utc_midnight(events.event_date, 'week')
//! ```
//!
//! Only in a projection or aggregate over the scan itself, or over filters and projections
//! passing the scan's qualified `event_time` through, where it can only be the stored column:
//! a subquery may give another value that name.
//! Runs after [`crate::UtcDates`], which writes every such cast as `utc_date`.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, Projection, TableScan, TableScanBuilder};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use northstar_functions::{is_utc_zone, utc_midnight_udf, CalendarUnit};
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
        let Some((table, time_type)) = events_scan_below(input)? else { return Ok(Transformed::no(plan)) };
        let names = NamePreserver::new(&plan);
        let mut found = false;
        let exprs = plan
            .expressions()
            .into_iter()
            .map(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|e| match from_event_date(&e, &table, &time_type) {
                    Some(replacement) => {
                        found = true;
                        Ok(Transformed::yes(replacement))
                    }
                    None => Ok(Transformed::no(e)),
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
/// that pass its `event_time` through, and the type of `event_time` (a UTC timestamp).
fn events_scan_below(plan: &LogicalPlan) -> Result<Option<(TableReference, DataType)>> {
    match plan {
        LogicalPlan::Filter(filter) => events_scan_below(&filter.input),
        LogicalPlan::Projection(projection) => Ok(events_scan_below(&projection.input)?
            .filter(|(table, _)| projection.expr.iter().any(|e| is_column(e, table, EVENT_TIME)))),
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source)?;
            let is_events =
                provider.downcast_ref::<EventSnapshot>().is_some() || provider.downcast_ref::<PersonEvents>().is_some();
            let schema = provider.schema();
            let (Ok(time), Ok(_)) = (schema.field_with_name(EVENT_TIME), schema.field_with_name(EVENT_DATE)) else {
                return Ok(None);
            };
            let utc = matches!(time.data_type(), DataType::Timestamp(_, Some(zone)) if is_utc_zone(zone));
            Ok((is_events && utc).then(|| (scan.table_name.clone(), time.data_type().clone())))
        }
        _ => Ok(None),
    }
}

/// What `expr` computes from `event_date` instead of every row's `<table>.event_time`:
/// - `utc_date(event_time)` is `event_date`;
/// - `date_trunc(unit, event_time)`, for a unit of a day or longer, is `utc_midnight(event_date,
///   unit)` when that has `time_type`, the type of `event_time`: in UTC a day, week (Monday),
///   month, quarter or year starts at the midnight that starts its first day.
fn from_event_date(expr: &Expr, table: &TableReference, time_type: &DataType) -> Option<Expr> {
    let Expr::ScalarFunction(function) = expr else { return None };
    let event_date = || Expr::Column(Column::new(Some(table.clone()), EVENT_DATE));
    match (function.name(), &function.args[..]) {
        ("utc_date", [time]) if is_column(time, table, EVENT_TIME) => Some(event_date()),
        ("date_trunc", [Expr::Literal(ScalarValue::Utf8(Some(unit)) | ScalarValue::Utf8View(Some(unit)), _), time])
            if is_column(time, table, EVENT_TIME) && CalendarUnit::parse(unit).is_some() =>
        {
            // In the event time's own type (a UTC timestamp in microseconds, as stored).
            let midnight = utc_midnight_udf();
            if time_type != &midnight.return_type(&[DataType::Date32]).ok()? {
                return None;
            }
            Some(midnight.call(vec![event_date(), Expr::Literal(ScalarValue::Utf8(Some(unit.clone())), None)]))
        }
        _ => None,
    }
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
