//! The distinct user ids of a partition, numbered in arrival order: the groups of
//! `BucketAggregateExec` and the user numbers of `UserNumbersExec`, from ids read as text or
//! as the Parquet dictionary of a column chunk ([`DictionaryUserIds`]).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use datafusion::arrow::array::{Array, AsArray, DictionaryArray, StringArray, StringViewArray};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::common::{exec_err, internal_datafusion_err, Result};
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

/// [`UserIds`] fed by dictionary-encoded ids: each distinct id of a column chunk is looked up
/// once, and every row costs one array read.
///
/// The Parquet reader hands out one dictionary per column chunk, shared by the chunk's
/// batches (a few thousand ids for ~50k rows of an event file), so the numbers of the last
/// dictionaries' values are kept.
#[derive(Default)]
pub(crate) struct DictionaryUserIds {
    ids: UserIds,
    /// The dictionaries of the last batches, newest last (holding one keeps its buffers'
    /// addresses from being reused while later batches are compared with it), each with the
    /// number of each of its values, `UNSEEN` until a row uses it: a filtered batch keeps ids
    /// none of its rows has. Several, because grouped by person, batches moved from other
    /// partitions (`BucketRoutingExec`) come between the batches of one column chunk.
    dictionaries: Vec<(StringArray, Vec<u32>)>,
}

impl std::fmt::Debug for DictionaryUserIds {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "DictionaryUserIds({} users)", self.len())
    }
}

const UNSEEN: u32 = u32::MAX;

/// Dictionaries kept with their numbers: a partition's own chunk and a few moved ones.
const KEPT_DICTIONARIES: usize = 4;

/// Whether `a` and `b` are the same strings in memory. Each batch of a column chunk has its
/// own array object around the chunk's one dictionary, so the buffers are compared.
fn same_strings(a: &StringArray, b: &StringArray) -> bool {
    a.len() == b.len()
        && a.value_offsets().as_ptr() == b.value_offsets().as_ptr()
        && a.values().as_ptr() == b.values().as_ptr()
}

impl DictionaryUserIds {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The number of `id` read as text, numbered if new.
    pub(crate) fn find_or_insert(&mut self, id: &str) -> u32 {
        self.ids.find_or_insert(id)
    }

    /// Calls `each` with the number of each row's id in `ids`, in row order, numbering new
    /// ids as they come.
    pub(crate) fn number(&mut self, ids: &DictionaryArray<Int32Type>, mut each: impl FnMut(u32)) -> Result<()> {
        let strings = ids
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| internal_datafusion_err!("user_id's dictionary is not Utf8"))?;
        if ids.null_count() > 0 || strings.null_count() > 0 {
            return exec_err!("user_id is NULL in an events file (the table declares it NOT NULL)");
        }
        let known = self.dictionaries.iter().position(|(d, _)| same_strings(d, strings));
        let Self { ids: table, dictionaries } = self;
        let at = match known {
            Some(at) => at,
            None => {
                // Most ids of a new dictionary are known users whose table entries are not in
                // the cache. Looked up in one loop of independent lookups, their cache misses
                // overlap; looked up as rows first use them, each waits on its own. Only when
                // the batch uses most of the dictionary, so that the loop is not mostly wasted.
                let numbers = if ids.len() >= strings.len() {
                    (0..strings.len()).map(|i| table.find(strings.value(i)).unwrap_or(UNSEEN)).collect()
                } else {
                    vec![UNSEEN; strings.len()]
                };
                if dictionaries.len() == KEPT_DICTIONARIES {
                    dictionaries.remove(0);
                }
                dictionaries.push((strings.clone(), numbers));
                dictionaries.len() - 1
            }
        };
        let numbers = &mut dictionaries[at].1;
        for &key in ids.keys().values() {
            let slot = &mut numbers[key as usize];
            if *slot == UNSEEN {
                *slot = table.find_or_insert(strings.value(key as usize));
            }
            each(*slot);
        }
        Ok(())
    }

    /// Bytes held, for the memory pool.
    pub(crate) fn size(&self) -> usize {
        self.ids.size()
            + self.dictionaries.iter().map(|(_, numbers)| numbers.capacity() * size_of::<u32>()).sum::<usize>()
    }

    /// The ids in number order.
    pub(crate) fn into_array(self) -> Result<StringViewArray> {
        self.ids.into_array()
    }
}

