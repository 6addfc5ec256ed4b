//! A Delta log read exactly as it is written, or not at all.
//!
//! delta-rs reads an empty commit file as a commit with no actions, so a table whose newest
//! commit was emptied (a full disk, a bad copy) silently answers with the previous version's
//! data; a truncated or corrupt commit fails with a JSON parser message that names no file.
//! Before a loaded version is used, every commit file after the newest checkpoint that has not
//! been checked yet is read and checked here: it must exist, be non-empty, and hold one JSON
//! object per line. The first one that does not is an error naming the file and the problem;
//! docs/storage.md says how to recover.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::StorageError;

/// One damaged file of the table: the error names it and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the events table is damaged: {file}: {problem}; no query is answered from a damaged log (recovery: docs/storage.md, \"Damage and recovery\")")]
pub struct Damage {
    pub file: String,
    pub problem: String,
}

/// The versions of commit files (`NNN.json`) and the newest checkpoint in a `_delta_log` listing.
fn versions(paths: &[Path]) -> (Vec<u64>, Option<u64>) {
    let mut commits = Vec::new();
    let mut checkpoint = None;
    for path in paths {
        let Some(name) = path.filename() else { continue };
        let digits = name.split('.').next().unwrap_or_default();
        let Ok(version) = digits.parse::<u64>() else { continue };
        if name.ends_with(".json") && name.len() == 25 {
            commits.push(version);
        } else if name.contains(".checkpoint") {
            checkpoint = checkpoint.max(Some(version));
        }
    }
    commits.sort_unstable();
    (commits, checkpoint)
}

/// Checks one commit file's bytes.
pub fn check_commit_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the commit file is empty".to_string());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("the commit file is not UTF-8 text ({e})"))?;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Err(format!("line {} is not a JSON object", n + 1)),
            Err(e) => return Err(format!("line {} is not valid JSON ({e}): the file is truncated or corrupt", n + 1)),
        }
    }
    Ok(())
}

/// Checks every commit file of the log at `log` (the table's `_delta_log`, in `store`; `root`
/// is the table's location as errors name it) newer
/// than both `checked` and the newest checkpoint, up to `through` when given. Returns the
/// newest version checked; a missing version between two present ones is damage too.
pub async fn check_log(
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    checked: Option<u64>,
    through: Option<u64>,
    root: &str,
) -> Result<Option<u64>, StorageError> {
    let display = |path: &Path| format!("{root}/{path}");
    let listed: Vec<Path> = store
        .list(Some(log))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| StorageError::InvalidLocation(display(log), format!("cannot list the Delta log: {e}")))?;
    let (commits, checkpoint) = versions(&listed);
    let after = checked.max(checkpoint);
    let mut newest = checked;
    let mut expected = after.map(|v| v + 1);
    for version in commits.into_iter().filter(|v| after.is_none_or(|a| *v > a)) {
        if through.is_some_and(|t| version > t) {
            break;
        }
        let path = log.clone().join(format!("{version:020}.json").as_str());
        if let Some(expected) = expected.filter(|e| *e < version) {
            let missing = log.clone().join(format!("{expected:020}.json").as_str());
            return Err(damage(display(&missing), "the commit file is missing (a later version exists)".into()));
        }
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| damage(display(&path), format!("cannot be read ({e})")))?
            .bytes()
            .await
            .map_err(|e| damage(display(&path), format!("cannot be read ({e})")))?;
        check_commit_bytes(&bytes).map_err(|problem| damage(display(&path), problem))?;
        newest = Some(version);
        expected = Some(version + 1);
    }
    Ok(newest)
}

fn damage(file: String, problem: String) -> StorageError {
    StorageError::Damaged(Damage { file, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_files_must_be_whole_json_lines() {
        assert_eq!(check_commit_bytes(b"{\"commitInfo\":{}}\n{\"add\":{}}\n"), Ok(()));
        assert!(check_commit_bytes(b"").unwrap_err().contains("empty"));
        assert!(check_commit_bytes(b"{\"commitInfo\":{}}\n{\"add\":{\"pa").unwrap_err().contains("line 2"));
        assert!(check_commit_bytes(b"[1]").unwrap_err().contains("not a JSON object"));
    }

    #[test]
    fn versions_come_from_commit_and_checkpoint_names() {
        let paths: Vec<Path> = [
            "_delta_log/00000000000000000000.json",
            "_delta_log/00000000000000000010.checkpoint.parquet",
            "_delta_log/00000000000000000011.json",
            "_delta_log/_last_checkpoint",
            "_delta_log/00000000000000000012.json.tmp",
        ]
        .into_iter()
        .map(Path::from)
        .collect();
        assert_eq!(versions(&paths), (vec![0, 11], Some(10)));
    }
}
