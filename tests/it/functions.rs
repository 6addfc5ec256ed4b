//! The behavioural functions through SQL: registration, argument forms, planning errors,
//! result types, and the same answers with 1, 2 and 8 partitions.

use datafusion::prelude::SessionContext;
use northstar_engine::{new_context, EngineOptions};

use crate::support::{error, pretty};

/// A session with a table `t(u, ts, e)` from VALUES rows `(user, unix seconds, event)`.
async fn session(partitions: usize, rows: &[(&str, f64, &str)]) -> SessionContext {
    let ctx = new_context(&EngineOptions { target_partitions: Some(partitions), ..Default::default() }).unwrap();
    let values: Vec<String> = rows
        .iter()
        .map(|(u, t, e)| format!("('{u}', to_timestamp_micros({}), '{e}')", (t * 1e6).round() as i64))
        .collect();
    let sql = format!(
        "CREATE TABLE t AS SELECT column1 AS u, column2 AS ts, column3 AS e FROM (VALUES {})",
        values.join(", ")
    );
    ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    // Which path an answer takes: with one partition DataFusion combines the two aggregation
    // stages into one; with more, window_funnel, funnel_step_times and sequence_* run in one
    // stage after a hash repartition (SingleStageEventAggregates), while retention and
    // cohort_periods go Partial -> repartition -> Final, through state() and merge_batch().
    // The event-list functions' merge path is covered by properties.rs's runs with
    // EngineOptions::two_stage_aggregates.
    ctx
}

const ROWS: &[(&str, f64, &str)] = &[
    ("a", 0.0, "view"),
    ("a", 100.0, "cart"),
    ("a", 200.0, "buy"),
    ("b", 0.0, "view"),
    ("b", 90_000.0, "cart"),
    ("c", 5.0, "cart"),
    ("c", 6.0, "view"),
    ("d", 1.2, "view"),
    ("d", 1.3, "cart"),
    ("d", 1.25, "other"),
];

#[tokio::test]
async fn window_funnel_through_sql_with_interval_integer_and_modes() {
    for partitions in [1, 2, 8] {
        let ctx = session(partitions, ROWS).await;
        let out = pretty(&ctx, "SELECT u, window_funnel(INTERVAL '1 day', ts, e = 'view', e = 'cart', e = 'buy') AS l FROM t GROUP BY u ORDER BY u").await;
        assert!(
            out.contains("| a | 3 |")
                && out.contains("| b | 1 |")
                && out.contains("| c | 1 |")
                && out.contains("| d | 2 |"),
            "{partitions}: {out}"
        );
        let out = pretty(
            &ctx,
            "SELECT u, window_funnel(150, ts, e = 'view', e = 'cart', e = 'buy') AS l FROM t GROUP BY u ORDER BY u",
        )
        .await;
        assert!(out.contains("| a | 2 |"), "window 150 s is inclusive of 100 s, not 200 s: {out}");
        // sub-second order is kept: d's 'other' at 1.25 s interrupts view@1.2 → cart@1.3
        let out = pretty(&ctx, "SELECT u, window_funnel(10, 'strict_order', ts, e = 'view', e = 'cart') AS l FROM t WHERE u = 'd' GROUP BY u").await;
        assert!(out.contains("| d | 1 |"), "{out}");
        let out = pretty(
            &ctx,
            "SELECT window_funnel(INTERVAL '1 hour', ts, e = 'view', e = 'cart') AS l FROM t WHERE u = 'a'",
        )
        .await;
        assert!(out.contains("| 2 |"), "without GROUP BY: {out}");
    }
}

