//! A bounded soak: many clients at once for a fixed time, mixing what a busy endpoint meets —
//! reads and reports, writers, statements cut short by their timeout or a cancel, refused
//! statements, and strangers sending malformed messages. At the end every acknowledged row is in
//! the table (also after a restart), nothing else is, and the server serves a new client.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

use super::{count, sqlstate, TestServer, SAMPLE_ROWS};

const CLIENTS: usize = 12;
const SOAK: Duration = Duration::from_secs(20);

/// A statement that runs far longer than the timeouts below (10k × 10k × 10k rows).
const ENDLESS: &str =
    "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.user_id < b.user_id";

/// A malformed Bind after a valid startup, as a stranger might send it.
async fn malformed_bind(port: u16) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut startup = Vec::new();
    let params = b"user\0northstar\0database\0northstar\0\0";
    startup.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(params);
    // Bind to the unnamed statement with one parameter claiming 2^31-1 bytes.
    let body = [&b"\0\0"[..], &0i16.to_be_bytes(), &1i16.to_be_bytes(), &i32::MAX.to_be_bytes()].concat();
    let bind = [&[b'B'][..], &((4 + body.len()) as i32).to_be_bytes(), &body].concat();
    socket.write_all(&[startup, bind].concat()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that sent a malformed message")
        .ok();
    assert!(answer.windows(5).any(|w| w == b"08P01"), "no 08P01 in {:?}", String::from_utf8_lossy(&answer));
}

/// One client's loop; returns how many rows its acknowledged INSERTs added.
async fn client_loop(server_port: u16, id: usize, client: Client, until: Instant) -> i64 {
    let mut written = 0;
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        match (id + round) % 6 {
            0 => {
                let n = 1 + (round % 20) as i64;
                let values: Vec<String> = (0..n)
                    .map(|i| {
                        format!("(TIMESTAMP '2025-02-01 00:00:00' + INTERVAL '{i} seconds', 'soak-{id}', 'soak_write')")
                    })
                    .collect();
                let sql = format!("INSERT INTO events (event_time, user_id, event) VALUES {}", values.join(", "));
                let inserted = client.execute(&sql, &[]).await.unwrap_or_else(|e| panic!("client {id}: {e:?}"));
                assert_eq!(inserted as i64, n);
                written += n;
            }
            1 => {
                let rows = client
                    .query("SELECT step, users FROM funnel(['signup', 'view_item', 'purchase'], 'window=1 day')", &[])
                    .await
                    .unwrap_or_else(|e| panic!("client {id}: {e:?}"));
                assert_eq!(rows.len(), 3);
            }
            2 => {
                client.batch_execute("SET statement_timeout = '250ms'").await.unwrap();
                let e = client.query_one(ENDLESS, &[]).await.unwrap_err();
                client.batch_execute("SET statement_timeout = 0").await.unwrap();
                assert_eq!(sqlstate(&e), "57014", "client {id}: {e:?}");
            }
            3 => {
                // A cancel that arrives before the statement started is forgotten (as in
                // PostgreSQL), so it is repeated until the statement has ended.
                let token = client.cancel_token();
                let running = client.query_one(ENDLESS, &[]);
                tokio::pin!(running);
                let e = loop {
                    tokio::select! {
                        out = &mut running => break out.unwrap_err(),
                        _ = tokio::time::sleep(Duration::from_millis(100)) => token.cancel_query(NoTls).await.unwrap(),
                    }
                };
                assert_eq!(sqlstate(&e), "57014", "client {id}: {e:?}");
            }
            4 => {
                for (sql, code) in [
                    ("SET datafusion.runtime.memory_limit = '100G'", "42501"),
                    ("CREATE OR REPLACE VIEW events AS SELECT 1 AS x", "42501"),
                    ("SELECT 1 / 0", "22012"),
                    ("SELECT nope FROM events", "42703"),
                ] {
                    let e = client.batch_execute(sql).await.unwrap_err();
                    assert_eq!(sqlstate(&e), code, "client {id}: {sql}: {e:?}");
                }
            }
            _ => malformed_bind(server_port).await,
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_many_clients_mixed_work_loses_nothing_and_the_server_lives() {
    let server = TestServer::start().await;
    let acknowledged = Arc::new(AtomicI64::new(0));
    let until = Instant::now() + SOAK;
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let client = server.connect().await;
        let acknowledged = acknowledged.clone();
        let port = server.port;
        clients.push(tokio::spawn(async move {
            let n = client_loop(port, id, client, until).await;
            acknowledged.fetch_add(n, Ordering::SeqCst);
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let written = acknowledged.load(Ordering::SeqCst);
    assert!(written > 0, "no writer got through");
    let fresh = server.connect().await;
    assert_eq!(count(&fresh).await, SAMPLE_ROWS + written);
    let soak_rows: i64 =
        fresh.query_one("SELECT count(*) FROM events WHERE event = 'soak_write'", &[]).await.unwrap().get(0);
    assert_eq!(soak_rows, written);
    let (port, task) = server.restarted().await;
    let after = super::connect(&format!("host=127.0.0.1 port={port} user=northstar dbname=northstar")).await.unwrap();
    assert_eq!(count(&after).await, SAMPLE_ROWS + written);
    task.abort();
    eprintln!("{CLIENTS} clients for {SOAK:?}: {written} rows acknowledged and found");
}
