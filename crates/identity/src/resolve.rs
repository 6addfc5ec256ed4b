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

use std::sync::Arc;

use datafusion::common::HashMap;

use crate::links::Link;
use crate::reserved::is_reserved_id;

/// Distinct id → person id, for every id a link names (others are their own person).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Persons {
    /// Index of each linked distinct id in `person_of`.
    ids: HashMap<Arc<str>, u32>,
    /// For each linked id (by index), the index of its person's id in `names`.
    person_of: Vec<u32>,
    names: Vec<Arc<str>>,
    /// How many ids belong to another id's person.
    merged: usize,
}

impl Persons {
    /// The person `distinct_id` belongs to (itself when no link names it).
    pub fn person_of<'a>(&'a self, distinct_id: &'a str) -> &'a str {
        match self.ids.get(distinct_id) {
            Some(&i) => &self.names[self.person_of[i as usize] as usize],
            None => distinct_id,
        }
    }

    /// Whether every distinct id is its own person (nothing merged).
    pub fn is_trivial(&self) -> bool {
        self.merged == 0
    }

    /// Every linked distinct id with its person, by distinct id.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        let mut pairs: Vec<(&str, &str)> = self
            .ids
            .iter()
            .map(|(id, &i)| (id.as_ref(), self.names[self.person_of[i as usize] as usize].as_ref()))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    /// Number of distinct ids that belong to another id's person.
    pub fn merged_ids(&self) -> usize {
        self.merged
    }
}

/// The union-find while links are applied.
#[derive(Default)]
struct Resolver {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    parent: Vec<u32>,
    /// Per root: whether its person is identified.
    identified: Vec<bool>,
}

impl Resolver {
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
        let person_of: Vec<u32> = (0..self.names.len() as u32).map(|i| self.root(i)).collect();
        let merged = person_of.iter().enumerate().filter(|(i, &p)| p as usize != *i).count();
        Persons { ids: self.ids, person_of, names: self.names, merged }
    }
}

/// The persons that `links` make, applied in their order whatever order they come in.
pub fn resolve<'a>(links: impl IntoIterator<Item = &'a Link>) -> Persons {
    let mut ordered: Vec<&Link> = links.into_iter().collect();
    ordered.sort_unstable();
    ordered.dedup();
    let mut resolver = Resolver::default();
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
