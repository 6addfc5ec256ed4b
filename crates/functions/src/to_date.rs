//! `to_date(text, template)` with PostgreSQL's template patterns (datetime_template.rs), in
//! place of DataFusion's `to_date`, which reads chrono strftime formats.
//!
//! Returns a `Date32`; time fields in the template are read and checked, then dropped, as
//! PostgreSQL does. NULLs give NULL; the template may differ per row.
//!
//! DataFusion's function (`inner`) keeps every other shape: one argument, several formats,
//! numbers and timestamps; and a template containing `%`, a chrono format as before.
//!
//! ```sql
//! SELECT to_date('4 March 2025', 'DD Month YYYY');
//! ```

use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Date32Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

use crate::template_args::{
    answer, constant_strftime, is_text, row_arguments, rows, Delegate, Pattern, Patterns, Texts,
};
use crate::wrapped::Wrapped;

/// `to_date` with PostgreSQL's template patterns, wrapping DataFusion's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToDate {
    inner: Wrapped,
}

impl ToDate {
    /// Wraps DataFusion's `to_date` (`inner`).
    pub fn new(inner: Arc<ScalarUDF>) -> Self {
        Self { inner: Wrapped(inner) }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_DATETIME,
        "Reads a date from text with a PostgreSQL template (YYYY, MM, DD, Month, Mon, DDD, IYYY, IW, \
         ID, ...), as PostgreSQL's to_date. A template containing % is a chrono strftime format, and \
         one argument or several formats are DataFusion's to_date unchanged.",
        "to_date(text, template)",
    )
    .with_sql_example(
        r#"```sql
> SELECT to_date('2025-03-04', 'YYYY-MM-DD') AS a, to_date('20250304', 'YYYYMMDD') AS b,
         to_date('4 March 2025', 'DD Month YYYY') AS c;
+------------+------------+------------+
| a          | b          | c          |
+------------+------------+------------+
| 2025-03-04 | 2025-03-04 | 2025-03-04 |
+------------+------------+------------+
```"#,
    )
    .with_argument("text", "The text to read.")
    .with_argument("template", "A PostgreSQL date/time template, or a chrono format containing %.")
    .build()
});

/// The calls read here: a text and a text template.
fn reads(types: &[&DataType]) -> bool {
    matches!(types, [text, template] if is_text(text) && is_text(template))
}

impl ScalarUDFImpl for ToDate {
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
        if !reads(&types) || constant_strftime(&args.args[1])? {
            return self.inner.invoke_with_args(args);
        }
        let delegate = Delegate::new(&self.inner, &args)?;
        let (rows, scalar) = rows(&args.args, args.number_rows);
        let values = args.args[0].to_array(rows)?;
        let texts = Texts::new(values.as_ref())?;
        let mut patterns = Patterns::new(&args.args[1])?;
        let mut days = Vec::with_capacity(rows);
        for row in 0..rows {
            let Some(text) = texts.get(row) else {
                days.push(None);
                continue;
            };
            days.push(match patterns.get(row) {
                Pattern::Null => None,
                Pattern::Template(template) => Some(template.parse_date(text)?),
                Pattern::Strftime => match delegate.row(row_arguments(&values, &args.args[1], row)?)? {
                    ScalarValue::Date32(v) => v,
                    _ => None,
                },
            });
        }
        answer(Arc::new(Date32Array::from(days)), scalar)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
    use datafusion::arrow::datatypes::{Date32Type, Field};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::DataFusionError;
    use datafusion::functions::datetime::to_date;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::sqlstate::SqlStateError;

    fn udf() -> ScalarUDF {
        ScalarUDF::from(ToDate::new(to_date()))
    }

    fn call(f: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> Result<ColumnarValue> {
        let arg_fields =
            args.iter().enumerate().map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true))).collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", DataType::Date32, true)),
            config_options: Default::default(),
        })
    }

    fn text(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.into())))
    }

    fn days(value: ColumnarValue, rows: usize) -> Vec<Option<i32>> {
        value.to_array(rows).unwrap().as_primitive::<Date32Type>().iter().collect()
    }

    /// 2025-03-04, in days since 1970.
    const MARCH_4: i32 = 20_151;

    #[test]
    fn reads_as_postgresql() {
        for (input, template) in
            [("2025-03-04", "YYYY-MM-DD"), ("20250304", "YYYYMMDD"), ("4 March 2025", "DD Month YYYY")]
        {
            let got = call(&udf(), vec![text(input), text(template)], 1).unwrap();
            assert!(matches!(got, ColumnarValue::Scalar(_)));
            assert_eq!(days(got, 1), [Some(MARCH_4)], "{input}");
        }
    }

    #[test]
    fn reads_arrays_with_nulls_and_per_row_templates() {
        let texts: ArrayRef =
            Arc::new(StringArray::from(vec![Some("2025-03-04"), None, Some("03/04/2025"), Some("x")]));
        let templates: ArrayRef =
            Arc::new(StringArray::from(vec![Some("YYYY-MM-DD"), Some("YYYY"), Some("MM/DD/YYYY"), None]));
        let got = call(&udf(), vec![ColumnarValue::Array(texts), ColumnarValue::Array(templates)], 4).unwrap();
        assert_eq!(days(got, 4), [Some(MARCH_4), None, Some(MARCH_4), None]);
    }

    #[test]
    fn errors_carry_sqlstates() {
        let sqlstate = |e: DataFusionError| {
            let DataFusionError::External(inner) = &e else { panic!("{e:?}") };
            let e = inner.downcast_ref::<SqlStateError>().unwrap();
            (e.code, e.message.clone())
        };
        let bad = call(&udf(), vec![text("2025-xx-04"), text("YYYY-MM-DD")], 1).unwrap_err();
        assert_eq!(sqlstate(bad), ("22007", r#"invalid value "xx" for "MM""#.into()));
        let feb_30 = call(&udf(), vec![text("2025-02-30"), text("YYYY-MM-DD")], 1).unwrap_err();
        assert_eq!(sqlstate(feb_30), ("22008", r#"date/time field value out of range: "2025-02-30""#.into()));
        let day_32 = call(&udf(), vec![text("2025-01-32"), text("YYYY-MM-DD")], 1).unwrap_err();
        assert_eq!(sqlstate(day_32).0, "22008");
    }

    #[test]
    fn other_shapes_are_datafusions() {
        for args in [
            vec![text("2025-03-04"), text("%Y-%m-%d")],
            vec![text("2025-03-04")],
            vec![text("04.03.2025"), text("%Y"), text("%d.%m.%Y")],
        ] {
            let ours = call(&udf(), args.clone(), 1).unwrap().to_array(1).unwrap();
            let theirs = call(&to_date(), args, 1).unwrap().to_array(1).unwrap();
            assert_eq!(&ours, &theirs);
            assert_eq!(ours.as_primitive::<Date32Type>().value(0), MARCH_4);
        }
        let texts: ArrayRef = Arc::new(StringArray::from(vec!["2025-03-04", "04.03.2025"]));
        let templates: ArrayRef = Arc::new(StringArray::from(vec!["%Y-%m-%d", "DD.MM.YYYY"]));
        let got = call(&udf(), vec![ColumnarValue::Array(texts), ColumnarValue::Array(templates)], 2).unwrap();
        assert_eq!(days(got, 2), [Some(MARCH_4), Some(MARCH_4)]);
    }

    #[tokio::test]
    async fn sql_through_a_session() {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx).unwrap();
        let sql = "SELECT to_date('2025-03-04', 'YYYY-MM-DD') AS a, to_date('20250304', 'YYYYMMDD') AS b,
                          to_date('4 March 2025', 'DD Month YYYY') AS c, to_date('2025-03-04') AS d";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let expected = [
            "+------------+------------+------------+------------+",
            "| a          | b          | c          | d          |",
            "+------------+------------+------------+------------+",
            "| 2025-03-04 | 2025-03-04 | 2025-03-04 | 2025-03-04 |",
            "+------------+------------+------------+------------+",
        ];
        assert_eq!(pretty_format_batches(&batches).unwrap().to_string(), expected.join("\n"));
        let error = match ctx.sql("SELECT to_date('2025-13-01', 'YYYY-MM-DD')").await {
            Ok(frame) => frame.collect().await.unwrap_err(),
            Err(e) => e,
        };
        let found = crate::sqlstate::find_sql_state(&error).unwrap();
        assert_eq!(found.code, "22008");
    }
}
