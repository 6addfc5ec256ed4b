//! Identity links: the rows of `events` that say two distinct ids are one person, read as
//! vendors define them (docs/identity.md, "Where links come from").

use serde::{Deserialize, Serialize};

/// What kind of call made a link; it decides whether the link may merge an identified person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LinkKind {
    /// PostHog `$identify` (`$anon_distinct_id`), Segment `identify` (`anonymousId`), or any
    /// event carrying both an anonymous id and another user id (Mixpanel's simplified merge).
    /// Merges the other id's person into the user's unless that person is identified already.
    /// Without another id it only marks the user identified.
    Identify,
    /// PostHog `$create_alias` (`alias`): merges like `$identify`, refused as PostHog refuses it
    /// when the aliased person is identified already.
    CreateAlias,
    /// Segment `alias` (`previousId`): an explicit merge of the previous id's person, identified
    /// or not.
    Alias,
    /// PostHog `$merge_dangerously` (`alias`): merges whatever the other person is.
    MergeDangerously,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Identify => "identify",
            LinkKind::CreateAlias => "create_alias",
            LinkKind::Alias => "alias",
            LinkKind::MergeDangerously => "merge_dangerously",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [LinkKind::Identify, LinkKind::CreateAlias, LinkKind::Alias, LinkKind::MergeDangerously]
            .into_iter()
            .find(|k| k.as_str() == text)
    }

    /// Whether the link merges a person that is identified already.
    pub fn merges_identified(self) -> bool {
        matches!(self, LinkKind::Alias | LinkKind::MergeDangerously)
    }
}

/// One link: at `time` (µs since the epoch, UTC), `other`'s person joins `user`'s.
///
/// The derived order (time first, then the ids and the kind) is the order links are applied
/// in: it depends on nothing but the links themselves, so neither import order nor file
/// boundaries change the persons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    pub time: i64,
    /// The event's own id (`user_id`): the person that stays.
    pub user: String,
    /// The id merged in; `None` for an identify call that names no other id.
    pub other: Option<String>,
    pub kind: LinkKind,
}

/// The columns of one event that can make a link, as read from the table (NULL as `None`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkColumns<'a> {
    pub time: i64,
    pub user_id: &'a str,
    pub event: &'a str,
    /// The collector's `message_type` (Segment's call name).
    pub message_type: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub previous_id: Option<&'a str>,
    /// `properties.$anon_distinct_id` of a `$identify` event (imports of PostHog exports).
    pub anon_property: Option<&'a str>,
    /// `properties.alias` of a `$create_alias` / `$merge_dangerously` event.
    pub alias_property: Option<&'a str>,
}

/// Event names and Segment calls that make links: the extraction reads only rows with one of
/// them or with an anonymous or previous id.
pub const LINK_EVENTS: [&str; 3] = ["$identify", "$create_alias", "$merge_dangerously"];
pub const LINK_CALLS: [&str; 2] = ["identify", "alias"];

/// The link an event makes, if any.
pub fn link_of(row: LinkColumns<'_>) -> Option<Link> {
    let alias_target = row.previous_id.or(row.alias_property);
    let (kind, other) = match (row.event, row.message_type) {
        ("$create_alias", _) => (LinkKind::CreateAlias, alias_target?),
        ("$merge_dangerously", _) => (LinkKind::MergeDangerously, alias_target?),
        (_, Some("alias")) => (LinkKind::Alias, row.previous_id?),
        _ if row.previous_id.is_some() => (LinkKind::Alias, row.previous_id?),
        ("$identify", _) | (_, Some("identify")) => match row.anonymous_id.or(row.anon_property) {
            Some(other) => (LinkKind::Identify, other),
            // An identify call with no other id: the user is identified.
            None => {
                return Some(Link { time: row.time, user: row.user_id.into(), other: None, kind: LinkKind::Identify })
            }
        },
        _ => (LinkKind::Identify, row.anonymous_id?),
    };
    // An anonymous user's own calls carry their id twice (Segment sends `anonymousId` on every
    // call): nothing links, and nobody is identified by them.
    (other != row.user_id).then(|| Link { time: row.time, user: row.user_id.into(), other: Some(other.into()), kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(event: &'a str, user_id: &'a str) -> LinkColumns<'a> {
        LinkColumns { time: 7, user_id, event, ..Default::default() }
    }

    fn kind_and_other(link: Option<Link>) -> Option<(LinkKind, Option<String>)> {
        link.map(|l| (l.kind, l.other))
    }

    #[test]
    fn each_vendor_call_makes_its_link() {
        let identify = LinkColumns { anon_property: Some("a1"), ..row("$identify", "u1") };
        assert_eq!(kind_and_other(link_of(identify)), Some((LinkKind::Identify, Some("a1".into()))));
        let segment_identify =
            LinkColumns { message_type: Some("identify"), anonymous_id: Some("a1"), ..row("identify", "u1") };
        assert_eq!(kind_and_other(link_of(segment_identify)), Some((LinkKind::Identify, Some("a1".into()))));
        let only_user = LinkColumns { message_type: Some("identify"), ..row("identify", "u1") };
        assert_eq!(kind_and_other(link_of(only_user)), Some((LinkKind::Identify, None)));
        let alias = LinkColumns { message_type: Some("alias"), previous_id: Some("p"), ..row("alias", "u1") };
        assert_eq!(kind_and_other(link_of(alias)), Some((LinkKind::Alias, Some("p".into()))));
        let create_alias = LinkColumns { alias_property: Some("p"), ..row("$create_alias", "u1") };
        assert_eq!(kind_and_other(link_of(create_alias)), Some((LinkKind::CreateAlias, Some("p".into()))));
        let merge = LinkColumns { previous_id: Some("p"), ..row("$merge_dangerously", "u1") };
        assert_eq!(kind_and_other(link_of(merge)), Some((LinkKind::MergeDangerously, Some("p".into()))));
        let both_ids = LinkColumns { anonymous_id: Some("a1"), ..row("purchase", "u1") };
        assert_eq!(kind_and_other(link_of(both_ids)), Some((LinkKind::Identify, Some("a1".into()))));
    }

    #[test]
    fn anonymous_calls_and_plain_events_make_no_link() {
        assert_eq!(link_of(row("purchase", "u1")), None);
        let anonymous =
            LinkColumns { message_type: Some("identify"), anonymous_id: Some("a1"), ..row("identify", "a1") };
        assert_eq!(link_of(anonymous), None);
        let alias_without_target = row("$create_alias", "u1");
        assert_eq!(link_of(alias_without_target), None);
    }
}
