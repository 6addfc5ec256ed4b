//! The fixed core of the events schema. Every other column is added by imports.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::columns::{EVENT, EVENT_DATE, EVENT_TIME, PROPERTIES, SESSION_ID, USER_BUCKET, USER_ID};

/// The core columns, in table order. `event_date` is derived from `event_time` (UTC day).
pub const CORE_COLUMNS: [&str; 6] = [EVENT_TIME, USER_ID, EVENT, SESSION_ID, PROPERTIES, EVENT_DATE];

/// How many user buckets each day is split into. Fixed for a table once written: a user's
/// events must all land in one bucket, whenever they were imported.
pub const USER_BUCKETS: u32 = 4;

/// Delta partition columns of new tables: one directory per UTC day keeps date-range scans
/// cheap, and inside it one per user bucket, so that per-user aggregates can read disjoint
/// sets of users in parallel without a hash repartition (docs/storage.md, "User buckets").
/// Tables written before buckets existed have only `event_date`, and are read as before.
pub const PARTITION_COLUMNS: [&str; 2] = [EVENT_DATE, USER_BUCKET];

/// Columns the table defines itself (the core columns and the derived user bucket), as
/// opposed to the extra columns an import adds: a source column named `user_bucket` is ignored.
pub fn is_core_column(name: &str) -> bool {
    CORE_COLUMNS.contains(&name) || name == USER_BUCKET
}

/// The bucket of a user: FNV-1a (64-bit) of the id's UTF-8 bytes, modulo [`USER_BUCKETS`].
///
/// Hand-written rather than a hashing crate's because the value is stored: it must stay the
/// same across versions, platforms and builds forever (std's and ahash's hashers promise
/// neither), and FNV-1a is a six-line, fully specified function.
pub fn user_bucket(user_id: &str) -> i32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the high half in: FNV's low bits alone spread short, similar ids less evenly.
    ((hash ^ (hash >> 32)) % u64::from(USER_BUCKETS)) as i32
}

/// Timestamp type of `event_time`: microseconds, UTC (Delta's `timestamp`).
pub fn event_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn core_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(EVENT_TIME, event_time_type(), false),
        Field::new(USER_ID, DataType::Utf8, false),
        Field::new(EVENT, DataType::Utf8, false),
        Field::new(SESSION_ID, DataType::Utf8, true),
        Field::new(PROPERTIES, DataType::Utf8, true),
        Field::new(EVENT_DATE, DataType::Date32, false),
    ]))
}

/// The fields a write produces: the core columns, then the table's other columns (nullable),
/// in table order.
pub fn write_fields(existing: Option<&Schema>) -> Vec<Field> {
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
    fn user_buckets_are_stable_and_spread_users_evenly() {
        // Stored values: these must never change (a changed hash would split a user's events
        // across buckets, and per-user aggregates would count them as two users).
        assert_eq!(["", "u0000001", "alice", "7f3c2a9e-1b4d-4c8e-9a0f-2d6b8e1c5a73"].map(user_bucket), [1, 2, 0, 1]);
        let mut counts = [0usize; USER_BUCKETS as usize];
        for i in 0..40_000 {
            counts[user_bucket(&format!("u{i:07}")) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }

    #[test]
    fn event_date_is_the_utc_day_including_before_the_epoch() {
        assert_eq!(event_date_from_micros(0), 0);
        assert_eq!(event_date_from_micros(86_399_999_999), 0);
        assert_eq!(event_date_from_micros(86_400_000_000), 1);
        assert_eq!(event_date_from_micros(-1), -1);
    }
}
