//! UTC dates of the event time (docs/functions.md, "UTC dates"): `CAST(event_time AS DATE)`
//! runs as `utc_date` under the name the SQL gave, read from `event_date` where it is the stored
//! column's, with the answers of `event_date`; filters
//! on the event time open only the days they can match.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::utils::split_conjunction_owned;
use datafusion::logical_expr::{cast, col, lit, Expr};
use datafusion::prelude::SessionContext;

use crate::reports::{rows, sample};
use crate::support::batches;

/// The data files the events table's scan opens under `filters`.
async fn files_read(ctx: &SessionContext, filters: &[Expr]) -> usize {
    let provider = ctx.table_provider("events").await.unwrap();
    let plan = provider.scan(&ctx.state(), None, filters, None).await.unwrap();
    let mut files = 0;
    plan.apply(|node| {
        let config = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|d| d.data_source().downcast_ref::<FileScanConfig>().cloned());
        if let Some(config) = config {
            files += config.file_groups.iter().map(|g| g.len()).sum::<usize>();
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    files
}

fn at(text: &str) -> Expr {
    let micros = chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros();
    lit(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_of_the_event_time_to_dates_read_like_event_date_and_choose_days() {
    let s = sample().await;
    let by_cast =
        "SELECT CAST(event_time AS DATE), count(*), count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1";
    let by_column = "SELECT event_date, count(*), count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1";
    let got = rows(&s.ctx, by_cast).await;
    assert_eq!(got, rows(&s.ctx, by_column).await);
    assert!(got.len() > 80, "{}", got.len());
    // The rewrite shows in the plan (the day is read from event_date, not computed from every
    // row's time), not in the column's name.
    let plan = rows(&s.ctx, &format!("EXPLAIN {by_cast}")).await;
    let logical = &plan[0][1];
    assert!(logical.contains("events.event_date AS") && !logical.contains("utc_date("), "{logical}");
    let names =
        batches(&s.ctx, by_cast).await[0].schema().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    assert!(!names[0].contains("utc_date") && !names[0].contains("event_date"), "{names:?}");
    // Also under a filter and a projection, beside other uses of the time.
    let filtered = "SELECT CAST(event_time AS DATE) AS d, count(*), min(event_time) FROM events WHERE event = 'purchase' GROUP BY 1 ORDER BY 1";
    let plain =
        "SELECT event_date AS d, count(*), min(event_time) FROM events WHERE event = 'purchase' GROUP BY 1 ORDER BY 1";
    assert_eq!(rows(&s.ctx, filtered).await, rows(&s.ctx, plain).await);
    assert!(!rows(&s.ctx, &format!("EXPLAIN {filtered}")).await[0][1].contains("utc_date("));
    // Truncations to a day or longer are computed from event_date, with the same answers as
    // from every row's time (here kept out of reach of the rewrite by a computed column).
    for unit in ["day", "week", "month", "quarter", "YEAR"] {
        let from_date = format!(
            "SELECT date_trunc('{unit}', event_time) AS p, count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1"
        );
        let from_time = format!("SELECT date_trunc('{unit}', t) AS p, count(DISTINCT user_id) FROM (SELECT event_time + INTERVAL '0 seconds' AS t, user_id FROM events) GROUP BY 1 ORDER BY 1");
        assert_eq!(rows(&s.ctx, &from_date).await, rows(&s.ctx, &from_time).await, "{unit}");
        let logical = &rows(&s.ctx, &format!("EXPLAIN {from_date}")).await[0][1];
        assert!(logical.contains("projection=[user_id, event_date]"), "{unit}: {logical}");
    }
    let hourly = "SELECT date_trunc('hour', event_time), count(*) FROM events GROUP BY 1";
    assert!(rows(&s.ctx, &format!("EXPLAIN {hourly}")).await[0][1].contains("projection=[event_time]"));
    // A subquery's own event_time is not the stored one: its day is computed.
    let shifted = "SELECT CAST(event_time AS DATE) AS d, count(*) FROM (SELECT event_time + INTERVAL '12 hours' AS event_time FROM events) GROUP BY 1 ORDER BY 1";
    let expected =
        "SELECT CAST(event_time + INTERVAL '12 hours' AS DATE) AS d, count(*) FROM events GROUP BY 1 ORDER BY 1";
    let got = rows(&s.ctx, shifted).await;
    assert_eq!(got, rows(&s.ctx, expected).await);
    assert_ne!(got, rows(&s.ctx, "SELECT event_date, count(*) FROM events GROUP BY 1 ORDER BY 1").await);
    assert!(rows(&s.ctx, &format!("EXPLAIN {shifted}")).await[0][1].contains("utc_date("));

    let all = files_read(&s.ctx, &[]).await;
    let time = || col("event_time");
    let date = lit(ScalarValue::Date32(Some(20_093))); // 2025-01-05
    for (filter, days, sql) in [
        (cast(time(), DataType::Date32).eq(date), 1, "CAST(event_time AS DATE) = DATE '2025-01-05'"),
        (
            time().gt_eq(at("2025-01-05T12:00:00Z")).and(time().lt(at("2025-01-07T00:00:00Z"))),
            2,
            "event_time >= TIMESTAMP '2025-01-05 12:00:00Z' AND event_time < TIMESTAMP '2025-01-07 00:00:00Z'",
        ),
        (
            time().gt_eq(at("2025-01-05T00:00:00Z")).and(time().lt_eq(at("2025-01-06T00:00:00Z"))),
            2,
            "event_time BETWEEN TIMESTAMP '2025-01-05 00:00:00Z' AND TIMESTAMP '2025-01-06 00:00:00Z'",
        ),
    ] {
        let files = files_read(&s.ctx, &split_conjunction_owned(filter)).await;
        assert!(files > 0 && files * 20 < all * days, "{sql}: {files} of {all} files");
        // An aggregate's FILTER is not pushed into the scan: every file is read.
        let pruned = rows(&s.ctx, &format!("SELECT count(user_id) FROM events WHERE {sql}")).await;
        let whole = rows(&s.ctx, &format!("SELECT count(user_id) FILTER (WHERE {sql}) FROM events")).await;
        assert_eq!(pruned, whole, "{sql}");
        assert_ne!(pruned[0][0], "0", "{sql}");
    }
    // Rows are still filtered exactly: the half day before noon is not counted.
    let half = rows(&s.ctx, "SELECT count(*) FROM events WHERE event_time >= TIMESTAMP '2025-01-05 12:00:00Z' AND event_date = DATE '2025-01-05'").await;
    let afternoon = rows(&s.ctx, "SELECT count(*) FROM events WHERE event_time >= TIMESTAMP '2025-01-05 12:00:00Z' AND event_time < TIMESTAMP '2025-01-06 00:00:00Z'").await;
    assert_eq!(half, afternoon);
}
