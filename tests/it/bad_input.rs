//! Bad input: a clear message naming file and line or row, a non-zero exit, nothing committed;
//! with --rejects the good rows are committed and the bad ones listed.

use crate::support::{count, fails, log_entries, ok, Scratch};

const GOOD: &str = r#"{"event_time":"2024-01-01T00:00:00Z","user_id":"a","event":"open"}"#;

/// Imports `text` as `name` into a table that already holds one good row, expects failure,
/// and checks the table did not change. Returns the error message.
fn rejected(name: &str, text: &str) -> (Scratch, String, String) {
    let s = Scratch::new();
    let seed = s.write("seed.ndjson", &format!("{GOOD}\n"));
    ok(&["import", "--data", &s.data(), &seed]);
    let file = s.write(name, text);
    let message = fails(&["import", "--data", &s.data(), &file]);
    assert_eq!(count(&s.data()), 1, "nothing of a failed import may be visible");
    assert_eq!(log_entries(&s.path("data")), 1, "a failed import commits nothing");
    (s, file, message)
}

#[test]
fn malformed_ndjson_line_is_named() {
    let text = format!("{GOOD}\n{GOOD}\n{{\"event_time\": \"2024-01-01\", \"user_id\": \n{GOOD}\n");
    let (_s, file, message) = rejected("bad.ndjson", &text);
    assert!(message.contains(&format!("{file}: line 3: column")), "{message}");
    assert!(message.contains("invalid JSON"), "{message}");
}

#[test]
fn bad_timestamp_is_named() {
    let text = format!("{GOOD}\n{{\"event_time\":\"not a time\",\"user_id\":\"a\",\"event\":\"open\"}}\n");
    let (_s, file, message) = rejected("bad.ndjson", &text);
    assert!(
        message.contains(&format!("{file}: line 2: field 'event_time': expected a timestamp, got \"not a time\"")),
        "{message}"
    );
}

#[test]
fn missing_user_id_is_named() {
    let text = format!("{GOOD}\n{GOOD}\n{GOOD}\n{{\"event_time\":\"2024-01-01T00:00:00Z\",\"event\":\"open\"}}\n");
    let (_s, file, message) = rejected("bad.ndjson", &text);
    assert!(message.contains(&format!("{file}: line 4: missing user_id")), "{message}");
}

#[test]
fn wrong_type_for_an_existing_column_is_named() {
    let s = Scratch::new();
    let first = s.write("first.csv", "event_time,user_id,event,qty\n2024-01-01,a,open,1\n");
    ok(&["import", "--data", &s.data(), &first]);
    let bad = s.write("bad.csv", "event_time,user_id,event,qty\n2024-01-01,a,open,2\n2024-01-01,b,open,many\n");
    let message = fails(&["import", "--data", &s.data(), &bad]);
    assert!(message.contains(&format!("{bad}: line 3: column 'qty': expected an integer, got 'many'")), "{message}");
    assert_eq!(count(&s.data()), 1);
    assert_eq!(log_entries(&s.path("data")), 1);
}

#[test]
fn truncated_parquet_is_named() {
    let s = Scratch::new();
    let file = s.generate("g.parquet", 2_000, 1);
    let bytes = std::fs::read(&file).unwrap();
    let cut = s.path("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let message = fails(&["import", "--data", &s.data(), cut.to_str().unwrap()]);
    assert!(message.contains(&format!("{}: not a readable Parquet file", cut.display())), "{message}");
    assert_eq!(log_entries(&s.path("data")), 0);
}

#[test]
fn unknown_format_is_named() {
    let s = Scratch::new();
    let file = s.write("events.xml", "<events/>");
    let message = fails(&["import", "--data", &s.data(), &file]);
    assert!(message.contains(&format!("{file}: cannot tell the format from the extension '.xml'")), "{message}");
    let message = fails(&["import", "--data", &s.data(), "--format", "xml", &file]);
    assert!(message.contains("unknown format 'xml'"), "{message}");
    assert_eq!(log_entries(&s.path("data")), 0);
}

#[test]
fn missing_required_field_in_a_whole_file_is_named() {
    let s = Scratch::new();
    let file = s.write("noevent.csv", "event_time,user_id\n2024-01-01,a\n");
    let message = fails(&["import", "--data", &s.data(), &file]);
    assert!(message.contains(&format!("{file}: no field for 'event'")), "{message}");
}

#[test]
fn rejects_file_keeps_good_rows_and_lists_bad_ones() {
    let s = Scratch::new();
    let text = format!(
        "{GOOD}\n{{oops\n{{\"event_time\":\"never\",\"user_id\":\"a\",\"event\":\"x\"}}\n{GOOD}\n{{\"event_time\":\"2024-01-01\",\"event\":\"x\"}}\n{GOOD}\n"
    );
    let file = s.write("mixed.ndjson", &text);
    let rejects = s.path("rejects.ndjson");
    let out = crate::support::run(&["import", "--data", &s.data(), "--rejects", rejects.to_str().unwrap(), &file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 3 rows (3 rejected)"));
    assert_eq!(count(&s.data()), 3);
    let listed: Vec<serde_json::Value> =
        std::fs::read_to_string(&rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let lines: Vec<u64> = listed.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 5]);
    assert!(listed.iter().all(|r| r["file"] == file.as_str() && !r["reason"].as_str().unwrap().is_empty()));
    assert_eq!(listed[1]["record"], r#"{"event_time":"never","user_id":"a","event":"x"}"#);
    assert_eq!(listed[2]["reason"], "missing user_id");
}

#[test]
fn rejects_from_parquet_name_rows() {
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let s = Scratch::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("event", DataType::Utf8, true),
    ]));
    let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1), None, Some(3), Some(4)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None, Some("d")])),
            Arc::new(StringArray::from(vec!["e", "e", "e", "e"])),
        ],
    )
    .unwrap();
    let path = s.path("holes.parquet");
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let message = fails(&["import", "--data", &s.data(), path.to_str().unwrap()]);
    assert!(message.contains(&format!("{}: row 2: missing event_time", path.display())), "{message}");
    let rejects = s.path("r.ndjson");
    ok(&["import", "--data", &s.data(), "--rejects", rejects.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(count(&s.data()), 2);
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert!(text.contains("\"row\":2") && text.contains("\"row\":3") && text.contains("missing user_id"), "{text}");
}
