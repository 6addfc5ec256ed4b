//! An analyzer rule, after DataFusion's type coercion: a duration compared with an interval literal of whole clock time
//! (no months, no days) compares the duration with a duration literal, instead of casting
//! every row's duration to an interval.
//!
//! Why: the gap between a user's events, `event_time - lag(event_time) OVER (…)`, is a
//! duration, and `gap > INTERVAL '30 minutes'` is coerced to `CAST(gap AS Interval) > …`: a
//! 16-byte interval built for each row and compared field by field (a tenth of sessions by
//! `lag`'s CPU, docs/benchmarks.md). Such an interval casts from a duration as (0 months,
//! 0 days, the duration in nanoseconds) and compares by its nanoseconds, so comparing the
//! duration with the literal in the duration's own unit, rounded the way each operator needs,
//! gives the same answers (NULL stays NULL). An analyzer rule rather than an optimizer rule:
//! the optimizer's common-subexpression pass would otherwise first move a repeated cast into
//! a projection of its own, out of the comparison's sight.
//!
//! ```text
//! Filter: CAST(gap AS Interval(MonthDayNano)) > IntervalMonthDayNano("0 mons 0 days 1800000000000 nanos")
//!   ==>   Filter: gap > DurationMicrosecond("1800000000")
//! ```

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, Cast};
use datafusion::logical_expr::{lit, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

use crate::plan_expressions::rewrite_expressions;

/// Rewrites comparisons of durations with clock-time interval literals as comparisons of
/// durations.
#[derive(Debug, Default)]
pub struct DurationComparisons;

impl AnalyzerRule for DurationComparisons {
    fn name(&self) -> &str {
        "duration_comparisons"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(|plan| rewrite_expressions(plan, duration_comparison))?.data)
    }
}

/// `expr` as a comparison of durations, when it compares a duration cast to an interval with
/// an interval literal of whole clock time; otherwise unchanged.
fn duration_comparison(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else { return Ok(Transformed::no(expr)) };
    let (cast, literal, op) = match (left.as_ref(), right.as_ref()) {
        (Expr::Cast(cast), Expr::Literal(literal, _)) => (cast, literal, *op),
        (Expr::Literal(literal, _), Expr::Cast(cast)) => match op.swap() {
            Some(swapped) => (cast, literal, swapped),
            None => return Ok(Transformed::no(expr)),
        },
        _ => return Ok(Transformed::no(expr)),
    };
    let Cast { expr: duration, field } = cast;
    let ScalarValue::IntervalMonthDayNano(Some(interval)) = literal else { return Ok(Transformed::no(expr)) };
    // A column the schema does not know (a correlated reference, say) is left alone.
    let Ok(DataType::Duration(unit)) = duration.get_type(schema) else { return Ok(Transformed::no(expr)) };
    if field.data_type() != &DataType::Interval(IntervalUnit::MonthDayNano)
        || interval.months != 0
        || interval.days != 0
    {
        return Ok(Transformed::no(expr));
    }
    let Some(bound) = bound(interval.nanoseconds, nanos_per(unit), op) else { return Ok(Transformed::no(expr)) };
    let bound = match unit {
        TimeUnit::Second => ScalarValue::DurationSecond(Some(bound)),
        TimeUnit::Millisecond => ScalarValue::DurationMillisecond(Some(bound)),
        TimeUnit::Microsecond => ScalarValue::DurationMicrosecond(Some(bound)),
        TimeUnit::Nanosecond => ScalarValue::DurationNanosecond(Some(bound)),
    };
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(duration.clone(), op, Box::new(lit(bound))))))
}

fn nanos_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// The duration `b`, in units of `per` nanoseconds, such that `d * per <op> nanos` exactly
/// when `d <op> b` for every whole `d`; `None` for an operator this does not rewrite, or an
/// equality the unit cannot hold exactly.
fn bound(nanos: i64, per: i64, op: Operator) -> Option<i64> {
    let floor = nanos.div_euclid(per);
    let ceil = -(-nanos).div_euclid(per);
    match op {
        Operator::Gt | Operator::LtEq => Some(floor),
        Operator::GtEq | Operator::Lt => Some(ceil),
        Operator::Eq | Operator::NotEq if nanos.rem_euclid(per) == 0 => Some(floor),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, DurationMicrosecondArray, RecordBatch};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn answer(with_rule: bool, sql: &str) -> (String, String) {
        let mut state = SessionStateBuilder::new().with_default_features();
        if with_rule {
            state = state.with_analyzer_rule(Arc::new(DurationComparisons));
        }
        let ctx = SessionContext::new_with_state(state.build());
        let gaps: ArrayRef = Arc::new(DurationMicrosecondArray::from(vec![
            None,
            Some(1_799_999_999),
            Some(1_800_000_000),
            Some(1_800_000_001),
            Some(-1_800_000_000),
            Some(0),
            Some(1),
            Some(2),
        ]));
        ctx.register_batch("t", RecordBatch::try_from_iter([("gap", gaps)]).unwrap()).unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let plan = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().collect().await.unwrap();
        (pretty_format_batches(&batches).unwrap().to_string(), pretty_format_batches(&plan).unwrap().to_string())
    }

    /// Every comparison, both ways round, at and around the bound, NULL and negative gaps, a
    /// bound the unit cannot hold (1.5 µs): the answers of DataFusion's cast, without the cast.
    #[tokio::test]
    async fn duration_comparisons_answer_as_the_interval_cast_does() {
        for interval in ["INTERVAL '30 minutes'", "INTERVAL '-30 minutes'", "INTERVAL '1500 nanoseconds'"] {
            let comparisons: Vec<String> = ["<", "<=", "=", "<>", ">=", ">"]
                .iter()
                .flat_map(|op| [format!("gap {op} {interval}"), format!("{interval} {op} gap")])
                .collect();
            let sql = format!("SELECT gap, {} FROM t ORDER BY gap", comparisons.join(", "));
            let (expected, _) = answer(false, &sql).await;
            let (rewritten, plan) = answer(true, &sql).await;
            assert_eq!(rewritten, expected, "{sql}");
            if interval.contains("minutes") {
                assert!(!plan.contains("CAST(t.gap AS Interval"), "no cast left:\n{plan}");
            }
        }
        let sql = "SELECT count(*) FROM t WHERE gap IS NULL OR gap > INTERVAL '30 minutes'";
        assert_eq!(answer(true, sql).await.0, answer(false, sql).await.0);
        // Months or days are left to DataFusion.
        let (_, plan) = answer(true, "SELECT gap > INTERVAL '1 day' FROM t").await;
        assert!(plan.contains("CAST(t.gap AS Interval"), "{plan}");
    }
}