/// One table of user numbers per bucket partition, shared by the operators that number the
/// same partition's users (the two sides of a join; the numbering and the sort of a window).
///
/// Numbers agree whatever order the users run in, because all look ids up in the same table.
#[derive(Debug)]
pub(crate) struct SharedUserIds {
    tables: Vec<Mutex<DictionaryUserIds>>,
    ended: Vec<AtomicUsize>,
}

impl SharedUserIds {
    pub(crate) fn new(partitions: usize) -> Self {
        Self {
            tables: (0..partitions).map(|_| Mutex::new(DictionaryUserIds::default())).collect(),
            ended: (0..partitions).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    pub(crate) fn partitions(&self) -> usize {
        self.tables.len()
    }

    pub(crate) fn table(&self, partition: usize) -> Result<MutexGuard<'_, DictionaryUserIds>> {
        self.tables[partition].lock().map_err(|_| internal_datafusion_err!("a user table was poisoned"))
    }

    /// `partition`'s table, left empty.
    pub(crate) fn take(&self, partition: usize) -> Result<DictionaryUserIds> {
        Ok(std::mem::take(&mut *self.table(partition)?))
    }

    /// One of the `users` operators of `partition` has read all its input: the last to end
    /// frees the table.
    pub(crate) fn user_ended(&self, partition: usize, users: usize) -> Result<()> {
        if self.ended[partition].fetch_add(1, Ordering::AcqRel) % users == users - 1 {
            self.take(partition)?;
        }
        Ok(())
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

    /// Batches of one column chunk share its dictionary; a batch may use only some of its
    /// values (filtered); the next chunk has a dictionary of its own, in another order; ids
    /// read as text are numbered in the same table.
    #[test]
    fn dictionary_ids_number_as_text_ids_would() {
        use datafusion::arrow::array::Int32Array;
        use std::sync::Arc;

        let batch = |values: &StringArray, keys: &[i32]| {
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys.to_vec()), Arc::new(values.clone())).unwrap()
        };
        let numbers = |ids: &mut DictionaryUserIds, batch: &DictionaryArray<Int32Type>| {
            let mut numbers = Vec::new();
            ids.number(batch, |n| numbers.push(n)).unwrap();
            numbers
        };
        let mut ids = DictionaryUserIds::default();
        let first = StringArray::from(vec!["u1", "u2", "u3"]);
        assert_eq!(numbers(&mut ids, &batch(&first, &[2, 0, 2])), [0, 1, 0]);
        assert_eq!(numbers(&mut ids, &batch(&first, &[1, 0, 2, 1])), [2, 1, 0, 2]);
        let second = StringArray::from(vec!["u4", "u3", "a long user id of forty bytes, or near", "u1"]);
        assert_eq!(numbers(&mut ids, &batch(&second, &[3, 1, 2, 0, 3])), [1, 0, 3, 4, 1]);
        assert_eq!(ids.find_or_insert("u4"), 4);
        assert_eq!(ids.find_or_insert("u5"), 5);
        assert_eq!(numbers(&mut ids, &batch(&first, &[1])), [2]);
        assert_eq!(ids.len(), 6);
        let array = ids.into_array().unwrap();
        let in_order: Vec<&str> = array.iter().map(Option::unwrap).collect();
        assert_eq!(in_order, ["u3", "u1", "u2", "a long user id of forty bytes, or near", "u4", "u5"]);

        let mut ids = DictionaryUserIds::default();
        let with_null =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(vec![Some(0), None]), Arc::new(first)).unwrap();
        let error = ids.number(&with_null, |_| {}).unwrap_err().to_string();
        assert!(error.contains("user_id is NULL"), "{error}");
    }
}
