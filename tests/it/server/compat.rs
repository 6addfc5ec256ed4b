//! The client compatibility suite (tests/clients/compat.py): every check runs against a real
//! PostgreSQL holding the same events and against Northstar, and counts only where PostgreSQL
//! passes it. Northstar must answer as PostgreSQL does, except for the gaps the suite lists
//! (each with its reason, also in docs/clients.md); a listed gap that starts passing fails the
//! run too, so the list stays true.

use std::process::Command;

use super::clients::venv_python;
use super::postgres::RealPostgres;
use super::TestServer;

const COMPAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/compat.py");

fn run(python: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(python).arg(COMPAT).args(args).output().expect("python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_northstar_as_they_see_postgresql() {
    let server = TestServer::start().await;
    let postgres = tokio::task::spawn_blocking(RealPostgres::start).await.unwrap();
    let northstar = format!("postgresql://northstar@127.0.0.1:{}/northstar", server.port);
    let reference = format!("postgresql://postgres@127.0.0.1:{}/postgres", postgres.port);
    let python = venv_python();
    let (loaded, text) = {
        let (n, r) = (northstar.clone(), reference.clone());
        tokio::task::spawn_blocking(move || run(python, &["load", &n, &r])).await.unwrap()
    };
    assert!(loaded, "loading PostgreSQL failed:\n{text}");
    // Once with SQLAlchemy 2 (.venv), once with Superset 6.1 and its SQLAlchemy 1.4.
    let superset = python.parent().unwrap().parent().unwrap().with_file_name(".venv-superset").join("bin/python");
    assert!(superset.exists(), "no .venv-superset: run scripts/setup-test-env.sh");
    for python in [python.to_path_buf(), superset] {
        let (n, r) = (northstar.clone(), reference.clone());
        let (passed, report) = tokio::task::spawn_blocking(move || run(&python, &["run", &n, &r])).await.unwrap();
        println!("{report}");
        assert!(passed, "client checks differ from PostgreSQL's answers:\n{report}");
    }
    drop(postgres);
}
