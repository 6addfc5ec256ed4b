//! Errors as PostgreSQL reports them: an SQLSTATE code clients can act on (psycopg raises
//! `UndefinedTable` for 42P01, pgjdbc exposes `getSQLState()`), and a message naming the problem.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use northstar_functions::sqlstate::find_sql_state;
use pgwire::error::{ErrorInfo, PgWireError};

pub const SYNTAX_ERROR: &str = "42601";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const UNDEFINED_FUNCTION: &str = "42883";
pub const UNDEFINED_OBJECT: &str = "42704";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const QUERY_CANCELED: &str = "57014";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const DATA_EXCEPTION: &str = "22000";
pub const DIVISION_BY_ZERO: &str = "22012";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const INVALID_DATETIME_FORMAT: &str = "22007";
pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
pub const NOT_NULL_VIOLATION: &str = "23502";
pub const BAD_COPY_FORMAT: &str = "22P04";
pub const OUT_OF_MEMORY: &str = "53200";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const INVALID_PASSWORD: &str = "28P01";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const INTERNAL_ERROR: &str = "XX000";

/// An `ERROR` with a code and message: ends the statement, keeps the connection.
pub fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message.into())))
}

/// A `FATAL` error: the server closes the connection after sending it.
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message.into())))
}

/// A failure of the server itself (storage, temporary files): XX000.
pub fn internal(e: impl std::fmt::Display) -> PgWireError {
    error(INTERNAL_ERROR, e.to_string())
}

pub fn canceled(reason: &str) -> PgWireError {
    error(QUERY_CANCELED, format!("canceling statement due to {reason}"))
}

pub fn read_only(what: &str) -> PgWireError {
    error(
        INSUFFICIENT_PRIVILEGE,
        format!("permission denied: {what} needs a role that may write; this user is read-only"),
    )
}

/// Maps a DataFusion error to its SQLSTATE. DataFusion has no error codes, so the class comes
/// from the error variant and, for planning errors, from the wording DataFusion 55 uses; the
/// fallback is XX000 (internal error), which clients treat as a server-side failure.
pub fn from_datafusion(e: DataFusionError) -> PgWireError {
    let code = sqlstate_of(&e);
    let message = clean_message(&e);
    error(code, message)
}

fn sqlstate_of(e: &DataFusionError) -> &'static str {
    if let Some(carried) = find_sql_state(e) {
        return carried.code;
    }
    match e {
        DataFusionError::SQL(..) => SYNTAX_ERROR,
        DataFusionError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
            _ => "42P10",
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => sqlstate_of(inner),
        DataFusionError::Shared(inner) => sqlstate_of(inner),
        DataFusionError::External(inner) => match inner.downcast_ref::<DataFusionError>() {
            Some(df) => sqlstate_of(df),
            None => INTERNAL_ERROR,
        },
        // Several errors of one statement (each unknown column): the first decides, as
        // PostgreSQL reports the first it meets.
        DataFusionError::Collection(errors) => errors.first().map_or(INTERNAL_ERROR, sqlstate_of),
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            ArrowError::DivideByZero => DIVISION_BY_ZERO,
            ArrowError::ArithmeticOverflow(_) => NUMERIC_VALUE_OUT_OF_RANGE,
            ArrowError::CastError(message) | ArrowError::ParseError(message) => cast_sqlstate(message),
            _ => DATA_EXCEPTION,
        },
        DataFusionError::Plan(message) => plan_sqlstate(message),
        // `SET datafusion.<unknown>`: PostgreSQL's "unrecognized configuration parameter".
        DataFusionError::Configuration(message) if message.contains("not found") => UNDEFINED_OBJECT,
        DataFusionError::Configuration(_) => INVALID_PARAMETER_VALUE,
        DataFusionError::Execution(message) if message.contains("Cancelled") => QUERY_CANCELED,
        DataFusionError::Execution(_) => DATA_EXCEPTION,
        _ => INTERNAL_ERROR,
    }
}

/// A text that does not convert: PostgreSQL's "invalid input syntax" (22P02 for numbers and
/// booleans, 22007 for dates and times), or 22008 for a date in the right shape out of range
/// (`'2025-13-45'`).
fn cast_sqlstate(message: &str) -> &'static str {
    let temporal = ["Date", "Timestamp", "Time"].iter().any(|t| message.contains(&format!("to value of {t}")));
    let quoted = message.split('\'').nth(1).unwrap_or("");
    if !message.starts_with("Cannot cast string") {
        DATA_EXCEPTION
    } else if !temporal {
        INVALID_TEXT_REPRESENTATION
    } else if !quoted.is_empty() && quoted.chars().all(|c| c.is_ascii_digit() || "-:. T".contains(c)) {
        DATETIME_FIELD_OVERFLOW
    } else {
        INVALID_DATETIME_FORMAT
    }
}

