//! The same import/query round trip on object storage: `memory://` in-process and an
//! S3-compatible server (moto, installed by scripts/setup-test-env.sh) on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, northstar, pretty, Process, Scratch};

#[tokio::test]
async fn memory_location_round_trip_in_process() {
    let s = Scratch::new();
    let file = s.generate("g.parquet", 3_000, 5);
    let location = northstar_storage::DataLocation::parse("memory://roundtrip").unwrap();
    for _ in 0..2 {
        let mut store = northstar_storage::EventStore::open(&location).await.unwrap();
        let options = northstar_import::ImportOptions::default();
        northstar_import::import(&mut store, std::slice::from_ref(&file), &options).await.unwrap();
    }
    let ctx = northstar_engine::open_session(&location, &Default::default()).await.unwrap();
    let text = pretty(&ctx, "SELECT count(*) AS n, count(DISTINCT platform) AS p FROM events").await;
    assert!(text.contains("| 6000 | 3 |"), "{text}");
}

/// The moto server binary from the project's venv.
fn moto_server() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path =
        std::env::var_os("NORTHSTAR_MOTO_SERVER").map(PathBuf::from).unwrap_or(root.join(".venv/bin/moto_server"));
    assert!(
        path.exists(),
        "{} not found: run scripts/setup-test-env.sh (the README's test command does)",
        path.display()
    );
    path
}

/// Sends one bodiless HTTP request; returns the status line.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or("").to_string())
}

/// An S3-compatible server (moto) on 127.0.0.1 with one empty bucket, stopped on drop.
pub struct S3Server {
    _process: Process,
    pub endpoint: String,
}

impl S3Server {
    pub fn start(bucket: &str) -> S3Server {
        let port = free_port();
        let process = Process(
            Command::new(moto_server())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(port, "GET", "/").is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let created = http(port, "PUT", &format!("/{bucket}")).unwrap();
        assert!(created.contains("200"), "create bucket: {created}");
        S3Server { _process: process, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// The environment a northstar process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

#[test]
fn s3_compatible_server_round_trip() {
    let server = S3Server::start("northstar-it");
    let s = Scratch::new();
    let file = s.generate("g.parquet", 4_000, 9);
    let run = |args: &[&str]| {
        let out = northstar().args(args).envs(server.env()).output().unwrap();
        assert!(out.status.success(), "northstar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let data = "s3://northstar-it/analytics";
    run(&["import", "--data", data, &file]);
    run(&["import", "--data", data, &file]);
    let out =
        run(&["query", "--data", data, "--format", "csv", "SELECT count(*), count(DISTINCT country) FROM events"]);
    assert_eq!(out.lines().nth(1), Some("8000,8"), "{out}");
    drop(server);
}
