//! `to_char(timestamp | timestamptz | date, template)` with PostgreSQL's template patterns
//! (datetime_template.rs), in place of DataFusion's `to_char`, which reads chrono strftime
//! formats and printed PostgreSQL's `YYYY-MM-DD` literally.
//!
//! A `timestamptz` is formatted in its own zone (`TZ` prints its abbreviation), a timestamp
//! without time zone as it is (`TZ` prints nothing, as PostgreSQL), a date as midnight UTC
//! (PostgreSQL formats a date as a `timestamptz` in the session zone, UTC for Northstar).
//! NULLs give NULL, and so does an empty template. The template may differ per row.
//!
//! DataFusion's function (`inner`) keeps everything else: a pattern containing `%` is a
//! chrono format as before (existing queries keep working), times and durations are its, and
//! so are its alias `date_format` and its type coercion, except that a timestamp keeps its
//! unit: DataFusion's signature lists nanoseconds first and so cast every `timestamptz` to
//! nanoseconds (a copy per batch, and no dates before 1677 or after 2262).
//!
//! ```sql
//! SELECT to_char(event_time, 'YYYY-MM-DD HH24:MI:SS') FROM events;
//! ```

use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{OffsetName, Tz};
use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit, TimestampMicrosecondType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{exec_datafusion_err, Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::datetime_template::{Moment, Template};
use crate::sqlstate::{sql_error, DATETIME_FIELD_OVERFLOW};
use crate::template_args::{answer, constant_strftime, is_text, row_arguments, rows, Delegate, Pattern, Patterns};
use crate::utc_date::is_utc_zone;
use crate::wrapped::Wrapped;

/// `to_char` with PostgreSQL's template patterns, wrapping DataFusion's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToChar {
    inner: Wrapped,
    signature: Signature,
}

