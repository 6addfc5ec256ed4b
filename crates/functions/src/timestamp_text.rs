//! `timestamp_text(timestamp)`: a timestamp as PostgreSQL writes it as text (DateStyle ISO),
//! what `CAST(t AS TEXT)` gives in PostgreSQL: `2025-01-01 05:30:00.5+05:30`, not Arrow's
//! RFC 3339 `2025-01-01T05:30:00.500+05:30`. The `TimestampText` rule of the execution crate
//! writes it in place of that cast, so `event_time::text LIKE '2025-01-15 %'` and
//! `concat(…, event_time)` mean what they mean on PostgreSQL.
//!
//! A timestamp with a zone is written in its zone (the session's: `SessionTimeZone` relabels
//! UTC values first) with its offset (`+00`, `+05:30`); one without, as its wall time.
//! Microseconds without trailing zeros; years before 1 AD with ` BC`.
//!
//! ```sql
//! SELECT timestamp_text(TIMESTAMP '2025-03-04 05:06:07.5');  -- 2025-03-04 05:06:07.5
//! ```

use std::fmt::Write;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `timestamp_text(timestamp)`: PostgreSQL's text of a timestamp.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampText {
    signature: Signature,
}

impl Default for TimestampText {
    fn default() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_DATETIME,
        "Writes a timestamp as PostgreSQL writes it as text (DateStyle ISO): a timestamp with time \
         zone in its zone with its offset, one without as its wall time; microseconds without \
         trailing zeros. Northstar's planner writes it in place of CAST(timestamp AS TEXT).",
        "timestamp_text(timestamp)",
    )
    .with_sql_example(
        r#"```sql
> SELECT timestamp_text(TIMESTAMP '2025-03-04 05:06:07.5') AS t;
+-----------------------+
| t                     |
+-----------------------+
| 2025-03-04 05:06:07.5 |
+-----------------------+
```"#,
    )
    .with_argument("timestamp", "A timestamp, with or without time zone.")
    .build()
});

impl ScalarUDFImpl for TimestampText {
    fn name(&self) -> &str {
        "timestamp_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Timestamp(_, _)] => Ok(DataType::Utf8),
            other => exec_err!("timestamp_text takes a timestamp, not {other:?}"),
        }
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = args.args[0].to_array(args.number_rows)?;
        let DataType::Timestamp(_, zone) = values.data_type() else {
            return exec_err!("timestamp_text takes a timestamp, not {}", values.data_type());
        };
        let zone = zone.as_deref().map(str::parse::<Tz>).transpose()?;
        // PostgreSQL keeps microseconds: finer units are cut to them, as its input does.
        let micros = cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let mut texts = StringBuilder::with_capacity(micros.len(), micros.len() * 32);
        let mut text = String::with_capacity(40);
        for value in micros.iter() {
            let Some(instant) = value.and_then(DateTime::from_timestamp_micros) else {
                texts.append_null();
                continue;
            };
            text.clear();
            match &zone {
                Some(zone) => {
                    let offset = zone.offset_from_utc_datetime(&instant.naive_utc()).fix().local_minus_utc();
                    write_text(&mut text, instant.with_timezone(zone).naive_local(), Some(offset));
                }
                None => write_text(&mut text, instant.naive_utc(), None),
            }
            texts.append_value(&text);
        }
        let texts: Arc<dyn Array> = Arc::new(texts.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&texts, 0)?)
        } else {
            ColumnarValue::Array(texts)
        })
    }
}

/// A timestamp as PostgreSQL's output function writes it in the ISO DateStyle: `local` (the
/// wall time), then the offset from UTC when it has one (`+00`, `+05:30`).
pub fn postgres_timestamp_text(local: NaiveDateTime, offset_seconds: Option<i32>) -> String {
    let mut text = String::with_capacity(40);
    write_text(&mut text, local, offset_seconds);
    text
}

/// `local` as PostgreSQL's ISO output, then the offset from UTC (`+05:30`), then ` BC`.
fn write_text(out: &mut String, local: NaiveDateTime, offset_seconds: Option<i32>) {
    let (year, before_christ) = if local.year() <= 0 { (1 - local.year(), true) } else { (local.year(), false) };
    let _ = write!(
        out,
        "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    );
    let micros = local.nanosecond() / 1000;
    if micros > 0 {
        let fraction = format!("{micros:06}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    if let Some(offset) = offset_seconds {
        let sign = if offset < 0 { '-' } else { '+' };
        let (hours, minutes, seconds) = (offset.abs() / 3600, offset.abs() % 3600 / 60, offset.abs() % 60);
        let _ = write!(out, "{sign}{hours:02}");
        if minutes != 0 || seconds != 0 {
            let _ = write!(out, ":{minutes:02}");
        }
        if seconds != 0 {
            let _ = write!(out, ":{seconds:02}");
        }
    }
    if before_christ {
        out.push_str(" BC");
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    /// Each expected text is PostgreSQL 15's `::text` of the same value.
    #[tokio::test]
    async fn writes_timestamps_as_postgres_does() {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx).unwrap();
        let cases = [
            ("TIMESTAMP '2025-03-04 05:06:07.5'", "2025-03-04 05:06:07.5"),
            ("TIMESTAMP '2025-03-04 05:06:07'", "2025-03-04 05:06:07"),
            (
                "arrow_cast(TIMESTAMP '2025-01-01 00:00:00.123456', 'Timestamp(Microsecond, Some(\"UTC\"))')",
                "2025-01-01 00:00:00.123456+00",
            ),
            (
                "arrow_cast(TIMESTAMP '2025-01-01 00:00:00', 'Timestamp(Microsecond, Some(\"Asia/Kolkata\"))')",
                "2025-01-01 00:00:00+05:30",
            ),
            (
                "arrow_cast(TIMESTAMP '2025-07-01 12:00:00', 'Timestamp(Second, Some(\"America/New_York\"))')",
                "2025-07-01 12:00:00-04",
            ),
        ];
        for (sql, expected) in cases {
            let batches =
                ctx.sql(&format!("SELECT timestamp_text({sql}) AS t")).await.unwrap().collect().await.unwrap();
            let shown = pretty_format_batches(&batches).unwrap().to_string();
            assert!(shown.contains(&format!("| {expected} ")), "{sql}: {shown}");
        }
        // Astronomical year -44 is 45 BC; PostgreSQL: `0045-03-15 12:00:00+00 BC`.
        let mut text = String::new();
        let ides = chrono::NaiveDate::from_ymd_opt(-44, 3, 15).unwrap().and_hms_opt(12, 0, 0).unwrap();
        super::write_text(&mut text, ides, Some(0));
        assert_eq!(text, "0045-03-15 12:00:00+00 BC");
    }
}
