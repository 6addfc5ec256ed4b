//! PostHog's capture API: `/batch/`, `/capture/`, `/e/`, `/i/v0/e/` take one event, an array
//! of events, or `{"batch": [...]}`, with the project key as `api_key` (or `token`) in the
//! body, or as each event's `token` property as posthog-js sends it. How the body itself
//! arrives (gzip, `data=` base64 forms) is `body.rs`'s job. Field mapping: docs/collector.md.

use crate::message::{
    event_time, get, json_kind, json_text, library, micros, new_message_id, path, text, Checker, EventRow, Json,
    Object, Problem, Received,
};

/// Every project key the body carries: the request's, and each event's own or its `token`
/// property.
pub fn api_keys(body: &Json) -> Vec<String> {
    match body {
        Json::Array(events) => event_keys(events),
        Json::Object(request) => {
            let mut keys: Vec<String> = request_key(request).into_iter().collect();
            match get(request, "batch") {
                Some(Json::Array(events)) => keys.extend(event_keys(events)),
                Some(_) => {}
                None => keys = event_keys(std::slice::from_ref(body)),
            }
            keys
        }
        _ => vec![],
    }
}

/// Each event's own key and its `token` property.
fn event_keys(events: &[Json]) -> Vec<String> {
    events
        .iter()
        .filter_map(Json::as_object)
        .flat_map(|event| {
            let token = text(path(object_field(event, "properties"), &["token"]));
            request_key(event).into_iter().chain(token)
        })
        .collect()
}

