//! PostgreSQL's date/time template patterns (PostgreSQL 15, "Data Type Formatting Functions",
//! tables 9.26 and 9.27): the language of `to_char(timestamp, 'YYYY-MM-DD HH24:MI:SS')`,
//! `to_timestamp(text, template)` and `to_date(text, template)`, which PostgreSQL clients send
//! (Superset's time filters, BI tools).
//!
//! Hand-written because no crate implements these patterns: chrono's formats (and so
//! DataFusion's `to_char`/`to_timestamp`/`to_date`) are strftime's `%Y-%m-%d`. The rules
//! follow PostgreSQL's `formatting.c`, with the differences listed below.
//!
//! A [`Template`] is tokenized once (per batch when the pattern is a constant), then
//! [`Template::format`]s moments or [`Template::parse_timestamp`]/[`Template::parse_date`]s
//! texts. Pure: no Arrow here.
//!
//! Tokenizing, at each position: an `FM` (fill mode) or `TM` prefix, then the longest keyword
//! that matches, case-insensitively (`HH24` before `HH`, `DDD` before `DD` before `D`, …),
//! then a `TH`/`th` (ordinal) or `SP` suffix. Double-quoted text is literal (a backslash
//! escapes the next character); anything else is a literal character, a separator (ASCII
//! punctuation) or a space. Keywords: `HH HH12 HH24 MI SS MS US FF1`…`FF6 SSSS SSSSS AM PM
//! A.M. P.M. Y,YYY YYYY YYY YY Y IYYY IYY IY I BC AD B.C. A.D. MONTH MON MM DAY DY DDD IDDD DD
//! D ID W WW IW CC J Q RM TZ TZH TZM OF FX`; names (`MONTH`, `Day`, `am`, `tz`, …) print in
//! the case they are written in (all capitals, capitalized, or lower case).
//!
//! Formatting pads numbers with zeros to their width and names with blanks to 9 characters
//! (`MONTH`, `DAY`), except in fill mode; `TZ` prints the zone's abbreviation (nothing for a
//! timestamp without time zone, as PostgreSQL), `OF` the offset (`+00`, `+05:30`).
//!
//! Parsing follows PostgreSQL's rules for templates without `FX`: spaces in the input are
//! skipped before each field; a separator or space of the template matches one separator or
//! space of the input, or nothing; a literal character of the template skips one input
//! character; a number reads exactly its width of characters when the next template item is
//! a number too (`YYYYMMDD`), else all its digits; `MS` and `US` are fractions (`.5` is
//! 500 ms); `YY` and `YYY` take the nearest year to 2020; input left over after the template is
//! ignored. Fields not given default to PostgreSQL's: 00:00:00 on January 1 of year 0
//! (1 BC). A text that does not match raises SQLSTATE 22007 and a value out of range 22008,
//! with PostgreSQL's messages.
//!
//! Differences from PostgreSQL: keywords match in any case (PostgreSQL knows `MONTH`, `Month`
//! and `month` but not `MOnth`); `MONTH`/`MON`, `DAY`/`DY`, `AM`/`A.M.` and `AD`/`A.D.` each
//! read both the long and the short form; `FX` (fixed format) is accepted and ignored; `TM`
//! is accepted and ignored (names are English); `TZ` and `OF` are not read (PostgreSQL 15
//! neither: SQLSTATE 0A000).

use std::fmt::Write;

use chrono::{DateTime, Datelike, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::common::{DataFusionError, Result};

use crate::sqlstate::{
    sql_error, DATETIME_FIELD_OVERFLOW, FEATURE_NOT_SUPPORTED, INVALID_DATETIME_FORMAT,
    INVALID_TIME_ZONE_DISPLACEMENT_VALUE,
};

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTHS_FULL: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS_SHORT: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
/// Roman months, December first (PostgreSQL's order, so that `xi` is tried before `x`).
const ROMAN_MONTHS: [&str; 12] = ["XII", "XI", "X", "IX", "VIII", "VII", "VI", "V", "IV", "III", "II", "I"];

/// The Julian day number of 1970-01-01 (PostgreSQL's `J`).
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    AdBc { dots: bool },
    AmPm { dots: bool },
    Cc,
    Day,
    Ddd,
    Dd,
    Dy,
    D,
    Ff(u8),
    Fx,
    Hh24,
    Hh12,
    Hh,
    Iddd,
    Id,
    Iw,
    Iyyy,
    Iyy,
    Iy,
    I,
    J,
    Mi,
    Mm,
    Month,
    Mon,
    Ms,
    Of,
    Q,
    Rm,
    Sssss,
    Ssss,
    Ss,
    Tzh,
    Tzm,
    Tz,
    Us,
    Ww,
    W,
    YCommaYyy,
    Yyyy,
    Yyy,
    Yy,
    Y,
}

/// The calendar a field belongs to when parsing: Gregorian and ISO-week fields do not mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Calendar {
    #[default]
    None,
    Gregorian,
    IsoWeek,
}

struct Keyword {
    text: &'static str,
    key: Key,
    /// Reads digits: a number before it reads exactly its width.
    is_digit: bool,
    calendar: Calendar,
}

const fn kw(text: &'static str, key: Key, is_digit: bool, calendar: Calendar) -> Keyword {
    Keyword { text, key, is_digit, calendar }
}

use Calendar::{Gregorian as G, IsoWeek as Iso, None as N};

/// PostgreSQL's keyword table, in its order: where one keyword begins another, the longer
/// comes first.
static KEYWORDS: &[Keyword] = &[
    kw("A.D.", Key::AdBc { dots: true }, false, N),
    kw("A.M.", Key::AmPm { dots: true }, false, N),
    kw("AD", Key::AdBc { dots: false }, false, N),
    kw("AM", Key::AmPm { dots: false }, false, N),
    kw("B.C.", Key::AdBc { dots: true }, false, N),
    kw("BC", Key::AdBc { dots: false }, false, N),
    kw("CC", Key::Cc, true, N),
    kw("DAY", Key::Day, false, N),
    kw("DDD", Key::Ddd, true, G),
    kw("DD", Key::Dd, true, G),
    kw("DY", Key::Dy, false, N),
    kw("D", Key::D, true, G),
    kw("FF1", Key::Ff(1), true, N),
    kw("FF2", Key::Ff(2), true, N),
    kw("FF3", Key::Ff(3), true, N),
    kw("FF4", Key::Ff(4), true, N),
    kw("FF5", Key::Ff(5), true, N),
    kw("FF6", Key::Ff(6), true, N),
    kw("FX", Key::Fx, false, N),
    kw("HH24", Key::Hh24, true, N),
    kw("HH12", Key::Hh12, true, N),
    kw("HH", Key::Hh, true, N),
    kw("IDDD", Key::Iddd, true, Iso),
    kw("ID", Key::Id, true, Iso),
    kw("IW", Key::Iw, true, Iso),
    kw("IYYY", Key::Iyyy, true, Iso),
    kw("IYY", Key::Iyy, true, Iso),
    kw("IY", Key::Iy, true, Iso),
    kw("I", Key::I, true, Iso),
    kw("J", Key::J, true, N),
    kw("MI", Key::Mi, true, N),
    kw("MM", Key::Mm, true, G),
    kw("MONTH", Key::Month, false, G),
    kw("MON", Key::Mon, false, G),
    kw("MS", Key::Ms, true, N),
    kw("OF", Key::Of, false, N),
    kw("P.M.", Key::AmPm { dots: true }, false, N),
    kw("PM", Key::AmPm { dots: false }, false, N),
    kw("Q", Key::Q, true, N),
    kw("RM", Key::Rm, false, G),
    kw("SSSSS", Key::Sssss, true, N),
    kw("SSSS", Key::Ssss, true, N),
    kw("SS", Key::Ss, true, N),
    kw("TZH", Key::Tzh, false, N),
    kw("TZM", Key::Tzm, true, N),
    kw("TZ", Key::Tz, false, N),
    kw("US", Key::Us, true, N),
    kw("WW", Key::Ww, true, G),
    kw("W", Key::W, true, G),
    kw("Y,YYY", Key::YCommaYyy, true, G),
    kw("YYYY", Key::Yyyy, true, G),
    kw("YYY", Key::Yyy, true, G),
    kw("YY", Key::Yy, true, G),
    kw("Y", Key::Y, true, G),
];

