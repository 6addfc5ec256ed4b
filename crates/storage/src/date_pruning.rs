//! Filters on `event_time` restated on `event_date`, the partition column it determines, so
//! that the scan skips whole days of files without opening them. Files carry no `event_time`
//! statistics the planner sees; the days are in their partition values.
//!
//! Inside the events table `event_date` is exactly the UTC date of `event_time` (written so by
//! every import), which makes each restatement sound:
//! - `CAST(event_time AS DATE)` and `utc_date(event_time)` are `event_date`;
//! - `event_time >= t` and `> t` imply `event_date >= date(t)`; `<= t` implies
//!   `event_date <= date(t)`; `< t` implies `event_date <= date(t − 1 unit)`; `= t` implies
//!   `event_date = date(t)`.
//!
//! The original filter still runs on the rows: these only choose the files.

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{col, lit, BinaryExpr, Expr, Operator};

use crate::columns::{EVENT_DATE, EVENT_TIME};

/// A filter on `event_date` implied by `filter`, when one can be read from it.
pub fn implied_date_filter(filter: &Expr) -> Option<Expr> {
    if let Some(range) = time_comparison(filter) {
        return Some(range);
    }
    let mut found = false;
    let restated = filter
        .clone()
        .transform_up(|e| {
            if is_date_of_event_time(&e) {
                found = true;
                Ok(Transformed::yes(col(EVENT_DATE)))
            } else {
                Ok(Transformed::no(e))
            }
        })
        .data()
        .ok()?;
    let only_dates = restated.column_refs().iter().all(|c| c.name == EVENT_DATE);
    (found && only_dates).then_some(restated)
}

fn is_event_time(e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == EVENT_TIME)
}

/// `CAST(event_time AS DATE)`, `TRY_CAST(…)` or `utc_date(event_time)`.
fn is_date_of_event_time(e: &Expr) -> bool {
    match e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            is_event_time(expr) && field.data_type() == &datafusion::arrow::datatypes::DataType::Date32
        }
        Expr::ScalarFunction(f) => f.name() == "utc_date" && f.args.len() == 1 && is_event_time(&f.args[0]),
        _ => false,
    }
}

/// `event_time <op> timestamp literal` (either side) as a range of days.
fn time_comparison(filter: &Expr) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else { return None };
    let (op, literal) = match (left.as_ref(), right.as_ref()) {
        (l, Expr::Literal(v, _)) if is_event_time(l) => (*op, v),
        (Expr::Literal(v, _), r) if is_event_time(r) => (op.swap()?, v),
        _ => return None,
    };
    let (value, per_day) = match literal {
        ScalarValue::TimestampSecond(Some(v), _) => (*v, 86_400),
        ScalarValue::TimestampMillisecond(Some(v), _) => (*v, 86_400_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 86_400_000_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 86_400_000_000_000),
        _ => return None,
    };
    let date = |v: i64| ScalarValue::Date32(Some(v.div_euclid(per_day) as i32));
    let day = col(EVENT_DATE);
    Some(match op {
        Operator::GtEq | Operator::Gt => day.gt_eq(lit(date(value))),
        Operator::LtEq => day.lt_eq(lit(date(value))),
        Operator::Lt => day.lt_eq(lit(date(value.checked_sub(1)?))),
        Operator::Eq => day.eq(lit(date(value))),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::cast;

    use super::*;

    fn at(micros: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
    }
    fn day(d: i32) -> Expr {
        lit(ScalarValue::Date32(Some(d)))
    }
    const DAY: i64 = 86_400_000_000;

    #[test]
    fn time_ranges_become_day_ranges_including_the_edges() {
        let t = col(EVENT_TIME);
        let cases = [
            (t.clone().gt_eq(at(10 * DAY)), col(EVENT_DATE).gt_eq(day(10))),
            (t.clone().gt(at(10 * DAY + 5)), col(EVENT_DATE).gt_eq(day(10))),
            (t.clone().lt(at(10 * DAY)), col(EVENT_DATE).lt_eq(day(9))),
            (t.clone().lt(at(10 * DAY + 1)), col(EVENT_DATE).lt_eq(day(10))),
            (t.clone().lt_eq(at(10 * DAY)), col(EVENT_DATE).lt_eq(day(10))),
            (at(-1).lt_eq(t.clone()), col(EVENT_DATE).gt_eq(day(-1))),
            (t.clone().eq(at(3 * DAY + 7)), col(EVENT_DATE).eq(day(3))),
            (cast(t.clone(), DataType::Date32).eq(day(4)), col(EVENT_DATE).eq(day(4))),
        ];
        for (filter, want) in cases {
            assert_eq!(implied_date_filter(&filter), Some(want), "{filter}");
        }
        assert_eq!(implied_date_filter(&t.clone().not_eq(at(0))), None);
        assert_eq!(implied_date_filter(&col("user_id").eq(lit("a"))), None);
        // A cast of the time mixed with another column is no filter on days alone.
        assert_eq!(implied_date_filter(&cast(t, DataType::Date32).eq(cast(col("user_id"), DataType::Date32))), None);
    }
}
