//! Authentication (SCRAM-SHA-256), the read-only role, TLS and its failure modes.

use std::process::Command;

use northstar_server::{Role, Server, ServerOptions, TlsFiles, Users};
use northstar_storage::DataLocation;

use super::{connect, count, sqlstate, TestServer, SAMPLE_ROWS};

fn users() -> Users {
    let mut users = Users::default();
    users.add_from_spec("alice:correct horse", Role::Writer).unwrap();
    users.add_from_spec("viewer:look only", Role::Reader).unwrap();
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_accepts_the_right_password_only() {
    let server = TestServer::start_with(users(), |_| {}).await;
    let ok = connect(&format!("{} password='correct horse'", server.url("alice"))).await.unwrap();
    assert_eq!(count(&ok).await, SAMPLE_ROWS);
    let wrong = connect(&format!("{} password=nope", server.url("alice"))).await.unwrap_err();
    assert_eq!(sqlstate(&wrong), "28P01", "{}", super::message(&wrong));
    let unknown = connect(&format!("{} password=x", server.url("mallory"))).await.unwrap_err();
    assert_eq!(sqlstate(&unknown), "28P01", "{}", super::message(&unknown));
    let other_db =
        connect(&format!("host=127.0.0.1 port={} user=alice password='correct horse' dbname=postgres", server.port))
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&other_db), "3D000", "{}", super::message(&other_db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_users_cannot_write() {
    let server = TestServer::start_with(users(), |_| {}).await;
    let viewer = connect(&format!("{} password='look only'", server.url("viewer"))).await.unwrap();
    assert_eq!(count(&viewer).await, SAMPLE_ROWS);
    let insert = viewer
        .execute("INSERT INTO events (event_time, user_id, event) VALUES (now(), 'v', 'x')", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&insert), "42501", "{}", super::message(&insert));
    let copy = viewer
        .copy_in::<_, bytes::Bytes>("COPY events (event_time, user_id, event) FROM STDIN")
        .await
        .err()
        .expect("COPY FROM refused");
    assert_eq!(sqlstate(&copy), "42501", "{}", super::message(&copy));
    // psql's \copy is COPY … FROM STDIN over the simple protocol.
    let port = server.port;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("psql")
            .env("PGPASSWORD", "look only")
            .arg(format!("host=127.0.0.1 port={port} user=viewer dbname=northstar"))
            .args(["-X", "-c", "\\copy events (event_time, user_id, event) from stdin"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"), "{}", String::from_utf8_lossy(&out.stderr));
    // Statements that write by what they contain: each refused before it runs.
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO events (event_time, user_id, event) VALUES (now(), 'v', 'x')",
        "PREPARE sneaky AS INSERT INTO events (event_time, user_id, event) VALUES (now(), 'v', 'x')",
        "WITH v AS (SELECT 1) INSERT INTO events (event_time, user_id, event) VALUES (now(), 'v', 'x')",
        "COPY events TO '/tmp/northstar-viewer-copy'",
    ] {
        let refused = viewer.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&refused), "42501", "{sql}: {}", super::message(&refused));
    }
    // The refused PREPARE defined nothing to EXECUTE; a prepared read runs.
    let execute = viewer.batch_execute("EXECUTE sneaky").await.unwrap_err();
    assert_ne!(sqlstate(&execute), "42501", "{}", super::message(&execute));
    viewer.batch_execute("PREPARE look AS SELECT count(*) FROM events").await.unwrap();
    viewer.batch_execute("EXECUTE look").await.unwrap();
    let ddl = viewer.batch_execute("CREATE TABLE t AS SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&ddl), "42501", "{}", super::message(&ddl));
    let read_only: String =
        viewer.query_one("SELECT current_setting('transaction_read_only')", &[]).await.unwrap().get(0);
    assert_eq!(read_only, "on");
    assert_eq!(count(&viewer).await, SAMPLE_ROWS);
}

fn self_signed(dir: &std::path::Path) -> TlsFiles {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by scripts/setup-test-env.sh)");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    TlsFiles { cert, key }
}

fn psql(port: u16, sslmode: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .env("PGCONNECT_TIMEOUT", "10")
        .arg(format!("host=127.0.0.1 port={port} user=northstar dbname=northstar sslmode={sslmode}"))
        .args(["-X", "-A", "-t", "-c", sql])
        .output()
        .expect("psql (installed by scripts/setup-test-env.sh)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plain_connections_and_serves_tls() {
    let certs = tempfile::tempdir().unwrap();
    let tls = self_signed(certs.path());
    let server = TestServer::start_with(Users::default(), |o| {
        o.tls = Some(tls);
        o.require_tls = true;
    })
    .await;
    let plain = connect(&server.url("northstar")).await.unwrap_err();
    assert_eq!(sqlstate(&plain), "28000", "{}", super::message(&plain));
    let port = server.port;
    let out = tokio::task::spawn_blocking(move || psql(port, "require", "SELECT count(*) FROM events")).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), SAMPLE_ROWS.to_string());
    let out = tokio::task::spawn_blocking(move || psql(port, "disable", "SELECT 1")).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires TLS"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_tls_or_open_listener_without_users_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let location = DataLocation::parse(dir.path().to_str().unwrap()).unwrap();
    std::fs::write(dir.path().join("bad.crt"), "not a certificate").unwrap();
    let mut options = ServerOptions::new("127.0.0.1:0".parse().unwrap(), Default::default());
    options.tls = Some(TlsFiles { cert: dir.path().join("bad.crt"), key: dir.path().join("missing.key") });
    let err = Server::bind(&location, Users::default(), options).await.err().expect("broken TLS must not serve");
    assert!(err.to_string().contains("TLS"), "{err}");

    let options = ServerOptions::new("0.0.0.0:0".parse().unwrap(), Default::default());
    let err = Server::bind(&location, Users::default(), options).await.err().expect("open listener without users");
    assert!(err.to_string().contains("without authentication"), "{err}");

    let mut options = ServerOptions::new("127.0.0.1:0".parse().unwrap(), Default::default());
    options.require_tls = true;
    assert!(Server::bind(&location, Users::default(), options).await.is_err());
}
