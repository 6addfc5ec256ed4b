//! Imports that succeed: formats, field mapping, typed extra columns, schema evolution.

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support::{count, ok, pretty, scalar, Scratch};

/// Counts taken on the generated file itself, independently of the import.
async fn file_counts(path: &str) -> (u64, u64) {
    let ctx = SessionContext::new();
    ctx.register_parquet("f", path, ParquetReadOptions::default()).await.unwrap();
    let text = pretty(&ctx, "SELECT count(*), count(DISTINCT user_id) FROM f").await;
    let numbers: Vec<u64> =
        text.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    (numbers[0], numbers[1])
}

#[tokio::test]
async fn generated_parquet_round_trips_with_exact_counts_and_extra_columns() {
    let s = Scratch::new();
    let file = s.generate("g.parquet", 50_000, 3);
    let (rows, users) = file_counts(&file).await;
    assert_eq!(rows, 50_000);
    ok(&["import", "--data", &s.data(), &file]);
    assert_eq!(count(&s.data()), rows);
    assert_eq!(scalar(&s.data(), "SELECT count(DISTINCT user_id) FROM events"), users.to_string());
    // platform and country came as ordinary Parquet columns and are queryable by name
    let web = scalar(&s.data(), "SELECT count(*) FROM events WHERE platform = 'web' AND country IS NOT NULL");
    assert!(web.parse::<u64>().unwrap() > 0);
    let plans = scalar(&s.data(), "SELECT count(DISTINCT json_get_str(properties, 'plan')) FROM events");
    assert_eq!(plans, "3");
    // event_date is the UTC day of event_time
    let mismatched = scalar(&s.data(), "SELECT count(*) FROM events WHERE event_date <> CAST(event_time AS DATE)");
    assert_eq!(mismatched, "0");
}

#[test]
fn ndjson_with_other_tools_field_names_maps_to_core_columns() {
    let s = Scratch::new();
    let file = s.write(
        "mixpanel.ndjson",
        concat!(
            r#"{"time": 1700000000, "distinct_id": 42, "event_name": "signup", "plan": "pro", "seats": 3, "properties": {"ref": "ad"}}"#, "\n",
            "\n",
            r#"{"time": "2023-11-14 22:13:21.5", "distinct_id": "u2", "event_name": "purchase", "plan": "free", "seats": 1.5, "paid": true}"#, "\n",
        ),
    );
    ok(&["import", "--data", &s.data(), &file]);
    let out = ok(&["query", "--data", &s.data(), "--format", "csv",
        "SELECT user_id, event, event_time, plan, seats, paid, json_get_str(properties, 'ref') AS ref FROM events ORDER BY event_time"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "user_id,event,event_time,plan,seats,paid,ref");
    assert_eq!(lines[1], "42,signup,2023-11-14T22:13:20Z,pro,3.0,,ad");
    assert_eq!(lines[2], "u2,purchase,2023-11-14T22:13:21.500Z,free,1.5,true,");
}

#[test]
fn csv_gzip_and_map_override_and_schema_evolution_across_imports() {
    let s = Scratch::new();
    let csv = "ts,uid,action,amount\n2024-03-01T10:00:00Z,a,open,\n2024-03-01T10:00:05+01:00,b,buy,12.5\n";
    let path = s.path("events.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
    gz.finish().unwrap();
    ok(&["import", "--data", &s.data(), "--map", "user_id=uid", "--map", "event=action", path.to_str().unwrap()]);
    assert_eq!(scalar(&s.data(), "SELECT sum(amount) FROM events"), "12.5");
    assert_eq!(scalar(&s.data(), "SELECT min(event_time) FROM events"), "2024-03-01T09:00:05Z");
    // a later import brings a new column; old rows read it as NULL
    let more = s.write(
        "more.ndjson",
        "{\"ts\":\"2024-03-02T00:00:00\",\"user_id\":\"c\",\"event\":\"open\",\"campaign\":\"spring\",\"amount\":3}\n",
    );
    ok(&["import", "--data", &s.data(), &more]);
    assert_eq!(scalar(&s.data(), "SELECT count(*) FROM events WHERE campaign IS NULL"), "2");
    assert_eq!(scalar(&s.data(), "SELECT sum(amount) FROM events"), "15.5");
}

#[test]
fn stdin_import_with_explicit_format() {
    let s = Scratch::new();
    let mut child = crate::support::northstar()
        .args(["import", "--data", &s.data(), "--format", "ndjson", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..1000 {
        std::io::Write::write_all(
            &mut stdin,
            format!("{{\"ts\":{},\"user\":\"u{}\",\"name\":\"e\"}}\n", 1_700_000_000 + i, i % 7).as_bytes(),
        )
        .unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("imported 1000 rows (0 rejected)") && stderr.contains("rows/s"), "summary: {stderr}");
    assert_eq!(count(&s.data()), 1000);
    assert_eq!(scalar(&s.data(), "SELECT count(DISTINCT user_id) FROM events"), "7");
}

#[test]
fn committed_sample_is_exactly_what_the_generator_makes_and_imports() {
    let s = Scratch::new();
    let path = s.path("sample.ndjson");
    ok(&["generate", "--events", "10000", "--seed", "42", "--format", "ndjson", "--out", path.to_str().unwrap()]);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample-10k.ndjson.gz");
    let mut committed = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(sample).unwrap()),
        &mut committed,
    )
    .unwrap();
    assert!(
        committed == std::fs::read_to_string(&path).unwrap(),
        "the generator no longer reproduces datasets/sample-10k.ndjson.gz"
    );
    ok(&["import", "--data", &s.data(), sample]);
    assert_eq!(count(&s.data()), 10_000);
    assert_eq!(
        scalar(
            &s.data(),
            "SELECT count(*) FROM events WHERE json_get_float(properties, 'price') > 0 AND event = 'purchase'"
        ),
        scalar(&s.data(), "SELECT count(*) FROM events WHERE event = 'purchase'")
    );
}
