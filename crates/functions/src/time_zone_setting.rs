//! PostgreSQL's `TimeZone` setting (`SET TIME ZONE …`, `SET timezone = …`, the start-up
//! parameter) read into the zone Arrow timestamps carry and DataFusion's
//! `datafusion.execution.time_zone` takes, with the text `SHOW TimeZone` answers.
//!
//! The forms PostgreSQL 15 accepts, checked against it (docs/clients.md, "Session time zone"):
//! - a zone name of the tz database, any case: `america/new_york` is shown `America/New_York`;
//! - a number of hours, ISO sign (east of Greenwich positive): `SET TIME ZONE -7` is shown
//!   `<-07>+07`; `INTERVAL '+05:30' HOUR TO MINUTE` likewise;
//! - a POSIX offset, an optional name then hours west of Greenwich: `UTC+5` and `+05:00` are
//!   five hours behind UTC, shown as written;
//! - `LOCAL` and `DEFAULT`: the server's zone, UTC.
//!
//! Abbreviations that are not zone names (`PST`, `Z`) are refused, as PostgreSQL refuses them.
//! Hand-written because no crate reads PostgreSQL's setting syntax; the zone rules themselves
//! are chrono-tz's.

use chrono_tz::TZ_VARIANTS;

/// A session time zone: as `SHOW TimeZone` prints it and as Arrow names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionZone {
    /// The text PostgreSQL shows for the setting.
    pub shown: String,
    /// An Arrow time zone: a tz database name or a fixed `±HH:MM` offset.
    pub arrow: String,
}

/// Reads a `TimeZone` value (quotes already removed, or not); the error is PostgreSQL's message.
pub fn time_zone_setting(value: &str) -> Result<SessionZone, String> {
    let text = value.trim().trim_matches('\'').trim();
    let invalid = || format!("invalid value for parameter \"TimeZone\": \"{text}\"");
    if text.eq_ignore_ascii_case("local") || text.eq_ignore_ascii_case("default") {
        return Ok(SessionZone { shown: "UTC".into(), arrow: "UTC".into() });
    }
    if let Some(zone) = TZ_VARIANTS.iter().find(|z| z.name().eq_ignore_ascii_case(text)) {
        return Ok(SessionZone { shown: zone.name().into(), arrow: zone.name().into() });
    }
    if let Some(seconds) = iso_hours(text).or_else(|| interval(text)) {
        let seconds = seconds.ok_or_else(invalid)?;
        return Ok(SessionZone {
            shown: format!("<{}>{}", offset_text(seconds), offset_text(-seconds)),
            arrow: arrow_offset(seconds),
        });
    }
    let west = posix_offset(text).ok_or_else(invalid)?;
    Ok(SessionZone { shown: text.to_string(), arrow: arrow_offset(-west) })
}

/// `SET TIME ZONE -7`, `5.5`: hours east of Greenwich. `Some(None)` for a number out of range.
fn iso_hours(text: &str) -> Option<Option<i32>> {
    let hours: f64 = text.parse().ok()?;
    Some((hours.is_finite() && hours.abs() < 15.0).then(|| (hours * 3600.0).round() as i32))
}

/// `INTERVAL '+05:30' HOUR TO MINUTE` (the qualifier may be left out): east of Greenwich.
fn interval(text: &str) -> Option<Option<i32>> {
    let rest = text.get(..8).filter(|p| p.eq_ignore_ascii_case("interval"))?;
    let quoted = text[rest.len()..].trim().strip_prefix('\'')?;
    let body = &quoted[..quoted.find('\'')?];
    Some(signed_clock(body).filter(|s| s.abs() < 15 * 3600))
}

/// A POSIX zone without daylight rules: an optional name (letters, or anything in `<…>`), then
/// `[+-]hh[:mm[:ss]]`, hours west of Greenwich.
fn posix_offset(text: &str) -> Option<i32> {
    let offset = if let Some(rest) = text.strip_prefix('<') {
        &rest[rest.find('>')? + 1..]
    } else {
        let name_end = text.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(text.len());
        if name_end > 0 && name_end < 3 {
            return None;
        }
        &text[name_end..]
    };
    signed_clock(offset).filter(|s| s.abs() <= 24 * 3600)
}

/// `[+-]h[h][:mm[:ss]]` as seconds.
fn signed_clock(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let mut parts = digits.split(':');
    let mut seconds = 0;
    for (i, unit) in [3600, 60, 1].into_iter().enumerate() {
        let Some(part) = parts.next() else { break };
        let limit = if i == 0 { 24 } else { 59 };
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i32 = part.parse().ok()?;
        if value > limit {
            return None;
        }
        seconds += value * unit;
    }
    parts.next().is_none().then_some(sign * seconds)
}

/// `+05:30`, `-07`, `+00` as PostgreSQL writes an offset in a zone's name (and `to_char`'s
/// `TZ` for a fixed offset).
pub(crate) fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let (hours, minutes) = (seconds.abs() / 3600, seconds.abs() % 3600 / 60);
    if minutes == 0 {
        format!("{sign}{hours:02}")
    } else {
        format!("{sign}{hours:02}:{minutes:02}")
    }
}

/// `±HH:MM`, east of Greenwich, as Arrow reads a fixed offset (seconds are dropped).
fn arrow_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", seconds.abs() / 3600, seconds.abs() % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(text: &str) -> (String, String) {
        let zone = time_zone_setting(text).unwrap();
        (zone.shown, zone.arrow)
    }

    /// Each `shown` is what PostgreSQL 15 printed for `SHOW TimeZone` after the same SET.
    #[test]
    fn reads_the_forms_postgres_accepts() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(zone("'america/new_york'"), pair("America/New_York", "America/New_York"));
        assert_eq!(zone("Europe/Paris"), pair("Europe/Paris", "Europe/Paris"));
        assert_eq!(zone("utc"), pair("UTC", "UTC"));
        assert_eq!(zone("GMT"), pair("GMT", "GMT"));
        assert_eq!(zone("EST5EDT"), pair("EST5EDT", "EST5EDT"));
        assert_eq!(zone("-7"), pair("<-07>+07", "-07:00"));
        assert_eq!(zone("5.5"), pair("<+05:30>-05:30", "+05:30"));
        assert_eq!(zone("INTERVAL '+03:00' HOUR TO MINUTE"), pair("<+03>-03", "+03:00"));
        assert_eq!(zone("'+05:00'"), pair("+05:00", "-05:00"));
        assert_eq!(zone("UTC+5"), pair("UTC+5", "-05:00"));
        // What SHOW printed reads back as the same zone.
        assert_eq!(zone("<-07>+07"), pair("<-07>+07", "-07:00"));
        assert_eq!(zone("LOCAL"), pair("UTC", "UTC"));
        assert_eq!(zone("default"), pair("UTC", "UTC"));
    }

    #[test]
    fn refuses_what_postgres_refuses() {
        for text in ["Mars/Olympus", "PST", "Z", "", "99", "UTC+25", "+5:77", "IST-5:30:00:00"] {
            let error = time_zone_setting(text).unwrap_err();
            assert!(error.contains("invalid value for parameter \"TimeZone\""), "{text}: {error}");
        }
    }
}
