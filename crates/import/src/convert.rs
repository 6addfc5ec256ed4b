//! Turning input values into typed cells, and inferring the type of new columns.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use serde_json::Value;

/// Column types the row-wise readers (NDJSON, CSV) build directly. Any other type an existing
/// table has is built as text and cast per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Timestamp,
    Utf8,
    Int64,
    Float64,
    Boolean,
    Date,
    /// Built as text, cast to the table's type afterwards.
    Other,
}

impl Kind {
    pub fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::Timestamp,
            DataType::Utf8 => Kind::Utf8,
            DataType::Int64 => Kind::Int64,
            DataType::Float64 => Kind::Float64,
            DataType::Boolean => Kind::Boolean,
            DataType::Date32 => Kind::Date,
            _ => Kind::Other,
        }
    }

    fn sql_name(self) -> &'static str {
        match self {
            Kind::Timestamp => "a timestamp",
            Kind::Utf8 | Kind::Other => "text",
            Kind::Int64 => "an integer",
            Kind::Float64 => "a number",
            Kind::Boolean => "a boolean",
            Kind::Date => "a date (YYYY-MM-DD)",
        }
    }
}

/// One converted value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Micros(i64),
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Days(i32),
}

/// Parses a timestamp. Accepted: RFC 3339 / ISO 8601 with or without a zone (without one it is
/// UTC), `YYYY-MM-DD HH:MM:SS[.f]`, a bare date, and Unix epoch numbers whose unit is told by
/// magnitude: below 1e11 seconds, below 1e14 milliseconds, otherwise microseconds.
pub fn parse_timestamp_text(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return Some(dt.timestamp_micros());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros());
    }
    t.parse::<f64>().ok().and_then(epoch_to_micros)
}

/// Unix epoch number → microseconds, unit by magnitude (see [`parse_timestamp_text`]).
pub fn epoch_to_micros(v: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let micros = if v.abs() < 1e11 {
        v * 1e6
    } else if v.abs() < 1e14 {
        v * 1e3
    } else {
        v
    };
    (micros.abs() < 9.2e18).then(|| micros.round() as i64)
}

/// Converts a JSON value for a column of kind `kind`.
pub fn from_json(value: &Value, kind: Kind) -> Result<Cell, String> {
    let wrong = || format!("expected {}, got {}", kind.sql_name(), short(value));
    Ok(match (kind, value) {
        (_, Value::Null) => Cell::Null,
        (Kind::Timestamp, Value::String(s)) => Cell::Micros(parse_timestamp_text(s).ok_or_else(wrong)?),
        (Kind::Timestamp, Value::Number(n)) => Cell::Micros(n.as_f64().and_then(epoch_to_micros).ok_or_else(wrong)?),
        (Kind::Utf8 | Kind::Other, Value::String(s)) => Cell::Text(s.clone()),
        (Kind::Utf8 | Kind::Other, other) => Cell::Text(other.to_string()),
        (Kind::Int64, Value::Number(n)) => Cell::Int(n.as_i64().ok_or_else(wrong)?),
        (Kind::Float64, Value::Number(n)) => Cell::Float(n.as_f64().ok_or_else(wrong)?),
        (Kind::Boolean, Value::Bool(b)) => Cell::Bool(*b),
        (Kind::Date, Value::String(s)) => Cell::Days(parse_date(s).ok_or_else(wrong)?),
        _ => return Err(wrong()),
    })
}

/// Converts a CSV field (text) for a column of kind `kind`; an empty field is NULL.
pub fn from_text(text: &str, kind: Kind) -> Result<Cell, String> {
    if text.is_empty() {
        return Ok(Cell::Null);
    }
    let wrong = || format!("expected {}, got '{}'", kind.sql_name(), crate::excerpt(text));
    Ok(match kind {
        Kind::Timestamp => Cell::Micros(parse_timestamp_text(text).ok_or_else(wrong)?),
        Kind::Utf8 | Kind::Other => Cell::Text(text.to_string()),
        Kind::Int64 => Cell::Int(text.trim().parse().map_err(|_| wrong())?),
        Kind::Float64 => Cell::Float(text.trim().parse().map_err(|_| wrong())?),
        Kind::Boolean => Cell::Bool(parse_bool(text).ok_or_else(wrong)?),
        Kind::Date => Cell::Days(parse_date(text).ok_or_else(wrong)?),
    })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" => Some(true),
        "false" | "f" => Some(false),
        _ => None,
    }
}

