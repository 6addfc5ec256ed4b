//! Real clients against a real server: psql, Python (psycopg 3, SQLAlchemy 2 as Superset
//! uses it), pgjdbc on Java 17 (DBeaver, Metabase, Tableau), and the connect-time queries of
//! Grafana and Metabase replayed over the extended protocol.

use std::path::Path;
use std::process::{Command, Output};

use super::postgres::RealPostgres;
use super::{count, TestServer, SAMPLE_ROWS};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

fn check(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn blocking(f: impl FnOnce() -> Output + Send + 'static) -> Output {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn psql(port: u16, args: &[&str]) -> Output {
    psql_at(&format!("host=127.0.0.1 port={port} user=northstar dbname=northstar"), args)
}

fn psql_at(conninfo: &str, args: &[&str]) -> Output {
    Command::new("psql")
        .env("PGCONNECT_TIMEOUT", "10")
        .arg(conninfo)
        .arg("-X")
        .args(args)
        .output()
        .expect("psql (installed by scripts/setup-test-env.sh)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_queries_and_copies() {
    let server = TestServer::start().await;
    let port = server.port;
    let tables = check(blocking(move || psql(port, &["-c", "\\dt"])).await, "\\dt");
    assert!(tables.contains("events") && tables.contains("table"), "{tables}");
    let described = check(blocking(move || psql(port, &["-c", "\\d events"])).await, "\\d events");
    for expected in ["event_time", "timestamp with time zone", "user_id", "text", "event_date", "date", "not null"] {
        assert!(described.contains(expected), "\\d events lacks {expected}:\n{described}");
    }
    let funnel = check(
        blocking(move || {
            psql(port, &["-A", "-t", "-c", "SELECT sum(CASE WHEN level >= 1 THEN 1 ELSE 0 END), sum(CASE WHEN level >= 2 THEN 1 ELSE 0 END) FROM (SELECT window_funnel(INTERVAL '1 day', event_time, event = 'signup', event = 'purchase') AS level FROM events GROUP BY user_id) t"])
        })
        .await,
        "funnel",
    );
    let counts: Vec<i64> = funnel.trim().split('|').map(|v| v.parse().unwrap()).collect();
    assert!(counts[0] >= counts[1] && counts[0] > 0, "{funnel}");

    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("purchases.csv");
    let copy_out = format!(
        "\\copy (SELECT event_time, user_id, event FROM events WHERE event = 'purchase') to '{}' csv header",
        out_file.display()
    );
    check(blocking(move || psql(port, &["-c", &copy_out])).await, "\\copy to");
    let exported = std::fs::read_to_string(&out_file).unwrap();
    let purchases = exported.lines().count() - 1;
    assert!(purchases > 0 && exported.starts_with("event_time,user_id,event\n"), "{exported:.200}");
    let copy_in = format!("\\copy events (event_time, user_id, event) from '{}' csv header", out_file.display());
    let copied = check(blocking(move || psql(port, &["-c", &copy_in])).await, "\\copy from");
    assert!(copied.contains(&format!("COPY {purchases}")), "{copied}");
    assert_eq!(count(&server.connect().await).await, SAMPLE_ROWS + purchases as i64);
}

pub(super) fn venv_python() -> &'static Path {
    let python = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    assert!(python.exists(), "no .venv: run scripts/setup-test-env.sh");
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_and_sqlalchemy_like_superset() {
    let server = TestServer::start().await;
    let port = server.port;
    let out = blocking(move || {
        Command::new(venv_python()).arg(format!("{CLIENTS}/python_clients.py")).arg(port.to_string()).output().unwrap()
    })
    .await;
    let printed = check(out, "python clients");
    assert!(printed.contains("sqlalchemy reflection ok"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_and_metabase_connect_queries_succeed() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let text = std::fs::read_to_string(format!("{CLIENTS}/connect_queries.sql")).unwrap();
    let mut label = String::new();
    let mut ran = 0;
    for line in text.lines() {
        if let Some(l) = line.strip_prefix("-- ") {
            label = l.to_string();
            continue;
        }
        let sql = line.trim().trim_end_matches(';');
        if sql.is_empty() {
            continue;
        }
        // Extended protocol, as both tools' drivers (pgx, pgjdbc) use it.
        let rows = client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{label}: {}\n{sql}", super::message(&e)));
        if label.contains("tables") || label.contains("columns") {
            assert!(!rows.is_empty(), "{label} returned nothing");
        }
        ran += 1;
    }
    assert!(ran >= 15, "ran {ran}");
}

/// The row psql's `\df+ NAME` prints for the function (unaligned output: fields split by `|`):
/// schema, name, result type, arguments, kind, …, description.
fn df_plus_row(printed: &str, name: &str) -> Vec<String> {
    let row = printed
        .lines()
        .find(|line| line.split('|').nth(1) == Some(name))
        .unwrap_or_else(|| panic!("\\df+ {name} printed no row for it:\n{printed}"));
    row.split('|').map(str::to_string).collect()
}

/// `\df+` and `obj_description` show a function's kind and documentation, on Northstar and on
/// PostgreSQL (where the same check runs against an aggregate given the same comment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_df_plus_shows_functions_and_their_documentation_as_postgresql_does() {
    let postgres = RealPostgres::start();
    let description = "Returns the highest step of a funnel";
    let setup = format!(
        "CREATE AGGREGATE window_funnel(boolean) (sfunc = boolor_statefunc, stype = boolean); \
         COMMENT ON AGGREGATE window_funnel(boolean) IS '{description} (PostgreSQL stand-in)';"
    );
    let conninfo = postgres.conninfo("postgres");
    check(psql_at(&conninfo, &["-c", &setup]), "creating the stand-in aggregate on PostgreSQL");

    let server = TestServer::start().await;
    let northstar = format!("host=127.0.0.1 port={} user=northstar dbname=northstar", server.port);
    for (target, conninfo) in [("PostgreSQL", conninfo), ("Northstar", northstar)] {
        let described = {
            let conninfo = conninfo.clone();
            check(blocking(move || psql_at(&conninfo, &["-A", "-c", "\\df+ window_funnel"])).await, "\\df+")
        };
        let row = df_plus_row(&described, "window_funnel");
        assert_eq!(row[4], "agg", "{target}: kind in {row:?}");
        assert!(row.last().unwrap().starts_with(description), "{target}: description in {row:?}");

        let listed = {
            let conninfo = conninfo.clone();
            check(blocking(move || psql_at(&conninfo, &["-A", "-c", "\\df"])).await, "\\df")
        };
        assert!(
            listed.lines().any(|l| l.starts_with("public|window_funnel|")),
            "{target}: \\df lists user functions:\n{listed}"
        );

        let sql =
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc p WHERE p.proname = 'window_funnel'";
        let by_sql = check(blocking(move || psql_at(&conninfo, &["-A", "-t", "-c", sql])).await, "obj_description");
        assert!(by_sql.starts_with(description), "{target}: obj_description gave {by_sql}");
    }

    // Northstar's own: result types and the reports.
    let port = server.port;
    let funnel =
        check(blocking(move || psql(port, &["-A", "-c", "\\df+ window_funnel|funnel|session_number"])).await, "\\df+");
    let row = df_plus_row(&funnel, "window_funnel");
    assert_eq!((row[2].as_str(), row[3].starts_with("window, ")), ("integer", true), "{row:?}");
    let row = df_plus_row(&funnel, "funnel");
    assert_eq!((row[2].as_str(), row[4].as_str()), ("SETOF record", "func"), "{row:?}");
    assert!(row.last().unwrap().starts_with("Funnel report"), "{row:?}");
    assert_eq!(df_plus_row(&funnel, "session_number")[4], "window");
}
