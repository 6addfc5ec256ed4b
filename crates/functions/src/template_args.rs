//! The arguments of `to_char`, `to_timestamp` and `to_date` with a PostgreSQL template
//! (datetime_template.rs): texts of any string type, the pattern tokenized once per batch when
//! it is a constant (per distinct run of values when it is a column), and DataFusion's own
//! function for the patterns that are chrono strftime formats (they contain `%`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, LargeStringArray, StringArray, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};

use crate::datetime_template::Template;

/// A text argument type (NULL included: `to_date(NULL, 'YYYY')`).
pub(crate) fn is_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

/// A chrono strftime format, DataFusion's former meaning of the pattern: left to its function.
pub(crate) fn is_strftime(pattern: &str) -> bool {
    pattern.contains('%')
}

/// The text of a scalar of a text type.
pub(crate) fn scalar_text(value: &ScalarValue) -> Result<Option<&str>> {
    match value {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => Ok(v.as_deref()),
        ScalarValue::Null => Ok(None),
        other => exec_err!("expected a text, got {}", other.data_type()),
    }
}

/// The values of a text array of any string type.
pub(crate) enum Texts<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Nulls,
}

impl<'a> Texts<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Utf8 => Texts::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Texts::Large(array.as_string::<i64>()),
            DataType::Utf8View => Texts::View(array.as_string_view()),
            DataType::Null => Texts::Nulls,
            other => return exec_err!("expected a text, got {other}"),
        })
    }

    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Texts::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Texts::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Texts::View(a) => a.is_valid(row).then(|| a.value(row)),
            Texts::Nulls => None,
        }
    }
}

/// A row's pattern.
pub(crate) enum Pattern<'t> {
    Null,
    Template(&'t Template),
    /// A `%` pattern: computed by DataFusion's function.
    Strftime,
}

/// The pattern argument, tokenized once when it is a constant.
pub(crate) enum Patterns<'a> {
    Constant(Option<Template>),
    Column { texts: Texts<'a>, last: Option<(&'a str, Template)> },
}

impl<'a> Patterns<'a> {
    /// A constant pattern must not be a `%` pattern (the whole call is DataFusion's then).
    pub(crate) fn new(pattern: &'a ColumnarValue) -> Result<Self> {
        Ok(match pattern {
            ColumnarValue::Scalar(s) => Patterns::Constant(scalar_text(s)?.map(Template::new)),
            ColumnarValue::Array(a) => Patterns::Column { texts: Texts::new(a.as_ref())?, last: None },
        })
    }

    pub(crate) fn get(&mut self, row: usize) -> Pattern<'_> {
        match self {
            Patterns::Constant(None) => Pattern::Null,
            Patterns::Constant(Some(template)) => Pattern::Template(template),
            Patterns::Column { texts, last } => {
                let Some(text) = texts.get(row) else { return Pattern::Null };
                if is_strftime(text) {
                    return Pattern::Strftime;
                }
                if last.as_ref().is_none_or(|(previous, _)| *previous != text) {
                    *last = Some((text, Template::new(text)));
                }
                match last {
                    Some((_, template)) => Pattern::Template(template),
                    None => Pattern::Null,
                }
            }
        }
    }
}

/// Whether the pattern is a constant `%` pattern: the whole call goes to DataFusion's function.
pub(crate) fn constant_strftime(pattern: &ColumnarValue) -> Result<bool> {
    Ok(match pattern {
        ColumnarValue::Scalar(s) => scalar_text(s)?.is_some_and(is_strftime),
        ColumnarValue::Array(_) => false,
    })
}

/// Calls of DataFusion's own function (`inner`) with the arguments of a call.
pub(crate) struct Delegate<'a> {
    inner: &'a ScalarUDF,
    args: &'a ScalarFunctionArgs,
    return_field: FieldRef,
}

impl<'a> Delegate<'a> {
    pub(crate) fn new(inner: &'a ScalarUDF, args: &'a ScalarFunctionArgs) -> Result<Self> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let return_field = Arc::new(Field::new(inner.name(), inner.return_type(&types)?, true));
        Ok(Self { inner, args, return_field })
    }

    /// The whole call.
    pub(crate) fn all(&self) -> Result<ColumnarValue> {
        self.call(self.args.args.clone(), self.args.number_rows)
    }

    /// One row, from its argument values.
    pub(crate) fn row(&self, values: Vec<ScalarValue>) -> Result<ScalarValue> {
        match self.call(values.into_iter().map(ColumnarValue::Scalar).collect(), 1)? {
            ColumnarValue::Scalar(s) => Ok(s),
            ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
        }
    }

    fn call(&self, args: Vec<ColumnarValue>, number_rows: usize) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields: self.args.arg_fields.clone(),
            number_rows,
            return_field: Arc::clone(&self.return_field),
            config_options: Arc::clone(&self.args.config_options),
        })
    }
}

/// The rows to compute, and whether every argument is a scalar (the answer is one then,
/// computed on one row).
pub(crate) fn rows(args: &[ColumnarValue], number_rows: usize) -> (usize, bool) {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    (if scalar { 1 } else { number_rows }, scalar)
}

/// A row's value and pattern, for DataFusion's function.
pub(crate) fn row_arguments(values: &ArrayRef, pattern: &ColumnarValue, row: usize) -> Result<Vec<ScalarValue>> {
    let pattern = match pattern {
        ColumnarValue::Scalar(s) => s.clone(),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(a, row)?,
    };
    Ok(vec![ScalarValue::try_from_array(values, row)?, pattern])
}

/// The answer array as the call's value: a scalar when every argument was one.
pub(crate) fn answer(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
    } else {
        ColumnarValue::Array(array)
    })
}