pub fn parse(body: &Json, received: &Received) -> Result<Vec<EventRow>, Vec<Problem>> {
    let mut problems = Vec::new();
    let (events, sent_at): (&[Json], _) = match body {
        Json::Array(events) => (events, None),
        Json::Object(request) if request.contains_key("batch") => {
            let sent_at = Checker { index: None, problems: &mut problems }.time(request, "sent_at");
            match get(request, "batch") {
                Some(Json::Array(events)) => (events, sent_at),
                Some(other) => {
                    return Err(vec![Problem::request("batch", format!("must be an array, not {}", json_kind(other)))])
                }
                None => unreachable!("checked above"),
            }
        }
        Json::Object(_) => (std::slice::from_ref(body), None),
        other => {
            return Err(vec![Problem::request(
                "body",
                format!("must be an event, an array of events or {{\"batch\": [...]}}, not {}", json_kind(other)),
            )])
        }
    };
    let single = matches!(body, Json::Object(o) if !o.contains_key("batch"));
    let mut rows = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let mut check = Checker { index: (!single).then_some(index), problems: &mut problems };
        let Json::Object(event) = event else {
            check.problem("", format!("an event must be a JSON object, not {}", json_kind(event)));
            continue;
        };
        if let Some(row) = event_row(event, sent_at, received, &mut check) {
            rows.push(row);
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

fn request_key(object: &Object) -> Option<String> {
    text(get(object, "api_key")).or_else(|| text(get(object, "token")))
}

/// An object-valued field, or `None` (whatever else the field holds).
fn object_field<'o, 'a>(object: &'o Object<'a>, key: &str) -> Option<&'o Object<'a>> {
    get(object, key)?.as_object()
}

fn event_row(
    event: &Object,
    batch_sent_at: Option<chrono::DateTime<chrono::Utc>>,
    received: &Received,
    check: &mut Checker,
) -> Option<EventRow> {
    let name = check.required_text(event, "event", "is missing");
    let properties = check.object(event, "properties");
    let distinct_id = check.id(event, "distinct_id").or_else(|| {
        let properties = properties?;
        text(get(properties, "distinct_id")).or_else(|| text(get(properties, "$distinct_id")))
    });
    if distinct_id.is_none() && !check.problems.iter().any(|p| p.index == check.index && p.field == "distinct_id") {
        check.problem("distinct_id", "is missing (neither the event nor its properties carry one)");
    }
    let message_id = check.id(event, "uuid");
    let timestamp = check.time(event, "timestamp");
    let sent_at = check.time(event, "sent_at").or(batch_sent_at);
    let offset = match get(event, "offset") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(other) => {
            check.problem("offset", format!("must be a whole number of milliseconds, not {}", json_kind(other)));
            None
        }
    };
    // SDKs put `$set` in the properties; some older senders beside them.
    let set = check.object(event, "$set").or_else(|| properties.and_then(|p| object_field(p, "$set")));
    let (name, distinct_id) = (name?, distinct_id?);
    let property = |key: &str| text(properties.and_then(|p| get(p, key)));
    let is = |names: &[&str]| names.contains(&name.as_str());
    Some(EventRow {
        event_time: micros(event_time(timestamp, sent_at, offset, received.at)),
        user_id: distinct_id,
        session_id: property("$session_id"),
        properties: json_text(properties),
        message_id: message_id.unwrap_or_else(new_message_id),
        message_type: "capture",
        anonymous_id: property("$anon_distinct_id"),
        previous_id: if is(&["$create_alias", "$merge_dangerously"]) { property("alias") } else { None },
        group_type: if is(&["$groupidentify"]) { property("$group_type") } else { None },
        group_id: if is(&["$groupidentify"]) { property("$group_key") } else { None },
        traits: if is(&["$groupidentify"]) {
            json_text(properties.and_then(|p| object_field(p, "$group_set")))
        } else {
            json_text(set)
        },
        context: None,
        utm_source: property("utm_source"),
        utm_medium: property("utm_medium"),
        utm_campaign: property("utm_campaign"),
        utm_term: property("utm_term"),
        utm_content: property("utm_content"),
        referrer: property("$referrer"),
        url: property("$current_url"),
        library: library(property("$lib"), property("$lib_version")),
        user_agent: property("$raw_user_agent").or_else(|| received.user_agent.clone()),
        ip: received.keep_ip.then(|| property("$ip").or_else(|| received.peer_ip.clone())).flatten(),
        received_at: micros(received.at),
        event: name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_time, received_for_tests};
    use serde_json::json;

    fn received() -> Received {
        received_for_tests(true, None)
    }

    /// `parse` of the body as the collector reads it (a tree borrowed from the JSON text).
    fn parse_value(body: &serde_json::Value) -> Result<Vec<EventRow>, Vec<Problem>> {
        let text = body.to_string();
        parse(&crate::body::json(text.as_bytes()).unwrap(), &received())
    }

    fn keys_of(body: &serde_json::Value) -> Vec<String> {
        let text = body.to_string();
        api_keys(&crate::body::json(text.as_bytes()).unwrap())
    }

    #[test]
    fn a_batch_maps_identify_alias_groups_and_web_properties() {
        let body = json!({
            "api_key": "phc_1",
            "sent_at": "2026-06-01T11:00:05Z",
            "batch": [
                {"event": "$pageview", "distinct_id": "anon-1", "uuid": "e1", "timestamp": "2026-06-01T11:00:00Z",
                 "properties": {"$session_id": "s1", "$current_url": "https://x.example/a?utm_source=ads",
                                "$referrer": "https://google.com", "utm_source": "ads", "$lib": "web",
                                "$lib_version": "1.200.0", "$raw_user_agent": "Mozilla/5.0", "$ip": "5.6.7.8"}},
                {"event": "$identify", "distinct_id": "user@x", "properties": {"$anon_distinct_id": "anon-1",
                 "$set": {"email": "user@x"}}},
                {"event": "$create_alias", "properties": {"distinct_id": "user@x", "alias": "crm-7"}},
                {"event": "$groupidentify", "distinct_id": "user@x", "properties": {"$group_type": "company",
                 "$group_key": "acme", "$group_set": {"plan": "pro"}}}
            ]
        });
        assert_eq!(keys_of(&body), ["phc_1"]);
        let rows = parse_value(&body).unwrap();
        let [view, identify, alias, group] = &rows[..] else { panic!("4 rows") };
        assert_eq!(
            (view.event.as_str(), view.user_id.as_str(), view.message_id.as_str()),
            ("$pageview", "anon-1", "e1")
        );
        assert_eq!(view.event_time, micros(parse_time("2026-06-01T12:00:05Z").unwrap()));
        assert_eq!(view.session_id.as_deref(), Some("s1"));
        assert_eq!(view.url.as_deref(), Some("https://x.example/a?utm_source=ads"));
        assert_eq!(view.referrer.as_deref(), Some("https://google.com"));
        assert_eq!(view.utm_source.as_deref(), Some("ads"));
        assert_eq!(view.library.as_deref(), Some("web/1.200.0"));
        assert_eq!(view.ip.as_deref(), Some("5.6.7.8"));
        assert_eq!((identify.user_id.as_str(), identify.anonymous_id.as_deref()), ("user@x", Some("anon-1")));
        assert_eq!(identify.traits.as_deref(), Some(r#"{"email":"user@x"}"#));
        assert_eq!((alias.user_id.as_str(), alias.previous_id.as_deref()), ("user@x", Some("crm-7")));
        assert_eq!((group.group_type.as_deref(), group.group_id.as_deref()), (Some("company"), Some("acme")));
        assert_eq!(group.traits.as_deref(), Some(r#"{"plan":"pro"}"#));
        assert_eq!(alias.ip.as_deref(), Some("10.0.0.9"), "the peer's address when the event has none");
    }

    #[test]
    fn single_events_arrays_and_their_problems() {
        let body = json!({"event": "signup", "distinct_id": 42, "token": "phc_2", "offset": 1000});
        let one = parse_value(&body).unwrap();
        assert_eq!((one[0].user_id.as_str(), keys_of(&body)), ("42", vec!["phc_2".to_string()]));
        assert_eq!(one[0].event_time, micros(parse_time("2026-06-01T12:00:09Z").unwrap()));
        let from_js = json!([{"event": "$pageview", "properties": {"distinct_id": "a", "token": "phc_3"}}]);
        assert_eq!(keys_of(&from_js), ["phc_3"]);
        let problems = parse_value(
            &json!([{"event": "a", "distinct_id": "u"}, {"distinct_id": "u"}, {"event": "b"}, {"event": "c",
                     "distinct_id": "u", "properties": [1], "timestamp": 5}]),
        )
        .err()
        .unwrap();
        let named: Vec<(Option<usize>, &str)> = problems.iter().map(|p| (p.index, p.field.as_str())).collect();
        assert_eq!(
            named,
            [(Some(1), "event"), (Some(2), "distinct_id"), (Some(3), "properties"), (Some(3), "timestamp")]
        );
        let problems = parse_value(&json!({"event": "x"})).err().unwrap();
        assert_eq!((problems[0].index, problems[0].field.as_str()), (None, "distinct_id"));
    }

    #[test]
    fn properties_are_kept_as_sent_and_a_repeated_key_reads_its_last_value() {
        let text = r#"{"event":"e","distinct_id":"u","properties":{"b\"q":"\u00e9t\u00e9","$session_id":"s1",
            "$session_id":"s2","n":1.5e300,"list":[1,{"x":null}]}}"#;
        let rows = parse(&crate::body::json(text.as_bytes()).unwrap(), &received()).unwrap();
        assert_eq!(rows[0].session_id.as_deref(), Some("s2"));
        assert_eq!(
            rows[0].properties.as_deref(),
            Some(r#"{"b\"q":"été","$session_id":"s1","$session_id":"s2","n":1.5e+300,"list":[1,{"x":null}]}"#)
        );
    }
}