/// How a name is written in the template, and so printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Upper,
    Capitalized,
    Lower,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    key: Key,
    /// The keyword as written, for error messages (PostgreSQL's `"MM"`).
    written: String,
    case: Case,
    /// `FM`: no padding when formatting; read all digits when parsing.
    fill: bool,
    /// `TH` (true) or `th` (false): an ordinal suffix.
    ordinal: Option<bool>,
    is_digit: bool,
    calendar: Calendar,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Field(Field),
    /// A literal character (quoted text, letters, digits).
    Text(char),
    /// ASCII punctuation outside quotes.
    Separator(char),
    Space(char),
}

/// A tokenized template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

/// A moment to format: its wall-clock time and zone.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    /// The local date and time (microsecond precision is used).
    pub local: NaiveDateTime,
    /// Seconds east of UTC.
    pub offset_seconds: i32,
    /// The zone's abbreviation for `TZ`; `None` for a timestamp without time zone.
    pub zone: Option<&'a str>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// PostgreSQL's separators: printable ASCII that is not a letter, digit or space.
fn is_separator(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

fn case_of(written: &str) -> Case {
    let mut letters = written.chars().filter(char::is_ascii_alphabetic);
    match (letters.next(), letters.next()) {
        (Some(first), _) if first.is_ascii_lowercase() => Case::Lower,
        (Some(_), Some(second)) if second.is_ascii_lowercase() => Case::Capitalized,
        _ => Case::Upper,
    }
}

fn keyword_at(rest: &str) -> Option<&'static Keyword> {
    let bytes = rest.as_bytes();
    KEYWORDS
        .iter()
        .find(|k| bytes.len() >= k.text.len() && bytes[..k.text.len()].eq_ignore_ascii_case(k.text.as_bytes()))
}

