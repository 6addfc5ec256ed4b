//! Which input field feeds which table column.
//!
//! Core columns accept the names other analytics tools export (Mixpanel, Segment, Amplitude,
//! PostHog); `--map target=source` overrides. A field that maps to no core column becomes a
//! column of its own, under its own name.

use std::collections::HashMap;

use northstar_storage::columns::{EVENT, EVENT_TIME, PROPERTIES, SESSION_ID, USER_ID};

use crate::ImportError;

/// Accepted source names per core column, in order of preference.
const ALIASES: [(&str, &[&str]); 5] = [
    (EVENT_TIME, &[EVENT_TIME, "timestamp", "time", "ts"]),
    (USER_ID, &[USER_ID, "distinct_id", "userId", "user"]),
    (EVENT, &[EVENT, "event_name", "event_type", "name"]),
    (SESSION_ID, &[SESSION_ID, "sessionId", "$session_id"]),
    (PROPERTIES, &[PROPERTIES]),
];

/// Core columns whose input field must exist.
pub const REQUIRED: [&str; 3] = [EVENT_TIME, USER_ID, EVENT];

/// `--map` overrides: target column → source field.
#[derive(Debug, Clone, Default)]
pub struct FieldOverrides(pub HashMap<String, String>);

impl FieldOverrides {
    pub fn parse(specs: &[String]) -> Result<Self, ImportError> {
        let mut map = HashMap::new();
        for spec in specs {
            let (target, source) = spec.split_once('=').ok_or_else(|| {
                ImportError::Usage(format!("--map '{spec}': expected target=source, e.g. user_id=uid"))
            })?;
            if !ALIASES.iter().any(|(core, _)| *core == target) {
                return Err(ImportError::Usage(format!(
                    "--map '{spec}': '{target}' is not a core column (event_time, user_id, event, session_id, properties)"
                )));
            }
            map.insert(target.to_string(), source.to_string());
        }
        Ok(Self(map))
    }
}

/// Decides, for the field names one input has, which field feeds each core column.
/// Returns source field → target column name, for every field in `fields`.
pub fn resolve_fields(fields: &[String], overrides: &FieldOverrides) -> HashMap<String, String> {
    let mut result: HashMap<String, String> = HashMap::new();
    for (core, aliases) in ALIASES {
        let chosen = match overrides.0.get(core) {
            Some(source) => fields.iter().find(|f| *f == source),
            None => aliases.iter().find_map(|a| fields.iter().find(|f| f == a)),
        };
        if let Some(source) = chosen {
            result.insert(source.clone(), core.to_string());
        }
    }
    for field in fields {
        if !result.contains_key(field) && !is_claimed_core_name(field, &result) {
            result.insert(field.clone(), field.clone());
        }
    }
    result
}

/// A field literally named like a core column that another field already feeds (for example
/// `event` when `--map event=action`) would collide with it; it is kept as `<name>_raw`.
fn is_claimed_core_name(field: &str, result: &HashMap<String, String>) -> bool {
    ALIASES.iter().any(|(core, _)| *core == field) && result.values().any(|t| t == field)
}

/// Resolves a field the same way, but renames a field that collides with a core column.
pub fn target_name(field: &str, mapped: &HashMap<String, String>) -> String {
    match mapped.get(field) {
        Some(target) => target.clone(),
        None => format!("{field}_raw"),
    }
}

/// Checks that an input provides every required core column.
pub fn check_required(input: &str, mapped: &HashMap<String, String>) -> Result<(), ImportError> {
    for core in REQUIRED {
        if !mapped.values().any(|t| t == core) {
            let aliases = ALIASES.iter().find(|(c, _)| *c == core).map(|(_, a)| a.join(", ")).unwrap_or_default();
            return Err(ImportError::input(
                input,
                format!("no field for '{core}' (looked for: {aliases}; use --map {core}=FIELD)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn aliases_from_other_tools_map_to_core_columns() {
        let m = resolve_fields(&names(&["timestamp", "distinct_id", "event_name", "plan"]), &FieldOverrides::default());
        assert_eq!(m["timestamp"], "event_time");
        assert_eq!(m["distinct_id"], "user_id");
        assert_eq!(m["event_name"], "event");
        assert_eq!(m["plan"], "plan");
    }

    #[test]
    fn canonical_name_wins_over_alias_and_overrides_win_over_both() {
        let fields = names(&["event_time", "ts", "user_id", "uid", "event"]);
        let m = resolve_fields(&fields, &FieldOverrides::default());
        assert_eq!(m["event_time"], "event_time");
        assert_eq!(m["ts"], "ts");
        let o = FieldOverrides::parse(&["user_id=uid".into()]).unwrap();
        let m = resolve_fields(&fields, &o);
        assert_eq!(m["uid"], "user_id");
        assert!(!m.contains_key("user_id"), "the displaced field is renamed, not merged");
        assert_eq!(target_name("user_id", &m), "user_id_raw");
    }

    #[test]
    fn bad_overrides_and_missing_required_fields_are_named() {
        assert!(FieldOverrides::parse(&["nonsense".into()]).unwrap_err().to_string().contains("target=source"));
        assert!(FieldOverrides::parse(&["plan=x".into()]).unwrap_err().to_string().contains("not a core column"));
        let m = resolve_fields(&names(&["time", "event"]), &FieldOverrides::default());
        let err = check_required("f.ndjson", &m).unwrap_err().to_string();
        assert!(err.contains("f.ndjson") && err.contains("'user_id'"), "{err}");
    }
}