#[tokio::test]
async fn other_functions_through_sql() {
    let ctx = session(2, ROWS).await;
    let out =
        pretty(&ctx, "SELECT u, retention(e = 'view', e = 'cart', e = 'buy') AS r FROM t GROUP BY u ORDER BY u").await;
    assert!(
        out.contains("| a | [1, 1, 1] |") && out.contains("| b | [1, 1, 0] |") && out.contains("| c | [1, 1, 0] |"),
        "{out}"
    );
    let out = pretty(&ctx, "SELECT u, sequence_match('(?1)(?t<=150)(?2)', ts, e = 'view', e = 'cart') AS m, sequence_count('(?1).*(?2)', ts, e = 'view', e = 'cart') AS n FROM t GROUP BY u ORDER BY u").await;
    assert!(
        out.contains("| a | true  | 1 |") && out.contains("| b | false | 1 |") && out.contains("| c | false | 0 |"),
        "{out}"
    );
    let out = pretty(&ctx, "SELECT u, funnel_step_times(INTERVAL '1 day', ts, e = 'view', e = 'cart', e = 'buy') AS s FROM t WHERE u IN ('a', 'c') GROUP BY u ORDER BY u").await;
    assert!(out.contains("| a | [1970-01-01T00:00:00Z, 1970-01-01T00:01:40Z, 1970-01-01T00:03:20Z] |"), "{out}");
    assert!(out.contains("| c | [1970-01-01T00:00:06Z] "), "{out}");
    let typed = pretty(&ctx, "SELECT arrow_typeof(funnel_step_times(10, ts, e = 'view')) AS t FROM t").await;
    assert!(typed.contains("List(Timestamp(µs, \"UTC\"))") || typed.contains("Timestamp(Microsecond"), "{typed}");
    let out = pretty(&ctx, "SELECT u, ts, session_number(ts, INTERVAL '1 hour') OVER (PARTITION BY u ORDER BY ts) AS s FROM t WHERE u IN ('a', 'b') ORDER BY u, ts").await;
    let sessions: Vec<&str> =
        out.lines().filter(|l| l.starts_with("| ")).skip(1).map(|l| l.rsplit('|').nth(1).unwrap().trim()).collect();
    assert_eq!(sessions, vec!["1", "1", "1", "1", "2"], "{out}");
}

#[tokio::test]
async fn planning_errors_say_what_was_expected() {
    let ctx = session(1, ROWS).await;
    let cases: [(&str, &str); 13] = [
        ("SELECT window_funnel(10, ts) FROM t", "needs a window, a timestamp and at least one condition"),
        (
            &*format!("SELECT window_funnel(10, ts{}) FROM t", ", e = 'a'".repeat(33)),
            "takes 1 to 32 conditions, got 33",
        ),
        ("SELECT window_funnel(10, 'fast', ts, e = 'a') FROM t", "unknown mode 'fast'"),
        ("SELECT window_funnel(10, 'allow_reentry', ts, e = 'a') FROM t", "allow_reentry requires strict_order"),
        (
            "SELECT window_funnel(10, u = 'x', e = 'a') FROM t",
            "argument 2 must be a TIMESTAMP, DATE or integer timestamp",
        ),
        ("SELECT window_funnel(10, ts, e) FROM t", "must be a boolean condition"),
        ("SELECT window_funnel(INTERVAL '1 month', ts, e = 'a') FROM t", "no fixed length"),
        ("SELECT window_funnel(length(e), ts, e = 'a') FROM t", "the window must be a constant"),
        ("SELECT retention(e = 'a') FROM t", "takes 2 to 32 conditions, got 1"),
        (
            "SELECT sequence_match('(?1)(?3)', ts, e = 'a', e = 'b') FROM t",
            "condition number 3 is out of range 1..2 at position 4",
        ),
        ("SELECT sequence_count('(?1) (?2)', ts, e = 'a', e = 'b') FROM t", "unexpected character"),
        ("SELECT sequence_match(ts, e = 'a', e = 'b') FROM t", "the first argument must be the pattern"),
        ("SELECT u, session_number(ts) OVER (PARTITION BY u ORDER BY ts) FROM t", "takes 2 arguments"),
    ];
    for (sql, expected) in cases {
        let message = error(&ctx, sql).await;
        assert!(message.contains(expected), "{sql}\n  expected: {expected}\n  got: {message}");
    }
}

/// Every complete SQL example in docs/functions.md runs on the sample data set.
#[tokio::test]
async fn documented_examples_run_on_the_sample_data() {
    let location = northstar_storage::DataLocation::parse("memory://doc-examples").unwrap();
    let mut store = northstar_storage::EventStore::open(&location).await.unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample-10k.ndjson.gz").to_string();
    northstar_import::import(&mut store, &[sample], &Default::default()).await.unwrap();
    let ctx = northstar_engine::open_session(&location, &EngineOptions::default()).await.unwrap();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/functions.md")).unwrap();
    let examples: Vec<&str> = docs
        .split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim())
        .filter(|sql| sql.starts_with("SELECT") || sql.starts_with("--"))
        .filter(|sql| !sql.contains('…'))
        .collect();
    assert!(examples.len() >= 5, "found {} examples", examples.len());
    for sql in examples {
        let rows: usize = ctx
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e}"))
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows > 0, "{sql} returned nothing on the sample");
    }
}

