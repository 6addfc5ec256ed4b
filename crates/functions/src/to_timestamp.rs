//! `to_timestamp(text, template)` with PostgreSQL's template patterns (datetime_template.rs),
//! and `to_timestamp(seconds)` as PostgreSQL's, in place of DataFusion's `to_timestamp`, which
//! reads chrono strftime formats: Superset's time filters send
//! `TO_TIMESTAMP('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')`.
//!
//! Both return PostgreSQL's `timestamptz`: `Timestamp(Microsecond, "UTC")`. The wall time read
//! is in the session's time zone (`SET TIME ZONE`, UTC by default) unless the template reads
//! `TZH`/`TZM`. Seconds since
//! 1970 may be fractional; they are rounded to the microsecond (half to even, as PostgreSQL).
//! NULLs give NULL; the template may differ per row.
//!
//! DataFusion's function (`inner`) keeps every other shape, with its own return type: one
//! text (RFC 3339), several formats, timestamps. A template containing `%` is a chrono format,
//! parsed by DataFusion's function as before, then converted to this function's type (the
//! return type cannot depend on the template's value, which may be a column).
//!
//! ```sql
//! SELECT count(*) FROM events
//! WHERE event_time >= TO_TIMESTAMP('2025-01-15 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US');
//! ```

use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{AsArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

use crate::sqlstate::{sql_error, DATETIME_FIELD_OVERFLOW};
use crate::template_args::{
    answer, constant_strftime, is_text, row_arguments, rows, Delegate, Pattern, Patterns, Texts,
};
use crate::utc_date::is_utc_zone;
use crate::wrapped::Wrapped;

/// `to_timestamp` with PostgreSQL's template patterns, wrapping DataFusion's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestamp {
    inner: Wrapped,
    /// The session's time zone when it is not UTC: wall times are read in it.
    zone: Option<String>,
}