impl Template {
    /// Tokenizes a template; never fails (anything unknown is literal text).
    pub fn new(pattern: &str) -> Self {
        let mut nodes = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let rest = &pattern[i..];
            let mut fill = false;
            if rest.starts_with("FM") || rest.starts_with("fm") {
                fill = true;
                i += 2;
            } else if rest.starts_with("TM") || rest.starts_with("tm") {
                i += 2;
            }
            let rest = &pattern[i..];
            if rest.is_empty() {
                break;
            }
            if let Some(keyword) = keyword_at(rest) {
                let written = &rest[..keyword.text.len()];
                i += written.len();
                let after = &pattern[i..];
                let ordinal = if after.starts_with("TH") {
                    Some(true)
                } else if after.starts_with("th") {
                    Some(false)
                } else {
                    None
                };
                if ordinal.is_some() || after.starts_with("SP") {
                    i += 2;
                }
                nodes.push(Node::Field(Field {
                    key: keyword.key,
                    written: written.to_string(),
                    case: case_of(written),
                    fill,
                    ordinal,
                    is_digit: keyword.is_digit,
                    calendar: keyword.calendar,
                }));
                continue;
            }
            let mut chars = rest.chars();
            let c = chars.next().expect("not empty");
            if c == '"' {
                i += 1;
                let mut quoted = pattern[i..].chars().peekable();
                while let Some(mut q) = quoted.next() {
                    i += q.len_utf8();
                    if q == '"' {
                        break;
                    }
                    if q == '\\' {
                        if let Some(escaped) = quoted.next() {
                            i += escaped.len_utf8();
                            q = escaped;
                        }
                    }
                    nodes.push(Node::Text(q));
                }
            } else {
                let c = if c == '\\' && rest[1..].starts_with('"') {
                    i += 1;
                    '"'
                } else {
                    c
                };
                i += c.len_utf8();
                nodes.push(if c.is_ascii() && is_separator(c as u8) {
                    Node::Separator(c)
                } else if c.is_ascii() && is_space(c as u8) {
                    Node::Space(c)
                } else {
                    Node::Text(c)
                });
            }
        }
        Self { nodes }
    }

    /// Whether the template is empty (`to_char` then returns NULL, as PostgreSQL).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    // ---- formatting ----------------------------------------------------------------------

    /// Appends the moment formatted by the template to `out`.
    pub fn format(&self, moment: &Moment, out: &mut String) {
        let local = moment.local;
        let year = i64::from(local.year());
        let month = local.month() as usize;
        let day = i64::from(local.day());
        let hour = i64::from(local.hour());
        let micros = i64::from(local.nanosecond() / 1_000).min(999_999);
        let weekday = local.weekday().num_days_from_sunday() as usize;
        for node in &self.nodes {
            let f = match node {
                Node::Text(c) | Node::Separator(c) | Node::Space(c) => {
                    out.push(*c);
                    continue;
                }
                Node::Field(f) => f,
            };
            let start = out.len();
            let number = |out: &mut String, value: i64, width: usize| {
                let width = if f.fill { 0 } else { width };
                let _ = write!(out, "{value:0width$}");
            };
            match f.key {
                Key::AmPm { dots } => {
                    let text = match (hour >= 12, dots) {
                        (false, false) => "AM",
                        (true, false) => "PM",
                        (false, true) => "A.M.",
                        (true, true) => "P.M.",
                    };
                    push_cased(out, text, upper_or_lower(f.case));
                }
                Key::AdBc { dots } => {
                    let text = match (year <= 0, dots) {
                        (false, false) => "AD",
                        (true, false) => "BC",
                        (false, true) => "A.D.",
                        (true, true) => "B.C.",
                    };
                    push_cased(out, text, upper_or_lower(f.case));
                }
                Key::Hh | Key::Hh12 => number(out, if hour % 12 == 0 { 12 } else { hour % 12 }, 2),
                Key::Hh24 => number(out, hour, 2),
                Key::Mi => number(out, i64::from(local.minute()), 2),
                Key::Ss => number(out, i64::from(local.second()), 2),
                // Fractions are always padded (FM does not apply).
                Key::Ms => {
                    let _ = write!(out, "{:03}", micros / 1_000);
                }
                Key::Us => {
                    let _ = write!(out, "{micros:06}");
                }
                Key::Ff(digits) => {
                    let digits = usize::from(digits);
                    let _ = write!(out, "{:0digits$}", micros / 10i64.pow(6 - digits as u32));
                }
                Key::Ssss | Key::Sssss => {
                    let _ = write!(out, "{}", local.num_seconds_from_midnight());
                }
                Key::Tz => {
                    if let Some(zone) = moment.zone {
                        push_cased(out, zone, upper_or_lower(f.case));
                    }
                }
                Key::Tzh => {
                    let offset = moment.offset_seconds;
                    let _ = write!(out, "{}{:02}", sign(offset), offset.abs() / 3600);
                }
                Key::Tzm => {
                    let _ = write!(out, "{:02}", moment.offset_seconds.abs() % 3600 / 60);
                }
                Key::Of => {
                    let offset = moment.offset_seconds;
                    out.push(sign(offset));
                    number(out, i64::from(offset.abs() / 3600), 2);
                    if offset.abs() % 3600 != 0 {
                        let _ = write!(out, ":{:02}", offset.abs() % 3600 / 60);
                    }
                }
                Key::Month => push_name(out, MONTHS_FULL[month - 1], f, 9),
                Key::Mon => push_name(out, MONTHS[month - 1], f, 0),
                Key::Mm => number(out, month as i64, 2),
                Key::Day => push_name(out, DAYS[weekday], f, 9),
                Key::Dy => push_name(out, DAYS_SHORT[weekday], f, 0),
                Key::Ddd => number(out, i64::from(local.ordinal()), 3),
                Key::Iddd => {
                    let week = local.iso_week().week();
                    number(out, i64::from((week - 1) * 7 + local.weekday().number_from_monday()), 3)
                }
                Key::Dd => number(out, day, 2),
                Key::D => {
                    let _ = write!(out, "{}", weekday + 1);
                }
                Key::Id => {
                    let _ = write!(out, "{}", local.weekday().number_from_monday());
                }
                Key::Ww => number(out, (i64::from(local.ordinal()) - 1) / 7 + 1, 2),
                Key::Iw => number(out, i64::from(local.iso_week().week()), 2),
                Key::Q => {
                    let _ = write!(out, "{}", (month - 1) / 3 + 1);
                }
                Key::Cc => {
                    let century = if year > 0 { (year - 1) / 100 + 1 } else { year / 100 - 1 };
                    if (-99..=99).contains(&century) {
                        let width = if f.fill {
                            0
                        } else if century >= 0 {
                            2
                        } else {
                            3
                        };
                        let _ = write!(out, "{century:0width$}");
                    } else {
                        let _ = write!(out, "{century}");
                    }
                }
                Key::YCommaYyy => {
                    let y = bc_adjusted(year);
                    let thousands = y / 1000;
                    let _ = write!(out, "{thousands},{:03}", y - thousands * 1000);
                }
                Key::Yyyy => number(out, bc_adjusted(year), 4),
                Key::Iyyy => number(out, bc_adjusted(i64::from(local.iso_week().year())), 4),
                Key::Yyy => last_digits(out, bc_adjusted(year), 3, f.fill),
                Key::Iyy => last_digits(out, bc_adjusted(i64::from(local.iso_week().year())), 3, f.fill),
                Key::Yy => last_digits(out, bc_adjusted(year), 2, f.fill),
                Key::Iy => last_digits(out, bc_adjusted(i64::from(local.iso_week().year())), 2, f.fill),
                Key::Y => last_digits(out, bc_adjusted(year), 1, true),
                Key::I => last_digits(out, bc_adjusted(i64::from(local.iso_week().year())), 1, true),
                Key::Rm => {
                    let roman = ROMAN_MONTHS[12 - month];
                    let start = out.len();
                    push_cased(out, roman, upper_or_lower(f.case));
                    if !f.fill {
                        pad_to(out, start, 4);
                    }
                }
                Key::W => {
                    let _ = write!(out, "{}", (day - 1) / 7 + 1);
                }
                Key::J => {
                    let days = i64::from(local.date().num_days_from_ce()) - 719_163;
                    let _ = write!(out, "{}", days + UNIX_EPOCH_JULIAN_DAY);
                }
                Key::Fx => {}
            }
            if let Some(upper) = f.ordinal {
                if f.is_digit && !matches!(f.key, Key::Tzm) {
                    push_ordinal(out, start, upper);
                }
            }
        }
    }

    // ---- parsing ---------------------------------------------------------------------------

    /// Reads a timestamp with time zone: microseconds since 1970-01-01 00:00 UTC. A wall time
    /// without `TZH`/`TZM` is read in `zone` (the session's, as PostgreSQL does), UTC if none.
    pub fn parse_timestamp(&self, input: &str, zone: Option<&Tz>) -> Result<i64> {
        let parsed = self.read(input)?.resolve(input)?;
        if !julian_is_valid(&parsed.tm) {
            return Err(sql_error(DATETIME_FIELD_OVERFLOW, "timestamp out of range"));
        }
        let tm = &parsed.tm;
        let days = days_from_civil(tm.year, tm.mon, tm.mday);
        let local = i128::from(days) * i128::from(MICROS_PER_DAY)
            + i128::from(((tm.hour * 60 + tm.min) * 60 + tm.sec) * MICROS_PER_SECOND + tm.fsec);
        let offset_seconds = match (parsed.offset_seconds, zone) {
            (Some(offset), _) => offset,
            (None, Some(zone)) => local_offset_seconds(zone, local),
            (None, None) => 0,
        };
        let mut micros = local - i128::from(offset_seconds) * i128::from(MICROS_PER_SECOND);
        if parsed.fraction_digits > 0 {
            micros = round_to_digits(micros, parsed.fraction_digits);
        }
        let min = -UNIX_EPOCH_JULIAN_DAY as i128 * i128::from(MICROS_PER_DAY);
        if micros < min || micros > i128::from(i64::MAX) {
            return Err(sql_error(DATETIME_FIELD_OVERFLOW, "timestamp out of range"));
        }
        Ok(micros as i64)
    }

    /// Reads a date: days since 1970-01-01. Time fields are read and checked, then dropped.
    pub fn parse_date(&self, input: &str) -> Result<i32> {
        let parsed = self.read(input)?.resolve(input)?;
        let out_of_range = || sql_error(DATETIME_FIELD_OVERFLOW, format!("date out of range: \"{input}\""));
        if !julian_is_valid(&parsed.tm) {
            return Err(out_of_range());
        }
        let days = days_from_civil(parsed.tm.year, parsed.tm.mon, parsed.tm.mday);
        // PostgreSQL's dates: Julian day 0 to 5874898-01-01 (excluded).
        let julian = days + UNIX_EPOCH_JULIAN_DAY;
        if !(0..2_147_483_494).contains(&julian) {
            return Err(out_of_range());
        }
        Ok(days as i32)
    }

    /// Whether the next item after field `index` is not a number (PostgreSQL's
    /// `is_next_separator`): then the field reads all its digits.
    fn next_is_separator(&self, index: usize) -> bool {
        if let Node::Field(f) = &self.nodes[index] {
            if f.ordinal.is_some() {
                return true;
            }
        }
        match self.nodes.get(index + 1) {
            None => true,
            Some(Node::Field(f)) => !f.is_digit,
            Some(Node::Text(c) | Node::Separator(c) | Node::Space(c)) => !c.is_ascii_digit(),
        }
    }

    /// PostgreSQL's `DCH_from_char` without FX: the fields of the input.
    fn read(&self, input: &str) -> Result<Fields> {
        let mut r = Reader { s: input.as_bytes(), p: 0 };
        let mut out = Fields::default();
        let mut extra_skip: i64 = 0;
        for (index, node) in self.nodes.iter().enumerate() {
            if r.at_end() {
                break;
            }
            let field = match node {
                Node::Field(f) => Some(f),
                _ => None,
            };
            if field.is_none_or(|f| f.key != Key::Fx) && (field.is_some() || index == 0) {
                extra_skip += r.skip_spaces() as i64;
            }
            let f = match node {
                Node::Space(_) | Node::Separator(_) => {
                    extra_skip -= 1;
                    if r.peek().is_some_and(|b| is_space(b) || is_separator(b)) {
                        r.p += 1;
                        extra_skip += 1;
                    }
                    continue;
                }
                Node::Text(_) => {
                    if extra_skip > 0 {
                        extra_skip -= 1;
                    } else {
                        r.skip_char();
                    }
                    continue;
                }
                Node::Field(f) => f,
            };
            if f.calendar != Calendar::None {
                if out.calendar == Calendar::None {
                    out.calendar = f.calendar;
                } else if out.calendar != f.calendar {
                    return Err(sql_error(INVALID_DATETIME_FORMAT, "invalid combination of date conventions"));
                }
            }
            let ctx = FieldReader { template: self, index, field: f };
            match f.key {
                Key::Fx => {}
                Key::AmPm { .. } => {
                    let value = ctx.names(&mut r, &[&["a.m.", "p.m."], &["am", "pm"]])?;
                    set(&mut out.pm, (value % 2) as i64, f)?;
                    out.twelve_hour = true;
                }
                Key::AdBc { .. } => {
                    let value = ctx.names(&mut r, &[&["a.d.", "b.c."], &["ad", "bc"]])?;
                    set(&mut out.bc, (value % 2) as i64, f)?;
                }
                Key::Hh | Key::Hh12 => {
                    ctx.int_into(&mut r, 2, &mut out.hh)?;
                    out.twelve_hour = true;
                }
                Key::Hh24 => {
                    ctx.int_into(&mut r, 2, &mut out.hh)?;
                }
                Key::Mi => {
                    ctx.int_into(&mut r, 2, &mut out.mi)?;
                }
                Key::Ss => {
                    ctx.int_into(&mut r, 2, &mut out.ss)?;
                }
                Key::Ms => {
                    let used = ctx.int_into(&mut r, 3, &mut out.ms)?;
                    out.ms *= match used {
                        1 => 100,
                        2 => 10,
                        _ => 1,
                    };
                }
                Key::Us | Key::Ff(_) => {
                    let width = match f.key {
                        Key::Ff(digits) => {
                            out.fraction_digits = u32::from(digits);
                            usize::from(digits)
                        }
                        _ => 6,
                    };
                    let used = ctx.int_into(&mut r, width, &mut out.us)?;
                    out.us *= 10i64.pow(6u32.saturating_sub(used as u32));
                }
                Key::Ssss => {
                    ctx.int_into(&mut r, 4, &mut out.ssss)?;
                }
                Key::Sssss => {
                    ctx.int_into(&mut r, 5, &mut out.ssss)?;
                }
                Key::Tz | Key::Of => {
                    return Err(sql_error(
                        FEATURE_NOT_SUPPORTED,
                        format!("formatting field \"{}\" is only supported in to_char", f.written),
                    ));
                }
                Key::Tzh => {
                    match r.peek() {
                        Some(sign @ (b'+' | b'-' | b' ')) => {
                            out.tz_sign = if sign == b'-' { -1 } else { 1 };
                            r.p += 1;
                        }
                        _ => {
                            let minus_skipped = extra_skip > 0 && r.p > 0 && r.s[r.p - 1] == b'-';
                            out.tz_sign = if minus_skipped { -1 } else { 1 };
                        }
                    }
                    ctx.int_into(&mut r, 2, &mut out.tzh)?;
                }
                Key::Tzm => {
                    if out.tz_sign == 0 {
                        out.tz_sign = 1;
                    }
                    ctx.int_into(&mut r, 2, &mut out.tzm)?;
                }
                Key::Month | Key::Mon => {
                    let value = ctx.names(&mut r, &[&MONTHS_FULL, &MONTHS])?;
                    set(&mut out.mm, value as i64 + 1, f)?;
                }
                Key::Mm => {
                    ctx.int_into(&mut r, 2, &mut out.mm)?;
                }
                Key::Day | Key::Dy => {
                    let value = ctx.names(&mut r, &[&DAYS, &DAYS_SHORT])?;
                    set(&mut out.d, value as i64, f)?;
                    out.d += 1;
                }
                Key::Ddd | Key::Iddd => {
                    ctx.int_into(&mut r, 3, &mut out.ddd)?;
                }
                Key::Dd => {
                    ctx.int_into(&mut r, 2, &mut out.dd)?;
                }
                Key::D => {
                    ctx.int_into(&mut r, 1, &mut out.d)?;
                }
                Key::Id => {
                    ctx.int_into(&mut r, 1, &mut out.d)?;
                    // Sunday = 1, as D.
                    out.d += 1;
                    if out.d > 7 {
                        out.d = 1;
                    }
                }
                Key::Ww | Key::Iw => {
                    ctx.int_into(&mut r, 2, &mut out.ww)?;
                }
                // Read and ignored, as PostgreSQL: which day of the quarter is unclear.
                Key::Q => {
                    ctx.int(&mut r, 1)?;
                }
                Key::Cc => {
                    ctx.int_into(&mut r, 2, &mut out.cc)?;
                }
                Key::YCommaYyy => {
                    let year = ctx.thousands_year(&mut r)?;
                    set(&mut out.year, year, f)?;
                    out.year_digits = 4;
                }
                Key::Yyyy | Key::Iyyy => {
                    ctx.int_into(&mut r, 4, &mut out.year)?;
                    out.year_digits = 4;
                }
                Key::Yyy | Key::Iyy | Key::Yy | Key::Iy | Key::Y | Key::I => {
                    let digits = match f.key {
                        Key::Yyy | Key::Iyy => 3,
                        Key::Yy | Key::Iy => 2,
                        _ => 1,
                    };
                    let used = ctx.int_into(&mut r, digits, &mut out.year)?;
                    if used < 4 {
                        out.year = nearest_to_2020(out.year);
                    }
                    out.year_digits = digits as i64;
                }
                Key::Rm => {
                    let value = ctx.names(&mut r, &[&ROMAN_MONTHS])?;
                    set(&mut out.mm, 12 - value as i64, f)?;
                }
                Key::W => {
                    ctx.int_into(&mut r, 1, &mut out.w)?;
                }
                Key::J => {
                    ctx.int_into(&mut r, 1, &mut out.j)?;
                }
            }
            if f.ordinal.is_some() && !matches!(f.key, Key::Month | Key::Mon | Key::Day | Key::Dy | Key::Rm) {
                r.skip_char();
                r.skip_char();
            }
            extra_skip = r.skip_spaces() as i64;
        }
        Ok(out)
    }
}

