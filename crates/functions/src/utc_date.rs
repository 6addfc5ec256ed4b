//! `utc_date(timestamp)`: the UTC calendar date of a UTC timestamp, what
//! `CAST(timestamp AS DATE)` computes for it. The planner writes it in place of that cast (the
//! `UtcDates` rule of the execution crate).
//!
//! Why: arrow's cast of a timestamp with a time zone to a date converts every value to a
//! local date-time through chrono-tz, even in UTC; `CAST(event_time AS DATE)` cost twice
//! reading `event_date` (issue 22). In UTC the date is the floor of the instant divided by a
//! day: one integer division per row.
//!
//! ```sql
//! SELECT utc_date(event_time) AS day, count(DISTINCT user_id) FROM events GROUP BY 1;
//! ```

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Date32Array};
use datafusion::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `utc_date(timestamp)`: the UTC date.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDate {
    signature: Signature,
}

impl Default for UtcDate {
    fn default() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

/// Zone names whose offset is 0 at every instant.
pub fn is_utc_zone(zone: &str) -> bool {
    matches!(zone, "UTC" | "utc" | "Etc/UTC" | "Z" | "+00:00" | "+00" | "+0000" | "GMT" | "Etc/GMT")
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_DATETIME,
        "Returns the UTC calendar date of a timestamp: CAST(timestamp AS DATE) for a UTC timestamp. \
         Northstar's planner writes it in place of that cast, which otherwise converts every value \
         through the time-zone database.",
        "utc_date(timestamp)",
    )
    .with_sql_example(
        r#"```sql
SELECT utc_date(event_time) AS day, count(DISTINCT user_id) AS users FROM events GROUP BY 1 ORDER BY 1;
```"#,
    )
    .with_argument("timestamp", "A timestamp in UTC (or without a time zone, read as UTC).")
    .build()
});

fn unit_per_day(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    }
}

/// Days since 1970-01-01 of a timestamp in `per_day` units, rounding down (before 1970 too).
fn days(value: i64, per_day: i64) -> i32 {
    value.div_euclid(per_day) as i32
}

impl ScalarUDFImpl for UtcDate {
    fn name(&self) -> &str {
        "utc_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Timestamp(_, zone)] if zone.as_deref().is_none_or(is_utc_zone) => Ok(DataType::Date32),
            other => exec_err!("utc_date takes a UTC timestamp, got {other:?}"),
        }
    }

    /// Later instants never have earlier dates: an order on the timestamp is one on the date.
    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        Ok(input[0].sort_properties)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Timestamp(unit, _) = args.arg_fields[0].data_type() else {
            return exec_err!("utc_date takes a UTC timestamp");
        };
        let per_day = unit_per_day(*unit);
        let dates = |array: &dyn Array| -> Date32Array {
            let convert = |v: i64| days(v, per_day);
            match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().unary(convert),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().unary(convert),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().unary(convert),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().unary(convert),
            }
        };
        Ok(match &args.args[0] {
            ColumnarValue::Array(a) => ColumnarValue::Array(Arc::new(dates(a.as_ref()))),
            ColumnarValue::Scalar(s) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&dates(s.to_array()?.as_ref()), 0)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, TimestampMicrosecondArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::Field;

    use super::*;

    /// The same dates as arrow's cast (through chrono-tz), around midnight, before 1970 and
    /// with NULLs.
    #[test]
    fn agrees_with_the_cast_to_date() {
        let values =
            vec![Some(-86_400_000_001), Some(-1), Some(0), Some(86_399_999_999), None, Some(1_740_787_199_123_456)];
        let array: ArrayRef = Arc::new(TimestampMicrosecondArray::from(values.clone()).with_timezone("UTC"));
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(array.clone())],
            arg_fields: vec![Arc::new(Field::new("t", array.data_type().clone(), true))],
            number_rows: values.len(),
            return_field: Arc::new(Field::new("d", DataType::Date32, true)),
            config_options: Default::default(),
        };
        let got = UtcDate::default().invoke_with_args(args).unwrap().to_array(values.len()).unwrap();
        assert_eq!(&got, &cast(&array, &DataType::Date32).unwrap());
    }
}
