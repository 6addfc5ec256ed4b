//! Group commit: every request that arrives within the commit interval of the first one
//! waiting (or until a row count) goes into one Delta commit; each request is answered only
//! once that commit succeeded. A request's events are in one commit, never split, so a crash
//! shows all of them or none. Retried messages (ids committed within the dedupe window) are
//! dropped.
//!
//! Grouping and committing are two tasks joined by a one-slot channel: the next group gathers
//! while the previous one is written and committed, so groups form every interval however
//! long a commit takes (up to one interval), and a request waits at most about one interval
//! plus one commit. Commits stay in order, one at a time (Delta versions are sequential).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use northstar_storage::{EventStore, WriterLayout};
use tokio::sync::{mpsc, oneshot};

use crate::dedupe::{IdSet, RecentIds};
use crate::message::{EventRow, RECEIVED_AT};
use crate::metrics::Metrics;
use crate::record_batch;

/// How a request's events were committed.
#[derive(Debug)]
pub struct Committed {
    /// The table version holding them (`None`: all were retries already committed).
    pub version: Option<u64>,
    /// Data files in the table after the commit (as this handle saw it).
    pub files: usize,
}

struct Submission {
    rows: Vec<EventRow>,
    arrived: Instant,
    reply: oneshot::Sender<Result<Committed, String>>,
}

pub struct GroupCommitOptions {
    pub interval: Duration,
    pub max_commit_rows: usize,
    pub max_pending_events: usize,
    pub dedupe_window: Duration,
    pub dedupe_max_ids: usize,
    pub layout: WriterLayout,
    pub on_commit: Option<crate::CommitHook>,
}

/// The handle requests submit to; the committing task owns the store.
#[derive(Clone)]
pub struct Committer {
    sender: mpsc::UnboundedSender<Submission>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    metrics: Arc<Metrics>,
}

/// Why a submission was not taken.
#[derive(Debug)]
pub enum Refused {
    /// Pending events would exceed the bound: the sender should retry later.
    Full,
    /// The committing task has stopped.
    Stopped,
}

impl Committer {
    /// Starts the committing task over `store`, after reading the message ids of the commits
    /// within the dedupe window (so retries across a restart are recognised too).
    pub async fn start(
        mut store: EventStore,
        options: GroupCommitOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Committer, String> {
        // Refuses to start on a table whose columns clash with the collector's.
        record_batch::write_schema(&store.write_schema())?;
        let mut recent = RecentIds::new(options.dedupe_window, options.dedupe_max_ids);
        restore_recent_ids(&mut store, &mut recent, options.dedupe_window).await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let (group_sender, groups) = mpsc::channel(1);
        let pending = Arc::new(AtomicUsize::new(0));
        let task = CommitTask {
            store,
            recent,
            pending: pending.clone(),
            metrics: metrics.clone(),
            on_commit: options.on_commit,
        };
        tokio::spawn(gather_groups(receiver, group_sender, options.interval, options.max_commit_rows));
        tokio::spawn(task.run(groups, options.layout));
        Ok(Committer { sender, pending, max_pending: options.max_pending_events, metrics })
    }

    /// Queues `rows` for the next group commit; the receiver answers once it is committed.
    /// The pending-event bound is checked here, so memory stays bounded under any load.
    pub fn submit(&self, rows: Vec<EventRow>) -> Result<oneshot::Receiver<Result<Committed, String>>, Refused> {
        let count = rows.len();
        let before = self.pending.fetch_add(count, Ordering::SeqCst);
        if before + count > self.max_pending && before > 0 {
            self.pending.fetch_sub(count, Ordering::SeqCst);
            return Err(Refused::Full);
        }
        self.metrics.pending.set((before + count) as i64);
        let (reply, answer) = oneshot::channel();
        self.sender.send(Submission { rows, arrived: Instant::now(), reply }).map_err(|_| {
            self.pending.fetch_sub(count, Ordering::SeqCst);
            Refused::Stopped
        })?;
        Ok(answer)
    }
}

/// Requests in the order they arrived, cut into groups: what arrived within `interval` of the
/// group's first request, or until `max_rows` events.
async fn gather_groups(
    mut receiver: mpsc::UnboundedReceiver<Submission>,
    groups: mpsc::Sender<(Vec<Submission>, usize)>,
    interval: Duration,
    max_rows: usize,
) {
    while let Some(first) = receiver.recv().await {
        let deadline = tokio::time::Instant::from_std(first.arrived + interval);
        let mut rows = first.rows.len();
        let mut group = vec![first];
        while rows < max_rows {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(submission)) => {
                    rows += submission.rows.len();
                    group.push(submission);
                }
                Ok(None) | Err(_) => break,
            }
        }
        // Waits while a group is being committed and another is already waiting: requests
        // meanwhile queue in `receiver`, bounded by the pending-event limit.
        if groups.send((group, rows)).await.is_err() {
            return;
        }
    }
}

