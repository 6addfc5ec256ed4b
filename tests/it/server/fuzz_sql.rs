//! The SQL path fuzzed over the wire: statements that clients and the docs send, mutated token by
//! token (dropped, doubled, swapped, numbers and strings replaced by extreme values, operators and
//! keywords planted, parentheses opened), go through the simple and the extended protocol to a
//! running server. Whatever the statement, the server must answer it — rows or an error with a
//! SQLSTATE — within its `statement_timeout` plus a margin, and go on serving; an internal error
//! (XX000, a caught panic) fails the run too, naming the statement.
//!
//! CI runs a bounded number of cases; a long run sets `NORTHSTAR_SQL_FUZZ_CASES` (and
//! `NORTHSTAR_FUZZ_SEED` for another sequence), e.g.
//! `NORTHSTAR_SQL_FUZZ_CASES=1000000 cargo nextest run --test it -E 'test(fuzz_sql)'`.

use std::time::{Duration, Instant};

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio_postgres::Client;

use super::{count, TestServer, SAMPLE_ROWS};

/// What analysts, BI tools and the docs send: reports, behavioural functions, catalog queries,
/// settings, prepared statements. Reads only, so the row count is an invariant of the run.
const CORPUS: &[&str] = &[
    "SELECT count(*) FROM events",
    "SELECT event, count(DISTINCT user_id) AS users FROM events WHERE event_date >= DATE '2025-01-01' GROUP BY event ORDER BY users DESC LIMIT 10",
    "SELECT date_trunc('week', event_time) AS week, count(*) FROM events GROUP BY 1 ORDER BY 1",
    "SELECT CAST(event_time AS DATE) AS day, count(DISTINCT user_id) FROM events GROUP BY 1 HAVING count(*) > 3",
    "SELECT user_id, window_funnel(INTERVAL '1 day', event_time, event = 'signup', event = 'view_item', event = 'purchase') AS level FROM events GROUP BY user_id",
    "SELECT level, count(*) FROM (SELECT window_funnel(INTERVAL '7 days', 'strict_order', event_time, event = 'signup', event = 'purchase') AS level FROM events GROUP BY user_id) GROUP BY level",
    "SELECT retention(event = 'signup', event = 'purchase' AND event_date <= DATE '2025-02-01') FROM events GROUP BY user_id LIMIT 5",
    "SELECT sequence_match('(?1)(?t<=3600)(?2)', event_time, event = 'view_item', event = 'purchase') FROM events GROUP BY user_id LIMIT 5",
    "SELECT sequence_count('(?1).*(?2)', event_time, event = 'view_item', event = 'add_to_cart') AS n FROM events GROUP BY user_id ORDER BY n DESC LIMIT 3",
    "SELECT funnel_step_times(INTERVAL '1 day', event_time, event = 'signup', event = 'purchase') FROM events GROUP BY user_id LIMIT 3",
    "SELECT user_id, session_number(event_time, INTERVAL '30 minutes') OVER (PARTITION BY user_id ORDER BY event_time) FROM events LIMIT 20",
    "SELECT * FROM funnel(['signup', 'view_item', 'add_to_cart', 'purchase'], 'window=1 day; breakdown=platform')",
    "SELECT step, users, drop_off FROM funnel(['view_item', 'purchase'], 'window=2 days; order=unordered; exclude=refund') ORDER BY step",
    "SELECT * FROM retention('start=signup; return=purchase; period=week; periods=8')",
    "SELECT period, active_users AS dau, wau, mau FROM trends('from=2025-01-01; to=2025-03-31')",
    "SELECT * FROM trends('interval=week; breakdown=platform; where=event <> ''refund''')",
    "SELECT * FROM lifecycle('period=week')",
    "SELECT * FROM stickiness('period=month; event=purchase')",
    "SELECT * FROM paths('start=signup; top=10')",
    "SELECT json_get_str(properties, 'platform') AS p, avg(length(user_id)) FROM events GROUP BY 1",
    "SELECT a.user_id, count(*) FROM events a JOIN (SELECT user_id, min(event_time) AS first FROM events GROUP BY user_id) f ON a.user_id = f.user_id AND a.event_time > f.first GROUP BY 1 LIMIT 10",
    "SELECT user_id FROM events WHERE user_id IN ('u1', 'u2', 'u3') OR event LIKE 'pur%' ESCAPE '\\' LIMIT 5",
    "SELECT CASE WHEN count(*) > 10 THEN 'many' ELSE 'few' END, coalesce(max(event), '') FROM events",
    "SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM event_time)) FROM events",
    "SELECT row_number() OVER (ORDER BY event_time DESC), event FROM events ORDER BY 1 LIMIT 10",
    "WITH firsts AS (SELECT user_id, min(event_date) AS d FROM events GROUP BY 1) SELECT d, count(*) FROM firsts GROUP BY d ORDER BY d",
    "SELECT to_char(event_time, 'YYYY-MM-DD HH24:MI:SS'), substr(user_id, 2, 3), upper(event) FROM events LIMIT 3",
    "SELECT generate_series(1, 10), 1.5::numeric(10, 2), 'x'::text || 'y', ARRAY[1, 2, 3][2]",
    "SELECT c.relname, n.nspname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid WHERE c.relkind IN ('r', 'v') AND a.attnum > 0",
    "SELECT p.proname, pg_catalog.pg_get_function_result(p.oid), pg_catalog.obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc p WHERE p.proname ~ '^(window_funnel|funnel)$'",
    "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY ordinal_position",
    "SELECT version(), current_database(), current_schema(), current_setting('statement_timeout')",
    "SHOW statement_timeout",
    "SET application_name = 'fuzz'",
    "SET datafusion.execution.time_zone = '+02:00'",
    "EXPLAIN SELECT event, count(*) FROM events GROUP BY event",
    "EXPLAIN ANALYZE SELECT count(DISTINCT user_id) FROM events",
    "PREPARE p(text) AS SELECT count(*) FROM events WHERE event = $1",
    "EXECUTE p('purchase')",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT 1 / 0",
    "SELECT * FROM events ORDER BY event_time LIMIT 1 OFFSET 9990",
];