/// The offset from UTC of the wall time `local` (microseconds, as if UTC) in `zone`. As
/// PostgreSQL: a time the clocks skip over is read with the offset before the change, a time
/// they pass twice as the later of the two instants.
fn local_offset_seconds(zone: &Tz, local: i128) -> i64 {
    let Some(wall) = i64::try_from(local).ok().and_then(DateTime::from_timestamp_micros) else { return 0 };
    let wall = wall.naive_utc();
    let offset = match zone.offset_from_local_datetime(&wall) {
        LocalResult::Single(offset) | LocalResult::Ambiguous(_, offset) => offset.fix(),
        LocalResult::None => zone.offset_from_utc_datetime(&(wall - TimeDelta::days(1))).fix(),
    };
    i64::from(offset.local_minus_utc())
}

fn sign(offset: i32) -> char {
    if offset >= 0 {
        '+'
    } else {
        '-'
    }
}

/// Year for printing: 1 BC (year 0) prints as 1, with `BC` for the era.
fn bc_adjusted(year: i64) -> i64 {
    if year <= 0 {
        1 - year
    } else {
        year
    }
}

/// PostgreSQL 15's `YYY`/`YY`/`Y`: the number printed with (or, in fill mode, without) zeros,
/// then its last `digits` characters.
fn last_digits(out: &mut String, value: i64, digits: usize, fill: bool) {
    let width = if fill { 0 } else { digits };
    let text = format!("{value:0width$}");
    out.push_str(&text[text.len().saturating_sub(digits)..]);
}

