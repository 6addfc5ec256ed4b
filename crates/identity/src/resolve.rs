//! Persons from links: a union-find over distinct ids that applies links in their order
//! ([`Link`]'s `Ord`) with PostHog's merge rules (docs/identity.md, "Merge rules"):
//! - a reserved id ([`is_reserved_id`]) is never merged, on either side;
//! - `$identify` and `$create_alias` do not merge a person that is identified already;
//!   Segment's `alias` and `$merge_dangerously` do;
//! - the person of the event's own id stays and the other joins it; the user's person is
//!   identified after any of these calls, merged or refused.
//!
//! A person is named by the distinct id at its root: the user's id in the usual
//! anonymous-then-identified case. Ids that no link names are their own person and are not
//! stored at all.

use std::fmt;
use std::sync::Arc;

use datafusion::common::HashMap;
use northstar_storage::user_bucket;

use crate::id_map::IdMap;

use crate::links::Link;
use crate::reserved::is_reserved_id;

/// Distinct id → person id, for every id merged into another id's person (every other id is
/// its own person).
///
/// Looked up for every distinct id of every column chunk a query by person reads (some 2.6M
/// lookups over a 20M-row table), so the lookup is built for ids that are *not* merged (one
/// hash, one bit of a filter that stays in cache) and, for those that are, one table slot
/// holding the id, its person and the person's bucket ([`IdMap`]).
#[derive(Clone, Default)]
pub struct Persons {
    /// Each merged id with its person (a view of a name in `persons`) and the person's user
    /// bucket: where a row of a merged id goes when rows are grouped by person.
    merged: IdMap<(u128, i32)>,
    /// The persons that merged ids belong to (named by their root id), with their buckets.
    persons: IdMap<i32>,
}

impl Persons {
    /// The person `distinct_id` belongs to (itself when it is not merged into another).
    pub fn person_of<'a>(&'a self, distinct_id: &'a str) -> &'a str {
        self.person_of_merged_id(distinct_id).map_or(distinct_id, |(person, _)| person)
    }

    /// The person of `distinct_id` when it is merged into another id's person, with that
    /// person's user bucket.
    pub fn person_of_merged_id(&self, distinct_id: &str) -> Option<(&str, i32)> {
        let (person, bucket) = self.merged.get(distinct_id)?;
        Some((self.persons.text(person), *bucket))
    }

    /// The user bucket of `person` when ids of other buckets may belong to it (it is the
    /// person of a merged id); `None` for every other id, whose rows are all in its own bucket.
    pub fn bucket_of_merged_person(&self, person: &str) -> Option<i32> {
        self.persons.get(person).copied()
    }

    /// Whether every distinct id is its own person (nothing merged).
    pub fn is_trivial(&self) -> bool {
        self.merged.is_empty()
    }

    /// Every merged distinct id with its person, by distinct id.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        let mut pairs: Vec<(&str, &str)> =
            self.merged.iter().map(|(id, (person, _))| (id, self.persons.text(person))).collect();
        pairs.sort_unstable();
        pairs
    }

    /// Number of distinct ids that belong to another id's person.
    pub fn merged_ids(&self) -> usize {
        self.merged.len()
    }
}

impl PartialEq for Persons {
    fn eq(&self, other: &Self) -> bool {
        self.pairs() == other.pairs()
    }
}

impl fmt::Debug for Persons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persons")
            .field("merged_ids", &self.merged_ids())
            .field("persons_with_merged_ids", &self.persons.len())
            .finish()
    }
}

/// The union-find while links are applied.
struct Resolver {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    parent: Vec<u32>,
    /// Per root: whether its person is identified.
    identified: Vec<bool>,
}

impl Resolver {
    fn with_capacity(ids: usize) -> Self {
        Resolver {
            ids: HashMap::with_capacity(ids),
            names: Vec::with_capacity(ids),
            parent: Vec::with_capacity(ids),
            identified: Vec::with_capacity(ids),
        }
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.ids.insert(name.clone(), i);
        self.names.push(name);
        self.parent.push(i);
        self.identified.push(false);
        i
    }

