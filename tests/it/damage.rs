//! A damaged table is an error naming the damaged file and the problem, never an answer from a
//! guessed version: an emptied, truncated or missing commit file, a missing data file, a data
//! file with a broken footer. docs/storage.md ("Damage and recovery") says what to do for each.

use std::path::{Path, PathBuf};

use crate::support::{count, fails, ok, Scratch};

/// A table of two commits (5,000 then 3,000 events); returns the data location.
fn two_commits(s: &Scratch) -> String {
    let data = s.imported(5_000, 1);
    let more = s.generate("more.parquet", 3_000, 2);
    ok(&["import", "--data", &data, &more]);
    assert_eq!(count(&data), 8_000);
    data
}

fn commit(data: &str, version: u64) -> PathBuf {
    Path::new(data).join(format!("events/_delta_log/{version:020}.json"))
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // Directories starting with `_` are not the table's: its log, and caches beside it.
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('_'));
        if path.is_dir() && !hidden {
            files.extend(data_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A query that reads every data file (a plain `count(*)` is answered from the log's statistics).
const READS_EVERY_FILE: &str = "SELECT count(DISTINCT user_id), max(length(event)) FROM events";

fn query_fails_naming(data: &str, file: &Path, problem: &str) {
    let stderr = fails(&["query", "--data", data, READS_EVERY_FILE]);
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(stderr.contains(&*name) && stderr.contains(problem), "expected {name} and '{problem}' in:\n{stderr}");
}

#[test]
fn an_emptied_newest_commit_is_an_error_not_the_previous_version() {
    let s = Scratch::new();
    let data = two_commits(&s);
    std::fs::write(commit(&data, 1), b"").unwrap();
    query_fails_naming(&data, &commit(&data, 1), "empty");
}

#[test]
fn a_truncated_or_missing_commit_names_the_file() {
    let s = Scratch::new();
    let data = two_commits(&s);
    let path = commit(&data, 1);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    query_fails_naming(&data, &path, "truncated or corrupt");

    std::fs::write(&path, &whole).unwrap();
    assert_eq!(count(&data), 8_000);
    let more = s.generate("third.parquet", 1_000, 3);
    ok(&["import", "--data", &data, &more]);
    std::fs::remove_file(&path).unwrap();
    query_fails_naming(&data, &path, "missing");
}

#[test]
fn a_missing_or_broken_data_file_names_the_file() {
    let s = Scratch::new();
    let data = two_commits(&s);
    let files = data_files(&Path::new(&data).join("events"));
    let victim = &files[0];
    let bytes = std::fs::read(victim).unwrap();
    // A broken footer: the last bytes ("PAR1" magic and footer length) overwritten.
    let mut broken = bytes.clone();
    let n = broken.len();
    broken[n - 8..].copy_from_slice(b"garbage!");
    std::fs::write(victim, &broken).unwrap();
    query_fails_naming(&data, victim, "");
    std::fs::remove_file(victim).unwrap();
    query_fails_naming(&data, victim, "");
}