/// Tokens planted between others: operators, keywords and literals at the edges of types.
const PLANTED: &[&str] = &[
    "(",
    ")",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "::",
    "=",
    "<>",
    "NOT",
    "AND",
    "OR",
    "NULL",
    "IS",
    "IN",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "UNION ALL",
    "JOIN events x ON TRUE",
    "CROSS JOIN events",
    "LIMIT",
    "OVER ()",
    "ARRAY[",
    "]",
    "CAST(",
    "AS BIGINT)",
    "INTERVAL '1000000 years'",
    "DISTINCT",
    "CASE WHEN",
    "THEN",
    "END",
    "$1",
    "'",
    "\"",
    ";",
    "generate_series(1, 1000000000000)",
    "repeat('x', 100000000)",
];

/// Literals that replace a number or a string.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-1e-308",
    "NaN",
    "'NaN'",
    "''",
    "'%'",
    "'\\'",
    "'9999-12-31'",
    "'0001-01-01 00:00:00'",
    "'periods=1000000'",
    "'window=-1 day'",
    "'where=(((('",
    "'\u{0}'",
    "'ℌ𝔢𝔩𝔩𝔬'",
    "NULL",
];

/// One statement of the corpus with a few token-level mutations.
fn mutate(rng: &mut ChaCha8Rng) -> String {
    let base = CORPUS[rng.random_range(0..CORPUS.len())];
    let mut tokens: Vec<String> = Tokenizer::new(&PostgreSqlDialect {}, base)
        .tokenize()
        .expect("the corpus tokenizes")
        .iter()
        .map(Token::to_string)
        .collect();
    for _ in 0..rng.random_range(1..=4) {
        if tokens.is_empty() {
            break;
        }
        let at = rng.random_range(0..tokens.len());
        match rng.random_range(0..7) {
            0 => drop(tokens.remove(at)),
            1 => tokens.insert(at, tokens[at].clone()),
            2 => {
                let other = rng.random_range(0..tokens.len());
                tokens.swap(at, other);
            }
            3 | 4 => {
                let literal = tokens[at].starts_with(|c: char| c.is_ascii_digit() || c == '\'');
                let replacement = if literal || rng.random_bool(0.3) {
                    EXTREMES[rng.random_range(0..EXTREMES.len())]
                } else {
                    PLANTED[rng.random_range(0..PLANTED.len())]
                };
                tokens[at] = replacement.to_string();
            }
            5 => tokens.insert(at, PLANTED[rng.random_range(0..PLANTED.len())].to_string()),
            _ => tokens.truncate(at),
        }
    }
    tokens.concat()
}

/// Sends one statement; `Err` describes how the server failed it (no answer in time, a
/// closed connection, an internal error).
async fn answered(client: &Client, sql: &str, extended: bool, margin: Duration) -> Result<(), String> {
    let sent = Instant::now();
    let outcome = if extended {
        tokio::time::timeout(margin, async { client.query(sql, &[]).await.map(drop) }).await
    } else {
        tokio::time::timeout(margin, async { client.simple_query(sql).await.map(drop) }).await
    };
    match outcome {
        Err(_) => Err(format!("no answer within {margin:?}")),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => match e.as_db_error() {
            Some(db) if db.code().code() == "XX000" => Err(format!("internal error: {}", db.message())),
            Some(_) => Ok(()),
            None if e.is_closed() => Err(format!("connection closed after {:?}: {e}", sent.elapsed())),
            // The client could not even send it (say, a parameter count it cannot bind): not the
            // server's doing.
            None => Ok(()),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_sql_every_mutated_statement_is_answered_and_the_server_goes_on() {
    let cases: u64 = std::env::var("NORTHSTAR_SQL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let seed: u64 = std::env::var("NORTHSTAR_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(21);
    let server = TestServer::start().await;
    let timeout = Duration::from_secs(1);
    // An answer may wait for the deadline, then for the current batch to end: 1 s is promised.
    let margin = timeout + Duration::from_secs(5);
    let connect = || async {
        let client = server.connect().await;
        client.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis())).await.unwrap();
        client
    };
    let mut client = connect().await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut failures = Vec::new();
    let started = Instant::now();
    for case in 0..cases {
        let sql = mutate(&mut rng);
        let extended = rng.random_bool(0.5);
        if let Err(problem) = answered(&client, &sql, extended, margin).await {
            failures
                .push(format!("case {case} ({}): {problem}\n  {sql}", if extended { "extended" } else { "simple" }));
            client = connect().await;
        }
        if client.is_closed() {
            client = connect().await;
        }
        if case % 500 == 499 {
            assert_eq!(count(&client).await, SAMPLE_ROWS, "the table changed under read-only statements");
        }
    }
    // A fresh connection is served as before.
    assert_eq!(count(&connect().await).await, SAMPLE_ROWS);
    eprintln!("{cases} mutated statements (seed {seed}) in {:?}, {} failures", started.elapsed(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
