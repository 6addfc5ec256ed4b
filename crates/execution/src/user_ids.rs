//! The distinct user ids of a partition, numbered in arrival order: the groups of
//! `BucketAggregateExec` and the user numbers of `UserNumbersExec`.

use std::hash::BuildHasher;

use datafusion::arrow::array::StringViewArray;
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::common::Result;
use hashbrown::{DefaultHashBuilder, HashTable};
use northstar_storage::id_views::{id_view, probe_view, view_bytes, view_is};

/// The distinct user ids of a partition, numbered in arrival order (the group indices).
///
/// Hand-written rather than a `HashMap<String, u32>`: that keeps each id behind its own
/// pointer, so a lookup of a known id waits on three cache misses (control byte, entry,
/// string). Here the table holds only group numbers, small enough to stay in the core's
/// cache at ~100k users, and ids are 16-byte Arrow views (up to 12 bytes inline, longer ones
/// in `long_ids`), compared as integers; the views are also the output column as they are.
#[derive(Default)]
pub(crate) struct UserIds {
    table: HashTable<u32>,
    views: Vec<u128>,
    long_ids: Vec<u8>,
    hasher: DefaultHashBuilder,
}

impl UserIds {
    pub(crate) fn len(&self) -> usize {
        self.views.len()
    }

    pub(crate) fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id.as_bytes());
        let probe = probe_view(id.as_bytes());
        self.table.find(hash, |&group| self.is(group, id, probe)).copied()
    }

    pub(crate) fn find_or_insert(&mut self, id: &str) -> u32 {
        let hash = self.hasher.hash_one(id.as_bytes());
        let probe = probe_view(id.as_bytes());
        if let Some(&group) = self.table.find(hash, |&group| self.is(group, id, probe)) {
            return group;
        }
        let group = self.views.len() as u32;
        self.views.push(id_view(id.as_bytes(), &mut self.long_ids));
        let (views, long_ids, hasher) = (&self.views, &self.long_ids, &self.hasher);
        self.table.insert_unique(hash, group, |&g| hasher.hash_one(view_bytes(&views[g as usize], long_ids)));
        group
    }

    /// Whether group `group` is `id`, whose probe view is `probe`.
    fn is(&self, group: u32, id: &str, probe: u128) -> bool {
        view_is(self.views[group as usize], id.as_bytes(), probe, &self.long_ids)
    }

    pub(crate) fn size(&self) -> usize {
        self.table.capacity() * (size_of::<u32>() + 1)
            + self.views.capacity() * size_of::<u128>()
            + self.long_ids.capacity()
    }

    pub(crate) fn into_array(self) -> Result<StringViewArray> {
        let buffers = if self.long_ids.is_empty() { vec![] } else { vec![Buffer::from_vec(self.long_ids)] };
        Ok(StringViewArray::try_new(ScalarBuffer::from(self.views), buffers, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_number_short_and_long_ids_in_arrival_order() {
        let mut ids = UserIds::default();
        let long = "7f3c2a9e-1b4d-4c8e-9a0f-2d6b8e1c5a73";
        // Same length and first four bytes as `long`, different after: the view's prefix
        // check alone must not decide.
        let long_twin = "7f3c2a9e-1b4d-4c8e-9a0f-2d6b8e1c5a74";
        let arrivals = ["u1", long, "", "u1", "twelve bytes", long_twin, long, "thirteen byte", ""];
        let groups: Vec<u32> = arrivals.iter().map(|id| ids.find_or_insert(id)).collect();
        assert_eq!(groups, [0, 1, 2, 0, 3, 4, 1, 5, 2]);
        assert_eq!(ids.find(long_twin), Some(4));
        assert_eq!(ids.find("u2"), None);
        assert_eq!(ids.find("thirteen bytf"), None);
        // Enough ids to make the table grow (and rehash from the stored views) several times.
        for i in 0..10_000 {
            assert_eq!(ids.find_or_insert(&format!("user-{i:020}")), 6 + i);
        }
        assert_eq!(ids.find(long), Some(1));
        assert_eq!(ids.find("user-00000000000000009999"), Some(10_005));
        let array = ids.into_array().unwrap();
        let expected = ["u1", long, "", "twelve bytes", long_twin, "thirteen byte"];
        assert_eq!(array.iter().take(6).map(Option::unwrap).collect::<Vec<_>>(), expected);
        assert_eq!(array.value(10_005), "user-00000000000000009999");
    }
}
