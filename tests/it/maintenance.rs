//! optimize and vacuum: fewer files, same answers, readers consistent.

use crate::support::{count, ok, scalar, Scratch};

/// Parquet files of the table, outside its `_` directories (the log, and caches beside it).
fn data_files(dir: &std::path::Path) -> usize {
    let hidden = |p: &std::path::Path| p.strip_prefix(dir).is_ok_and(|r| r.to_string_lossy().starts_with('_'));
    walk(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet") && !hidden(p)).count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn optimize_compacts_small_imports_and_vacuum_removes_replaced_files() {
    let s = Scratch::new();
    let data = s.data();
    let mut expected_users = std::collections::BTreeSet::new();
    // Delta partitions: (day, user bucket); each import writes one file into each it touches.
    let mut partitions = std::collections::BTreeSet::new();
    for i in 0..6 {
        let lines: String = (0..50)
            .map(|j| {
                let user = format!("u{}", (i * 50 + j) % 37);
                expected_users.insert(user.clone());
                partitions.insert((1 + j % 3, northstar_storage::user_bucket(&user)));
                format!(
                    "{{\"event_time\":\"2024-05-0{}T{:02}:00:00Z\",\"user_id\":\"{user}\",\"event\":\"e{}\"}}\n",
                    1 + j % 3,
                    j % 24,
                    j % 4
                )
            })
            .collect();
        let f = s.write(&format!("small{i}.ndjson"), &lines);
        ok(&["import", "--data", &data, &f]);
    }
    let summary_before = ok(&[
        "query",
        "--data",
        &data,
        "--format",
        "csv",
        "SELECT event, count(*), count(DISTINCT user_id) FROM events GROUP BY event ORDER BY event",
    ]);
    let files_before = data_files(&s.path("data/events"));
    let (days, buckets) = (3, northstar_storage::USER_BUCKETS as usize);
    assert_eq!(partitions.len(), days * buckets, "37 users fill every bucket of each day");
    assert_eq!(files_before, 6 * partitions.len(), "6 imports × 3 days × user buckets");

    let out = crate::support::run(&["optimize", "--data", &data]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains(&format!("{files_before} files → {} files", partitions.len())), "{message}");
    assert_eq!(count(&data), 300);
    let summary_after = ok(&[
        "query",
        "--data",
        &data,
        "--format",
        "csv",
        "SELECT event, count(*), count(DISTINCT user_id) FROM events GROUP BY event ORDER BY event",
    ]);
    assert_eq!(summary_before, summary_after);
    assert_eq!(scalar(&data, "SELECT count(DISTINCT user_id) FROM events"), expected_users.len().to_string());

    // the replaced files stay until vacuum, which respects the retention period
    assert_eq!(data_files(&s.path("data/events")), files_before + partitions.len());
    let kept = crate::support::run(&["vacuum", "--data", &data]);
    assert!(String::from_utf8_lossy(&kept.stderr).contains("deleted 0 unreferenced files"));
    let gone = crate::support::run(&["vacuum", "--data", &data, "--retention-hours", "0"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains(&format!("deleted {files_before} unreferenced files")),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    assert_eq!(data_files(&s.path("data/events")), partitions.len());
    assert_eq!(count(&data), 300);
    // Rewritten files hold the table's types, as imported files do: DataFusion's view types in
    // delta-rs's rewrite scan would make them `Utf8View`, and each later scan cast them.
    let table_files = walk(&s.path("data/events")).into_iter().filter(|p| !p.to_string_lossy().contains("/_"));
    for file in table_files.filter(|p| p.extension().is_some_and(|e| e == "parquet")) {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        for column in ["user_id", "event"] {
            let field = reader.schema().field_with_name(column).unwrap().clone();
            assert_eq!(field.data_type(), &datafusion::arrow::datatypes::DataType::Utf8, "{column} in {file:?}");
        }
    }
}

#[tokio::test]
async fn many_small_imports_write_log_checkpoints() {
    let s = Scratch::new();
    let location = northstar_storage::DataLocation::parse(&s.data()).unwrap();
    let file = s.write("one.ndjson", "{\"event_time\":\"2024-05-01T00:00:00Z\",\"user_id\":\"u\",\"event\":\"e\"}\n");
    let mut store = northstar_storage::EventStore::open(&location).await.unwrap();
    for _ in 0..101 {
        northstar_import::import(&mut store, std::slice::from_ref(&file), &Default::default()).await.unwrap();
    }
    let checkpoint = s.path("data/events/_delta_log/00000000000000000099.checkpoint.parquet");
    assert!(
        checkpoint.exists(),
        "version 99 (every 100th commit) must write a checkpoint, so readers need not replay the whole log"
    );
    assert_eq!(count(&s.data()), 101);
}
