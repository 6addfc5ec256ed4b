//! Expression builders for Northstar's functions, as DataFusion's `expr_fn` modules: for
//! embedders that build plans with the DataFrame API instead of SQL.
//!
//! ```
//! use datafusion::prelude::*;
//! use northstar_functions::expr_fn::window_funnel;
//!
//! // window_funnel(86400, event_time, event = 'view_item', event = 'purchase')
//! let level = window_funnel(
//!     lit(86_400i64),
//!     col("event_time"),
//!     vec![col("event").eq(lit("view_item")), col("event").eq(lit("purchase"))],
//! );
//! ```
//!
//! Constant parameters (window, mode, pattern, period, gap) are expressions too, as in
//! DataFusion's builders; like in SQL, they must be literals or planning fails naming them.

use datafusion::prelude::Expr;

use crate::{
    cohort_periods_udaf, funnel_step_times_udaf, retention_udaf, sequence_count_udaf, sequence_match_udaf,
    session_number_udwf, session_transition_counts_udaf, session_transitions_udaf, text_equals_udf, window_funnel_udaf,
};

fn with_conditions(mut args: Vec<Expr>, conditions: Vec<Expr>) -> Vec<Expr> {
    args.extend(conditions);
    args
}

/// `window_funnel(window, timestamp, cond1, …)`: the highest funnel step reached.
pub fn window_funnel(window: Expr, timestamp: Expr, conditions: Vec<Expr>) -> Expr {
    window_funnel_udaf().call(with_conditions(vec![window, timestamp], conditions))
}

/// `window_funnel(window, mode, timestamp, cond1, …)`, `mode` a text such as `'strict_order'`.
pub fn window_funnel_with_mode(window: Expr, mode: Expr, timestamp: Expr, conditions: Vec<Expr>) -> Expr {
    window_funnel_udaf().call(with_conditions(vec![window, mode, timestamp], conditions))
}

/// `funnel_step_times(window, timestamp, cond1, …)`: the times of the steps reached.
pub fn funnel_step_times(window: Expr, timestamp: Expr, conditions: Vec<Expr>) -> Expr {
    funnel_step_times_udaf().call(with_conditions(vec![window, timestamp], conditions))
}

/// `funnel_step_times(window, mode, timestamp, cond1, …)`.
pub fn funnel_step_times_with_mode(window: Expr, mode: Expr, timestamp: Expr, conditions: Vec<Expr>) -> Expr {
    funnel_step_times_udaf().call(with_conditions(vec![window, mode, timestamp], conditions))
}

/// `retention(cond1, …)`: `[c1, c1 AND c2, …]` as 0/1.
pub fn retention(conditions: Vec<Expr>) -> Expr {
    retention_udaf().call(conditions)
}

/// `sequence_match(pattern, timestamp, cond1, …)`: whether the events contain the pattern.
pub fn sequence_match(pattern: Expr, timestamp: Expr, conditions: Vec<Expr>) -> Expr {
    sequence_match_udaf().call(with_conditions(vec![pattern, timestamp], conditions))
}

/// `sequence_count(pattern, timestamp, cond1, …)`: how many non-overlapping matches.
pub fn sequence_count(pattern: Expr, timestamp: Expr, conditions: Vec<Expr>) -> Expr {
    sequence_count_udaf().call(with_conditions(vec![pattern, timestamp], conditions))
}

/// `cohort_periods(timestamp, period)`: the active periods, counted from the first.
pub fn cohort_periods(timestamp: Expr, period: Expr) -> Expr {
    cohort_periods_udaf().call(vec![timestamp, period])
}

/// `session_transitions(timestamp, event, gap)`: the `{from, to}` moves within sessions.
pub fn session_transitions(timestamp: Expr, event: Expr, gap: Expr) -> Expr {
    session_transitions_udaf().call(vec![timestamp, event, gap])
}

/// `session_transition_counts(timestamp, event, gap)`: each distinct move once, with its count.
pub fn session_transition_counts(timestamp: Expr, event: Expr, gap: Expr) -> Expr {
    session_transition_counts_udaf().call(vec![timestamp, event, gap])
}

/// `session_transitions(timestamp, event, gap, start, end)`: the moves between the bounds.
pub fn session_transitions_between(timestamp: Expr, event: Expr, gap: Expr, start: Expr, end: Expr) -> Expr {
    session_transitions_udaf().call(vec![timestamp, event, gap, start, end])
}

/// `session_number(timestamp, gap)`; add the window with
/// [`ExprFunctionExt`](datafusion::logical_expr::ExprFunctionExt):
/// `.partition_by(vec![col("user_id")]).order_by(vec![col("event_time").sort(true, false)]).build()`.
pub fn session_number(timestamp: Expr, gap: Expr) -> Expr {
    session_number_udwf().call(vec![timestamp, gap])
}

