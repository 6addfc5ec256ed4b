//! Protocol behaviour with tokio-postgres: extended and simple queries, parameters, binary
//! results, COPY, INSERT, cancel, statement_timeout, SQLSTATEs.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use futures::{SinkExt, StreamExt};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::{count, message, sqlstate, TestServer, SAMPLE_ROWS};

/// A query that runs for many seconds on the sample (10k × 10k × 10k rows).
const LONG_QUERY: &str =
    "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.user_id < b.user_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_results_for_every_column_type_match_the_text_protocol() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let sql = "SELECT event_time, user_id, event, session_id, properties, event_date, platform, country FROM events ORDER BY event_time, user_id, event LIMIT 50";
    // tokio-postgres's query() is the extended protocol with binary results.
    let binary = client.query(sql, &[]).await.unwrap();
    let text = client.simple_query(sql).await.unwrap();
    let text_rows: Vec<_> =
        text.iter().filter_map(|m| if let SimpleQueryMessage::Row(r) = m { Some(r) } else { None }).collect();
    assert_eq!(binary.len(), 50);
    assert_eq!(text_rows.len(), 50);
    for (b, t) in binary.iter().zip(text_rows) {
        let time: DateTime<Utc> = b.get("event_time");
        let text_time = t.get("event_time").unwrap();
        assert_eq!(
            DateTime::parse_from_str(&format!("{text_time}00"), "%Y-%m-%d %H:%M:%S%.f%z").unwrap(),
            time,
            "{text_time}"
        );
        let date: NaiveDate = b.get("event_date");
        assert_eq!(date.to_string(), t.get("event_date").unwrap());
        assert_eq!(date, time.date_naive());
        for column in ["user_id", "event", "session_id", "properties", "platform", "country"] {
            assert_eq!(b.get::<_, Option<String>>(column).as_deref(), t.get(column), "{column}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_bind_strings_timestamps_and_numbers() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let since: DateTime<Utc> = "2025-01-15T00:00:00Z".parse().unwrap();
    let by_params: i64 = client
        .query_one("SELECT count(*) FROM events WHERE event = $1 AND event_time >= $2", &[&"purchase", &since])
        .await
        .unwrap()
        .get(0);
    let literal: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE event = 'purchase' AND event_time >= TIMESTAMP '2025-01-15 00:00:00Z'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_params, literal);
    assert!(literal > 0);
    let statement = client.prepare("SELECT count(*) FROM events WHERE event = $1").await.unwrap();
    let total: i64 = ["purchase", "signup", "no_such_event"]
        .iter()
        .map(|e| futures::executor::block_on(client.query_one(&statement, &[e])).unwrap().get::<_, i64>(0))
        .sum::<i64>();
    assert!(total > literal);
    let after: i64 =
        client.query_one("SELECT count(*) FROM events HAVING count(*) > $1", &[&0i64]).await.unwrap().get(0);
    assert_eq!(after, SAMPLE_ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behavioural_functions_over_the_wire() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let rows = client
        .query(
            "SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '1 day', event_time, event = 'signup', event = 'view_item', event = 'purchase') AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
            &[],
        )
        .await
        .unwrap();
    let users: i64 = rows.iter().map(|r| r.get::<_, i64>("users")).sum();
    let distinct: i64 = client.query_one("SELECT count(DISTINCT user_id) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(users, distinct);
    let retention = client.query_one("SELECT retention(event = 'signup', event = 'purchase') FROM events WHERE user_id = (SELECT min(user_id) FROM events)", &[]).await.unwrap();
    let values: Vec<i32> = retention.get(0);
    assert_eq!(values.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_csv_and_text_commit_atomically_and_copy_out_streams() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    let sink = client
        .copy_in("COPY events (event_time, user_id, event, properties) FROM STDIN WITH (FORMAT csv, HEADER)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"event_time,user_id,event,properties\n2026-01-01 10:00:00,copy-u1,signup,\"{\"\"plan\"\":\"\"pro\"\"}\"\n",
    ))
    .await
    .unwrap();
    sink.send(bytes::Bytes::from_static(b"2026-01-01 10:05:00,copy-u1,purchase,\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    assert_eq!(count(&client).await, SAMPLE_ROWS + 2);
    let plan: String = client
        .query_one(
            "SELECT json_get_str(properties, 'plan') FROM events WHERE user_id = 'copy-u1' AND event = 'signup'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plan, "pro");
    let date: NaiveDate = client
        .query_one("SELECT event_date FROM events WHERE user_id = 'copy-u1' AND event = 'purchase'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(date, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());

    // Text format: tab-separated, \N for NULL, backslash escapes.
    let sink = client.copy_in("COPY events (event_time, user_id, event, session_id) FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"2026-01-02 00:00:00\tcopy-u2\tsignup\t\\N\n2026-01-02 00:00:01\tcopy-u2\tlog\\tin\ts-1\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let event: String = client
        .query_one("SELECT event FROM events WHERE user_id = 'copy-u2' AND session_id = 's-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(event, "log\tin");

    // A bad row: an error naming the line, and nothing committed.
    let sink = client.copy_in("COPY events (event_time, user_id, event) FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"2026-01-03 00:00:00,copy-u3,signup\nnot a time,copy-u3,signup\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert!(message(&err).contains("line 2"), "{}", message(&err));
    assert_eq!(count(&client).await, SAMPLE_ROWS + 4);

    // COPY out, CSV with header, and the connection still works after it.
    let stream = client.copy_out("COPY (SELECT user_id, event FROM events WHERE user_id LIKE 'copy-%' ORDER BY event_time) TO STDOUT WITH (FORMAT csv, HEADER)").await.unwrap();
    let chunks: Vec<bytes::Bytes> = stream.map(|c| c.unwrap()).collect().await;
    let text = String::from_utf8(chunks.concat()).unwrap();
    assert_eq!(text, "user_id,event\ncopy-u1,signup\ncopy-u1,purchase\ncopy-u2,signup\ncopy-u2,log\tin\n");
    let stream = client.copy_out("COPY events (user_id, session_id) TO STDOUT").await.unwrap();
    let lines = String::from_utf8(stream.map(|c| c.unwrap()).collect::<Vec<_>>().await.concat()).unwrap();
    assert_eq!(lines.lines().count() as i64, SAMPLE_ROWS + 4);
    assert!(lines.contains("copy-u2\t\\N\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_commits_and_checks_columns() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let at: DateTime<Utc> = "2026-02-01T12:00:00.123456Z".parse().unwrap();
    let n = client.execute("INSERT INTO events (event_time, user_id, event, platform) VALUES ($1, $2, 'signup', 'ios'), ($1, $2, 'purchase', NULL)", &[&at, &"ins-1"]).await.unwrap();
    assert_eq!(n, 2);
    let row = client
        .query_one(
            "SELECT event_time, event_date, platform FROM events WHERE user_id = 'ins-1' AND event = 'signup'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, DateTime<Utc>>(0), at);
    assert_eq!(row.get::<_, NaiveDate>(1), at.date_naive());
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("ios"));
    let n = client.execute("INSERT INTO events SELECT event_time + INTERVAL '1 day', user_id, event, session_id, properties, platform, country FROM events WHERE user_id = 'ins-1'", &[]).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(count(&client).await, SAMPLE_ROWS + 4);

    let missing = client.execute("INSERT INTO events (event_time, event) VALUES (now(), 'x')", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&missing), "23502", "{}", message(&missing));
    let unknown = client
        .execute("INSERT INTO events (event_time, user_id, event, nope) VALUES (now(), 'u', 'x', 1)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&unknown), "42703", "{}", message(&unknown));
    assert_eq!(count(&client).await, SAMPLE_ROWS + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_scan_within_a_second() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let token = client.cancel_token();
    let running = tokio::spawn(async move {
        let out = client.query_one(LONG_QUERY, &[]).await;
        (out, client)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!running.is_finished(), "the long query finished before the cancel");
    let sent = Instant::now();
    token.cancel_query(NoTls).await.unwrap();
    let (out, client) = running.await.unwrap();
    let took = sent.elapsed();
    let err = out.unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{}", message(&err));
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    // The connection serves the next statement.
    assert_eq!(client.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
}

/// Work of three kinds that runs far past a second on the sample, each stopped somewhere else:
/// a join's probe loop, an expression evaluated batch after batch, and a report's aggregates
/// over a large input (a view of 100M rows for `table=`).
fn slow_work() -> Vec<(&'static str, String)> {
    // 900 operators deep (sqlparser nests parentheses at most 50 deep; chained operators go
    // to Northstar's limit of 1,000), evaluated batch after batch.
    let deep = (1..900).fold("(g % 1000003)".to_string(), |e, n| format!("{e} + {n}"));
    vec![
        ("cross join", LONG_QUERY.to_string()),
        ("deep expression", format!("SELECT sum({deep}) FROM generate_series(1, 100000000000) AS t(g)")),
        (
            "report",
            "SELECT * FROM funnel(['signup', 'view_item', 'purchase'], 'window=1 day; table=big_events')".to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_statement_timeout_stop_a_cross_join_a_deep_expression_and_a_report_within_a_second() {
    let server = TestServer::start().await;
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE VIEW big_events AS SELECT a.event_time, a.event_date, a.event, a.user_id || '/' || b.user_id AS user_id, \
             a.properties FROM events a CROSS JOIN events b",
        )
        .await
        .unwrap();
    let timeout = Duration::from_millis(500);
    for (kind, sql) in slow_work() {
        let client = server.connect().await;
        client.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis())).await.unwrap();
        let started = Instant::now();
        let err = client.query_one(&sql, &[]).await.unwrap_err();
        let overshoot = started.elapsed().saturating_sub(timeout);
        assert_eq!(sqlstate(&err), "57014", "{kind}: {}", message(&err));
        assert!(overshoot < Duration::from_secs(1), "{kind}: the timeout overshot by {overshoot:?}");

        client.batch_execute("SET statement_timeout = 0").await.unwrap();
        let token = client.cancel_token();
        let running = tokio::spawn(async move { client.query_one(&sql, &[]).await });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!running.is_finished(), "{kind} finished before the cancel");
        let sent = Instant::now();
        token.cancel_query(NoTls).await.unwrap();
        let err = running.await.unwrap().unwrap_err();
        let took = sent.elapsed();
        assert_eq!(sqlstate(&err), "57014", "{kind}: {}", message(&err));
        assert!(took < Duration::from_secs(1), "{kind}: the cancel took {took:?}");
        eprintln!("{kind}: statement_timeout overshoot {overshoot:?}, cancel {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_per_connection_and_stops_execution() {
    let server = TestServer::start().await;
    let limited = server.connect().await;
    let other = server.connect().await;
    limited.batch_execute("SET statement_timeout = '300ms'").await.unwrap();
    let started = Instant::now();
    let err = limited.query_one(LONG_QUERY, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{}", message(&err));
    assert!(err.as_db_error().unwrap().message().contains("statement timeout"));
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    let shown = other.simple_query("SHOW statement_timeout").await.unwrap();
    let SimpleQueryMessage::Row(row) = &shown[1] else { panic!("{shown:?}") };
    assert_eq!(row.get(0), Some("0"));
    assert_eq!(
        limited.query_one("SELECT current_setting('statement_timeout')", &[]).await.unwrap().get::<_, String>(0),
        "300ms"
    );
}

/// Drivers (psycopg 3, asyncpg, JDBC, node `pg`) read results through the extended protocol
/// with no row limit. Rows must flow while the scan runs, as in the simple protocol: a server
/// that gathers a portal's rows before sending any holds the whole result in memory (1.36 GB
/// for a 10M-row result, docs/benchmarks.md). An endless result under a statement timeout
/// shows which: streamed, rows arrive and then the timeout's error; gathered, only the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_protocol_result_streams_while_its_scan_runs() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("SET statement_timeout = '1s'").await.unwrap();
    let endless = "SELECT value FROM generate_series(1, 9223372036854775807)";
    let rows = client.query_raw(endless, std::iter::empty::<i64>()).await.unwrap();
    futures::pin_mut!(rows);
    let mut received = 0u64;
    let err = loop {
        match rows.next().await {
            Some(Ok(row)) => {
                received += 1;
                assert_eq!(row.get::<_, i64>(0), received as i64);
            }
            Some(Err(e)) => break e,
            None => panic!("an endless result ended after {received} rows"),
        }
    };
    assert_eq!(sqlstate(&err), "57014", "{}", message(&err));
    assert!(received > 0, "no row arrived before the statement timed out: the result was gathered, not streamed");
    // The connection serves the next statement.
    assert_eq!(count(&client).await, SAMPLE_ROWS);
}
/// The value `SHOW name` answers, over the simple protocol.
async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    let shown = client.simple_query(&format!("SHOW {name}")).await.unwrap();
    let row = shown.iter().find_map(|m| if let SimpleQueryMessage::Row(row) = m { Some(row) } else { None });
    row.and_then(|r| r.get(0)).unwrap_or_else(|| panic!("SHOW {name}: {shown:?}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_restores_the_values_the_session_started_with() {
    let server =
        TestServer::start_with(Default::default(), |o| o.statement_timeout = Some(Duration::from_millis(4500))).await;
    let client = super::connect(&format!("{} application_name=start-app", server.url("northstar"))).await.unwrap();
    assert_eq!(show(&client, "statement_timeout").await, "4500");
    assert_eq!(show(&client, "application_name").await, "start-app");
    let change = "SET statement_timeout = '20s'; SET application_name = 'other'";
    client.batch_execute(change).await.unwrap();
    assert_eq!(
        (show(&client, "statement_timeout").await, show(&client, "application_name").await),
        ("20s".into(), "other".into())
    );
    client.batch_execute("RESET statement_timeout; RESET application_name").await.unwrap();
    assert_eq!(show(&client, "statement_timeout").await, "4500");
    assert_eq!(show(&client, "application_name").await, "start-app");
    client.batch_execute(change).await.unwrap();
    client.batch_execute("RESET ALL").await.unwrap();
    assert_eq!(show(&client, "statement_timeout").await, "4500");
    assert_eq!(show(&client, "application_name").await, "start-app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_postgres_sqlstates_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    for (sql, code) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_function(1)", "42883"),
        ("SELECT no_such_column FROM events", "42703"),
        ("SHOW no_such_setting", "42704"),
    ] {
        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), code, "{sql}: {err}");
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), code, "{sql} (simple): {err}");
    }
    assert_eq!(count(&client).await, SAMPLE_ROWS);
    // BEGIN/COMMIT/ROLLBACK are accepted; version() and SHOW answer like PostgreSQL.
    client.batch_execute("BEGIN; SELECT 1; COMMIT; BEGIN; ROLLBACK").await.unwrap();
    let version: String = client.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(version.starts_with("PostgreSQL 16."), "{version}");
    let other = server.connect().await;
    client.batch_execute("SET application_name = 'first'").await.unwrap();
    let name: String = other.query_one("SELECT current_setting('application_name')", &[]).await.unwrap().get(0);
    assert_ne!(name, "first");
    client.batch_execute("RESET application_name; RESET ALL").await.unwrap();
    let kind: String = client.query_one("SELECT pg_typeof(event_time) FROM events LIMIT 1", &[]).await.unwrap().get(0);
    assert_eq!(kind, "timestamp with time zone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_a_clear_error() {
    let server = TestServer::start_with(Default::default(), |o| o.max_connections = 2).await;
    let _a = server.connect().await;
    let _b = server.connect().await;
    let err = super::connect(&server.url("northstar")).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300", "{}", message(&err));
    drop(_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = server.connect().await;
    assert_eq!(count(&c).await, SAMPLE_ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_memory_limit_spills_or_fails_clearly() {
    let server = TestServer::start_with(Default::default(), |o| o.query_memory = 256 << 10).await;
    let client = server.connect().await;
    let sql =
        "SELECT user_id, array_agg(properties ORDER BY event_time) AS p FROM events GROUP BY user_id ORDER BY user_id";
    match client.query(sql, &[]).await {
        Ok(rows) => {
            let users: i64 = client.query_one("SELECT count(DISTINCT user_id) FROM events", &[]).await.unwrap().get(0);
            assert_eq!(rows.len() as i64, users);
        }
        Err(e) => {
            assert_eq!(sqlstate(&e), "53200", "{}", message(&e));
            assert!(message(&e).contains("query memory limit"), "{}", message(&e));
        }
    }
    assert_eq!(count(&client).await, SAMPLE_ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_persist_across_restarts_and_show_in_pg_catalog() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE VIEW repeat_buyers AS SELECT user_id FROM events GROUP BY user_id HAVING sequence_match('(?1)(?t<=604800)(?2)', event_time, event = 'purchase', event = 'purchase')")
        .await
        .unwrap();
    let before: i64 = client.query_one("SELECT count(*) FROM repeat_buyers", &[]).await.unwrap().get(0);
    assert!(before > 0);
    drop(client);
    let (port, task) = server.restarted().await;
    let other = super::connect(&format!("host=127.0.0.1 port={port} user=northstar dbname=northstar")).await.unwrap();
    let after: i64 = other.query_one("SELECT count(*) FROM repeat_buyers", &[]).await.unwrap().get(0);
    assert_eq!(after, before);
    let kind: String = other
        .query_one("SELECT CAST(relkind AS TEXT) FROM pg_catalog.pg_class WHERE relname = 'repeat_buyers'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "v");
    // A report over the saved cohort.
    let users: i64 = other
        .query_one("SELECT users FROM funnel(['signup', 'purchase'], 'where=user_id IN (SELECT user_id FROM repeat_buyers)') WHERE step = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(users <= before);
    other.batch_execute("DROP VIEW repeat_buyers").await.unwrap();
    task.abort();
    let (port, task) = server.restarted().await;
    let third = super::connect(&format!("host=127.0.0.1 port={port} user=northstar dbname=northstar")).await.unwrap();
    assert_eq!(sqlstate(&third.query("SELECT * FROM repeat_buyers", &[]).await.unwrap_err()), "42P01");
    task.abort();
}

/// Tables made by SQL (dbt's table models and seeds) are saved with the data: after a restart
/// they hold every row each statement left, their changes included; a renamed table is found
/// under its new name only, a dropped one is gone, and a temporary table goes with its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_made_by_sql_survive_a_restart_with_every_change() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE buyers AS SELECT user_id, count(*) AS purchases FROM events WHERE event = 'purchase' GROUP BY user_id;
             CREATE TABLE seed (platform text, label text);
             INSERT INTO seed VALUES ('web', 'Website'), ('ios', 'iPhone'), ('android', NULL);
             DELETE FROM seed WHERE label IS NULL;
             UPDATE buyers SET purchases = purchases * 10 WHERE user_id IN (SELECT min(user_id) FROM buyers);
             CREATE TABLE gone AS SELECT 1 AS x;
             DROP TABLE gone;
             ALTER TABLE seed RENAME TO platforms;
             CREATE TEMPORARY TABLE scratch AS SELECT 1 AS x;",
        )
        .await
        .unwrap();
    // Its EXECUTE would bypass the row picking and the save: refused at PREPARE.
    let prepared =
        client.batch_execute("PREPARE wipe AS DELETE FROM buyers WHERE user_id IN (SELECT user_id FROM buyers)");
    assert_eq!(sqlstate(&prepared.await.unwrap_err()), "0A000");
    let summary = "SELECT count(*), sum(purchases), max(purchases) FROM buyers";
    let before = client.query_one(summary, &[]).await.unwrap();
    let before: (i64, i64, i64) = (before.get(0), before.get(1), before.get(2));
    assert!(before.0 > 0 && before.2 >= 10, "{before:?}");
    let other = server.connect().await;
    other.query_one("SELECT x FROM scratch", &[]).await.expect("a temporary table lives while its session does");
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sqlstate(&other.query("SELECT x FROM scratch", &[]).await.unwrap_err()), "42P01");

    let (port, task) = server.restarted().await;
    let after = super::connect(&format!("host=127.0.0.1 port={port} user=northstar dbname=northstar")).await.unwrap();
    let row = after.query_one(summary, &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)), before);
    let platforms: Vec<String> = after
        .query("SELECT platform || ':' || label FROM platforms ORDER BY platform", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(platforms, ["ios:iPhone", "web:Website"]);
    for gone in ["seed", "gone", "scratch"] {
        let e = after.query(&format!("SELECT * FROM {gone}"), &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42P01", "{gone}");
    }
    task.abort();
}

/// `current_user` and `session_user` name the user who logged in (datafusion-pg-catalog
/// answered "postgres" for everyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_user_is_the_user_who_logged_in() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let row = client.query_one("SELECT current_user, session_user", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("northstar".into(), "northstar".into()));
}

/// Reports count UTC days whatever the session's zone: their SQL's `date_trunc` and their
/// functions' periods must not part ways (docs/decisions.md). Plain SQL follows the zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_count_utc_days_under_any_session_time_zone() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let rows = |sql: &'static str| {
        let client = &client;
        async move {
            let out = client.simple_query(sql).await.unwrap();
            out.iter()
                .filter_map(|m| if let SimpleQueryMessage::Row(r) = m { Some(r) } else { None })
                .map(|r| (0..r.len()).map(|i| r.get(i).map(str::to_string)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        }
    };
    let reports = "SELECT * FROM lifecycle('period=week') ORDER BY 1, 2";
    let days = "SELECT event_time::date, count(*) FROM events GROUP BY 1 ORDER BY 1";
    let (utc_report, utc_days) = (rows(reports).await, rows(days).await);
    client.batch_execute("SET TIME ZONE 'Pacific/Auckland'").await.unwrap();
    assert_eq!(rows(reports).await, utc_report);
    assert_ne!(rows(days).await, utc_days, "plain SQL counts the session's days");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_links_sent_by_insert_and_copy_merge_persons_in_the_same_session() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let person_of = |id: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one("SELECT DISTINCT person_id FROM events WHERE user_id = $1", &[&id])
                .await
                .unwrap_or_else(|e| panic!("{id}: {}", message(&e)));
            row.get::<_, String>(0)
        }
    };
    client
        .batch_execute(
            "INSERT INTO events (event_time, user_id, event) VALUES \
             ('2026-01-01 10:00:00', 'wire-laptop', 'page_view'), ('2026-01-01 11:00:00', 'wire-ana', 'purchase')",
        )
        .await
        .unwrap();
    assert_eq!(person_of("wire-laptop").await, "wire-laptop", "no link yet");
    // PostHog's $identify, written by INSERT: the session's next statement sees one person.
    client
        .batch_execute(
            "INSERT INTO events (event_time, user_id, event, properties) VALUES \
             ('2026-01-01 10:30:00', 'wire-ana', '$identify', '{\"$anon_distinct_id\": \"wire-laptop\"}')",
        )
        .await
        .unwrap();
    assert_eq!(person_of("wire-laptop").await, "wire-ana");
    // And by COPY: a phone's visit and its $identify.
    let sink = client
        .copy_in("COPY events (event_time, user_id, event, properties) FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"2026-01-01 12:00:00,wire-phone,page_view,\n2026-01-01 12:05:00,wire-ana,$identify,\"{\"\"$anon_distinct_id\"\": \"\"wire-phone\"\"}\"\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    assert_eq!(person_of("wire-phone").await, "wire-ana");
    // The funnel from the anonymous visit to the identified purchase counts one person.
    let users: Vec<i64> = client
        .query(
            "SELECT users FROM funnel(['page_view', 'purchase'], 'window=1 day; by=person; where=person_id = ''wire-ana''') ORDER BY step",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, [1, 1]);
}
