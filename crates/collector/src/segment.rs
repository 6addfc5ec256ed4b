//! Segment's HTTP tracking API: `/v1/{track,identify,page,screen,group,alias}` take one
//! message, `/v1/batch` a `{"batch": [...]}` of typed messages (Segment's spec,
//! segment.com/docs/connections/sources/catalog/libraries/server/http-api). Field mapping:
//! docs/collector.md.

use crate::message::{
    event_time, get, json_kind, json_text, library, micros, new_message_id, path, text, Checker, EventRow, Json,
    Object, Problem, Received,
};

/// The calls of the tracking API, as the path and a batch message's `type` name them.
pub const CALLS: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];

/// Reads the body of `/v1/<call>` (`call` one of [`CALLS`]) or, with `call` = `batch`,
/// `/v1/batch`. Every problem of every message is reported; any problem refuses the request.
pub fn parse(call: &str, body: &Json, received: &Received) -> Result<Vec<EventRow>, Vec<Problem>> {
    let Json::Object(request) = body else {
        return Err(vec![Problem::request("body", format!("must be a JSON object, not {}", json_kind(body)))]);
    };
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    if call == "batch" {
        let messages = match get(request, "batch") {
            Some(Json::Array(messages)) => messages,
            Some(other) => {
                return Err(vec![Problem::request("batch", format!("must be an array, not {}", json_kind(other)))])
            }
            None => return Err(vec![Problem::request("batch", "is missing")]),
        };
        let shared = Shared {
            sent_at: Checker { index: None, problems: &mut problems }.time(request, "sentAt"),
            context: get(request, "context").and_then(Json::as_object),
        };
        for (index, message) in messages.iter().enumerate() {
            let mut check = Checker { index: Some(index), problems: &mut problems };
            let Json::Object(message) = message else {
                check.problem("", format!("a message must be a JSON object, not {}", json_kind(message)));
                continue;
            };
            let call = match get(message, "type").and_then(Json::as_str) {
                Some(t) if CALLS.contains(&t) => CALLS.iter().find(|c| **c == t).copied().expect("listed"),
                Some(t) => {
                    check.problem("type", format!("'{t}' is not one of {}", CALLS.join(", ")));
                    continue;
                }
                None => {
                    check.problem("type", "is missing");
                    continue;
                }
            };
            if let Some(row) = message_row(call, message, &shared, received, &mut check) {
                rows.push(row);
            }
        }
    } else {
        let call = CALLS.iter().find(|c| **c == call).copied().expect("routed calls are listed");
        let shared = Shared { sent_at: None, context: None };
        let mut check = Checker { index: None, problems: &mut problems };
        rows.extend(message_row(call, request, &shared, received, &mut check));
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// What a batch gives all its messages.
struct Shared<'o, 'a> {
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
    context: Option<&'o Object<'a>>,
}

fn message_row(
    call: &'static str,
    message: &Object,
    shared: &Shared,
    received: &Received,
    check: &mut Checker,
) -> Option<EventRow> {
    let user_id = check.id(message, "userId");
    let anonymous_id = check.id(message, "anonymousId");
    let message_id = check.id(message, "messageId");
    let properties = check.object(message, "properties");
    let traits = check.object(message, "traits");
    let own_context = check.object(message, "context");
    let timestamp = check.time(message, "timestamp").or_else(|| check.time(message, "originalTimestamp"));
    let sent_at = check.time(message, "sentAt").or(shared.sent_at);
    let context = merged_context(shared.context, own_context);
    let context = context.as_ref();

    let event = match call {
        "track" => check.required_text(message, "event", "is missing: a track call names its event"),
        other => Some(other.to_string()),
    };
    let group_id = if call == "group" { check.id(message, "groupId") } else { None };
    let previous_id = if call == "alias" { check.id(message, "previousId") } else { None };
    match call {
        "alias" => {
            if user_id.is_none() {
                check.problem("userId", "is missing: an alias call names the userId");
            }
            if previous_id.is_none() {
                check.problem("previousId", "is missing: an alias call names the previousId");
            }
        }
        "group" if group_id.is_none() => check.problem("groupId", "is missing: a group call names the groupId"),
        _ => {}
    }
    let bad_id =
        check.problems.iter().any(|p| p.index == check.index && ["userId", "anonymousId"].contains(&p.field.as_str()));
    if user_id.is_none() && anonymous_id.is_none() && call != "alias" && !bad_id {
        check.problem("userId", "is missing, and so is anonymousId: one of them is required");
    }
    let event = event?;
    let user_id = user_id.clone().or_else(|| anonymous_id.clone())?;
    if call == "alias" && previous_id.is_none() {
        return None;
    }
    // Page and screen calls carry their name beside the properties; keep it with them.
    let mut properties = properties.cloned();
    if matches!(call, "page" | "screen") {
        for field in ["name", "category"] {
            if let Some(value) = get(message, field).filter(|v| v.is_string()) {
                let properties = properties.get_or_insert_with(Object::default);
                if get(properties, field).is_none() {
                    properties.insert(field, value.clone());
                }
            }
        }
    }
    let properties = properties.as_ref();
    // RudderStack's SDKs send an identify call's traits as `context.traits` (Segment's spec
    // allows both places); the root `traits` wins when both are there.
    let traits = match (traits, call) {
        (None, "identify") => path(context, &["traits"]).and_then(Json::as_object).filter(|t| !t.is_empty()),
        (traits, _) => traits,
    };
    let context_text = |keys: &[&str]| text(path(context, keys));
    let campaign = |key: &str| context_text(&["campaign", key]);
    Some(EventRow {
        event_time: micros(event_time(timestamp, sent_at, None, received.at)),
        user_id,
        event,
        session_id: context_text(&["sessionId"]).or_else(|| text(path(properties, &["session_id"]))),
        properties: json_text(properties),
        message_id: message_id.unwrap_or_else(new_message_id),
        message_type: call,
        anonymous_id,
        previous_id,
        group_type: None,
        group_id,
        traits: json_text(traits),
        context: json_text(context),
        utm_source: campaign("source"),
        utm_medium: campaign("medium"),
        utm_campaign: campaign("name"),
        utm_term: campaign("term"),
        utm_content: campaign("content"),
        referrer: context_text(&["page", "referrer"]).or_else(|| text(path(properties, &["referrer"]))),
        url: context_text(&["page", "url"]).or_else(|| text(path(properties, &["url"]))),
        library: library(context_text(&["library", "name"]), context_text(&["library", "version"])),
        user_agent: context_text(&["userAgent"]).or_else(|| received.user_agent.clone()),
        ip: received.keep_ip.then(|| context_text(&["ip"]).or_else(|| received.peer_ip.clone())).flatten(),
        received_at: micros(received.at),
    })
}

/// A batch's context under the message's own: the batch's keys in order, each with the
/// message's value when it has one, then the message's other keys.
fn merged_context<'o>(shared: Option<&'o Object>, own: Option<&'o Object>) -> Option<Object<'o>> {
    if shared.is_none() && own.is_none() {
        return None;
    }
    let shared_fields = shared.into_iter().flat_map(|s| s.iter());
    let own_fields = own.into_iter().flat_map(|o| o.iter());
    let overridden = shared_fields.map(|(key, value)| (key, own.and_then(|o| get(o, key)).unwrap_or(value).clone()));
    let added = own_fields.filter(|(key, _)| !shared.is_some_and(|s| s.contains_key(key))).map(|(k, v)| (k, v.clone()));
    Some(overridden.chain(added).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_time, received_for_tests};
    use serde_json::json;

    fn received() -> Received {
        received_for_tests(false, Some("curl/8"))
    }

    /// `parse` of the body as the collector reads it (a tree borrowed from the JSON text).
    fn parse_value(call: &str, body: &serde_json::Value) -> Result<Vec<EventRow>, Vec<Problem>> {
        let text = body.to_string();
        parse(call, &crate::body::json(text.as_bytes()).unwrap(), &received())
    }

    #[test]
    fn a_batch_maps_every_documented_field() {
        let body = json!({
            "writeKey": "wk",
            "sentAt": "2026-06-01T11:00:05Z",
            "batch": [
                {"type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1",
                 "messageId": "m1", "timestamp": "2026-06-01T11:00:00Z", "properties": {"revenue": 9.5},
                 "context": {"campaign": {"source": "news", "medium": "email", "name": "june"},
                             "page": {"referrer": "https://r.example", "url": "https://shop.example/x"},
                             "library": {"name": "analytics-python", "version": "2.3.3"},
                             "userAgent": "Mozilla/5.0", "ip": "1.2.3.4"}},
                {"type": "page", "anonymousId": "a2", "name": "Pricing", "messageId": "m2"},
                {"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "m3"},
                {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"plan": "pro"}}
            ]
        });
        let rows = parse_value("batch", &body).unwrap();
        let [track, page, alias, group] = &rows[..] else { panic!("4 rows") };
        assert_eq!(track.event, "Order Completed");
        assert_eq!(track.user_id, "u1");
        assert_eq!(track.anonymous_id.as_deref(), Some("a1"));
        assert_eq!(track.event_time, micros(parse_time("2026-06-01T12:00:05Z").unwrap()), "skew corrected");
        assert_eq!(track.properties.as_deref(), Some(r#"{"revenue":9.5}"#));
        assert_eq!(
            (track.utm_source.as_deref(), track.utm_medium.as_deref(), track.utm_campaign.as_deref()),
            (Some("news"), Some("email"), Some("june"))
        );
        assert_eq!(track.referrer.as_deref(), Some("https://r.example"));
        assert_eq!(track.library.as_deref(), Some("analytics-python/2.3.3"));
        assert_eq!(track.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(track.ip, None, "addresses are kept only when asked");
        assert_eq!((page.event.as_str(), page.user_id.as_str()), ("page", "a2"));
        assert_eq!(page.properties.as_deref(), Some(r#"{"name":"Pricing"}"#));
        assert_eq!(page.user_agent.as_deref(), Some("curl/8"));
        assert_eq!((alias.previous_id.as_deref(), alias.message_type), (Some("a1"), "alias"));
        assert_eq!((group.group_id.as_deref(), group.traits.as_deref()), (Some("acme"), Some(r#"{"plan":"pro"}"#)));
        assert!(!group.message_id.is_empty(), "an id is made for messages without one");
    }

    #[test]
    fn identify_traits_are_taken_from_the_context_when_the_root_has_none() {
        let body = json!({"batch": [
            {"type": "identify", "userId": "u1", "context": {"traits": {"email": "u1@x"}}},
            {"type": "identify", "userId": "u2", "traits": {"email": "root@x"}, "context": {"traits": {"email": "ctx@x"}}},
            {"type": "track", "event": "e", "userId": "u3", "context": {"traits": {"email": "u3@x"}}}
        ]});
        let rows = parse_value("batch", &body).unwrap();
        let traits: Vec<Option<&str>> = rows.iter().map(|r| r.traits.as_deref()).collect();
        assert_eq!(traits, [Some(r#"{"email":"u1@x"}"#), Some(r#"{"email":"root@x"}"#), None]);
    }

    #[test]
    fn every_problem_names_its_message_and_field() {
        let body = json!({"batch": [
            {"type": "track", "userId": "u1"},
            {"type": "identify"},
            {"type": "shout", "userId": "u1"},
            {"type": "track", "event": "e", "userId": ["x"], "timestamp": "soon"},
            {"type": "alias", "userId": "u1"},
            "text"
        ]});
        let problems = parse_value("batch", &body).err().unwrap();
        let named: Vec<(Option<usize>, &str)> = problems.iter().map(|p| (p.index, p.field.as_str())).collect();
        assert_eq!(
            named,
            [
                (Some(0), "event"),
                (Some(1), "userId"),
                (Some(2), "type"),
                (Some(3), "userId"),
                (Some(3), "timestamp"),
                (Some(4), "previousId"),
                (Some(5), "")
            ]
        );
        let problems = parse_value("track", &json!([1])).err().unwrap();
        assert_eq!(problems[0].field, "body");
    }

    #[test]
    fn a_batch_context_is_merged_under_each_message_context() {
        let body = json!({"context": {"library": {"name": "lib"}, "ip": "1.1.1.1"}, "batch": [
            {"type": "track", "event": "e", "userId": "u1", "context": {"page": {"url": "https://x.example"}, "ip": "2.2.2.2"}},
            {"type": "track", "event": "e", "userId": "u2"}
        ]});
        let rows = parse_value("batch", &body).unwrap();
        let contexts: Vec<Option<&str>> = rows.iter().map(|r| r.context.as_deref()).collect();
        assert_eq!(
            contexts,
            [
                Some(r#"{"library":{"name":"lib"},"ip":"2.2.2.2","page":{"url":"https://x.example"}}"#),
                Some(r#"{"library":{"name":"lib"},"ip":"1.1.1.1"}"#)
            ]
        );
        assert_eq!((rows[0].library.as_deref(), rows[0].url.as_deref()), (Some("lib"), Some("https://x.example")));
    }
}
