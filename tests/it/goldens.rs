//! ClickHouse's own answers (tests/goldens/clickhouse.json, made by scripts/goldens.py with
//! chdb) replayed through Northstar. Rows are spread over three partitions so every case also
//! goes through partial aggregation and merging.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use northstar_engine::{new_context, EngineOptions};
use serde_json::Value;

fn table(rows: &[Value]) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("e", DataType::Utf8, true),
    ]));
    let mut partitions = vec![Vec::new(), Vec::new(), Vec::new()];
    for (i, chunk) in rows.chunks(rows.len().div_ceil(3).max(1)).enumerate() {
        let times: Vec<i64> = chunk.iter().map(|r| r[0].as_i64().unwrap() * 1_000_000).collect();
        let events: Vec<Option<&str>> = chunk.iter().map(|r| r[1].as_str()).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
                Arc::new(StringArray::from(events)),
            ],
        )
        .unwrap();
        partitions[i].push(batch);
    }
    MemTable::try_new(schema, partitions).unwrap()
}

/// Our answer in the shape ClickHouse's JSON has.
fn as_json(value: &ScalarValue) -> Value {
    match value {
        v if v.is_null() => Value::Null,
        ScalarValue::Int32(Some(n)) => Value::from(*n),
        ScalarValue::Int64(Some(n)) => Value::from(*n),
        ScalarValue::Boolean(Some(b)) => Value::from(*b as u8),
        ScalarValue::List(list) => {
            let values = list.value(0);
            let ints = values.as_any().downcast_ref::<datafusion::arrow::array::Int32Array>().unwrap();
            Value::Array(ints.iter().map(|v| Value::from(v.unwrap())).collect())
        }
        other => panic!("unexpected result {other:?}"),
    }
}

#[tokio::test]
async fn every_golden_case_matches_clickhouse() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/goldens/clickhouse.json")).unwrap();
    let goldens: Value = serde_json::from_str(&text).unwrap();
    let cases = goldens["cases"].as_array().unwrap();
    assert!(cases.len() >= 300, "at least 300 golden cases");
    let ctx = new_context(&EngineOptions { target_partitions: Some(4), ..Default::default() }).unwrap();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        ctx.deregister_table("t").unwrap();
        ctx.register_table("t", Arc::new(table(case["rows"].as_array().unwrap()))).unwrap();
        let sql = format!("SELECT {} FROM t", case["northstar"].as_str().unwrap());
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let value = ScalarValue::try_from_array(batches[0].column(0), 0).unwrap();
        let got = as_json(&value);
        let expected = match &case["expected"] {
            Value::String(s) => Value::from(s.parse::<i64>().unwrap()),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|v| Value::from(v.as_str().map(|s| s.parse::<i64>().unwrap()).or(v.as_i64()).unwrap()))
                    .collect(),
            ),
            other => other.clone(),
        };
        if got != expected {
            failures.push(format!(
                "case {i}: {sql}\n  rows {}\n  ClickHouse ({}) {expected}, Northstar {got}",
                case["rows"], case["clickhouse"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from ClickHouse {}:\n{}",
        failures.len(),
        cases.len(),
        goldens["clickhouse_version"],
        failures.join("\n")
    );
}