fn parse_date(text: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    Some((d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

fn short(value: &Value) -> String {
    crate::excerpt(&value.to_string())
}

/// Running type inference for a new column: the narrowest type every value seen fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inferred {
    #[default]
    Unknown,
    Boolean,
    Int64,
    Float64,
    Utf8,
}

impl Inferred {
    /// Widens with a JSON value. Mixed kinds fall back to text, which holds every value
    /// (nested objects and arrays are stored as JSON text).
    pub fn with_json(self, value: &Value) -> Self {
        let seen = match value {
            Value::Null => return self,
            Value::Bool(_) => Inferred::Boolean,
            Value::Number(n) if n.is_i64() => Inferred::Int64,
            Value::Number(_) => Inferred::Float64,
            _ => Inferred::Utf8,
        };
        self.widen(seen)
    }

    /// Widens with a CSV field.
    pub fn with_text(self, text: &str) -> Self {
        if text.is_empty() {
            return self;
        }
        let t = text.trim();
        let seen = if t.parse::<i64>().is_ok() {
            Inferred::Int64
        } else if t.parse::<f64>().is_ok() {
            Inferred::Float64
        } else if matches!(t, "true" | "false") {
            Inferred::Boolean
        } else {
            Inferred::Utf8
        };
        self.widen(seen)
    }

    fn widen(self, seen: Inferred) -> Self {
        use Inferred::*;
        match (self, seen) {
            (Unknown, x) => x,
            (a, b) if a == b => a,
            (Int64, Float64) | (Float64, Int64) => Float64,
            _ => Utf8,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Inferred::Boolean => DataType::Boolean,
            Inferred::Int64 => DataType::Int64,
            Inferred::Float64 => DataType::Float64,
            Inferred::Unknown | Inferred::Utf8 => DataType::Utf8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn timestamps_in_every_accepted_shape() {
        assert_eq!(parse_timestamp_text("2023-11-14T22:13:20Z"), Some(T));
        assert_eq!(parse_timestamp_text("2023-11-14T23:13:20+01:00"), Some(T));
        assert_eq!(parse_timestamp_text("2023-11-14 22:13:20"), Some(T), "no zone means UTC");
        assert_eq!(parse_timestamp_text("2023-11-14T22:13:20.000123"), Some(T + 123));
        assert_eq!(parse_timestamp_text("1700000000"), Some(T), "epoch seconds");
        assert_eq!(parse_timestamp_text("1700000000000"), Some(T), "epoch milliseconds");
        assert_eq!(parse_timestamp_text("1700000000000000"), Some(T), "epoch microseconds");
        assert_eq!(parse_timestamp_text("2023-11-14"), Some(T - 80_000_000_000));
        assert_eq!(parse_timestamp_text("yesterday"), None);
        assert_eq!(parse_timestamp_text("2023-13-45 10:00:00"), None);
    }

    #[test]
    fn json_values_convert_or_name_the_problem() {
        assert_eq!(from_json(&json!(1700000000.5), Kind::Timestamp).unwrap(), Cell::Micros(T + 500_000));
        assert_eq!(from_json(&json!(42), Kind::Utf8).unwrap(), Cell::Text("42".into()));
        assert_eq!(from_json(&json!({"a": 1}), Kind::Utf8).unwrap(), Cell::Text("{\"a\":1}".into()));
        let err = from_json(&json!("abc"), Kind::Int64).unwrap_err();
        assert_eq!(err, "expected an integer, got \"abc\"");
        assert!(from_json(&json!(1.5), Kind::Int64).is_err());
        assert_eq!(from_json(&json!(2), Kind::Float64).unwrap(), Cell::Float(2.0));
    }

    #[test]
    fn csv_text_converts_with_empty_as_null() {
        assert_eq!(from_text("", Kind::Int64).unwrap(), Cell::Null);
        assert_eq!(from_text("12", Kind::Int64).unwrap(), Cell::Int(12));
        assert_eq!(from_text("true", Kind::Boolean).unwrap(), Cell::Bool(true));
        assert!(from_text("12x", Kind::Float64).unwrap_err().contains("'12x'"));
    }

    #[test]
    fn inference_widens_to_the_narrowest_common_type() {
        let i = Inferred::default().with_json(&json!(1)).with_json(&json!(null));
        assert_eq!(i, Inferred::Int64);
        assert_eq!(i.with_json(&json!(2.5)), Inferred::Float64);
        assert_eq!(i.with_json(&json!("x")), Inferred::Utf8);
        assert_eq!(Inferred::default().with_text("1").with_text("2.5"), Inferred::Float64);
        assert_eq!(Inferred::default().with_text("true").with_text(""), Inferred::Boolean);
        assert_eq!(Inferred::default().data_type(), DataType::Utf8);
    }
}