fn upper_or_lower(case: Case) -> Case {
    if case == Case::Lower {
        Case::Lower
    } else {
        Case::Upper
    }
}

fn push_cased(out: &mut String, text: &str, case: Case) {
    match case {
        Case::Upper => out.extend(text.chars().map(|c| c.to_ascii_uppercase())),
        Case::Lower => out.extend(text.chars().map(|c| c.to_ascii_lowercase())),
        Case::Capitalized => out.push_str(text),
    }
}

fn pad_to(out: &mut String, start: usize, width: usize) {
    while out.len() - start < width {
        out.push(' ');
    }
}

fn push_name(out: &mut String, name: &str, f: &Field, width: usize) {
    let start = out.len();
    push_cased(out, name, f.case);
    if !f.fill {
        pad_to(out, start, width);
    }
}

/// `st`, `nd`, `rd` or `th` after the number written from `start` (PostgreSQL's `get_th`:
/// 11 to 13 take `th`).
fn push_ordinal(out: &mut String, start: usize, upper: bool) {
    let digits = &out.as_bytes()[start..];
    let Some(&last) = digits.last() else { return };
    if !last.is_ascii_digit() {
        return;
    }
    let teen = digits.len() > 1 && digits[digits.len() - 2] == b'1';
    let suffix = match (teen, last) {
        (false, b'1') => "st",
        (false, b'2') => "nd",
        (false, b'3') => "rd",
        _ => "th",
    };
    push_cased(out, suffix, if upper { Case::Upper } else { Case::Lower });
}

/// PostgreSQL's `adjust_partial_year_to_2020`: 00-69 → 2000s, 70-99 → 1900s, 100-519 →
/// 2100-2519, 520-999 → 1520-1999.
fn nearest_to_2020(year: i64) -> i64 {
    match year {
        ..70 => year + 2000,
        70..100 => year + 1900,
        100..520 => year + 2000,
        520..1000 => year + 1000,
        _ => year,
    }
}

/// Sets a field once: a second, different value is an error (PostgreSQL's
/// `from_char_set_int`; 0 means unset).
fn set(dest: &mut i64, value: i64, f: &Field) -> Result<()> {
    if *dest != 0 && *dest != value {
        return Err(sql_error(
            INVALID_DATETIME_FORMAT,
            format!("conflicting values for \"{}\" field in formatting string", f.written),
        ));
    }
    *dest = value;
    Ok(())
}

struct Reader<'a> {
    s: &'a [u8],
    p: usize,
}

impl Reader<'_> {
    fn at_end(&self) -> bool {
        self.p >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.p).copied()
    }
    fn skip_spaces(&mut self) -> usize {
        let start = self.p;
        while self.peek().is_some_and(is_space) {
            self.p += 1;
        }
        self.p - start
    }
    /// Skips one (UTF-8) character, if any.
    fn skip_char(&mut self) {
        if let Some(lead) = self.peek() {
            self.p += match lead {
                ..0x80 => 1,
                0xC0..0xE0 => 2,
                0xE0..0xF0 => 3,
                0xF0.. => 4,
                _ => 1,
            };
            self.p = self.p.min(self.s.len());
        }
    }
    /// Up to `n` bytes from `from`, as text (for messages).
    fn text(&self, from: usize, n: usize) -> String {
        let end = (from + n).min(self.s.len());
        String::from_utf8_lossy(&self.s[from.min(end)..end]).into_owned()
    }
}

/// C's `strtol` from `from`: spaces, a sign, digits. The end is `from` when there are no
/// digits; the value is `None` beyond i64.
fn strtol(s: &[u8], from: usize) -> (Option<i64>, usize) {
    let mut i = from;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut value: Option<i64> = Some(0);
    while i < s.len() && s[i].is_ascii_digit() {
        let digit = i64::from(s[i] - b'0');
        value = value.and_then(|v| v.checked_mul(10)).and_then(|v| {
            if negative {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        i += 1;
    }
    if i == digits_start {
        return (Some(0), from);
    }
    (value, i)
}

struct FieldReader<'a> {
    template: &'a Template,
    index: usize,
    field: &'a Field,
}

impl FieldReader<'_> {
    fn invalid(&self, value: &str) -> DataFusionError {
        sql_error(INVALID_DATETIME_FORMAT, format!("invalid value \"{value}\" for \"{}\"", self.field.written))
    }

    /// PostgreSQL's `from_char_parse_int_len`: a number of exactly `width` characters, or in
    /// fill mode or before a non-number all its digits. Returns the value and the characters
    /// used (spaces and sign included).
    fn int(&self, r: &mut Reader, width: usize) -> Result<(i64, usize)> {
        let init = r.p;
        let mut start = init;
        while start < r.s.len() && is_space(r.s[start]) {
            start += 1;
        }
        let copy = r.text(start, width);
        let (value, end) = if self.field.fill || self.template.next_is_separator(self.index) {
            strtol(r.s, init)
        } else {
            if r.s.len() - start < width {
                return Err(sql_error(
                    INVALID_DATETIME_FORMAT,
                    format!("source string too short for \"{}\" formatting field", self.field.written),
                ));
            }
            let (value, used) = strtol(&r.s[start..start + width], 0);
            if used > 0 && used < width {
                return Err(self.invalid(&copy));
            }
            (value, start + used)
        };
        r.p = end;
        if end == init {
            return Err(self.invalid(&copy));
        }
        match value {
            Some(v) if i32::try_from(v).is_ok() => Ok((v, end - init)),
            _ => Err(sql_error(
                DATETIME_FIELD_OVERFLOW,
                format!("value for \"{}\" in source string is out of range", self.field.written),
            )),
        }
    }

    fn int_into(&self, r: &mut Reader, width: usize, dest: &mut i64) -> Result<usize> {
        let (value, used) = self.int(r, width)?;
        set(dest, value, self.field)?;
        Ok(used)
    }

    /// The first name of the lists that begins the input, case-insensitively: its index.
    fn names(&self, r: &mut Reader, lists: &[&[&str]]) -> Result<usize> {
        let rest = &r.s[r.p..];
        for list in lists {
            for (i, name) in list.iter().enumerate() {
                if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
                    r.p += name.len();
                    return Ok(i);
                }
            }
        }
        let word_end = rest.iter().position(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'));
        Err(self.invalid(&r.text(r.p, word_end.unwrap_or(rest.len()))))
    }

    /// `Y,YYY`: C's `sscanf("%d,%03d")`.
    fn thousands_year(&self, r: &mut Reader) -> Result<i64> {
        let invalid = || sql_error(INVALID_DATETIME_FORMAT, "invalid input string for \"Y,YYY\"");
        let (thousands, after) = strtol(r.s, r.p);
        if after == r.p || r.s.get(after) != Some(&b',') {
            return Err(invalid());
        }
        let mut start = after + 1;
        while start < r.s.len() && is_space(r.s[start]) {
            start += 1;
        }
        let end = (start + 3).min(r.s.len());
        let (units, used) = strtol(&r.s[start..end], 0);
        if used == 0 {
            return Err(invalid());
        }
        r.p = start + used;
        let year = thousands.zip(units).and_then(|(t, u)| t.checked_mul(1000)?.checked_add(u));
        match year {
            Some(y) if i32::try_from(y).is_ok() => Ok(y),
            _ => Err(sql_error(DATETIME_FIELD_OVERFLOW, "value for \"Y,YYY\" in source string is out of range")),
        }
    }
}

/// The fields read (PostgreSQL's `TmFromChar`); 0 is "not given".
#[derive(Debug, Default)]
struct Fields {
    calendar: Calendar,
    hh: i64,
    pm: i64,
    twelve_hour: bool,
    mi: i64,
    ss: i64,
    ssss: i64,
    d: i64,
    dd: i64,
    ddd: i64,
    mm: i64,
    ms: i64,
    year: i64,
    bc: i64,
    ww: i64,
    w: i64,
    cc: i64,
    j: i64,
    us: i64,
    year_digits: i64,
    tz_sign: i64,
    tzh: i64,
    tzm: i64,
    fraction_digits: u32,
}

/// A broken-down date and time; the year is astronomical (0 is 1 BC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i64,
    mon: i64,
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    fsec: i64,
}

