//! `utc_midnight(date [, unit])`: the instant a date starts in UTC, or the start of its week
//! (Monday), month, quarter or year, as a UTC `timestamptz` in microseconds (the event time's
//! type). The planner writes `date_trunc('week', event_time)` of the events table as
//! `utc_midnight(event_date, 'week')` (the `DatesFromEventDate` rule of the execution crate).
//!
//! Why: `date_trunc` truncates each row's time through chrono (14 % of a weekly active users
//! query), and `CAST(date AS TIMESTAMPTZ)` converts each value through chrono-tz as a local
//! time, even in UTC. `event_date` is a partition column, the same value over a whole file's
//! rows, so the start of its period is computed once per run of equal dates, and the midnight
//! is one multiplication.
//!
//! ```sql
//! SELECT utc_midnight(event_date, 'month') AS month, count(*) FROM events GROUP BY 1;
//! ```

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Date32Type, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::periods::Period;

/// `utc_midnight(date [, unit])`: the first instant in UTC of the date, or of its period.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcMidnight {
    signature: Signature,
}

impl Default for UtcMidnight {
    fn default() -> Self {
        let with_unit = |text: DataType| TypeSignature::Exact(vec![DataType::Date32, text]);
        let signatures = vec![
            TypeSignature::Exact(vec![DataType::Date32]),
            with_unit(DataType::Utf8),
            with_unit(DataType::Utf8View),
        ];
        Self { signature: Signature::one_of(signatures, Volatility::Immutable) }
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The period whose start is wanted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalendarUnit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl CalendarUnit {
    /// `date_trunc`'s name of the unit (any case), when it is a day or longer.
    pub fn parse(unit: &str) -> Option<CalendarUnit> {
        Some(match unit.to_ascii_lowercase().as_str() {
            "day" => CalendarUnit::Day,
            "week" => CalendarUnit::Week,
            "month" => CalendarUnit::Month,
            "quarter" => CalendarUnit::Quarter,
            "year" => CalendarUnit::Year,
            _ => return None,
        })
    }

    /// The first day (days since 1970-01-01) of the period holding day `date`, numbered on
    /// the calendar `Period` numbers the behavioural functions' periods with: a quarter or
    /// year is the month whose number (year × 12 + month − 1) is a multiple of 3 or 12.
    fn start(self, date: i32) -> i32 {
        let day = i64::from(date);
        let months_per_period = match self {
            CalendarUnit::Day => return date,
            CalendarUnit::Week => return Period::Week.first_day(Period::Week.of_day(day)),
            CalendarUnit::Month => 1,
            CalendarUnit::Quarter => 3,
            CalendarUnit::Year => 12,
        };
        let month = Period::Month.of_day(day);
        Period::Month.first_day(month - month.rem_euclid(months_per_period))
    }
}

/// The result type: the event time's.
fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_DATETIME,
        "Returns the instant a date starts in UTC (its midnight), or with a unit the start of its \
         week (Monday), month, quarter or year, as a UTC timestamp: date_trunc(unit, CAST(date AS \
         TIMESTAMPTZ)) in a UTC session, without the time-zone database.",
        "utc_midnight(date [, unit])",
    )
    .with_sql_example(
        r#"```sql
SELECT utc_midnight(event_date, 'month') AS month, count(*) AS events FROM events GROUP BY 1 ORDER BY 1;
```"#,
    )
    .with_argument("date", "A date.")
    .with_argument("unit", "Optional constant text: 'day' (the default), 'week', 'month', 'quarter' or 'year'.")
    .build()
});

impl ScalarUDFImpl for UtcMidnight {
    fn name(&self) -> &str {
        "utc_midnight"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(utc_micros())
    }

    /// Later dates start later.
    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        Ok(input[0].sort_properties)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let period = match args.args.get(1) {
            None => CalendarUnit::Day,
            Some(ColumnarValue::Scalar(unit)) => match unit.try_as_str().flatten().and_then(CalendarUnit::parse) {
                Some(period) => period,
                None => {
                    return plan_err!(
                        "utc_midnight: the unit must be 'day', 'week', 'month', 'quarter' or 'year', got {unit}"
                    )
                }
            },
            Some(ColumnarValue::Array(_)) => return plan_err!("utc_midnight: the unit must be a constant"),
        };
        let midnights = |array: &dyn Array| -> Result<TimestampMicrosecondArray> {
            let Some(dates) = array.as_primitive_opt::<Date32Type>() else {
                return exec_err!("utc_midnight takes a date, got {}", array.data_type());
            };
            // Runs of equal dates (a partition column's) compute their period once.
            let last = std::cell::Cell::new((i32::MIN, 0_i64));
            let starts = dates.unary::<_, datafusion::arrow::datatypes::TimestampMicrosecondType>(|date| {
                if date != last.get().0 {
                    last.set((date, period.start(date) as i64 * MICROS_PER_DAY));
                }
                last.get().1
            });
            Ok(starts.with_timezone("UTC"))
        };
        Ok(match &args.args[0] {
            ColumnarValue::Array(a) => ColumnarValue::Array(Arc::new(midnights(a.as_ref())?)),
            ColumnarValue::Scalar(s) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&midnights(s.to_array()?.as_ref())?, 0)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Date32Array};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::Field;

    use super::*;

    /// The same instants as DataFusion's `date_trunc` of arrow's cast (through chrono-tz), for
    /// every unit, over days before and after 1970 and with NULLs.
    #[test]
    fn agrees_with_date_trunc_of_the_cast_to_a_utc_timestamp() {
        let mut values: Vec<Option<i32>> = (-800..800).map(|d| Some(d * 37 % 30_000)).collect();
        values.extend([Some(-100_000), Some(-1), Some(0), None, Some(20_093), Some(100_000)]);
        let array: ArrayRef = Arc::new(Date32Array::from(values.clone()));
        let midnights = cast(&array, &utc_micros()).unwrap();
        let date_trunc = datafusion::functions::datetime::date_trunc();
        for unit in ["day", "week", "month", "quarter", "year"] {
            let field = |name: &str, t: DataType| Arc::new(Field::new(name, t, true));
            let unit_value = ColumnarValue::Scalar(ScalarValue::Utf8(Some(unit.to_string())));
            let args = ScalarFunctionArgs {
                args: vec![ColumnarValue::Array(array.clone()), unit_value.clone()],
                arg_fields: vec![field("d", DataType::Date32), field("u", DataType::Utf8)],
                number_rows: values.len(),
                return_field: field("t", utc_micros()),
                config_options: Default::default(),
            };
            let got = UtcMidnight::default().invoke_with_args(args).unwrap().to_array(values.len()).unwrap();
            let expected = date_trunc
                .invoke_with_args(ScalarFunctionArgs {
                    args: vec![unit_value, ColumnarValue::Array(midnights.clone())],
                    arg_fields: vec![field("u", DataType::Utf8), field("t", utc_micros())],
                    number_rows: values.len(),
                    return_field: field("t", utc_micros()),
                    config_options: Default::default(),
                })
                .unwrap()
                .to_array(values.len())
                .unwrap();
            assert_eq!(&got, &expected, "{unit}");
        }
    }
}
