//! Per-connection run-time parameters: what `SET`, `SHOW`, `RESET` and `current_setting()` see.
//!
//! Clients mostly read these (server_version_num, standard_conforming_strings, search_path…)
//! and set a few at connect (extra_float_digits, application_name, DateStyle). Values are kept
//! as text, as PostgreSQL does. `statement_timeout` is the one Northstar acts on; DataFusion's
//! own options (`datafusion.*`) go to the connection's DataFusion session.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

use crate::errors::{error, INVALID_PARAMETER_VALUE, UNDEFINED_OBJECT};
use northstar_functions::time_zone_setting;
use pgwire::error::PgWireError;

/// The PostgreSQL version Northstar answers as: new enough for every client's feature checks.
pub const PG_VERSION: &str = "16.6";
pub const PG_VERSION_NUM: &str = "160006";

/// Parameters PostgreSQL reports to the client (ParameterStatus) whenever they change.
const REPORTED: [&str; 9] = [
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
    "is_superuser",
    "session_authorization",
    "search_path",
];

#[derive(Debug)]
pub struct Settings {
    values: RwLock<BTreeMap<String, (String, String)>>,
}

/// Lower-cased lookup key; the displayed name keeps PostgreSQL's spelling ("DateStyle").
fn key(name: &str) -> String {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    match name.as_str() {
        "transaction isolation level" | "transaction_isolation_level" => "transaction_isolation".into(),
        "time zone" | "time_zone" => "timezone".into(),
        "session authorization" => "session_authorization".into(),
        _ => name,
    }
}

impl Settings {
    pub fn new(user: &str, database: &str, application_name: &str, read_only: bool) -> Self {
        let on_off = |b: bool| if b { "on" } else { "off" };
        let defaults: [(&str, String); 27] = [
            ("server_version", PG_VERSION.into()),
            ("server_version_num", PG_VERSION_NUM.into()),
            ("server_encoding", "UTF8".into()),
            ("client_encoding", "UTF8".into()),
            ("DateStyle", "ISO, MDY".into()),
            ("IntervalStyle", "postgres".into()),
            ("TimeZone", "UTC".into()),
            ("integer_datetimes", "on".into()),
            ("standard_conforming_strings", "on".into()),
            ("search_path", "\"$user\", public".into()),
            ("application_name", application_name.into()),
            ("extra_float_digits", "1".into()),
            ("statement_timeout", "0".into()),
            ("lock_timeout", "0".into()),
            ("idle_in_transaction_session_timeout", "0".into()),
            ("transaction_isolation", "read committed".into()),
            ("default_transaction_isolation", "read committed".into()),
            ("transaction_read_only", on_off(read_only).into()),
            ("default_transaction_read_only", on_off(read_only).into()),
            ("is_superuser", on_off(!read_only).into()),
            ("session_authorization", user.into()),
            ("max_identifier_length", "63".into()),
            ("lc_collate", "C".into()),
            ("lc_ctype", "C".into()),
            ("bytea_output", "hex".into()),
            ("current_database", database.into()),
            ("max_index_keys", "32".into()),
        ];
        let values = defaults.into_iter().map(|(name, value)| (key(name), (name.to_string(), value))).collect();
        Settings { values: RwLock::new(values) }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.values.read().unwrap().get(&key(name)).map(|(_, v)| v.clone())
    }