    /// The root of `i`, halving the path on the way.
    fn root(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let grandparent = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = grandparent;
            i = grandparent;
        }
        i
    }

    fn apply(&mut self, link: &Link) {
        if is_reserved_id(&link.user) {
            return;
        }
        let user = self.id(&link.user);
        let user_root = self.root(user);
        let Some(other) = link.other.as_deref() else {
            self.identified[user_root as usize] = true;
            return;
        };
        if is_reserved_id(other) {
            return;
        }
        let other = self.id(other);
        let other_root = self.root(other);
        let refused = self.identified[other_root as usize] && !link.kind.merges_identified();
        if other_root != user_root && !refused {
            self.parent[other_root as usize] = user_root;
        }
        // The call identifies its user even when the merge is refused.
        self.identified[user_root as usize] = true;
    }

    fn finish(mut self) -> Persons {
        // Each merged id with the index of its root (its person).
        let merged: Vec<(u32, u32)> =
            (0..self.names.len() as u32).map(|i| (i, self.root(i))).filter(|&(i, root)| root != i).collect();
        let mut roots: Vec<u32> = merged.iter().map(|&(_, root)| root).collect();
        roots.sort_unstable();
        roots.dedup();
        let mut persons = IdMap::with_capacity(roots.len());
        // Per root (by name index): its view in `persons` and its bucket.
        let mut person_of_root: HashMap<u32, (u128, i32)> = HashMap::with_capacity(roots.len());
        for root in roots {
            let name = &self.names[root as usize];
            let bucket = user_bucket(name);
            person_of_root.insert(root, (persons.insert_new(name, bucket), bucket));
        }
        let mut merged_ids = IdMap::with_capacity(merged.len());
        for (i, root) in merged {
            merged_ids.insert_new(&self.names[i as usize], person_of_root[&root]);
        }
        Persons { merged: merged_ids, persons }
    }
}

