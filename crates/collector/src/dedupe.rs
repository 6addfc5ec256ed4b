//! The message ids committed lately, so that an SDK's retry of a request that was committed
//! (its answer lost, or the collector restarted before answering) is not counted twice.
//!
//! Ids are kept for a time window, and at most a number of them, whichever is fewer (the
//! memory bound: about 64 bytes per id, docs/collector.md). Each is held as a 128-bit hash of
//! its text under a key chosen at start, so long ids cost no more and a collision (a new
//! event taken for a retry) has odds of about n²/2¹²⁹.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

pub struct RecentIds {
    window: Duration,
    max_ids: usize,
    keys: (RandomState, RandomState),
    seen: HashSet<u128>,
    order: VecDeque<(Instant, u128)>,
}

impl RecentIds {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        RecentIds {
            window,
            max_ids,
            keys: (RandomState::new(), RandomState::new()),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    fn hash(&self, id: &str) -> u128 {
        (u128::from(self.keys.0.hash_one(id)) << 64) | u128::from(self.keys.1.hash_one(id))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(&self.hash(id))
    }

    /// Remembers `id` as committed at `now`, forgetting what fell out of the window or past
    /// the count.
    pub fn insert(&mut self, id: &str, now: Instant) {
        let hash = self.hash(id);
        if self.seen.insert(hash) {
            self.order.push_back((now, hash));
        }
        self.expire(now);
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
        ids.insert("a", start);
        ids.insert("b", start + Duration::from_secs(30));
        assert!(ids.contains("a") && ids.contains("b") && !ids.contains("c"));
        ids.insert("c", start + Duration::from_secs(61));
        assert!(!ids.contains("a"), "a is older than the window");
        assert!(ids.contains("b") && ids.contains("c"));
        ids.insert("d", start + Duration::from_secs(62));
        ids.insert("e", start + Duration::from_secs(62));
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains("b"), "the oldest goes past the count");
        ids.insert("e", start + Duration::from_secs(63));
        assert_eq!(ids.len(), 3, "an id already held is not held twice");
    }
}
