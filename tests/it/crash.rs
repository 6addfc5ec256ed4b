//! Killing an import at random moments: the table is always exactly as before or exactly as
//! after, and the next import works.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{count, northstar, ok, Scratch};

#[test]
fn sigkill_during_import_leaves_table_before_or_after() {
    let s = Scratch::new();
    let data = s.data();
    let base_file = s.generate("base.parquet", 5_000, 1);
    ok(&["import", "--data", &data, &base_file]);
    let batch = s.generate("batch.ndjson", 60_000, 2);
    let batch_rows = 60_000u64;

    // How long one import takes here, to spread kills over its whole life.
    let probe = s.path("probe-data");
    let started = Instant::now();
    ok(&["import", "--data", probe.to_str().unwrap(), &batch]);
    let full = started.elapsed();

    let seed = std::env::var("NORTHSTAR_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261123u64);
    eprintln!("kill trials: seed {seed}, one import takes {full:?}");
    // kill delays from a seeded generator: the printed seed replays a failure
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut expected = 5_000u64;
    let (mut before, mut after) = (0, 0);
    for trial in 0..24 {
        let delay = full.mul_f64(rng.random::<f64>() * 1.1);
        let mut child = northstar().args(["import", "--data", &data, &batch]).spawn().unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let rows = count(&data);
        assert!(
            rows == expected || rows == expected + batch_rows,
            "trial {trial} (seed {seed}, kill after {delay:?}): {rows} rows, expected {expected} or {}",
            expected + batch_rows
        );
        if rows == expected {
            before += 1
        } else {
            after += 1
        }
        expected = rows;
    }
    eprintln!("kill trials: {before} left the table as before, {after} as after");
    // the table still takes imports, and keeps every row exactly once
    ok(&["import", "--data", &data, &batch]);
    assert_eq!(count(&data), expected + batch_rows);
    assert!(before > 0, "no kill landed mid-import; the trial is not testing anything");
}
