//! The message ids committed lately, so that an SDK's retry of a request that was committed
//! (its answer lost, or the collector restarted before answering) is not counted twice.
//!
//! Ids are kept for a time window, and at most a number of them, whichever is fewer (the
//! memory bound: about 64 bytes per id, docs/collector.md). Each is held as a 128-bit hash of
//! its text (XXH3-128 under a seed chosen at start), so long ids cost no more and a collision
//! (a new event taken for a retry) has odds of about n²/2¹²⁹. The hash is computed once per
//! message; the sets then use its low bits as they are instead of hashing it again (the
//! collector's profile had SipHash of ids as its largest item).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::time::{Duration, Instant};

use twox_hash::XxHash3_128;

/// A message id as the sets hold it: its 128-bit hash.
pub type MessageId = u128;

/// A set of message ids, hashed by their own low 64 bits (already uniformly spread).
pub type IdSet = HashSet<MessageId, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed here (through `write_u128`); any other input still mixes.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = id as u64;
    }
}

pub struct RecentIds {
    window: Duration,
    max_ids: usize,
    seed: u64,
    seen: IdSet,
    order: VecDeque<(Instant, MessageId)>,
}

impl RecentIds {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        RecentIds {
            window,
            max_ids,
            seed: RandomState::new().hash_one(0u8),
            seen: IdSet::default(),
            order: VecDeque::new(),
        }
    }

    /// The id as the sets hold it.
    pub fn id(&self, text: &str) -> MessageId {
        XxHash3_128::oneshot_with_seed(self.seed, text.as_bytes())
    }

    pub fn contains(&self, id: MessageId) -> bool {
        self.seen.contains(&id)
    }

    /// Remembers `id` as committed at `now`; `expire` then forgets what fell out of the window
    /// or past the count.
    pub fn insert(&mut self, id: MessageId, now: Instant) {
        if self.seen.insert(id) {
            self.order.push_back((now, id));
        }
    }

    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, hash)) = self.order.front() {
            if self.order.len() <= self.max_ids && now.duration_since(at) <= self.window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&hash);
        }
    }

    /// The most ids held.
    pub fn max_ids(&self) -> usize {
        self.max_ids
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_forgotten_after_the_window_or_past_the_count() {
        let start = Instant::now();
        let mut ids = RecentIds::new(Duration::from_secs(60), 3);
        let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|text| ids.id(text));
        assert_eq!(ids.id("a"), a, "an id's text always gives the same id");
        assert_ne!(a, b);
        ids.insert(a, start);
        ids.insert(b, start + Duration::from_secs(30));
        ids.expire(start + Duration::from_secs(30));
        assert!(ids.contains(a) && ids.contains(b) && !ids.contains(c));
        ids.insert(c, start + Duration::from_secs(61));
        ids.expire(start + Duration::from_secs(61));
        assert!(!ids.contains(a), "a is older than the window");
        assert!(ids.contains(b) && ids.contains(c));
        ids.insert(d, start + Duration::from_secs(62));
        ids.insert(e, start + Duration::from_secs(62));
        ids.expire(start + Duration::from_secs(62));
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains(b), "the oldest goes past the count");
        ids.insert(e, start + Duration::from_secs(63));
        ids.expire(start + Duration::from_secs(63));
        assert_eq!(ids.len(), 3, "an id already held is not held twice");
    }
}
