//! Errors that carry a PostgreSQL SQLSTATE, so that the server can report the code a
//! PostgreSQL client expects (`22007` for a date that does not match its template, …).
//!
//! A function raises one with [`sql_error`]: a `DataFusionError::External` around a
//! [`SqlStateError`]. DataFusion may wrap it further (context, arrow errors); [`find_sql_state`]
//! walks the error's sources to it.

use std::error::Error;
use std::fmt;

use datafusion::common::DataFusionError;

/// `invalid_datetime_format`: input that does not match its template.
pub const INVALID_DATETIME_FORMAT: &str = "22007";
/// `datetime_field_overflow` (and `datetime_value_out_of_range`, the same code): a field or a
/// value out of range.
pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
/// `invalid_time_zone_displacement_value`.
pub const INVALID_TIME_ZONE_DISPLACEMENT_VALUE: &str = "22009";
/// `feature_not_supported`.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// An error with its SQLSTATE; displayed as its message alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStateError {
    /// The five-character SQLSTATE, e.g. `22007`.
    pub code: &'static str,
    /// PostgreSQL's words for the error.
    pub message: String,
}

impl fmt::Display for SqlStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for SqlStateError {}

/// A `DataFusionError::External` around a [`SqlStateError`].
pub fn sql_error(code: &'static str, message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(SqlStateError { code, message: message.into() }))
}

/// The [`SqlStateError`] an error was raised with, however DataFusion wrapped it.
pub fn find_sql_state(error: &DataFusionError) -> Option<&SqlStateError> {
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<SqlStateError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_found_through_wrappers_and_displays_its_message() {
        let error = sql_error(INVALID_DATETIME_FORMAT, r#"invalid value "xx" for "MM""#);
        let DataFusionError::External(inner) = &error else { panic!("{error:?}") };
        assert_eq!(inner.to_string(), r#"invalid value "xx" for "MM""#);
        let wrapped = error.context("while evaluating");
        let found = find_sql_state(&wrapped).unwrap();
        assert_eq!((found.code, found.message.as_str()), ("22007", r#"invalid value "xx" for "MM""#));
        assert!(find_sql_state(&DataFusionError::Plan("x".into())).is_none());
    }
}
