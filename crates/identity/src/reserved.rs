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
///
/// Called for both ids of every link each time persons are resolved, so it allocates nothing:
/// "any letter case" compares ASCII case-insensitively, which is what PostHog's
/// `toLowerCase()` comparison means here, since no non-ASCII letter lowercases to an ASCII
/// one except the Kelvin sign (to `k`, in none of the words).
pub fn is_reserved_id(id: &str) -> bool {
    if id.trim().is_empty() {
        return true;
    }
    if id.len() > LONGEST_QUOTED {
        return false;
    }
    ANY_CASE.iter().any(|r| matches_maybe_quoted(id, r, str::eq_ignore_ascii_case))
        || EXACT_CASE.iter().any(|r| matches_maybe_quoted(id, r, |a, b| a == b))
}

/// The longest placeholder (`not_authenticated`) in quotes, in bytes: a longer id is none.
const LONGEST_QUOTED: usize = 19;

/// `id` is `reserved`, `'reserved'` or `"reserved"` by `same`: PostHog saw placeholders
/// arrive quoted.
fn matches_maybe_quoted(id: &str, reserved: &str, same: impl Fn(&str, &str) -> bool) -> bool {
    same(id, reserved)
        || ['\'', '"']
            .iter()
            .any(|&q| id.strip_prefix(q).and_then(|s| s.strip_suffix(q)).is_some_and(|s| same(s, reserved)))
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

    /// The rule as written before the allocation-free check: lowercase the id, then compare.
    fn by_lowercasing(id: &str) -> bool {
        let lower = id.to_lowercase();
        let quoted = |id: &str, r: &str| {
            id == r || ['\'', '"'].iter().any(|&q| id.strip_prefix(q).and_then(|s| s.strip_suffix(q)) == Some(r))
        };
        id.trim().is_empty() || ANY_CASE.iter().any(|r| quoted(&lower, r)) || EXACT_CASE.iter().any(|r| quoted(id, r))
    }

    proptest::proptest! {
        #[test]
        fn the_check_agrees_with_comparing_lowercased_text(
            word in proptest::sample::select([ANY_CASE.as_slice(), EXACT_CASE.as_slice()].concat()),
            upper in proptest::collection::vec(proptest::bool::ANY, 20),
            quote in proptest::sample::select(vec!["", "'", "\"", "'\""]),
            extra in proptest::sample::select(vec!["", " ", "x", "\u{212A}", "\u{130}", "k", "-1"]),
        ) {
            let cased: String = word
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            for id in [
                format!("{quote}{cased}{quote}"),
                format!("{cased}{extra}"),
                format!("{extra}{quote}{cased}{quote}"),
                cased.replace('k', "\u{212A}"),
                extra.repeat(30),
            ] {
                proptest::prop_assert_eq!(is_reserved_id(&id), by_lowercasing(&id), "id {:?}", id);
            }
        }
    }
}