/// `text_equals(text, constant)`: `text = constant`.
pub fn text_equals(text: Expr, constant: Expr) -> Expr {
    text_equals_udf().call(vec![text, constant])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::logical_expr::ExprFunctionExt;
    use datafusion::prelude::{col, lit, SessionContext};

    use super::*;

    const SECOND: i64 = 1_000_000;

    /// Users a (view, cart, buy within the hour), b (view, buy two hours later: outside a one-hour
    /// window), c (cart only).
    fn events() -> RecordBatch {
        let users = vec!["a", "a", "a", "b", "b", "c"];
        let seconds = [0, 60, 120, 0, 7200, 30];
        let names = vec!["view", "cart", "buy", "view", "buy", "cart"];
        let times: Vec<i64> = seconds.iter().map(|s| s * SECOND).collect();
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("event", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(users)),
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn session() -> SessionContext {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx).unwrap();
        ctx.register_batch("events", events()).unwrap();
        ctx
    }

    async fn pretty(frame: datafusion::dataframe::DataFrame) -> String {
        pretty_format_batches(&frame.collect().await.unwrap()).unwrap().to_string()
    }

    fn is(event: &str) -> Expr {
        col("event").eq(lit(event))
    }

    #[tokio::test]
    async fn aggregate_builders_give_the_sql_answers() {
        let ctx = session();
        let built = ctx
            .read_batch(events())
            .unwrap()
            .aggregate(
                vec![col("user_id")],
                vec![
                    window_funnel(lit(3600i64), col("event_time"), vec![is("view"), is("cart"), is("buy")])
                        .alias("level"),
                    window_funnel_with_mode(
                        lit(3600i64),
                        lit("strict_order"),
                        col("event_time"),
                        vec![is("view"), is("buy")],
                    )
                    .alias("strict"),
                    retention(vec![is("view"), is("buy")]).alias("r"),
                    sequence_match(lit("(?1)(?t<=3600)(?2)"), col("event_time"), vec![is("view"), is("buy")])
                        .alias("m"),
                    sequence_count(lit("(?1)(?2)"), col("event_time"), vec![is("view"), is("buy")]).alias("n"),
                    funnel_step_times(lit(3600i64), col("event_time"), vec![is("view"), is("cart")]).alias("t"),
                    cohort_periods(col("event_time"), lit("day")).alias("p"),
                ],
            )
            .unwrap()
            .sort(vec![col("user_id").sort(true, false)])
            .unwrap();
        let sql = ctx
            .sql(
                "SELECT user_id,
                        window_funnel(3600, event_time, event = 'view', event = 'cart', event = 'buy') AS level,
                        window_funnel(3600, 'strict_order', event_time, event = 'view', event = 'buy') AS strict,
                        retention(event = 'view', event = 'buy') AS r,
                        sequence_match('(?1)(?t<=3600)(?2)', event_time, event = 'view', event = 'buy') AS m,
                        sequence_count('(?1)(?2)', event_time, event = 'view', event = 'buy') AS n,
                        funnel_step_times(3600, event_time, event = 'view', event = 'cart') AS t,
                        cohort_periods(event_time, 'day') AS p
                 FROM events GROUP BY user_id ORDER BY user_id",
            )
            .await
            .unwrap();
        let built = pretty(built).await;
        assert_eq!(built, pretty(sql).await);
        // and the answers themselves, so that two equally wrong forms cannot pass
        let expected = [
            "+---------+-------+--------+--------+-------+---+----------------------------------------------+-----+",
            "| user_id | level | strict | r      | m     | n | t                                            | p   |",
            "+---------+-------+--------+--------+-------+---+----------------------------------------------+-----+",
            "| a       | 3     | 1      | [1, 1] | true  | 1 | [1970-01-01T00:00:00Z, 1970-01-01T00:01:00Z] | [0] |",
            "| b       | 1     | 1      | [1, 1] | false | 1 | [1970-01-01T00:00:00Z]                       | [0] |",
            "| c       | 0     | 0      | [0, 0] | false | 0 | []                                           | [0] |",
            "+---------+-------+--------+--------+-------+---+----------------------------------------------+-----+",
        ];
        assert_eq!(built, expected.join("\n"));
    }

    #[tokio::test]
    async fn window_and_scalar_builders_give_the_sql_answers() {
        let ctx = session();
        let session = session_number(col("event_time"), lit(3600i64))
            .partition_by(vec![col("user_id")])
            .order_by(vec![col("event_time").sort(true, false)])
            .build()
            .unwrap();
        let built = ctx
            .read_batch(events())
            .unwrap()
            .select(vec![
                col("user_id"),
                col("event"),
                session.alias("session"),
                text_equals(col("event"), lit("buy")).alias("bought"),
            ])
            .unwrap()
            .sort(vec![col("user_id").sort(true, false), col("event_time").sort(true, false)])
            .unwrap();
        let sql = ctx
            .sql(
                "SELECT user_id, event,
                        session_number(event_time, 3600) OVER (PARTITION BY user_id ORDER BY event_time) AS session,
                        text_equals(event, 'buy') AS bought
                 FROM events ORDER BY user_id, event_time",
            )
            .await
            .unwrap();
        let built = pretty(built).await;
        assert_eq!(built, pretty(sql).await);
        assert!(built.contains("| b       | buy   | 2       | true   |"), "{built}");
    }
}
