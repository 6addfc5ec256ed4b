//! One received event as a row of the events table, the problems that refuse a request, and
//! the helpers both vendors' parsers share (times, ids, JSON fields). The mapping of every
//! field is documented in docs/collector.md.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::Serialize;

/// A request's JSON, borrowed from its body: strings point into the body (unless escaped) and
/// an object is a list of its fields in the order sent. A `serde_json::Value` tree, with a hash
/// map and a string allocated per field, was a third of the collector's CPU under load
/// (docs/benchmarks.md, "HTTP collector").
pub type Json<'a> = serde_json_borrow::Value<'a>;
pub type Object<'a> = serde_json_borrow::ObjectAsVec<'a>;

/// A field of an object. A key sent twice in one object: the last one counts, as in
/// PostgreSQL's `json` operators and JavaScript's `JSON.parse`.
pub fn get<'o, 'a>(object: &'o Object<'a>, key: &str) -> Option<&'o Json<'a>> {
    object.iter().filter(|(k, _)| *k == key).last().map(|(_, value)| value)
}

/// An event as it will be written: the core columns, then the collector's own columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRow {
    /// Microseconds since the epoch, UTC, after the clock-skew correction.
    pub event_time: i64,
    pub user_id: String,
    pub event: String,
    pub session_id: Option<String>,
    /// JSON text of the event's properties.
    pub properties: Option<String>,
    /// The SDK's id of the message (`messageId`, `uuid`), or one made here when it sent none.
    pub message_id: String,
    /// Segment's call (`track`, `page`, `screen`, `identify`, `group`, `alias`) or `capture`.
    pub message_type: &'static str,
    pub anonymous_id: Option<String>,
    /// The other id of an alias: Segment's `previousId`, PostHog's `alias` property.
    pub previous_id: Option<String>,
    pub group_type: Option<String>,
    pub group_id: Option<String>,
    /// JSON text: Segment's `traits`, PostHog's `$set` or `$group_set`.
    pub traits: Option<String>,
    /// JSON text of Segment's `context`.
    pub context: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub referrer: Option<String>,
    pub url: Option<String>,
    /// `name/version` of the SDK that sent it.
    pub library: Option<String>,
    pub user_agent: Option<String>,
    /// Only when the collector is told to keep addresses (`--collect-ip`).
    pub ip: Option<String>,
    /// Microseconds since the epoch: when the request reached the collector.
    pub received_at: i64,
}

/// The text columns the collector adds to the table, in order, with how each row fills it.
/// (`received_at`, a timestamp, follows them.)
pub type TextColumn = (&'static str, fn(&EventRow) -> Option<&str>);
pub const TEXT_COLUMNS: [TextColumn; 17] = [
    ("message_id", |r| Some(r.message_id.as_str())),
    ("message_type", |r| Some(r.message_type)),
    ("anonymous_id", |r| r.anonymous_id.as_deref()),
    ("previous_id", |r| r.previous_id.as_deref()),
    ("group_type", |r| r.group_type.as_deref()),
    ("group_id", |r| r.group_id.as_deref()),
    ("traits", |r| r.traits.as_deref()),
    ("context", |r| r.context.as_deref()),
    ("utm_source", |r| r.utm_source.as_deref()),
    ("utm_medium", |r| r.utm_medium.as_deref()),
    ("utm_campaign", |r| r.utm_campaign.as_deref()),
    ("utm_term", |r| r.utm_term.as_deref()),
    ("utm_content", |r| r.utm_content.as_deref()),
    ("referrer", |r| r.referrer.as_deref()),
    ("url", |r| r.url.as_deref()),
    ("library", |r| r.library.as_deref()),
    ("user_agent", |r| r.user_agent.as_deref()),
];
pub const IP: &str = "ip";
/// The columns whose values are nearly all distinct (ids and JSON): group commits write them
/// without a dictionary (`WriterLayout::plain_columns`; docs/collector.md).
pub const DISTINCT_COLUMNS: [&str; 8] =
    ["message_id", "properties", "traits", "context", "session_id", "anonymous_id", "previous_id", IP];
pub const RECEIVED_AT: &str = "received_at";

/// Why a request was refused: which message of the batch (`None`: the request itself), which
/// field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn request(field: &str, message: impl Into<String>) -> Self {
        Problem { index: None, field: field.into(), message: message.into() }
    }
}

/// What a parser knows about the request it reads: when it arrived, from where, and whether
/// addresses are kept.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: DateTime<Utc>,
    pub peer_ip: Option<String>,
    pub keep_ip: bool,
    /// The request's `User-Agent` header, for events that carry none of their own.
    pub user_agent: Option<String>,
}