struct Resolved {
    tm: Tm,
    /// Seconds east of UTC given by TZH/TZM.
    offset_seconds: Option<i64>,
    fraction_digits: u32,
}

const YEAR: u8 = 1;
const MONTH: u8 = 2;
const DAY: u8 = 4;
const DATE: u8 = YEAR | MONTH | DAY;

impl Fields {
    /// PostgreSQL's `do_to_timestamp`: the fields to a date and time, checked.
    fn resolve(mut self, input: &str) -> Result<Resolved> {
        let out_of_range =
            || sql_error(DATETIME_FIELD_OVERFLOW, format!("date/time field value out of range: \"{input}\""));
        let mut tm = Tm { year: 0, mon: 1, mday: 1, hour: 0, min: 0, sec: 0, fsec: 0 };
        let mut mask = 0u8;
        if self.ssss != 0 {
            tm.hour = self.ssss / 3600;
            tm.min = self.ssss % 3600 / 60;
            tm.sec = self.ssss % 60;
        }
        if self.ss != 0 {
            tm.sec = self.ss;
        }
        if self.mi != 0 {
            tm.min = self.mi;
        }
        if self.hh != 0 {
            tm.hour = self.hh;
        }
        if self.twelve_hour {
            if !(1..=12).contains(&tm.hour) {
                return Err(sql_error(
                    INVALID_DATETIME_FORMAT,
                    format!("hour \"{}\" is invalid for the 12-hour clock", tm.hour),
                ));
            }
            if self.pm != 0 && tm.hour < 12 {
                tm.hour += 12;
            } else if self.pm == 0 && tm.hour == 12 {
                tm.hour = 0;
            }
        }
        if self.year != 0 {
            if self.cc != 0 && self.year_digits <= 2 {
                let cc = if self.bc != 0 { -self.cc } else { self.cc };
                tm.year = self.year % 100;
                if tm.year != 0 {
                    tm.year = if cc >= 0 { tm.year + (cc - 1) * 100 } else { (cc + 1) * 100 - tm.year + 1 };
                } else {
                    tm.year = cc * 100 + if cc >= 0 { 0 } else { 1 };
                }
            } else {
                tm.year = if self.bc != 0 { -self.year } else { self.year };
                if tm.year < 0 {
                    tm.year += 1;
                }
            }
            mask |= YEAR;
        } else if self.cc != 0 {
            let cc = if self.bc != 0 { -self.cc } else { self.cc };
            tm.year = if cc >= 0 { (cc - 1) * 100 + 1 } else { cc * 100 + 1 };
            mask |= YEAR;
        }
        if self.j != 0 {
            (tm.year, tm.mon, tm.mday) = civil_from_days(self.j - UNIX_EPOCH_JULIAN_DAY);
            mask |= DATE;
        }
        if self.ww != 0 {
            if self.calendar == Calendar::IsoWeek {
                let monday = iso_week_monday(tm.year, self.ww);
                let day = match self.d {
                    0 => monday,
                    // d counts from Sunday = 1
                    1 => monday + 6,
                    d => monday + d - 2,
                };
                (tm.year, tm.mon, tm.mday) = civil_from_days(day);
                mask |= DATE;
            } else {
                self.ddd = (self.ww - 1) * 7 + 1;
            }
        }
        if self.w != 0 {
            self.dd = (self.w - 1) * 7 + 1;
        }
        if self.dd != 0 {
            tm.mday = self.dd;
            mask |= DAY;
        }
        if self.mm != 0 {
            tm.mon = self.mm;
            mask |= MONTH;
        }
        if self.ddd != 0 && (tm.mon <= 1 || tm.mday <= 1) {
            if tm.year == 0 && self.bc == 0 {
                return Err(sql_error(
                    INVALID_DATETIME_FORMAT,
                    "cannot calculate day of year without year information",
                ));
            }
            if self.calendar == Calendar::IsoWeek {
                (tm.year, tm.mon, tm.mday) = civil_from_days(iso_week_monday(tm.year, 1) - 1 + self.ddd);
                mask |= DATE;
            } else {
                let sums = if is_leap(tm.year) {
                    [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366]
                } else {
                    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365]
                };
                let month = (1..=12).find(|&i| self.ddd <= sums[i]).unwrap_or(13);
                if tm.mon <= 1 {
                    tm.mon = month as i64;
                }
                if tm.mday <= 1 {
                    tm.mday = self.ddd - sums[month - 1];
                }
                mask |= MONTH | DAY;
            }
        }
        tm.fsec = self.ms * 1000 + self.us;
        // PostgreSQL's ValidateDate.
        if mask & MONTH != 0 && !(1..=12).contains(&tm.mon) {
            return Err(out_of_range());
        }
        if mask & DAY != 0 && !(1..=31).contains(&tm.mday) {
            return Err(out_of_range());
        }
        if mask & DATE == DATE && tm.mday > days_in_month(tm.year, tm.mon) {
            return Err(out_of_range());
        }
        if !(0..24).contains(&tm.hour)
            || !(0..60).contains(&tm.min)
            || !(0..60).contains(&tm.sec)
            || !(0..MICROS_PER_SECOND).contains(&tm.fsec)
        {
            return Err(out_of_range());
        }
        let offset_seconds = if self.tz_sign != 0 {
            if !(0..=15).contains(&self.tzh) || !(0..60).contains(&self.tzm) {
                return Err(sql_error(
                    INVALID_TIME_ZONE_DISPLACEMENT_VALUE,
                    format!("time zone displacement out of range: \"{input}\""),
                ));
            }
            Some(self.tz_sign * (self.tzh * 3600 + self.tzm * 60))
        } else {
            None
        };
        Ok(Resolved { tm, offset_seconds, fraction_digits: self.fraction_digits })
    }
}

/// Rounds microseconds since 1970 to `digits` fractional digits as PostgreSQL does (half away
/// from zero, counted from its 2000-01-01 epoch).
fn round_to_digits(micros: i128, digits: u32) -> i128 {
    if digits >= 6 {
        return micros;
    }
    let scale = 10i128.pow(6 - digits);
    let half = scale / 2;
    let epoch_2000 = 946_684_800i128 * i128::from(MICROS_PER_SECOND);
    let t = micros - epoch_2000;
    let rounded = if t >= 0 { (t + half) / scale * scale } else { -((-t + half) / scale * scale) };
    rounded + epoch_2000
}

/// PostgreSQL's `IS_VALID_JULIAN`: from 4714-11 BC to 5874898-06 (month granularity).
fn julian_is_valid(tm: &Tm) -> bool {
    (tm.year > -4713 || (tm.year == -4713 && tm.mon >= 11))
        && (tm.year < 5_874_898 || (tm.year == 5_874_898 && tm.mon < 6))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year, month 1-12); the