#[tokio::test]
async fn cohort_periods_counts_active_periods_from_the_first() {
    // 1970-01-05 (4 days after the epoch) was a Monday; DAY is 86 400 s.
    const DAY: f64 = 86_400.0;
    let rows: &[(&str, f64, &str)] = &[
        ("a", 4.0 * DAY, "x"),
        ("a", 10.0 * DAY, "x"),
        ("a", 11.0 * DAY + 5.0, "x"),
        ("a", 25.0 * DAY, "x"),
        ("a", 4.5 * DAY, "x"),
        ("b", 40.0 * DAY, "x"),
        ("c", 3.0 * DAY, "x"),
        ("c", 4.0 * DAY, "x"),
        ("c", 35.0 * DAY, "x"),
    ];
    for partitions in [1, 2, 8] {
        let ctx = session(partitions, rows).await;
        let out = pretty(&ctx, "SELECT u, cohort_periods(ts, 'week') AS w, cohort_periods(ts, 'day') AS d, cohort_periods(ts, 'month') AS m FROM t GROUP BY u ORDER BY u").await;
        // a: weeks of Jan 5 (days 4, 4.5, 10), Jan 12 (11), Jan 26 (25); c: Sunday Jan 4 is the week before Monday Jan 5.
        assert!(out.contains("| a | [0, 1, 3] | [0, 6, 7, 21] | [0]    |"), "{partitions}: {out}");
        assert!(out.contains("| b | [0]       | [0]           | [0]    |"), "{partitions}: {out}");
        assert!(out.contains("| c | [0, 1, 5] | [0, 1, 32]    | [0, 1] |"), "{partitions}: {out}");
        // the whole cohort matrix in one pass
        let matrix = pretty(&ctx, "SELECT cohort, k, count(*) AS n FROM (SELECT cohort, unnest(p) AS k FROM \
            (SELECT CAST(date_trunc('week', min(ts)) AS DATE) AS cohort, cohort_periods(ts, 'week') AS p FROM t GROUP BY u)) \
            GROUP BY cohort, k ORDER BY cohort, k").await;
        assert!(
            matrix.contains("| 1969-12-29 | 0 | 1 |")
                && matrix.contains("| 1970-01-05 | 0 | 1 |")
                && matrix.contains("| 1970-01-05 | 3 | 1 |"),
            "{matrix}"
        );
    }
    let ctx = session(1, rows).await;
    let err = error(&ctx, "SELECT cohort_periods(ts, 'fortnight') FROM t").await;
    assert!(err.contains("unknown period 'fortnight'"), "{err}");
    let err = error(&ctx, "SELECT cohort_periods(42, 'week') FROM t").await;
    assert!(err.contains("must be a TIMESTAMP or DATE"), "{err}");
    let out = pretty(&ctx, "SELECT cohort_periods(ts, 'week') AS w FROM t WHERE u = 'nobody'").await;
    assert!(out.contains("| [] |"), "no rows: {out}");
}

#[tokio::test]
async fn text_equals_is_equality_for_short_and_long_texts_and_nulls() {
    let ctx = session(2, ROWS).await;
    let out = pretty(&ctx, "SELECT count(*) FILTER (WHERE text_equals(e, 'view')) AS v, count(*) FILTER (WHERE text_equals(e, 'no such event, longer than twelve')) AS l, \
        sum(CASE WHEN text_equals(arrow_cast(NULL, 'Utf8View'), 'view') IS NULL THEN 1 END) AS n FROM t").await;
    assert!(out.contains("| 4 | 0 | 10 |"), "{out}");
    // inside a funnel's conditions `e = 'view'` becomes text_equals; the answers stay the same
    let long = pretty(&ctx, "SELECT u, window_funnel(INTERVAL '1 day', ts, arrow_cast(e, 'Utf8View') = 'view', arrow_cast(e, 'Utf8View') = 'cart') AS l FROM t GROUP BY u ORDER BY u").await;
    let plain = pretty(
        &ctx,
        "SELECT u, window_funnel(INTERVAL '1 day', ts, e IN ('view'), e IN ('cart')) AS l FROM t GROUP BY u ORDER BY u",
    )
    .await;
    assert_eq!(long, plain);
}
