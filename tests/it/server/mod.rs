//! The PostgreSQL wire endpoint, exercised by real clients: tokio-postgres here, psql, Python
//! (psycopg, SQLAlchemy) and pgjdbc in the submodules. Every server listens on 127.0.0.1 at a
//! port the OS picks and is stopped when its test ends.

mod clients;
mod compat;
mod fuzz_sql;
mod hostile;
mod postgres;
mod protocol;
mod security;
mod soak;

use std::time::Duration;

use northstar_server::{Server, ServerOptions, Users};
use northstar_storage::{DataLocation, EventStore};
use tokio_postgres::{Client, NoTls};

pub const SAMPLE_ROWS: i64 = 10_000;

/// A server over a fresh copy of the committed sample, stopped on drop.
pub struct TestServer {
    pub port: u16,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Users::default(), |_| {}).await
    }

    pub async fn start_with(users: Users, configure: impl FnOnce(&mut ServerOptions)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::parse(dir.path().join("data").to_str().unwrap()).unwrap();
        let mut store = EventStore::open(&location).await.unwrap();
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample-10k.ndjson.gz").to_string();
        northstar_import::import(&mut store, &[sample], &Default::default()).await.unwrap();
        let mut options = ServerOptions::new("127.0.0.1:0".parse().unwrap(), Default::default());
        options.engine.memory_limit = Some(1 << 30);
        configure(&mut options);
        let server = Server::bind(&location, users, options).await.unwrap();
        let port = server.local_addr().port();
        TestServer { port, _dir: dir, task: tokio::spawn(server.run()) }
    }

    /// The data location this server serves.
    pub fn location(&self) -> DataLocation {
        DataLocation::parse(self._dir.path().join("data").to_str().unwrap()).unwrap()
    }

    /// A second server over the same data location, as after a restart.
    pub async fn restarted(&self) -> (u16, tokio::task::JoinHandle<()>) {
        let options = ServerOptions::new("127.0.0.1:0".parse().unwrap(), Default::default());
        let server = Server::bind(&self.location(), Users::default(), options).await.unwrap();
        (server.local_addr().port(), tokio::spawn(server.run()))
    }

    pub fn url(&self, user: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname=northstar", self.port)
    }

    pub async fn connect(&self) -> Client {
        connect(&self.url("northstar")).await.unwrap()
    }
}

pub async fn connect(config: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio::time::timeout(Duration::from_secs(20), tokio_postgres::connect(config, NoTls))
        .await
        .expect("connect timed out")?;
    tokio::spawn(connection);
    Ok(client)
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

/// The server's message of a failed statement.
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

pub async fn count(client: &Client) -> i64 {
    client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0)
}