/// day may overflow its month (PostgreSQL's `date2j` is linear in it too).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The Monday of ISO week `week` of ISO year `year`, in days since 1970 (PostgreSQL's
/// `isoweek2j`).
fn iso_week_monday(year: i64, week: i64) -> i64 {
    let january_4 = days_from_civil(year, 1, 4);
    // days since the Monday on or before January 4 (1970-01-01 was a Thursday)
    let since_monday = (january_4 + 3).rem_euclid(7);
    january_4 - since_monday + (week - 1) * 7
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::sqlstate::SqlStateError;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn to_char_zoned(time: &str, pattern: &str, offset_seconds: i32, zone: Option<&str>) -> String {
        let mut out = String::new();
        Template::new(pattern).format(&Moment { local: at(time), offset_seconds, zone }, &mut out);
        out
    }

    fn to_char(time: &str, pattern: &str) -> String {
        to_char_zoned(time, pattern, 0, None)
    }

    fn micros(text: &str) -> i64 {
        at(text).and_utc().timestamp_micros()
    }

    fn days(text: &str) -> i32 {
        (NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
            as i32
    }

    fn error_of(result: Result<impl std::fmt::Debug>) -> (&'static str, String) {
        let error = result.unwrap_err();
        let DataFusionError::External(inner) = &error else { panic!("{error:?}") };
        let e = inner.downcast_ref::<SqlStateError>().unwrap();
        (e.code, e.message.clone())
    }

    const SAMPLE: &str = "2025-03-04 05:06:07.123456";

    /// PostgreSQL 15's answers for TIMESTAMP '2025-03-04 05:06:07.123456'.
    #[test]
    fn formats_as_postgresql() {
        for (pattern, expected) in [
            ("YYYY-MM-DD HH24:MI:SS", "2025-03-04 05:06:07"),
            ("YYYY-MM-DD\"T\"HH24:MI:SS.US", "2025-03-04T05:06:07.123456"),
            ("DD/MM/YY HH12:MI:SS AM", "04/03/25 05:06:07 AM"),
            ("Mon DD, YYYY", "Mar 04, 2025"),
            ("Month", "March    "),
            ("FMMonth FMDD", "March 4"),
            ("Day Dy D", "Tuesday   Tue 3"),
            ("YYYY-\"Q\"Q", "2025-Q1"),
            ("IYYY-\"W\"IW DDD MS", "2025-W10 063 123"),
            ("MONTH|month|MON|mon|DAY|day|DY|dy", "MARCH    |march    |MAR|mar|TUESDAY  |tuesday  |TUE|tue"),
            ("yyyy-mm-dd hh24:mi:ss", "2025-03-04 05:06:07"),
            ("HH HH12 hh pm a.m. P.M.", "05 05 05 am a.m. A.M."),
            ("DDth DDTH FMDDth MMth", "04th 04TH 4th 03rd"),
            ("SSSS SSSSS FF1 FF3 FF6", "18367 18367 1 123 123456"),
            ("ID W WW CC J", "2 1 09 21 2460739"),
            ("Y,YYY YYY YY Y IYY IY I", "2,025 025 25 5 025 25 5"),
            ("RM rm FMRM.", "III  iii  III."),
            ("AD BC a.d. b.c.", "AD AD a.d. a.d."),
            ("TZ OF TZH:TZM", " +00 +00:00"),
            ("IDDD", "065"),
            ("\"quoted YYYY\" \\\"YYYY\\\"", "quoted YYYY \"2025\""),
            ("FXYYYY SPx", "2025 SPx"),
            ("Date: DD", "3ate: 04"),
            ("", ""),
        ] {
            assert_eq!(to_char(SAMPLE, pattern), expected, "{pattern}");
        }
        assert_eq!(to_char("2025-12-31 00:00:00", "YYYY-MM-DD"), "2025-12-31");
        assert_eq!(to_char("2025-03-04 17:00:00", "HH12 AM HH24"), "05 PM 17");
        assert_eq!(to_char("2025-03-04 00:30:00", "HH12:MI am"), "12:30 am");
        assert_eq!(to_char("2025-03-11 00:00:00", "DDth 2025-03-12"), "11th 2025-03-12");
        assert_eq!(to_char("2024-12-30 00:00:00", "IYYY-IW-ID YYYY WW"), "2025-01-1 2024 53");
        assert_eq!(to_char("0000-06-01 00:00:00", "YYYY BC CC"), "0001 BC -01");
        assert_eq!(to_char("2000-06-01 00:00:00", "CC"), "20");
        assert_eq!(to_char("2001-06-01 00:00:00", "CC"), "21");
        assert_eq!(to_char("2005-06-01 00:00:00", "FMYYY FMYY FMYYYY"), "005 05 2005");
        assert_eq!(to_char_zoned(SAMPLE, "TZ tz OF TZH TZM", 0, Some("UTC")), "UTC utc +00 +00 00");
        assert_eq!(to_char_zoned(SAMPLE, "TZ OF FMOF", 19_800, Some("IST")), "IST +05:30 +5:30");
        assert_eq!(to_char_zoned(SAMPLE, "OF TZH:TZM", -12_600, Some("-0330")), "-03:30 -03:30");
    }

    #[test]
    fn tokenizes_keywords_longest_first_and_in_any_case() {
        let t = Template::new("hh24HH12Hh");
        let keys: Vec<Key> = t
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Field(f) => Some(f.key),
                _ => None,
            })
            .collect();
        assert_eq!(keys, [Key::Hh24, Key::Hh12, Key::Hh]);
        assert_eq!(to_char(SAMPLE, "MOnth"), "MARCH    ");
        assert_eq!(to_char(SAMPLE, "MoNTH"), "March    ");
        assert_eq!(to_char(SAMPLE, "dDd"), "063");
    }

    #[test]
    fn parses_as_postgresql() {
        let ts = |input: &str, pattern: &str| Template::new(pattern).parse_timestamp(input, None).unwrap();
        assert_eq!(ts("2025-03-04 17:06:07", "YYYY-MM-DD HH24:MI:SS"), micros("2025-03-04 17:06:07"));
        assert_eq!(ts("04/03/2025 05:06 PM", "DD/MM/YYYY HH12:MI AM"), micros("2025-03-04 17:06:00"));
        assert_eq!(ts("2025-03-04T05:06:07.5", "YYYY-MM-DD\"T\"HH24:MI:SS.MS"), micros("2025-03-04 05:06:07.5"));
        assert_eq!(ts("Mar 4 2025", "Mon DD YYYY"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2026-01-01 00:00:00.000000", "YYYY-MM-DD HH24:MI:SS.US"), micros("2026-01-01 00:00:00"));
        assert_eq!(ts("2025-03-04 05:06:07.25", "YYYY-MM-DD HH24:MI:SS.US"), micros("2025-03-04 05:06:07.25"));
        assert_eq!(ts("2025-03-04 05:06:07.025", "YYYY-MM-DD HH24:MI:SS.MS"), micros("2025-03-04 05:06:07.025"));
        assert_eq!(ts("12:30 am 2025-01-01", "HH12:MI AM YYYY-MM-DD"), micros("2025-01-01 00:30:00"));
        assert_eq!(ts("12:30 P.M. 2025-01-01", "HH:MI A.M. YYYY-MM-DD"), micros("2025-01-01 12:30:00"));
        assert_eq!(ts("  2025  -  03-04", "YYYY-MM-DD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2025/03/04", "YYYY-MM-DD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2025 03 04 trailing", "YYYY MM DD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2025-03", "YYYY-MM-DD HH24"), micros("2025-03-01 00:00:00"));
        assert_eq!(ts("20250304170607", "YYYYMMDDHH24MISS"), micros("2025-03-04 17:06:07"));
        assert_eq!(ts("2025-03-04 17:06:07+05:30", "YYYY-MM-DD HH24:MI:SSTZH:TZM"), micros("2025-03-04 11:36:07"));
        assert_eq!(ts("2025-03-04 17:06:07 -02", "YYYY-MM-DD HH24:MI:SS TZH"), micros("2025-03-04 19:06:07"));
        assert_eq!(ts("2025 063", "YYYY DDD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2025-W10-2", "IYYY-\"W\"IW-ID"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2025 065", "IYYY IDDD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("25-03-04", "YY-MM-DD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("75-03-04", "YY-MM-DD"), micros("1975-03-04 00:00:00"));
        assert_eq!(ts("2,025 03 04", "Y,YYY MM DD"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("Tuesday 4 March 2025", "Day DD Month YYYY"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("MARCH 4 2025", "mon dd yyyy"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("iii 4 2025", "RM DD YYYY"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("2460739", "J"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("4th of March 2025", "DDth \"of\" Month YYYY"), micros("2025-03-04 00:00:00"));
        assert_eq!(ts("61207 2025-03-04", "SSSS YYYY-MM-DD"), micros("2025-03-04 17:00:07"));
        assert_eq!(ts("2025-03-04 05:06:07.123456", "YYYY-MM-DD HH24:MI:SS.FF3"), micros("2025-03-04 05:06:07.123"));
        assert_eq!(ts("2025-03-04 05:06:07.1235", "YYYY-MM-DD HH24:MI:SS.FF3"), micros("2025-03-04 05:06:07.124"));
        assert_eq!(ts("44 BC", "YYYY BC"), micros("-0043-01-01 00:00:00"));
        // fields not given: 00:00:00 on January 1 of year 0 (1 BC), as PostgreSQL
        assert_eq!(ts("05:06", "HH24:MI"), micros("0000-01-01 05:06:00"));
        assert_eq!(ts("anything", ""), micros("0000-01-01 00:00:00"));
    }

    /// Each expected instant is what PostgreSQL 15 answered for `to_timestamp(…)` under
    /// `SET TIME ZONE 'America/New_York'`.
    #[test]
    fn reads_wall_times_in_the_session_zone() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let ts = |input: &str| Template::new("YYYY-MM-DD HH24:MI").parse_timestamp(input, Some(&zone)).unwrap();
        assert_eq!(ts("2025-01-01 10:00"), micros("2025-01-01 15:00:00"));
        assert_eq!(ts("2025-07-01 10:00"), micros("2025-07-01 14:00:00"));
        // passed twice (Nov 2): the later instant, -05; skipped (Mar 9): the offset before, -05
        assert_eq!(ts("2025-11-02 01:30"), micros("2025-11-02 06:30:00"));
        assert_eq!(ts("2025-03-09 02:30"), micros("2025-03-09 07:30:00"));
        // an offset in the text wins
        let with_offset = Template::new("YYYY-MM-DD HH24:MI TZH").parse_timestamp("2025-01-01 10:00 +02", Some(&zone));
        assert_eq!(with_offset.unwrap(), micros("2025-01-01 08:00:00"));
    }

    #[test]
    fn parses_dates() {
        let date = |input: &str, pattern: &str| Template::new(pattern).parse_date(input).unwrap();
        assert_eq!(date("2025-03-04", "YYYY-MM-DD"), days("2025-03-04"));
        assert_eq!(date("20250304", "YYYYMMDD"), days("2025-03-04"));
        assert_eq!(date("4 March 2025", "DD Month YYYY"), days("2025-03-04"));
        assert_eq!(date("2025-03-04 23:59:59", "YYYY-MM-DD HH24:MI:SS"), days("2025-03-04"));
        assert_eq!(date("1969-12-31", "YYYY-MM-DD"), -1);
        assert_eq!(date("2024-02-29", "YYYY-MM-DD"), days("2024-02-29"));
    }

    #[test]
    fn errors_carry_postgresql_sqlstates_and_messages() {
        let ts = |input: &str, pattern: &str| Template::new(pattern).parse_timestamp(input, None);
        let date = |input: &str, pattern: &str| Template::new(pattern).parse_date(input);
        assert_eq!(error_of(date("2025-xx-04", "YYYY-MM-DD")), ("22007", r#"invalid value "xx" for "MM""#.into()));
        assert_eq!(error_of(date("2025-xx-04", "yyyy-mm-dd")), ("22007", r#"invalid value "xx" for "mm""#.into()));
        assert_eq!(error_of(date("Foo 4 2025", "Mon DD YYYY")), ("22007", r#"invalid value "Foo" for "Mon""#.into()));
        assert_eq!(error_of(date("2025x304", "YYYYMMDD")), ("22007", r#"invalid value "x3" for "MM""#.into()));
        // the input may end early (fields not reached default), but not inside a fixed-width field
        assert_eq!(date("202503", "YYYYMMDD").unwrap(), days("2025-03-01"));
        assert_eq!(date("2025034", "YYYYMMDD").unwrap(), days("2025-03-04"));
        assert_eq!(
            error_of(date("2025031", "YYYYMMDDHH24")),
            ("22007", r#"source string too short for "DD" formatting field"#.into())
        );
        for (input, pattern) in [
            ("2025-13-04", "YYYY-MM-DD"),
            ("2025-03-32", "YYYY-MM-DD"),
            ("2025-02-30", "YYYY-MM-DD"),
            ("2025-03-04 25:00", "YYYY-MM-DD HH24:MI"),
            ("2025-03-04 10:60", "YYYY-MM-DD HH24:MI"),
        ] {
            assert_eq!(
                error_of(ts(input, pattern)),
                ("22008", format!("date/time field value out of range: \"{input}\"")),
                "{input}"
            );
        }
        assert_eq!(
            error_of(ts("13:00 PM", "HH12:MI AM")),
            ("22007", r#"hour "13" is invalid for the 12-hour clock"#.into())
        );
        assert_eq!(
            error_of(ts("03 April", "MM Month")),
            ("22007", r#"conflicting values for "Month" field in formatting string"#.into())
        );
        assert_eq!(
            error_of(ts("2025 10 063", "YYYY IW DDD")),
            ("22007", "invalid combination of date conventions".into())
        );
        assert_eq!(error_of(ts("99999999999", "YYYY")).0, "22008");
        assert_eq!(error_of(ts("2025 UTC", "YYYY TZ")).0, "0A000");
        assert_eq!(error_of(ts("063", "DDD")).0, "22007");
        assert_eq!(error_of(ts("2025 +16", "YYYY TZH")).0, "22009");
        assert_eq!(error_of(ts("300000-01-01", "YYYY-MM-DD")), ("22008", "timestamp out of range".into()));
        assert_eq!(error_of(date("5874898-07-01", "YYYY-MM-DD")).0, "22008");
    }

    #[test]
    fn civil_days_round_trip() {
        for days in [-800_000, -719_468, -1, 0, 1, 11_016, 20_151, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let chrono = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
            assert_eq!((y, m, d), (i64::from(chrono.year()), i64::from(chrono.month()), i64::from(chrono.day())));
        }
        for year in [1999, 2004, 2020, 2021, 2025, 2026] {
            let monday = iso_week_monday(year, 1);
            let chrono = NaiveDate::from_isoywd_opt(year as i32, 1, chrono::Weekday::Mon).unwrap();
            assert_eq!(monday, i64::from(chrono.num_days_from_ce()) - 719_163, "{year}");
        }
    }
}