impl ToChar {
    /// Wraps DataFusion's `to_char` (`inner`).
    pub fn new(inner: Arc<ScalarUDF>) -> Self {
        Self { inner: Wrapped(inner), signature: Signature::user_defined(Volatility::Immutable) }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_DATETIME,
        "Formats a timestamp, timestamp with time zone or date as text with a PostgreSQL template \
         (YYYY, MM, DD, HH24, HH12, MI, SS, MS, US, AM, Month, Mon, Day, Dy, DDD, IYYY, IW, Q, TZ, OF, \
         FM and TH modifiers, \"quoted text\"), as PostgreSQL's to_char. A timestamp with time zone \
         is formatted in its zone, a date as midnight UTC. A template containing % is a chrono \
         strftime format, as DataFusion's to_char reads it.",
        "to_char(expression, template)",
    )
    .with_sql_example(
        r#"```sql
> SELECT to_char(TIMESTAMP '2025-03-04 05:06:07.123456', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS t,
         to_char(DATE '2025-03-04', 'FMDay, FMDD FMMonth YYYY') AS d;
+----------------------------+-----------------------+
| t                          | d                     |
+----------------------------+-----------------------+
| 2025-03-04T05:06:07.123456 | Tuesday, 4 March 2025 |
+----------------------------+-----------------------+
```"#,
    )
    .with_argument("expression", "A timestamp, timestamp with time zone or date.")
    .with_argument("template", "A PostgreSQL date/time template, or a chrono format containing %.")
    .build()
});

/// The calls formatted here: a timestamp or date, and a text template.
fn formats(types: &[&DataType]) -> bool {
    matches!(types, [DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _), pattern] if is_text(pattern))
}

/// The zone a value is formatted in.
enum Zone {
    /// A timestamp without time zone: its own wall time, no zone name.
    Naive,
    Fixed {
        offset: FixedOffset,
        abbreviation: String,
    },
    Named(Tz),
}

impl Zone {
    fn of(data_type: &DataType) -> Result<Self> {
        match data_type {
            DataType::Timestamp(_, None) => Ok(Zone::Naive),
            DataType::Timestamp(_, Some(zone)) => Self::parse(zone),
            _ => Self::parse("UTC"),
        }
    }

    fn parse(name: &str) -> Result<Self> {
        if is_utc_zone(name) {
            let abbreviation = if name.contains("GMT") { "GMT" } else { "UTC" };
            return Ok(Zone::Fixed {
                offset: FixedOffset::east_opt(0).expect("0 is valid"),
                abbreviation: abbreviation.into(),
            });
        }
        if let Some(offset) = parse_offset(name) {
            return Ok(Zone::Fixed { offset, abbreviation: offset_text(offset) });
        }
        name.parse::<Tz>().map(Zone::Named).map_err(|e| exec_datafusion_err!("to_char: invalid time zone {name}: {e}"))
    }

    /// Formats the instant `micros` (since 1970 UTC; the wall time for `Naive`).
    fn format(&self, micros: i64, template: &Template, out: &mut String) -> Result<()> {
        let out_of_range = || sql_error(DATETIME_FIELD_OVERFLOW, "timestamp out of range");
        let utc: NaiveDateTime = DateTime::from_timestamp_micros(micros).ok_or_else(out_of_range)?.naive_utc();
        match self {
            Zone::Naive => template.format(&Moment { local: utc, offset_seconds: 0, zone: None }, out),
            Zone::Fixed { offset, abbreviation } => {
                let local = utc.checked_add_offset(*offset).ok_or_else(out_of_range)?;
                let moment = Moment { local, offset_seconds: offset.local_minus_utc(), zone: Some(abbreviation) };
                template.format(&moment, out)
            }
            Zone::Named(tz) => {
                let zone_offset = tz.offset_from_utc_datetime(&utc);
                let offset = zone_offset.fix();
                let local = utc.checked_add_offset(offset).ok_or_else(out_of_range)?;
                let moment =
                    Moment { local, offset_seconds: offset.local_minus_utc(), zone: zone_offset.abbreviation() };
                template.format(&moment, out)
            }
        }
        Ok(())
    }
}

/// `+05:30`, `+0530`, `-03` (arrow's fixed-offset zones).
fn parse_offset(name: &str) -> Option<FixedOffset> {
    let sign = match name.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = name[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// A fixed offset as PostgreSQL names it: `+05`, `-03:30`.
fn offset_text(offset: FixedOffset) -> String {
    crate::time_zone_setting::offset_text(offset.local_minus_utc())
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    /// A timestamp or date as it is, the template as text; everything else as DataFusion's
    /// signature coerces it.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let types: Vec<&DataType> = arg_types.iter().collect();
        if formats(&types) {
            return Ok(vec![arg_types[0].clone(), DataType::Utf8]);
        }
        let fields: Vec<FieldRef> =
            arg_types.iter().map(|t| Arc::new(Field::new("argument", t.clone(), true))).collect();
        Ok(fields_with_udf(&fields, &*self.inner)?.iter().map(|f| f.data_type().clone()).collect())
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let inner = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::from(Self::new(Arc::new(inner))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<&DataType> = args.arg_fields.iter().map(|f| f.data_type()).collect();
        if !formats(&types) || constant_strftime(&args.args[1])? {
            return self.inner.invoke_with_args(args);
        }
        let (rows, scalar) = rows(&args.args, args.number_rows);
        let values = args.args[0].to_array(rows)?;
        let zone = Zone::of(values.data_type())?;
        let unit_zone = match values.data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let micros = cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, unit_zone))?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let mut patterns = Patterns::new(&args.args[1])?;
        let delegate = Delegate::new(&self.inner, &args)?;
        let mut builder = StringBuilder::with_capacity(rows, rows * 24);
        let mut text = String::new();
        for row in 0..rows {
            if micros.is_null(row) {
                builder.append_null();
                continue;
            }
            match patterns.get(row) {
                Pattern::Null => builder.append_null(),
                Pattern::Template(template) if template.is_empty() => builder.append_null(),
                Pattern::Template(template) => {
                    text.clear();
                    zone.format(micros.value(row), template, &mut text)?;
                    builder.append_value(&text);
                }
                Pattern::Strftime => match delegate.row(row_arguments(&values, &args.args[1], row)?)? {
                    ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                        builder.append_value(s)
                    }
                    _ => builder.append_null(),
                },
            }
        }
        answer(Arc::new(builder.finish()), scalar)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        ArrayRef, Date32Array, StringArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    };
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::FunctionRegistry;
    use datafusion::functions::datetime::to_char;
    use datafusion::prelude::SessionContext;

    use super::*;

    fn udf() -> ScalarUDF {
        ScalarUDF::from(ToChar::new(to_char()))
    }

    fn call(f: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> Result<ColumnarValue> {
        let arg_fields =
            args.iter().enumerate().map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true))).collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Default::default(),
        })
    }

    fn texts(value: ColumnarValue, rows: usize) -> Vec<Option<String>> {
        let array = value.to_array(rows).unwrap();
        array.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
    }

    /// 2025-03-04 05:06:07.123456 in microseconds since 1970.
    const SAMPLE: i64 = 1_741_064_767_123_456;

    fn pattern(p: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(p.into())))
    }

    #[test]
    fn formats_scalars_as_postgresql() {
        let sample = ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(Some(SAMPLE), None));
        for (p, expected) in [
            ("YYYY-MM-DD HH24:MI:SS", "2025-03-04 05:06:07"),
            ("YYYY-MM-DD\"T\"HH24:MI:SS.US", "2025-03-04T05:06:07.123456"),
            ("DD/MM/YY HH12:MI:SS AM", "04/03/25 05:06:07 AM"),
            ("Mon DD, YYYY", "Mar 04, 2025"),
            ("Month", "March    "),
            ("FMMonth FMDD", "March 4"),
            ("Day Dy D", "Tuesday   Tue 3"),
            ("YYYY-\"Q\"Q", "2025-Q1"),
            ("IYYY-\"W\"IW DDD MS", "2025-W10 063 123"),
        ] {
            let ColumnarValue::Scalar(ScalarValue::Utf8(Some(got))) =
                call(&udf(), vec![sample.clone(), pattern(p)], 1).unwrap()
            else {
                panic!("not a text scalar")
            };
            assert_eq!(got, expected, "{p}");
        }
        let date = ColumnarValue::Scalar(ScalarValue::Date32(Some(20_453))); // 2025-12-31
        assert_eq!(
            texts(call(&udf(), vec![date, pattern("YYYY-MM-DD TZ")], 1).unwrap(), 1),
            [Some("2025-12-31 UTC".into())]
        );
        let empty = call(&udf(), vec![sample.clone(), pattern("")], 1).unwrap();
        assert_eq!(texts(empty, 1), [None]);
        let null = call(&udf(), vec![sample, ColumnarValue::Scalar(ScalarValue::Utf8(None))], 1).unwrap();
        assert_eq!(texts(null, 1), [None]);
    }

    #[test]
    fn formats_arrays_with_nulls_zones_and_per_row_patterns() {
        let times: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![Some(SAMPLE * 1000), None, Some(0)]).with_timezone("Europe/Paris"),
        );
        let got =
            call(&udf(), vec![ColumnarValue::Array(times.clone()), pattern("YYYY-MM-DD HH24:MI TZ OF")], 3).unwrap();
        assert_eq!(
            texts(got, 3),
            [Some("2025-03-04 06:06 CET +01".into()), None, Some("1970-01-01 01:00 CET +01".into())]
        );
        let utc: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![SAMPLE, SAMPLE, SAMPLE, SAMPLE]).with_timezone("UTC"));
        let patterns: ArrayRef =
            Arc::new(StringArray::from(vec![Some("YYYY"), Some("YYYY"), None, Some("HH24:MI TZ")]));
        let got = call(&udf(), vec![ColumnarValue::Array(utc), ColumnarValue::Array(patterns)], 4).unwrap();
        assert_eq!(texts(got, 4), [Some("2025".into()), Some("2025".into()), None, Some("05:06 UTC".into())]);
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(0), None]));
        let got = call(&udf(), vec![ColumnarValue::Array(dates), pattern("FMDD FMMonth YYYY")], 2).unwrap();
        assert_eq!(texts(got, 2), [Some("1 January 1970".into()), None]);
    }

    /// A pattern with `%` is a chrono format, as DataFusion's `to_char` reads it; so is any
    /// argument type this function does not format.
    #[test]
    fn strftime_patterns_and_other_types_are_datafusions() {
        let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![Some(SAMPLE), None]));
        let strftime = vec![ColumnarValue::Array(times.clone()), pattern("%Y-%m-%d %H:%M")];
        let ours = texts(call(&udf(), strftime.clone(), 2).unwrap(), 2);
        assert_eq!(ours, texts(call(&to_char(), strftime, 2).unwrap(), 2));
        assert_eq!(ours, [Some("2025-03-04 05:06".into()), None]);
        // per row: a % pattern among templates
        let patterns: ArrayRef = Arc::new(StringArray::from(vec!["%d/%m/%Y", "DD/MM/YYYY"]));
        let times2: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![SAMPLE, SAMPLE]));
        let got = call(&udf(), vec![ColumnarValue::Array(times2), ColumnarValue::Array(patterns)], 2).unwrap();
        assert_eq!(texts(got, 2), [Some("04/03/2025".into()), Some("04/03/2025".into())]);
        let number = vec![ColumnarValue::Scalar(ScalarValue::Float64(Some(1.5))), pattern("999")];
        let ours = call(&udf(), number.clone(), 1).unwrap_err().to_string();
        assert_eq!(ours, call(&to_char(), number, 1).unwrap_err().to_string());
    }

    #[tokio::test]
    async fn sql_through_a_session() {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx).unwrap();
        let sql = "SELECT to_char(TIMESTAMP '2025-03-04 05:06:07.123456', 'YYYY') AS y,
                          to_char(TIMESTAMP '2025-03-04 05:06:07.123456', 'DD/MM/YY HH12:MI:SS AM') AS t,
                          to_char(DATE '2025-12-31', 'YYYY-MM-DD') AS d,
                          date_format(TIMESTAMP '2025-03-04 05:06:07', '%Y/%m') AS strftime";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let expected = [
            "+------+----------------------+------------+----------+",
            "| y    | t                    | d          | strftime |",
            "+------+----------------------+------------+----------+",
            "| 2025 | 04/03/25 05:06:07 AM | 2025-12-31 | 2025/03  |",
            "+------+----------------------+------------+----------+",
        ];
        assert_eq!(pretty_format_batches(&batches).unwrap().to_string(), expected.join("\n"));
        // a timestamp keeps its unit: PostgreSQL's year 0 default is beyond nanoseconds
        let sql = "SELECT to_char(to_timestamp('05:06', 'HH24:MI'), 'YYYY BC HH24:MI TZ') AS t";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        assert!(pretty_format_batches(&batches).unwrap().to_string().contains("| 0001 BC 05:06 UTC |"));
        // a number is refused at planning, as DataFusion refuses it (through our coercion)
        let plain = SessionContext::new();
        let refused = |ctx: SessionContext| async move {
            match ctx.sql("SELECT to_char(1.5, '999')").await {
                Ok(frame) => frame.collect().await.unwrap_err().to_string(),
                Err(e) => e.to_string(),
            }
        };
        let expected = "No function matches the given name and argument types 'to_char(Float64, Utf8)'";
        assert!(refused(plain).await.contains(expected));
        let ours = refused(ctx.clone()).await;
        assert!(ours.starts_with("Error during planning") && ours.contains(expected), "{ours}");
        // registering again keeps one wrapper
        crate::register_all(&mut ctx).unwrap();
        let f = ctx.udf("to_char").unwrap();
        let ours = f.inner().downcast_ref::<ToChar>().unwrap();
        assert!(ours.inner.inner().downcast_ref::<ToChar>().is_none());
    }
}