/// Collects the problems of one message, each naming the message's index in the batch.
pub struct Checker<'a> {
    pub index: Option<usize>,
    pub problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    pub fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem { index: self.index, field: field.into(), message: message.into() });
    }

    /// A text field: strings as they are, numbers as their decimal text (SDKs send numeric
    /// user ids); anything else is a problem. Empty text counts as absent.
    pub fn id(&mut self, object: &Object, field: &str) -> Option<String> {
        match get(object, field) {
            None | Some(Json::Null) => None,
            Some(Json::Str(s)) if s.is_empty() => None,
            Some(Json::Str(s)) => Some(s.to_string()),
            Some(Json::Number(n)) => Some(number_text(n)),
            Some(other) => {
                self.problem(field, format!("must be a string, not {}", json_kind(other)));
                None
            }
        }
    }

    /// A required, non-empty string field (an event's name); `missing` says why it is needed.
    pub fn required_text(&mut self, object: &Object, field: &str, missing: &str) -> Option<String> {
        match get(object, field) {
            Some(Json::Str(text)) if !text.is_empty() => Some(text.to_string()),
            Some(Json::Str(_)) | None | Some(Json::Null) => {
                self.problem(field, missing);
                None
            }
            Some(other) => {
                self.problem(field, format!("must be a string, not {}", json_kind(other)));
                None
            }
        }
    }

    /// An optional JSON object field.
    pub fn object<'o, 'a>(&mut self, object: &'o Object<'a>, field: &str) -> Option<&'o Object<'a>> {
        match get(object, field) {
            None | Some(Json::Null) => None,
            Some(Json::Object(map)) => Some(map),
            Some(other) => {
                self.problem(field, format!("must be an object, not {}", json_kind(other)));
                None
            }
        }
    }

    /// An optional ISO-8601 time field (with an offset, or UTC when it has none).
    pub fn time(&mut self, object: &Object, field: &str) -> Option<DateTime<Utc>> {
        match get(object, field) {
            None | Some(Json::Null) => None,
            Some(Json::Str(s)) => match parse_time(s) {
                Some(t) => Some(t),
                None => {
                    self.problem(field, format!("'{s}' is not an ISO-8601 time"));
                    None
                }
            },
            Some(other) => {
                self.problem(field, format!("must be an ISO-8601 time string, not {}", json_kind(other)));
                None
            }
        }
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc())
}

/// The event's time as both vendors compute it: the SDK's timestamp moved by the difference
/// between the collector's and the SDK's clocks when it sent the request (`received − sent`);
/// PostHog's `offset` (milliseconds before sending) when there is no timestamp; else the time
/// the request arrived. A time more than 23 hours after arrival is a broken clock: arrival
/// replaces it (PostHog's rule).
pub fn event_time(
    timestamp: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    offset_ms: Option<i64>,
    received: DateTime<Utc>,
) -> DateTime<Utc> {
    let time = match (timestamp, sent_at, offset_ms) {
        (Some(timestamp), Some(sent), _) => timestamp + (received - sent),
        (Some(timestamp), None, _) => timestamp,
        (None, _, Some(offset)) => received - Duration::milliseconds(offset),
        (None, _, None) => received,
    };
    if time > received + Duration::hours(23) {
        received
    } else {
        time
    }
}

pub fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// Text of a JSON value that is a string (or a number); `None` for anything else.
pub fn text(value: Option<&Json>) -> Option<String> {
    match value? {
        Json::Str(s) if !s.is_empty() => Some(s.to_string()),
        Json::Number(n) => Some(number_text(n)),
        _ => None,
    }
}

/// A number as serde_json writes it (a fraction in its shortest form, `1e21` not 22 digits).
fn number_text(number: &serde_json_borrow::Number) -> String {
    if number.is_f64() {
        serde_json::to_string(number).expect("a JSON number always serializes")
    } else {
        number.to_string()
    }
}

/// A nested field: `path(context, &["campaign", "source"])`.
pub fn path<'o, 'a>(object: Option<&'o Object<'a>>, keys: &[&str]) -> Option<&'o Json<'a>> {
    let (last, parents) = keys.split_last()?;
    let mut current = object?;
    for key in parents {
        current = get(current, key)?.as_object()?;
    }
    get(current, last)
}

/// The compact JSON text of an object, its fields in the order sent.
pub fn json_text(object: Option<&Object>) -> Option<String> {
    object.map(|o| serde_json::to_string(o).expect("a JSON object always serializes"))
}

pub fn library(name: Option<String>, version: Option<String>) -> Option<String> {
    match (name, version) {
        (Some(name), Some(version)) => Some(format!("{name}/{version}")),
        (name, _) => name,
    }
}

pub fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::Str(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A message id for an event whose SDK sent none (such an event cannot be deduplicated).
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What the parsers' tests receive: a request at 2026-06-01 12:00:10 UTC from 10.0.0.9.
#[cfg(test)]
pub fn received_for_tests(keep_ip: bool, user_agent: Option<&str>) -> Received {
    Received {
        at: parse_time("2026-06-01T12:00:10Z").unwrap(),
        peer_ip: Some("10.0.0.9".into()),
        keep_ip,
        user_agent: user_agent.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    #[test]
    fn event_time_corrects_the_sdk_clock_by_the_send_delay() {
        let received = at("2026-06-01T12:00:10Z");
        // The SDK's clock is 1 hour behind: it stamped the event at 11:00:00 and sent at 11:00:05.
        let time = event_time(Some(at("2026-06-01T11:00:00Z")), Some(at("2026-06-01T11:00:05Z")), None, received);
        assert_eq!(time, at("2026-06-01T12:00:05Z"));
        assert_eq!(event_time(Some(at("2026-06-01T11:00:00Z")), None, None, received), at("2026-06-01T11:00:00Z"));
        assert_eq!(event_time(None, None, Some(2_500), received), at("2026-06-01T12:00:07.5Z"));
        assert_eq!(event_time(None, None, None, received), received);
        assert_eq!(event_time(Some(at("2026-06-03T00:00:00Z")), None, None, received), received, "a day ahead");
    }

    #[test]
    fn times_with_and_without_offsets_parse() {
        assert_eq!(at("2026-06-01T12:00:00+02:00"), at("2026-06-01T10:00:00Z"));
        assert_eq!(at("2026-06-01T10:00:00.250"), at("2026-06-01T10:00:00.250Z"));
        assert!(parse_time("yesterday").is_none());
    }
}
