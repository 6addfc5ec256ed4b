//! [`IdMap`]: distinct ids with a small value each, laid out for the lookup a query by person
//! makes for every distinct id of every column chunk (millions per query), most of which are
//! not in the map.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use northstar_storage::id_views::{id_view, probe_view, view_bytes, view_is};

/// Ids and their values. An id the filter (one bit per hash, about 8 bits per id, so it stays
/// in cache) has no bit for is told absent without touching the table. The table holds each id
/// as an Arrow string view beside its value: an id of up to 12 bytes is compared, and its value
/// read, in the one table slot (longer ids keep their first 4 bytes there, the rest in one
/// buffer). A table of indexes into a list of `Arc<str>` names cost four dependent cache misses
/// per id found, which was a tenth of a query's time by person (docs/benchmarks.md).
#[derive(Clone, Default)]
pub(crate) struct IdMap<T> {
    table: HashTable<(u128, T)>,
    long_ids: Vec<u8>,
    filter: Vec<u64>,
    hasher: DefaultHashBuilder,
}

impl<T: Copy> IdMap<T> {
    /// An empty map sized for `ids` ids.
    pub fn with_capacity(ids: usize) -> Self {
        let bits = (ids * 8).next_power_of_two().max(64);
        IdMap {
            table: HashTable::with_capacity(ids),
            long_ids: Vec::new(),
            filter: vec![0; bits / 64],
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Adds `id` (not in the map yet) with `value`; returns the view `id` is kept as, which
    /// [`IdMap::text`] turns back into the id.
    pub fn insert_new(&mut self, id: &str, value: T) -> u128 {
        let bytes = id.as_bytes();
        let view = id_view(bytes, &mut self.long_ids);
        let hash = self.hasher.hash_one(bytes);
        let (hasher, long_ids) = (&self.hasher, &self.long_ids);
        self.table.insert_unique(hash, (view, value), |(v, _)| hasher.hash_one(view_bytes(v, long_ids)));
        let bit = self.bit(hash);
        self.filter[bit / 64] |= 1 << (bit % 64);
        view
    }

    /// The value of `id`, if it is in the map.
    pub fn get(&self, id: &str) -> Option<&T> {
        let bytes = id.as_bytes();
        let hash = self.hasher.hash_one(bytes);
        let bit = self.bit(hash);
        if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        let probe = probe_view(bytes);
        let is = |(view, _): &(u128, T)| view_is(*view, bytes, probe, &self.long_ids);
        self.table.find(hash, is).map(|(_, value)| value)
    }

    /// The id a view from [`IdMap::insert_new`] of this map stands for.
    pub fn text<'a>(&'a self, view: &'a u128) -> &'a str {
        // Views are only made from `&str`s (whole ones: a long id's bytes are copied whole).
        std::str::from_utf8(view_bytes(view, &self.long_ids)).expect("ids are text")
    }

    /// Every id with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.table.iter().map(|(view, value)| (self.text(view), value))
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn bit(&self, hash: u64) -> usize {
        // The high bits: hashbrown's table takes its buckets from the low ones.
        (hash >> 32) as usize & (self.filter.len() * 64 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Short and long ids, ids that share a prefix or a length: found exactly when inserted.
        #[test]
        fn finds_exactly_the_ids_inserted(
            ids in proptest::collection::hash_set("[ab]{0,3}|[ab]{11,14}|[a-c]{20,40}|é{6,7}", 0..60),
            probes in proptest::collection::vec("[ab]{0,3}|[ab]{11,14}|[a-c]{20,40}|é{6,7}", 0..60),
        ) {
            let ids: Vec<String> = ids.into_iter().collect();
            let mut map = IdMap::with_capacity(ids.len());
            let views: Vec<u128> = ids.iter().enumerate().map(|(i, id)| map.insert_new(id, i)).collect();
            for (i, id) in ids.iter().enumerate() {
                proptest::prop_assert_eq!(map.get(id), Some(&i));
                proptest::prop_assert_eq!(map.text(&views[i]), id.as_str());
            }
            for probe in &probes {
                proptest::prop_assert_eq!(map.get(probe).copied(), ids.iter().position(|id| id == probe));
            }
            let mut listed: Vec<(String, usize)> = map.iter().map(|(id, &i)| (id.to_string(), i)).collect();
            listed.sort_by_key(|(_, i)| *i);
            proptest::prop_assert_eq!(listed, ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect::<Vec<_>>());
        }
    }
}