impl ToTimestamp {
    /// Wraps DataFusion's `to_timestamp` (`inner`).
    pub fn new(inner: Arc<ScalarUDF>) -> Self {
        Self { inner: Wrapped(inner), zone: None }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_DATETIME,
        "Reads a timestamp with time zone from text with a PostgreSQL template (YYYY, MM, DD, HH24, \
         HH12, MI, SS, MS, US, AM, Month, Mon, DDD, IYYY, IW, TZH, TZM, ...), as PostgreSQL's \
         to_timestamp; or converts seconds since 1970-01-01 UTC. The wall time read is in the \
         session's time zone (SET TIME ZONE), unless the template reads TZH. Returns \
         Timestamp(Microsecond, \"UTC\"). A template containing % is a chrono strftime format, read \
         by DataFusion's to_timestamp; one argument, or several formats, are DataFusion's \
         to_timestamp unchanged.",
        "to_timestamp(text, template) | to_timestamp(seconds)",
    )
    .with_sql_example(
        r#"```sql
> SELECT to_timestamp('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AS superset,
         to_timestamp('04/03/2025 05:06 PM', 'DD/MM/YYYY HH12:MI AM') AS us,
         to_timestamp(1741064767.5) AS epoch;
+----------------------+----------------------+--------------------------+
| superset             | us                   | epoch                    |
+----------------------+----------------------+--------------------------+
| 2026-01-01T00:00:00Z | 2025-03-04T17:06:00Z | 2025-03-04T05:06:07.500Z |
+----------------------+----------------------+--------------------------+
```"#,
    )
    .with_argument("text", "The text to read.")
    .with_argument("template", "A PostgreSQL date/time template, or a chrono format containing %.")
    .with_argument("seconds", "A number of seconds since 1970-01-01 00:00:00 UTC, fractions allowed.")
    .build()
});

/// PostgreSQL's `timestamptz` as Northstar returns it.
fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The call shapes handled here; every other is DataFusion's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Template,
    Seconds,
    Inner,
}

fn shape(types: &[&DataType]) -> Shape {
    match types {
        [text, template] if is_text(text) && is_text(template) => Shape::Template,
        [seconds] if seconds.is_numeric() => Shape::Seconds,
        _ => Shape::Inner,
    }
}

/// Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const SECONDS_1970_TO_2000: f64 = 946_684_800.0;

/// PostgreSQL's `to_timestamp(double precision)`, with its arithmetic (seconds since 2000,
/// times a million, rounded half to even): microseconds since 1970, within PostgreSQL's
/// timestamps (4714-11-24 BC on) and Arrow's.
fn from_seconds(seconds: f64) -> Result<i64> {
    if seconds.is_nan() {
        return Err(sql_error(DATETIME_FIELD_OVERFLOW, "timestamp cannot be NaN"));
    }
    let out_of_range = || sql_error(DATETIME_FIELD_OVERFLOW, format!("timestamp out of range: \"{seconds}\""));
    // Julian day 0; the end of i64 microseconds comes before PostgreSQL's end.
    if !(-210_866_803_200.0..9_223_372_036_854.0).contains(&seconds) {
        return Err(out_of_range());
    }
    let since_2000 = ((seconds - SECONDS_1970_TO_2000) * 1e6).round_ties_even() as i64;
    since_2000.checked_add(946_684_800_000_000).ok_or_else(out_of_range)
}

impl ToTimestamp {
    fn seconds(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = rows(&args.args, args.number_rows);
        let seconds = cast(&args.args[0].to_array(rows)?, &DataType::Float64)?;
        let seconds = seconds.as_primitive::<Float64Type>();
        let micros = seconds.iter().map(|s| s.map(from_seconds).transpose()).collect::<Result<Vec<_>>>()?;
        answer(Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")), scalar)
    }

    fn template(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
        let delegate = Delegate::new(&self.inner, args)?;
        if constant_strftime(&args.args[1])? {
            return delegate.all()?.cast_to(&timestamptz(), None);
        }
        let (rows, scalar) = rows(&args.args, args.number_rows);
        let values = args.args[0].to_array(rows)?;
        let texts = Texts::new(values.as_ref())?;
        let mut patterns = Patterns::new(&args.args[1])?;
        let zone = self.zone.as_deref().map(str::parse::<Tz>).transpose()?;
        let mut micros = Vec::with_capacity(rows);
        for row in 0..rows {
            let Some(text) = texts.get(row) else {
                micros.push(None);
                continue;
            };
            micros.push(match patterns.get(row) {
                Pattern::Null => None,
                Pattern::Template(template) => Some(template.parse_timestamp(text, zone.as_ref())?),
                Pattern::Strftime => {
                    let parsed = delegate.row(row_arguments(&values, &args.args[1], row)?)?;
                    match parsed.cast_to(&timestamptz())? {
                        ScalarValue::TimestampMicrosecond(v, _) => v,
                        _ => None,
                    }
                }
            });
        }
        answer(Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")), scalar)
    }
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match shape(&arg_types.iter().collect::<Vec<_>>()) {
            Shape::Template | Shape::Seconds => Ok(timestamptz()),
            Shape::Inner => self.inner.return_type(arg_types),
        }
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
    /// Follows the session's time zone, as DataFusion's function does: rebuilt with it.
    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let inner = match self.inner.inner().with_updated_config(config) {
            Some(inner) => Arc::new(inner),
            None => self.inner.0.clone(),
        };
        let zone = config.execution.time_zone.clone().filter(|zone| !is_utc_zone(zone));
        Some(ScalarUDF::from(Self { inner: Wrapped(inner), zone }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<&DataType> = args.arg_fields.iter().map(|f| f.data_type()).collect();
        match shape(&types) {
            Shape::Template => self.template(&args),
            Shape::Seconds => self.seconds(&args),
            Shape::Inner => self.inner.invoke_with_args(args),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::DataFusionError;
    use datafusion::execution::FunctionRegistry;
    use datafusion::functions::datetime::to_timestamp;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::sqlstate::SqlStateError;

    fn inner() -> Arc<ScalarUDF> {
        to_timestamp(&ConfigOptions::default())
    }

    fn udf() -> ScalarUDF {
        ScalarUDF::from(ToTimestamp::new(inner()))
    }

    fn call(f: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.iter().map(ColumnarValue::data_type).collect();
        let arg_fields =
            types.iter().enumerate().map(|(i, t)| Arc::new(Field::new(format!("a{i}"), t.clone(), true))).collect();
        let return_field = Arc::new(Field::new("r", f.return_type(&types)?, true));
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field,
            config_options: Default::default(),
        })
    }

    fn text(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.into())))
    }

    fn micros(value: ColumnarValue, rows: usize) -> Vec<Option<i64>> {
        let array = value.to_array(rows).unwrap();
        assert_eq!(array.data_type(), &timestamptz());
        array.as_primitive::<TimestampMicrosecondType>().iter().collect()
    }

    fn utc(text: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap().and_utc().timestamp_micros()
    }

    fn sqlstate(e: DataFusionError) -> (&'static str, String) {
        let DataFusionError::External(inner) = &e else { panic!("{e:?}") };
        let e = inner.downcast_ref::<SqlStateError>().unwrap();
        (e.code, e.message.clone())
    }

    #[test]
    fn reads_texts_as_postgresql() {
        for (input, template, expected) in [
            ("2025-03-04 17:06:07", "YYYY-MM-DD HH24:MI:SS", "2025-03-04 17:06:07"),
            ("04/03/2025 05:06 PM", "DD/MM/YYYY HH12:MI AM", "2025-03-04 17:06:00"),
            ("2025-03-04T05:06:07.5", "YYYY-MM-DD\"T\"HH24:MI:SS.MS", "2025-03-04 05:06:07.5"),
            ("Mar 4 2025", "Mon DD YYYY", "2025-03-04 00:00:00"),
            ("2026-01-01 00:00:00.000000", "YYYY-MM-DD HH24:MI:SS.US", "2026-01-01 00:00:00"),
        ] {
            let got = call(&udf(), vec![text(input), text(template)], 1).unwrap();
            assert!(matches!(got, ColumnarValue::Scalar(_)));
            assert_eq!(micros(got, 1), [Some(utc(expected))], "{input}");
        }
    }

    #[test]
    fn reads_arrays_with_nulls_and_per_row_templates() {
        let texts: ArrayRef = Arc::new(StringViewArray::from(vec![Some("2025-03-04"), None, Some("04.03.2025")]));
        let templates: ArrayRef =
            Arc::new(StringArray::from(vec![Some("YYYY-MM-DD"), Some("YYYY"), Some("DD.MM.YYYY")]));
        let got = call(&udf(), vec![ColumnarValue::Array(texts.clone()), ColumnarValue::Array(templates)], 3).unwrap();
        assert_eq!(micros(got, 3), [Some(utc("2025-03-04 00:00:00")), None, Some(utc("2025-03-04 00:00:00"))]);
        let got =
            call(&udf(), vec![ColumnarValue::Array(texts), ColumnarValue::Scalar(ScalarValue::Utf8(None))], 3).unwrap();
        assert_eq!(micros(got, 3), [None, None, None]);
        let null = call(&udf(), vec![ColumnarValue::Scalar(ScalarValue::Null), text("YYYY")], 1).unwrap();
        assert_eq!(micros(null, 1), [None]);
    }

    #[test]
    fn converts_seconds_as_postgresql() {
        let seconds: ArrayRef = Arc::new(Float64Array::from(vec![Some(1_741_064_767.5), None, Some(-1.5)]));
        let got = call(&udf(), vec![ColumnarValue::Array(seconds)], 3).unwrap();
        assert_eq!(micros(got, 3), [Some(utc("2025-03-04 05:06:07.5")), None, Some(-1_500_000)]);
        let whole: ArrayRef = Arc::new(Int64Array::from(vec![0, 86_400]));
        assert_eq!(
            micros(call(&udf(), vec![ColumnarValue::Array(whole)], 2).unwrap(), 2),
            [Some(0), Some(86_400_000_000)]
        );
        let nan = call(&udf(), vec![ColumnarValue::Scalar(ScalarValue::Float64(Some(f64::NAN)))], 1).unwrap_err();
        assert_eq!(sqlstate(nan), ("22008", "timestamp cannot be NaN".into()));
        let huge = call(&udf(), vec![ColumnarValue::Scalar(ScalarValue::Float64(Some(1e20)))], 1).unwrap_err();
        assert_eq!(sqlstate(huge).0, "22008");
    }

    #[test]
    fn errors_carry_sqlstates() {
        let bad_month = call(&udf(), vec![text("2025-xx-04"), text("YYYY-MM-DD")], 1).unwrap_err();
        assert_eq!(sqlstate(bad_month), ("22007", r#"invalid value "xx" for "MM""#.into()));
        let month_13 = call(&udf(), vec![text("2025-13-04"), text("YYYY-MM-DD")], 1).unwrap_err();
        assert_eq!(sqlstate(month_13), ("22008", r#"date/time field value out of range: "2025-13-04""#.into()));
        let hour_25 = call(&udf(), vec![text("2025-03-04 25:00"), text("YYYY-MM-DD HH24:MI")], 1).unwrap_err();
        assert_eq!(sqlstate(hour_25).0, "22008");
    }

    /// `%` templates, one argument and several formats are DataFusion's; a `%` template's
    /// answer is converted to this function's type.
    #[test]
    fn other_shapes_are_datafusions() {
        let strftime = vec![text("2025-03-04 17:06:07"), text("%Y-%m-%d %H:%M:%S")];
        let theirs = call(&inner(), strftime.clone(), 1).unwrap().cast_to(&timestamptz(), None).unwrap();
        assert_eq!(micros(call(&udf(), strftime, 1).unwrap(), 1), micros(theirs, 1));
        let texts: ArrayRef = Arc::new(StringArray::from(vec!["2025-03-04 17:06:07", "04/03/2025"]));
        let templates: ArrayRef = Arc::new(StringArray::from(vec!["%Y-%m-%d %H:%M:%S", "DD/MM/YYYY"]));
        let got = call(&udf(), vec![ColumnarValue::Array(texts), ColumnarValue::Array(templates)], 2).unwrap();
        assert_eq!(micros(got, 2), [Some(utc("2025-03-04 17:06:07")), Some(utc("2025-03-04 00:00:00"))]);
        for args in
            [vec![text("2025-03-04T17:06:07Z")], vec![text("2025-03-04 17:06"), text("%Y"), text("%Y-%m-%d %H:%M")]]
        {
            let types: Vec<DataType> = args.iter().map(ColumnarValue::data_type).collect();
            assert_eq!(udf().return_type(&types).unwrap(), inner().return_type(&types).unwrap());
            let ours = call(&udf(), args.clone(), 1).unwrap().to_array(1).unwrap();
            assert_eq!(&ours, &call(&inner(), args, 1).unwrap().to_array(1).unwrap());
        }
    }

    #[tokio::test]
    async fn sql_through_a_session() {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx).unwrap();
        let sql = "SELECT TO_TIMESTAMP('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AS superset,
                          to_timestamp('Mar 4 2025', 'Mon DD YYYY') AS mon,
                          to_timestamp(0) AS epoch,
                          arrow_typeof(to_timestamp('2025', 'YYYY')) AS t";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let expected = [
            "+----------------------+----------------------+----------------------+----------------------+",
            "| superset             | mon                  | epoch                | t                    |",
            "+----------------------+----------------------+----------------------+----------------------+",
            "| 2026-01-01T00:00:00Z | 2025-03-04T00:00:00Z | 1970-01-01T00:00:00Z | Timestamp(µs, \"UTC\") |",
            "+----------------------+----------------------+----------------------+----------------------+",
        ];
        assert_eq!(pretty_format_batches(&batches).unwrap().to_string(), expected.join("\n"));
        // SET TIMEZONE rebuilds the function; the wrapper stays and reads wall times in the
        // zone (PostgreSQL: 2025-03-04 00:00:00+02)
        ctx.sql("SET datafusion.execution.time_zone = '+02:00'").await.unwrap().collect().await.unwrap();
        let f = ctx.udf("to_timestamp").unwrap();
        assert!(f.inner().downcast_ref::<ToTimestamp>().is_some());
        let batches =
            ctx.sql("SELECT to_timestamp('2025-03-04', 'YYYY-MM-DD') AS t").await.unwrap().collect().await.unwrap();
        assert!(pretty_format_batches(&batches).unwrap().to_string().contains("2025-03-03T22:00:00Z"));
    }
}