    /// Every parameter, sorted, as `SHOW ALL` lists them.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values.read().unwrap().values().cloned().collect()
    }

    /// Sets a parameter; returns the (name, value) to report to the client, if it is one
    /// PostgreSQL reports.
    pub fn set(&self, name: &str, value: &str) -> Result<Option<(String, String)>, PgWireError> {
        let k = key(name);
        let mut value = value.trim().trim_matches('\'').to_string();
        match k.as_str() {
            // Shown as PostgreSQL shows it (`america/new_york` as `America/New_York`); the
            // session gives DataFusion the zone (time_zone.rs).
            "timezone" => {
                value = time_zone_setting(&value).map_err(|e| error(INVALID_PARAMETER_VALUE, e))?.shown;
            }
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
                parse_duration_ms(&value).map_err(|e| {
                    error(INVALID_PARAMETER_VALUE, format!("invalid value for parameter \"{name}\": {e}"))
                })?;
            }
            "server_version"
            | "server_version_num"
            | "server_encoding"
            | "integer_datetimes"
            | "max_identifier_length"
            | "is_superuser" => {
                return Err(error("55P02", format!("parameter \"{name}\" cannot be changed")));
            }
            "transaction_read_only" | "default_transaction_read_only"
                if value.eq_ignore_ascii_case("off") && self.get(&k).as_deref() == Some("on") =>
            {
                return Err(error("25006", "this user is read-only: transaction_read_only cannot be turned off"));
            }
            "client_encoding"
                if !matches!(value.to_ascii_uppercase().replace('-', "").as_str(), "UTF8" | "UNICODE") =>
            {
                return Err(error(
                    INVALID_PARAMETER_VALUE,
                    format!("client encoding \"{value}\" is not supported: Northstar speaks UTF8 only"),
                ));
            }
            _ => {}
        }
        let mut values = self.values.write().unwrap();
        let display = values.get(&k).map(|(n, _)| n.clone()).unwrap_or_else(|| k.clone());
        values.insert(k, (display.clone(), value.clone()));
        Ok(REPORTED.contains(&display.as_str()).then_some((display, value)))
    }

    pub fn reset(&self, name: &str, fresh: &Settings) -> Result<Option<(String, String)>, PgWireError> {
        match fresh.get(name) {
            Some(default) => self.set(name, &default),
            None => {
                self.values.write().unwrap().remove(&key(name));
                Ok(None)
            }
        }
    }

    pub fn show(&self, name: &str) -> Result<String, PgWireError> {
        self.get(name)
            .ok_or_else(|| error(UNDEFINED_OBJECT, format!("unrecognized configuration parameter \"{name}\"")))
    }

    pub fn statement_timeout(&self) -> Option<Duration> {
        let ms = parse_duration_ms(&self.get("statement_timeout").unwrap_or_default()).unwrap_or(0);
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// PostgreSQL's time units for timeouts: a bare number is milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_matches('\'').trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("'{text}' is not a duration (e.g. 5000, '5s', '2min')"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => return Err(format!("unknown unit '{other}': valid units are us, ms, s, min, h, d")),
    };
    Ok((number * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_use_postgres_units() {
        assert_eq!(parse_duration_ms("250").unwrap(), 250);
        assert_eq!(parse_duration_ms("'2s'").unwrap(), 2000);
        assert_eq!(parse_duration_ms("1min").unwrap(), 60_000);
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn set_reports_client_visible_parameters_only() {
        let s = Settings::new("u", "northstar", "", false);
        assert_eq!(s.set("application_name", "'psql'").unwrap(), Some(("application_name".into(), "psql".into())));
        assert_eq!(s.set("extra_float_digits", "3").unwrap(), None);
        assert_eq!(s.show("TRANSACTION ISOLATION LEVEL").unwrap(), "read committed");
        assert_eq!(s.get("datestyle").unwrap(), "ISO, MDY");
        assert!(s.set("statement_timeout", "'soon'").is_err());
        assert!(s.show("no_such_thing").is_err());
    }

    #[test]
    fn time_zones_are_checked_and_shown_as_postgres_shows_them() {
        let s = Settings::new("u", "northstar", "", false);
        assert_eq!(
            s.set("TIME ZONE", "'america/new_york'").unwrap(),
            Some(("TimeZone".into(), "America/New_York".into()))
        );
        assert_eq!(s.show("timezone").unwrap(), "America/New_York");
        let error = s.set("TimeZone", "'Mars/Olympus'").unwrap_err().to_string();
        assert!(error.contains("invalid value for parameter \"TimeZone\": \"Mars/Olympus\""), "{error}");
        assert_eq!(s.show("timezone").unwrap(), "America/New_York", "a refused value changes nothing");
    }
}
