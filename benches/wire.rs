//! Wire-protocol benchmark: result streaming rate (binary rows through the extended protocol,
//! text rows through the simple one) and small-query latency under concurrency,
//! against any PostgreSQL-protocol server (Northstar or PostgreSQL itself), so both are measured
//! by the same client code. Run by benches/wire.sh; prints one JSON object.
//!
//! cargo bench --bench wire -- --url "host=127.0.0.1 port=5433 user=northstar dbname=northstar" \
//!     --stream-sql "SELECT … LIMIT 10000000" --small-sql "SELECT … WHERE event_date = $1" \
//!     --clients 16 --seconds 20

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::StreamExt;
use tokio_postgres::NoTls;

struct Args {
    url: String,
    stream_sql: String,
    small_sql: String,
    clients: usize,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut out =
        Args { url: String::new(), stream_sql: String::new(), small_sql: String::new(), clients: 16, seconds: 20 };
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => out.url = value,
            "--stream-sql" => out.stream_sql = value,
            "--small-sql" => out.small_sql = value,
            "--clients" => out.clients = value.parse().expect("--clients N"),
            "--seconds" => out.seconds = value.parse().expect("--seconds N"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!out.url.is_empty(), "--url is required");
    out
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Streams the whole result of `sql` (extended protocol, binary rows) and counts rows.
async fn stream_rate(url: &str, sql: &str) -> (u64, f64) {
    let client = connect(url).await;
    let started = Instant::now();
    let rows = client.query_raw(sql, std::iter::empty::<i32>()).await.expect("stream query");
    futures::pin_mut!(rows);
    let mut n = 0u64;
    while let Some(row) = rows.next().await {
        row.expect("row");
        n += 1;
    }
    (n, started.elapsed().as_secs_f64())
}

/// Streams the whole result of `sql` through the simple protocol, whose rows are text (what
/// psql, psycopg 2 and most ODBC/JDBC paths read), and counts rows.
async fn stream_rate_text(url: &str, sql: &str) -> (u64, f64) {
    let client = connect(url).await;
    let started = Instant::now();
    let messages = client.simple_query_raw(sql).await.expect("simple query");
    futures::pin_mut!(messages);
    let mut n = 0u64;
    while let Some(message) = messages.next().await {
        if let tokio_postgres::SimpleQueryMessage::Row(_) = message.expect("row") {
            n += 1;
        }
    }
    (n, started.elapsed().as_secs_f64())
}

/// `clients` connections each run the prepared small query back to back for `seconds`, with a
/// date parameter cycling over 90 days; returns every latency.
async fn small_query_latencies(url: &str, sql: &str, clients: usize, seconds: u64) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (url, sql) = (url.to_string(), sql.to_string());
            tokio::spawn(async move {
                let client = connect(&url).await;
                let statement = client.prepare(&sql).await.expect("prepare small query");
                let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
                let mut latencies = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let day = first + chrono::Days::new((i % 90) as u64);
                    let started = Instant::now();
                    client.query(&statement, &[&day]).await.expect("small query");
                    latencies.push(started.elapsed());
                    i += clients;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut fields = vec![];
    if !args.stream_sql.is_empty() {
        let (rows, secs) = stream_rate(&args.url, &args.stream_sql).await;
        fields.push(format!(
            "\"stream_rows\": {rows}, \"stream_seconds\": {secs:.3}, \"stream_rows_per_second\": {:.0}",
            rows as f64 / secs
        ));
        let (rows, secs) = stream_rate_text(&args.url, &args.stream_sql).await;
        fields.push(format!(
            "\"text_stream_rows\": {rows}, \"text_stream_seconds\": {secs:.3}, \"text_stream_rows_per_second\": {:.0}",
            rows as f64 / secs
        ));
    }
    if !args.small_sql.is_empty() {
        let latencies = small_query_latencies(&args.url, &args.small_sql, args.clients, args.seconds).await;
        fields.push(format!(
            "\"clients\": {}, \"queries\": {}, \"qps\": {:.1}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}",
            args.clients,
            latencies.len(),
            latencies.len() as f64 / args.seconds as f64,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        ));
    }
    println!("{{{}}}", fields.join(", "));
}
