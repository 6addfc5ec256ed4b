//! The fixed core of the events schema. Every other column is added by imports.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const EVENT_TIME: &str = "event_time";
pub const EVENT_DATE: &str = "event_date";

/// The core columns, in table order. `event_date` is derived from `event_time` (UTC day).
pub const CORE_COLUMNS: [&str; 6] =
    ["event_time", "user_id", "event", "session_id", "properties", EVENT_DATE];

/// Delta partition columns: one directory per UTC day keeps date-range scans cheap.
pub const PARTITION_COLUMNS: [&str; 1] = [EVENT_DATE];

pub fn is_core_column(name: &str) -> bool {
    CORE_COLUMNS.contains(&name)
}

/// Timestamp type of `event_time`: microseconds, UTC (Delta's `timestamp`).
pub fn event_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn core_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(EVENT_TIME, event_time_type(), false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("session_id", DataType::Utf8, true),
        Field::new("properties", DataType::Utf8, true),
        Field::new(EVENT_DATE, DataType::Date32, false),
    ]))
}

/// The fields a write produces: the core columns, then the table's other columns (nullable),
/// in table order.
pub fn write_fields(existing: Option<&datafusion::arrow::datatypes::Schema>) -> Vec<Field> {
    let mut fields: Vec<Field> = core_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    for field in existing.iter().flat_map(|s| s.fields()) {
        if !is_core_column(field.name()) {
            fields.push(field.as_ref().clone().with_nullable(true));
        }
    }
    fields
}

/// Days since the Unix epoch of a UTC timestamp in microseconds (floor, so times before 1970
/// fall on the right day too).
pub fn event_date_from_micros(micros: i64) -> i32 {
    micros.div_euclid(86_400_000_000) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_date_is_the_utc_day_including_before_the_epoch() {
        assert_eq!(event_date_from_micros(0), 0);
        assert_eq!(event_date_from_micros(86_399_999_999), 0);
        assert_eq!(event_date_from_micros(86_400_000_000), 1);
        assert_eq!(event_date_from_micros(-1), -1);
    }
}
