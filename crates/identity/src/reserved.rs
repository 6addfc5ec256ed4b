//! Ids that are never merged: placeholders that SDKs and apps send by mistake (`null`,
//! `undefined`, `[object Object]` …). Merging on one would join every user who sent it into one
//! person. The list and its matching rules are PostHog's (`isDistinctIdIllegal` in its
//! ingestion's person utilities), so an id is kept apart here exactly when PostHog keeps it
//! apart; docs/identity.md lists them.

/// Reserved in any letter case ("Anonymous", "UNDEFINED"), bare or wrapped in quotes.
const ANY_CASE: [&str; 10] = [
    "anonymous",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
];

/// Reserved only exactly as written: `NaN` is, `nan` is not.
const EXACT_CASE: [&str; 7] = ["[object Object]", "NaN", "None", "none", "null", "0", "undefined"];

/// Whether `id` may never take part in a merge: empty or blank, or one of the placeholders.
pub fn is_reserved_id(id: &str) -> bool {
    if id.trim().is_empty() {
        return true;
    }
    let lower = id.to_lowercase();
    ANY_CASE.iter().any(|r| matches_maybe_quoted(&lower, r)) || EXACT_CASE.iter().any(|r| matches_maybe_quoted(id, r))
}

/// `id` is `reserved`, `'reserved'` or `"reserved"`: PostHog saw placeholders arrive quoted.
fn matches_maybe_quoted(id: &str, reserved: &str) -> bool {
    id == reserved || ['\'', '"'].iter().any(|&q| id.strip_prefix(q).and_then(|s| s.strip_suffix(q)) == Some(reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_reserved_as_posthog_reserves_them() {
        for id in
            ["", "  ", "anonymous", "Anonymous", "GUEST", "'undefined'", "\"null\"", "NaN", "[object Object]", "0"]
        {
            assert!(is_reserved_id(id), "{id:?} must be reserved");
        }
        for id in ["nan", "NULL", "Null", "00", "user-0", "anonymous-1", "'nan'", "\"u1\"", "'", "\""] {
            assert!(!is_reserved_id(id), "{id:?} is an ordinary id");
        }
    }
}
