//! Helpers shared by the integration tests: running the `northstar` binary, scratch
//! directories with generated or imported events, SQL through a session as text, child
//! processes and free ports. (The wire server's helpers are in `server/mod.rs`.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;

pub fn northstar() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_northstar"));
    cmd.env_remove("NORTHSTAR_DATA").env("NORTHSTAR_LOG", "error");
    cmd
}

/// Runs northstar with `args`; returns the output whatever the exit code.
pub fn run(args: &[&str]) -> Output {
    northstar().args(args).output().expect("run northstar")
}

/// Runs northstar and insists it succeeded.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "northstar {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs northstar and insists it failed; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "northstar {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A single value from a query, as CSV text.
pub fn scalar(data: &str, sql: &str) -> String {
    let out = ok(&["query", "--data", data, "--format", "csv", sql]);
    let mut lines = out.lines();
    lines.next().expect("header line");
    lines.next().unwrap_or("").to_string()
}

pub fn count(data: &str) -> u64 {
    scalar(data, "SELECT count(*) FROM events").parse().expect("a count")
}

/// Number of commits in a local table's Delta log: proves nothing was committed.
pub fn log_entries(data: &Path) -> usize {
    std::fs::read_dir(data.join("events/_delta_log"))
        .map(|d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn data(&self) -> String {
        self.path("data").display().to_string()
    }
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write input");
        path.display().to_string()
    }
    pub fn generate(&self, name: &str, events: u64, seed: u64) -> String {
        let path = self.path(name);
        ok(&[
            "generate",
            "--events",
            &events.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            path.to_str().unwrap(),
        ]);
        path.display().to_string()
    }
    /// `events` generated events (seed `seed`) imported into this scratch's data location,
    /// which is returned.
    pub fn imported(&self, events: u64, seed: u64) -> String {
        let generated = self.generate("events.parquet", events, seed);
        ok(&["import", "--data", &self.data(), &generated]);
        self.data()
    }
}

/// The answer of `sql`; panics with the statement on an error.
pub async fn batches(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The answer of `sql` as a pretty-printed table; panics with the statement on an error.
pub async fn pretty(ctx: &SessionContext, sql: &str) -> String {
    pretty_format_batches(&batches(ctx, sql).await).unwrap().to_string()
}

/// The error of `sql`, from planning or execution; panics if it succeeds.
pub async fn error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(frame) => match frame.collect().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{sql} should fail"),
        },
    }
}

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
