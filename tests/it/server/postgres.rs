//! A real PostgreSQL server (Debian's `postgresql`, installed by scripts/setup-test-env.sh) for
//! running a client check against PostgreSQL too: a compatibility check counts only where
//! PostgreSQL passes it. Each one is a fresh cluster in a temporary directory, listening on
//! 127.0.0.1 at a free port with trust authentication, stopped (`pg_ctl stop -m immediate`)
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::free_port;

pub struct RealPostgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`).
fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut majors: Vec<u32> = std::fs::read_dir(root)
        .expect("PostgreSQL server (postgresql, installed by scripts/setup-test-env.sh)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort();
    let major = majors.last().expect("a PostgreSQL server version under /usr/lib/postgresql");
    root.join(major.to_string()).join("bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a server binary as the `postgres` user when the tests run as root (PostgreSQL refuses
/// to run as root), as the current user otherwise.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn succeeded(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl RealPostgres {
    pub fn start() -> RealPostgres {
        let bin = server_binaries();
        let dir = tempfile::Builder::new().prefix("northstar-pg").tempdir().unwrap();
        if is_root() {
            succeeded(
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).output().unwrap(),
                "chown",
            );
        }
        let data = dir.path().join("data");
        succeeded(
            as_server_user(&bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale", "C", "-D"])
                .arg(&data)
                .output()
                .unwrap(),
            "initdb",
        );
        let port = free_port();
        // UTC, as Northstar's sessions start: checks compare timestamptz answers.
        let options =
            format!("-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c timezone=UTC", dir.path().display());
        succeeded(
            as_server_user(&bin.join("pg_ctl"))
                .args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .args(["-l"])
                .arg(dir.path().join("log"))
                .args(["-o", &options, "start"])
                .output()
                .unwrap(),
            "pg_ctl start",
        );
        RealPostgres { port, bin, dir }
    }

    /// A libpq connection string for `dbname` as the superuser `postgres`.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={dbname}", self.port)
    }
}

impl Drop for RealPostgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
