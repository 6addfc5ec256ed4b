//! Hostile and careless clients over a raw socket: malformed protocol messages get a FATAL
//! 08P01 error naming the problem and a closed connection, never a panic, and the server goes
//! on serving everyone else.

use std::time::Duration;

use northstar_server::{Role, Users};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{count, TestServer, SAMPLE_ROWS};

fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn startup(user: &str) -> Vec<u8> {
    let body = [&196608i32.to_be_bytes()[..], format!("user\0{user}\0database\0northstar\0\0").as_bytes()].concat();
    [&(body.len() as i32 + 4).to_be_bytes()[..], &body].concat()
}

/// Backend messages until the connection closes (or 10 s pass): (type, body) pairs.
async fn read_until_closed(socket: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut bytes)).await;
    let mut messages = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let length = i32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let end = (at + 1 + length).min(bytes.len());
        messages.push((bytes[at], bytes[at + 5..end].to_vec()));
        at = end;
    }
    messages
}

/// The SQLSTATE and message of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            _ => {}
        }
    }
    (code, message)
}

/// Sends `bytes` after (optionally) logging in, and returns the error the server closed with.
async fn send_and_expect_protocol_violation(port: u16, login: bool, bytes: &[u8]) -> String {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    if login {
        socket.write_all(&startup("northstar")).await.unwrap();
        // Wait for ReadyForQuery before the hostile part.
        let mut seen = Vec::new();
        while !seen.windows(6).any(|w| w == [b'Z', 0, 0, 0, 5, b'I']) {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "closed during login");
            seen.extend_from_slice(&chunk[..n]);
        }
    }
    socket.write_all(bytes).await.unwrap();
    let messages = read_until_closed(&mut socket).await;
    let (_, body) = messages
        .iter()
        .rev()
        .find(|(kind, _)| *kind == b'E')
        .unwrap_or_else(|| panic!("no error for {bytes:?}; got {messages:?}"));
    let (code, message) = error_fields(body);
    assert_eq!(code, "08P01", "{message}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_extended_protocol_messages_close_the_connection_with_08p01() {
    let server = TestServer::start().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Parse declaring more parameter types than its body holds, and a negative count.
        (typed(b'P', &[b"\0SELECT 1\0".as_slice(), &100i16.to_be_bytes()].concat()), "parameter types"),
        (typed(b'P', &[b"\0SELECT 1\0".as_slice(), &(-1i16).to_be_bytes()].concat()), "negative"),
        // Bind with a parameter length of 2^31 - 1.
        (
            typed(
                b'B',
                &[b"\0\0".as_slice(), &0i16.to_be_bytes(), &1i16.to_be_bytes(), &i32::MAX.to_be_bytes()].concat(),
            ),
            "parameter value",
        ),
        // A length shorter than its own header, and a type that does not exist.
        (b"Q\x00\x00\x00\x02".to_vec(), "length"),
        (typed(b'z', b""), "message type"),
        // Execute cut short.
        (typed(b'E', b"\0\0"), "row limit"),
    ];
    for (bytes, expected) in cases {
        let message = send_and_expect_protocol_violation(server.port, true, &bytes).await;
        assert!(message.contains(expected), "{message} does not name {expected}");
    }
    // Everyone else is still served.
    assert_eq!(count(&server.connect().await).await, SAMPLE_ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_execute_row_limit_means_no_limit_as_in_postgresql() {
    let server = TestServer::start().await;
    let mut socket = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let messages = [
        startup("northstar"),
        typed(b'P', &[b"\0SELECT count(*) FROM events\0".as_slice(), &0i16.to_be_bytes()].concat()),
        typed(b'B', &[b"\0\0".as_slice(), &0i16.to_be_bytes(), &0i16.to_be_bytes(), &0i16.to_be_bytes()].concat()),
        typed(b'E', &[b"\0".as_slice(), &(-1i32).to_be_bytes()].concat()),
        typed(b'S', b""),
        typed(b'X', b""),
    ]
    .concat();
    socket.write_all(&messages).await.unwrap();
    let replies = read_until_closed(&mut socket).await;
    let row = replies.iter().find(|(kind, _)| *kind == b'D').expect("a data row");
    assert!(String::from_utf8_lossy(&row.1).contains(&SAMPLE_ROWS.to_string()), "{row:?}");
    assert!(replies.iter().any(|(kind, body)| *kind == b'C' && body.starts_with(b"SELECT 1")), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleartext_password_to_a_scram_login_is_refused_before_authentication() {
    let mut users = Users::default();
    users.add_from_spec("alice:correct horse", Role::Writer).unwrap();
    let server = TestServer::start_with(users, |_| {}).await;
    let mut hostile = startup("alice");
    hostile.extend(typed(b'p', b"correct horse\0"));
    let message = send_and_expect_protocol_violation(server.port, false, &hostile).await;
    assert!(message.contains("SASLInitialResponse"), "{message}");
    // A startup packet that is not one.
    let message = send_and_expect_protocol_violation(server.port, false, b"\0\0\0\x09\0\x03\0\0u").await;
    assert!(message.contains("not terminated"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_deeply_nested_statements_are_refused_and_the_server_lives() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let cases = [
        (format!("SELECT 1{}", "+1".repeat(200_000)), "54001"),
        (format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000)), "54001"),
        (format!("SELECT 1 FROM events WHERE {}", vec!["event = 'a'"; 5_000].join(" OR ")), "54001"),
        (format!("SELECT '{}'", "x".repeat(17 << 20)), "54000"),
    ];
    for (sql, code) in cases {
        // Both protocols: simple (batch_execute) and extended (query).
        let simple = client.batch_execute(&sql).await.unwrap_err();
        assert_eq!(super::sqlstate(&simple), code, "{}", super::message(&simple));
        let extended = client.query(&sql, &[]).await.unwrap_err();
        assert_eq!(super::sqlstate(&extended), code, "{}", super::message(&extended));
    }
    // A long but reasonable expression still runs, and so does everything else.
    let sum: i64 = client.query_one(&format!("SELECT 1{}", "+1".repeat(500)), &[]).await.unwrap().get(0);
    assert_eq!(sum, 501);
    assert_eq!(count(&client).await, SAMPLE_ROWS);
}

/// Runs `sql` (simple protocol) and insists it fails with `code`.
async fn refused_with(client: &tokio_postgres::Client, sql: &str, code: &str) {
    let e = client.batch_execute(sql).await.unwrap_err();
    assert_eq!(super::sqlstate(&e), code, "{sql}: {}", super::message(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_limits_paths_and_the_event_table_cannot_be_changed_by_clients() {
    let mut users = Users::default();
    users.add_from_spec("alice:correct horse", Role::Writer).unwrap();
    users.add_from_spec("viewer:look only", Role::Reader).unwrap();
    let server = TestServer::start_with(users, |_| {}).await;
    let writer = super::connect(&format!("{} password='correct horse'", server.url("alice"))).await.unwrap();
    let reader = super::connect(&format!("{} password='look only'", server.url("viewer"))).await.unwrap();
    for client in [&writer, &reader] {
        for sql in [
            "SET datafusion.runtime.memory_limit = '100G'",
            "SET datafusion.runtime.temp_directory = '/tmp/elsewhere'",
            "SET datafusion.execution.batch_size = 100000000",
            "SET datafusion.catalog.location = '/etc'",
        ] {
            refused_with(client, sql, "42501").await;
        }
        // Planning settings stay open.
        client.batch_execute("SET datafusion.optimizer.max_passes = 2").await.unwrap();
    }
    assert!(!std::path::Path::new("/tmp/elsewhere").exists());
    for sql in [
        "CREATE OR REPLACE VIEW events AS SELECT 1 AS x",
        "CREATE VIEW public.events AS SELECT 1 AS x",
        "DROP VIEW events",
        "DROP TABLE events",
        "CREATE VIEW pg_catalog.pg_class AS SELECT 1 AS x",
        "DROP SCHEMA information_schema",
        "PREPARE shadow AS CREATE VIEW events AS SELECT 1 AS x",
    ] {
        refused_with(&writer, sql, "42501").await;
    }
    // Still the event table, here and after a restart.
    assert_eq!(count(&writer).await, SAMPLE_ROWS);
    let (port, task) = server.restarted().await;
    let again = super::connect(&format!("host=127.0.0.1 port={port} user=northstar dbname=northstar")).await.unwrap();
    assert_eq!(count(&again).await, SAMPLE_ROWS);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_has_its_statement_cancelled() {
    // One connection slot: it is free again only once the vanished client's statement ended.
    let server = TestServer::start_with(Users::default(), |o| o.max_connections = 1).await;
    let mut socket = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let endless = "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.user_id < b.user_id\0";
    socket.write_all(&[startup("northstar"), typed(b'Q', endless.as_bytes())].concat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let gone = std::time::Instant::now();
    drop(socket);
    loop {
        match super::connect(&server.url("northstar")).await {
            Ok(client) => {
                assert_eq!(count(&client).await, SAMPLE_ROWS);
                break;
            }
            Err(e) => {
                assert_eq!(super::sqlstate(&e), "53300", "{}", super::message(&e));
                assert!(gone.elapsed() < Duration::from_secs(3), "the statement still runs {:?} later", gone.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eprintln!("slot free {:?} after the client went away", gone.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_built_per_row_are_bounded() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    for sql in [
        "SELECT repeat('x', 1000000000)",
        "SELECT length(repeat(user_id, 100000000)) FROM events",
        "SELECT lpad('x', 2000000000)",
        "SELECT length(rpad(event, 1000000000, '-')) FROM events",
    ] {
        let Err(e) = client.query(sql, &[]).await else { panic!("{sql} ran") };
        assert_eq!(super::sqlstate(&e), "53200", "{sql}: {}", super::message(&e));
        assert!(super::message(&e).contains("would build"), "{}", super::message(&e));
    }
    // Ordinary uses are untouched.
    let row = client.query_one("SELECT repeat('ab', 3), lpad('7', 3, '0'), rpad('a', 3, '.')", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, String>(2)),
        ("ababab".into(), "007".into(), "a..".into())
    );
    let long: i32 = client.query_one("SELECT max(length(repeat(user_id, 10))) FROM events", &[]).await.unwrap().get(0);
    assert!(long > 10);
}
