//! The collector's counters, in Prometheus' text format at `/metrics` (prometheus-client:
//! a registry per collector, no process-wide state).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    /// Events in requests that were read and passed their checks.
    pub received: Counter,
    /// Events in committed Delta versions.
    pub committed: Counter,
    /// Events refused: bad input, a wrong key, a full queue, a failed commit.
    pub rejected: Counter,
    /// Events dropped as retries of messages already committed.
    pub duplicates: Counter,
    pub commits: Counter,
    pub commit_failures: Counter,
    pub compactions: Counter,
    /// Events waiting for their commit.
    pub pending: Gauge,
    /// Seconds one group commit took (writing its files and the Delta commit).
    pub commit_seconds: Histogram,
    /// Seconds from a request's arrival to its answer, for the requests that were committed.
    pub ack_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("northstar_collector");
        let metrics = Metrics {
            received: Counter::default(),
            committed: Counter::default(),
            rejected: Counter::default(),
            duplicates: Counter::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            compactions: Counter::default(),
            pending: Gauge::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ack_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            registry: Registry::default(),
        };
        registry.register("events_received", "Events received and checked", metrics.received.clone());
        registry.register("events_committed", "Events in committed table versions", metrics.committed.clone());
        registry.register(
            "events_rejected",
            "Events refused (bad input, key, full queue, failed commit)",
            metrics.rejected.clone(),
        );
        registry.register("events_duplicate", "Retried events already committed, dropped", metrics.duplicates.clone());
        registry.register("commits", "Group commits", metrics.commits.clone());
        registry.register(
            "commit_failures",
            "Group commits that failed (their requests answered 503)",
            metrics.commit_failures.clone(),
        );
        registry.register("compactions", "Background compactions that rewrote files", metrics.compactions.clone());
        registry.register("events_pending", "Events waiting for their commit", metrics.pending.clone());
        registry.register("commit_seconds", "Time of one group commit", metrics.commit_seconds.clone());
        registry.register("ack_seconds", "Time from a request's arrival to its answer", metrics.ack_seconds.clone());
        Metrics { registry, ..metrics }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