/// PostgreSQL's words for a text that does not convert, which clients show and match:
/// `invalid input syntax for type integer: "x"`.
fn cast_message(e: &DataFusionError) -> Option<String> {
    let DataFusionError::ArrowError(inner, _) = e.find_root() else { return None };
    let ArrowError::CastError(message) = inner.as_ref() else { return None };
    let rest = message.strip_prefix("Cannot cast string '")?;
    let (value, arrow_type) = rest.split_once("' to value of ")?;
    let arrow_type = arrow_type.trim_end_matches(" type");
    let pg_type = match arrow_type.split('(').next().unwrap_or(arrow_type) {
        "Int8" | "Int16" | "UInt8" => "smallint",
        "Int32" | "UInt16" => "integer",
        "Int64" | "UInt32" | "UInt64" => "bigint",
        "Float16" | "Float32" => "real",
        "Float64" => "double precision",
        "Decimal128" | "Decimal256" => "numeric",
        "Boolean" => "boolean",
        "Date32" | "Date64" => "date",
        t if t.starts_with("Timestamp") => "timestamp",
        _ => arrow_type,
    };
    Some(match cast_sqlstate(message) {
        DATETIME_FIELD_OVERFLOW => format!("date/time field value out of range: \"{value}\""),
        _ => format!("invalid input syntax for type {pg_type}: \"{value}\""),
    })
}

fn plan_sqlstate(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.contains("table") && lower.contains("not found") {
        UNDEFINED_TABLE
    } else if lower.contains("invalid function")
        || lower.contains("unknown function")
        || lower.contains("no function matches")
    {
        UNDEFINED_FUNCTION
    } else if lower.contains("failed to coerce") || lower.contains("function") && lower.contains("expect") {
        // Right function, wrong arguments: PostgreSQL says 42883 too ("function f(text) does not exist").
        UNDEFINED_FUNCTION
    } else if lower.contains("no field named") {
        UNDEFINED_COLUMN
    } else {
        "42000"
    }
}

/// DataFusion prefixes messages with the variant ("Error during planning: …"); PostgreSQL
/// clients show the message after "ERROR:", so the prefix is noise.
fn clean_message(e: &DataFusionError) -> String {
    if sqlstate_of(e) == DIVISION_BY_ZERO {
        return "division by zero".into(); // PostgreSQL's words; clients match on them
    }
    if let Some(carried) = find_sql_state(e) {
        return carried.message.clone();
    }
    if let Some(message) = cast_message(e) {
        return message;
    }
    let text = e.to_string();
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "SQL error: ",
        "This feature is not implemented: ",
        "Schema error: ",
        "Arrow error: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn code_of(sql: &str) -> String {
        let ctx = SessionContext::new();
        let e = match ctx.sql(sql).await {
            Err(e) => e,
            Ok(df) => df.collect().await.unwrap_err(),
        };
        match from_datafusion(e) {
            PgWireError::UserError(info) => info.code,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn planning_errors_get_postgres_codes() {
        assert_eq!(code_of("SELEC 1").await, SYNTAX_ERROR);
        assert_eq!(code_of("SELECT * FROM nowhere").await, UNDEFINED_TABLE);
        assert_eq!(code_of("SELECT no_such_function(1)").await, UNDEFINED_FUNCTION);
        assert_eq!(code_of("SELECT nope FROM (SELECT 1 AS a)").await, UNDEFINED_COLUMN);
        // No FROM: DataFusion wraps the error in a diagnostic; in a window, one per mention.
        assert_eq!(code_of("SELECT user_id").await, UNDEFINED_COLUMN);
        assert_eq!(code_of("SELECT user_id, count(*) OVER (PARTITION BY user_id)").await, UNDEFINED_COLUMN);
        assert_eq!(code_of("SELECT 1 / 0").await, DIVISION_BY_ZERO);
        assert_eq!(code_of("SET datafusion.execution.time_zonenull = 'x'").await, UNDEFINED_OBJECT);
    }
}
