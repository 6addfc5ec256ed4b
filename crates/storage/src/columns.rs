//! The names of the events table's own columns: one place for the code that reads or writes
//! them by name (SQL text excepted).

/// When the event happened: UTC, microseconds.
pub const EVENT_TIME: &str = "event_time";
/// Who did it.
pub const USER_ID: &str = "user_id";
/// What happened: the event's name.
pub const EVENT: &str = "event";
pub const SESSION_ID: &str = "session_id";
/// The event's other attributes, as JSON text.
pub const PROPERTIES: &str = "properties";
/// The UTC day of `event_time`; a partition column.
pub const EVENT_DATE: &str = "event_date";
/// Derived from `user_id` ([`crate::user_bucket`]); a partition column that queries never see.
pub const USER_BUCKET: &str = "user_bucket";