struct CommitTask {
    store: EventStore,
    recent: RecentIds,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    on_commit: Option<crate::CommitHook>,
}

impl CommitTask {
    async fn run(mut self, mut groups: mpsc::Receiver<(Vec<Submission>, usize)>, layout: WriterLayout) {
        while let Some((group, rows)) = groups.recv().await {
            self.commit(group, rows, &layout).await;
        }
    }

    async fn commit(&mut self, group: Vec<Submission>, rows: usize, layout: &WriterLayout) {
        let started = Instant::now();
        // Keep the first of each message id among the group and those committed lately.
        let mut fresh: Vec<&EventRow> = Vec::with_capacity(rows);
        let mut fresh_ids = Vec::with_capacity(rows);
        let mut in_group = IdSet::with_capacity_and_hasher(rows, Default::default());
        for row in group.iter().flat_map(|submission| &submission.rows) {
            let id = self.recent.id(&row.message_id);
            if !self.recent.contains(id) && in_group.insert(id) {
                fresh.push(row);
                fresh_ids.push(id);
            }
        }
        let outcome = if fresh.is_empty() { Ok(None) } else { self.append(&fresh, layout).await.map(Some) };
        let now = Instant::now();
        match &outcome {
            Ok(version) => {
                if version.is_some() {
                    self.metrics.commits.inc();
                    self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                    if let Some(hook) = &self.on_commit {
                        (hook.0)();
                    }
                }
                for id in fresh_ids {
                    self.recent.insert(id, now);
                }
                self.metrics.committed.inc_by(fresh.len() as u64);
                self.metrics.duplicates.inc_by((rows - fresh.len()) as u64);
            }
            Err(e) => {
                tracing::error!("group commit of {} events failed: {e}", fresh.len());
                self.metrics.commit_failures.inc();
                self.metrics.rejected.inc_by(rows as u64);
            }
        }
        self.recent.expire(now);
        let left = self.pending.fetch_sub(rows, Ordering::SeqCst) - rows;
        self.metrics.pending.set(left as i64);
        for submission in group {
            let answer = match &outcome {
                Ok(version) => {
                    self.metrics.ack_seconds.observe(submission.arrived.elapsed().as_secs_f64());
                    Ok(Committed { version: *version, files: self.store.file_count() })
                }
                Err(e) => Err(e.clone()),
            };
            // A sender that hung up still had its events committed; nothing to tell it.
            let _ = submission.reply.send(answer);
        }
    }

    async fn append(&mut self, rows: &[&EventRow], layout: &WriterLayout) -> Result<u64, String> {
        // The table may have grown columns (an import) since the last commit.
        let schema = record_batch::write_schema(&self.store.write_schema())?;
        let batch = record_batch::to_batch(&schema, rows).map_err(|e| e.to_string())?;
        let input = futures::stream::iter([Ok::<_, std::convert::Infallible>(batch)]);
        match self.store.append(schema, input, layout).await {
            Ok(summary) => Ok(summary.version),
            Err(northstar_storage::AppendError::Storage(e)) => Err(e.to_string()),
            Err(northstar_storage::AppendError::Input(never)) => match never {},
        }
    }
}

/// Reads the message ids of the events received within `window` (from the files written in
/// it, so the rest of the table is not read) into `recent`: the newest of them, as many as it
/// holds (a top-k, not a sort of every id received in the window).
async fn restore_recent_ids(store: &mut EventStore, recent: &mut RecentIds, window: Duration) -> Result<(), String> {
    if store.version().is_none() {
        return Ok(());
    }
    let since = chrono::Utc::now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let ctx = SessionContext::new();
    let provider =
        store.recent_files_provider(&ctx.state(), since.timestamp_millis()).await.map_err(|e| e.to_string())?;
    if provider.schema().field_with_name(RECEIVED_AT).is_err() {
        return Ok(());
    }
    ctx.register_table("recent", provider).map_err(|e| e.to_string())?;
    let sql = format!(
        "SELECT message_id FROM recent WHERE {RECEIVED_AT} >= to_timestamp_micros({}) \
         ORDER BY {RECEIVED_AT} DESC LIMIT {}",
        since.timestamp_micros(),
        recent.max_ids()
    );
    let frame = ctx.sql(&sql).await.map_err(|e| e.to_string())?;
    let batches = frame.collect().await.map_err(|e| e.to_string())?;
    let now = Instant::now();
    // Oldest first, as they were committed, so the count bound forgets the oldest.
    for batch in batches.iter().rev() {
        use datafusion::arrow::array::AsArray;
        let ids = datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)
            .map_err(|e| e.to_string())?;
        for id in ids.as_string::<i32>().iter().rev().flatten() {
            recent.insert(recent.id(id), now);
        }
    }
    recent.expire(now);
    tracing::info!("{} message ids of the last {:?} restored for deduplication", recent.len(), window);
    Ok(())
}
