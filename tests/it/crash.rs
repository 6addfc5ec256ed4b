//! Killing an import at random moments: the table is always exactly as before or exactly as
//! after, and the next import works.

use std::time::{Duration, Instant};

use crate::cli::{count, northstar, ok, Scratch};

/// A small deterministic generator for kill delays (the seed is printed to replay a failure).
struct Lcg(u64);

impl Lcg {
    fn next_fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

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
    let mut rng = Lcg(seed);
    let mut expected = 5_000u64;
    let (mut before, mut after) = (0, 0);
    for trial in 0..24 {
        let delay = full.mul_f64(rng.next_fraction() * 1.1);
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
    let _ = Duration::ZERO;
}
