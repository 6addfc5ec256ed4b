//! An analyzer rule: under a session time zone other than UTC (`SET TIME ZONE`), what
//! PostgreSQL computes from a `timestamptz` in the session's zone is computed in it here too.
//!
//! Why: an Arrow timestamp carries its zone in its type and DataFusion computes in that zone.
//! The events' `event_time` is UTC, so without this `date_trunc('day', event_time)` cuts at UTC
//! midnight and `'2025-01-01'` compared with it is UTC midnight, whatever the session says.
//! The rule relabels UTC values with the session zone where the zone matters (the same
//! instants: Arrow's cast between two zones changes the label only) and gives the result its
//! planned type back, so every other expression sees the types type coercion gave:
//!
//! ```text
//! date_trunc('day', t)         ==>  CAST(date_trunc('day', CAST(t AS Timestamp(µs, zone))) AS Timestamp(µs, "UTC"))
//! date_part(…, t), to_char(t, …)    ==>  the same call on t relabelled
//! CAST(t AS DATE|TIME|TEXT|TIMESTAMP)   ==>  CAST(CAST(t AS Timestamp(µs, zone)) AS …)
//! CAST('2025-01-01' AS Timestamp(µs, "UTC"))  ==>  CAST(CAST('2025-01-01' AS Timestamp(µs, zone)) AS Timestamp(µs, "UTC"))
//! ```
//!
//! The last is how a text, a date or a timestamp without zone becomes a `timestamptz`: read
//! in the session zone, as PostgreSQL reads it (type coercion writes that cast for the literal
//! of `event_time >= '2025-01-01'`). A cast of a timestamp without zone to nanoseconds is left
//! alone: that is how DataFusion plans `ts AT TIME ZONE 'UTC'`, which names its zone.
//! Values in a zone other than UTC (`AT TIME ZONE 'Asia/Tokyo'`, `::timestamptz`, which
//! DataFusion types in the session zone already) are left in theirs.
//!
//! An analyzer rule, so that it runs after type coercion made those casts and before the
//! optimizer folds constants; `UtcDates` and `DatesFromEventDate`, which read UTC days from
//! `event_date`, then no longer see a UTC timestamp and leave the expression alone. The
//! server shows UTC results in the session zone (crates/server/src/time_zone.rs).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use northstar_functions::is_utc_zone;

use crate::plan_expressions::rewrite_expressions;

/// Functions whose answer for a `timestamptz` depends on the zone it is seen in.
const ZONED_FUNCTIONS: [&str; 3] = ["date_trunc", "date_part", "to_char"];

/// Computes zone-dependent expressions of UTC timestamps in the session's time zone.
#[derive(Debug, Default)]
pub struct SessionTimeZone;

impl AnalyzerRule for SessionTimeZone {
    fn name(&self) -> &str {
        "session_time_zone"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let Some(zone) = config.execution.time_zone.as_deref().filter(|zone| !is_utc_zone(zone)) else {
            return Ok(plan);
        };
        let zone: Arc<str> = zone.into();
        Ok(plan.transform_up_with_subqueries(|plan| in_zone(plan, &zone))?.data)
    }
}

fn in_zone(plan: LogicalPlan, zone: &Arc<str>) -> Result<Transformed<LogicalPlan>> {
    rewrite_expressions(plan, |e, schema| in_zone_expr(e, schema, zone))
}

fn in_zone_expr(expr: Expr, schema: &DFSchema, zone: &Arc<str>) -> Result<Transformed<Expr>> {
    // A column the schema does not know (a correlated reference, say) is left alone.
    let type_of = |e: &Expr| e.get_type(schema).ok();
    match expr {
        Expr::ScalarFunction(ScalarFunction { func, args })
            if ZONED_FUNCTIONS.contains(&func.name()) && args.iter().any(|a| utc_unit(type_of(a)).is_some()) =>
        {
            let planned = type_of(&Expr::ScalarFunction(ScalarFunction { func: func.clone(), args: args.clone() }));
            let args = args.into_iter().map(|arg| relabelled(arg, type_of, zone)).collect();
            let call = Expr::ScalarFunction(ScalarFunction { func, args });
            Ok(Transformed::yes(match planned {
                Some(planned) if type_of(&call).as_ref() != Some(&planned) => cast(call, planned),
                _ => call,
            }))
        }
        Expr::Cast(Cast { expr: inner, field }) => Ok(match zoned_cast(*inner, field.data_type(), type_of, zone) {
            Ok(inner) => Transformed::yes(Expr::Cast(Cast { expr: Box::new(inner), field })),
            Err(inner) => Transformed::no(Expr::Cast(Cast { expr: Box::new(inner), field })),
        }),
        Expr::TryCast(TryCast { expr: inner, field }) => {
            Ok(match zoned_cast(*inner, field.data_type(), type_of, zone) {
                Ok(inner) => Transformed::yes(Expr::TryCast(TryCast { expr: Box::new(inner), field })),
                Err(inner) => Transformed::no(Expr::TryCast(TryCast { expr: Box::new(inner), field })),
            })
        }
        other => Ok(Transformed::no(other)),
    }
}

/// The operand of a cast to `target`, seen in the session zone where the cast depends on a
/// zone (`Ok`), or as it was (`Err`).
fn zoned_cast(
    inner: Expr,
    target: &DataType,
    type_of: impl Fn(&Expr) -> Option<DataType>,
    zone: &Arc<str>,
) -> std::result::Result<Expr, Expr> {
    let from = type_of(&inner);
    match (from, target) {
        // a UTC instant to a wall-clock value: the session's wall clock
        (Some(DataType::Timestamp(unit, Some(from))), to)
            if is_utc_zone(&from)
                && matches!(
                    to,
                    DataType::Date32
                        | DataType::Date64
                        | DataType::Time32(_)
                        | DataType::Time64(_)
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Timestamp(_, None)
                ) =>
        {
            Ok(cast(inner, DataType::Timestamp(unit, Some(zone.clone()))))
        }
        // a wall-clock value to a UTC instant: read on the session's wall clock
        (Some(from), DataType::Timestamp(unit, Some(to)))
            if is_utc_zone(to)
                && (matches!(
                    from,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date32 | DataType::Date64
                ) || matches!(from, DataType::Timestamp(_, None) if *unit != TimeUnit::Nanosecond)) =>
        {
            Ok(cast(inner, DataType::Timestamp(*unit, Some(zone.clone()))))
        }
        _ => Err(inner),
    }
}

/// `arg` relabelled with the session zone when it is a UTC timestamp.
fn relabelled(arg: Expr, type_of: impl Fn(&Expr) -> Option<DataType>, zone: &Arc<str>) -> Expr {
    match utc_unit(type_of(&arg)) {
        Some(unit) => cast(arg, DataType::Timestamp(unit, Some(zone.clone()))),
        None => arg,
    }
}

/// The unit of a UTC timestamp type.
fn utc_unit(data_type: Option<DataType>) -> Option<TimeUnit> {
    match data_type? {
        DataType::Timestamp(unit, Some(zone)) if is_utc_zone(&zone) => Some(unit),
        _ => None,
    }
}

fn cast(expr: Expr, to: DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(expr), to))
}