/// The persons that `links` make, applied in their order whatever order they come in.
pub fn resolve<'a>(links: impl IntoIterator<Item = &'a Link>) -> Persons {
    let mut ordered: Vec<&Link> = links.into_iter().collect();
    ordered.sort_unstable();
    ordered.dedup();
    let mut resolver = Resolver::with_capacity(2 * ordered.len());
    for link in ordered {
        resolver.apply(link);
    }
    resolver.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::LinkKind;

    fn link(time: i64, user: &str, other: Option<&str>, kind: LinkKind) -> Link {
        Link { time, user: user.into(), other: other.map(Into::into), kind }
    }

    #[test]
    fn an_anonymous_visitor_who_signs_up_is_one_person_across_devices() {
        let persons = resolve(&[
            link(1, "u1", Some("laptop"), LinkKind::Identify),
            link(5, "u1", Some("phone"), LinkKind::Identify),
        ]);
        assert_eq!(
            ["laptop", "phone", "u1", "stranger"].map(|id| persons.person_of(id)),
            ["u1", "u1", "u1", "stranger"]
        );
        assert_eq!(persons.merged_ids(), 2);
    }

    #[test]
    fn identify_does_not_merge_two_identified_persons_but_alias_does() {
        let links = [
            link(1, "u1", Some("a"), LinkKind::Identify),
            link(2, "u2", Some("b"), LinkKind::Identify),
            // A shared device logs in as u2: a is u1's already, and stays so.
            link(3, "u2", Some("a"), LinkKind::Identify),
            link(4, "u2", Some("u1"), LinkKind::CreateAlias),
        ];
        let persons = resolve(&links);
        assert_eq!(["a", "u1", "b", "u2"].map(|id| persons.person_of(id)), ["u1", "u1", "u2", "u2"]);
        let mut with_alias = links.to_vec();
        with_alias.push(link(5, "u2", Some("u1"), LinkKind::Alias));
        let persons = resolve(&with_alias);
        assert_eq!(["a", "u1", "b", "u2"].map(|id| persons.person_of(id)), ["u2"; 4]);
    }

    #[test]
    fn reserved_ids_are_never_merged() {
        let persons = resolve(&[
            link(1, "u1", Some("anonymous"), LinkKind::Identify),
            link(2, "u2", Some("anonymous"), LinkKind::Identify),
            link(3, "null", Some("a"), LinkKind::MergeDangerously),
        ]);
        assert_eq!(
            ["anonymous", "u1", "u2", "a", "null"].map(|id| persons.person_of(id)),
            ["anonymous", "u1", "u2", "a", "null"]
        );
    }

    #[test]
    fn links_apply_in_time_order_whatever_order_they_arrive_in() {
        let mut links =
            vec![link(2, "u2", Some("a"), LinkKind::Identify), link(1, "u1", Some("a"), LinkKind::Identify)];
        let first = resolve(&links);
        links.reverse();
        assert_eq!(resolve(&links), first);
        assert_eq!(first.person_of("a"), "u1", "the earlier identify wins; the later one is refused");
    }

    /// The rules applied the slow, obvious way: every id carries its person's name, and a
    /// merge renames every member of the person merged in.
    fn reference(links: &[Link]) -> std::collections::HashMap<String, String> {
        let mut ordered = links.to_vec();
        ordered.sort();
        let mut person: std::collections::HashMap<String, String> = Default::default();
        let mut identified: std::collections::HashSet<String> = Default::default();
        let of = |person: &std::collections::HashMap<String, String>, id: &str| {
            person.get(id).cloned().unwrap_or_else(|| id.to_string())
        };
        for link in &ordered {
            if is_reserved_id(&link.user) {
                continue;
            }
            let user_person = of(&person, &link.user);
            let Some(other) = &link.other else {
                identified.insert(user_person);
                continue;
            };
            if is_reserved_id(other) {
                continue;
            }
            let other_person = of(&person, other);
            // Only Segment's alias and `$merge_dangerously` merge an identified person.
            let refused =
                identified.contains(&other_person) && matches!(link.kind, LinkKind::Identify | LinkKind::CreateAlias);
            if other_person != user_person && !refused {
                person.entry(other_person.clone()).or_insert_with(|| other_person.clone());
                for name in person.values_mut().filter(|p| **p == other_person) {
                    *name = user_person.clone();
                }
                identified.remove(&other_person);
            }
            identified.insert(user_person);
        }
        person
    }

    fn random_links() -> impl proptest::strategy::Strategy<Value = Vec<Link>> {
        use proptest::prelude::*;
        // Few ids, so chains, cycles and identified persons meeting are common; two reserved.
        let id = prop::sample::select(vec!["a0", "a1", "a2", "a3", "u0", "u1", "u2", "null", "Anonymous"]);
        let kind = prop::sample::select(vec![
            LinkKind::Identify,
            LinkKind::CreateAlias,
            LinkKind::Alias,
            LinkKind::MergeDangerously,
        ]);
        let link = (0i64..20, id.clone(), prop::option::weighted(0.9, id), kind)
            .prop_map(|(time, user, other, kind)| Link { time, user: user.into(), other: other.map(Into::into), kind });
        prop::collection::vec(link, 0..24)
    }

    proptest::proptest! {
        #[test]
        fn persons_agree_with_the_reference_in_any_arrival_order(
            links in random_links(),
            seed in 0u64..1000,
        ) {
            let persons = resolve(&links);
            let expected = reference(&links);
            for id in ["a0", "a1", "a2", "a3", "u0", "u1", "u2", "null", "Anonymous", "unseen"] {
                let want = expected.get(id).map(String::as_str).unwrap_or(id);
                proptest::prop_assert_eq!(persons.person_of(id), want, "id {}", id);
            }
            // Shuffled (a cheap deterministic shuffle by the seed): same persons.
            let mut shuffled = links.clone();
            shuffled.sort_by_key(|l| (l.user.len() as u64 * 31 + l.time as u64 * 17 + seed) % 7);
            let reshuffled = resolve(&shuffled);
            proptest::prop_assert_eq!(reshuffled.pairs(), persons.pairs());
        }
    }
}
