//! Per-connection limits on running statements: cancel requests, `statement_timeout`, and a
//! memory cap.
//!
//! DataFusion plans lazily and does its work while the result stream is polled, so a limit
//! that only wraps planning (as datafusion-postgres 0.19 does) never stops a long scan. Here
//! every await of a statement, and every poll of its result stream, races the connection's
//! cancel signal and the statement's deadline. Dropping the stream drops DataFusion's tasks.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::common::{resources_datafusion_err, Result as DfResult};
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};
use futures::{Stream, StreamExt};
use pgwire::error::PgWireError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::errors::{canceled, internal};

/// One connection's cancel handle, fired by a CancelRequest carrying its pid and secret. Each
/// statement gets a fresh token, so a cancel that arrived between statements is forgotten
/// (PostgreSQL ignores those too) and only the statement running at the time stops.
#[derive(Debug, Default)]
pub struct CancelHandle {
    current: Mutex<CancellationToken>,
}

impl CancelHandle {
    fn start_statement(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.current.lock().unwrap() = token.clone();
        token
    }

    pub fn cancel(&self) {
        self.current.lock().unwrap().cancel();
    }
}

/// The limits of one running statement.
#[derive(Clone)]
pub struct StatementLimits {
    cancel: CancellationToken,
    deadline: Option<Instant>,
}

impl StatementLimits {
    pub fn start(cancel: &CancelHandle, timeout: Option<Duration>) -> Self {
        StatementLimits { cancel: cancel.start_statement(), deadline: timeout.map(|t| Instant::now() + t) }
    }

    /// Awaits `work` unless the statement is canceled or times out first.
    pub async fn run<T>(&self, work: impl Future<Output = Result<T, PgWireError>>) -> Result<T, PgWireError> {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(canceled("user request")),
            _ = deadline => Err(canceled("statement timeout")),
            out = work => out,
        }
    }

    /// Like `run`, for work that computes without awaiting (planning and optimizing a
    /// statement): it runs on a blocking thread so that a cancel or the deadline answers the
    /// client at once. Abandoned work finishes on that thread, bounded by the statement limits
    /// of `complexity.rs`.
    pub async fn run_blocking<T, W>(&self, work: W) -> Result<T, PgWireError>
    where
        T: Send + 'static,
        W: Future<Output = Result<T, PgWireError>> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || runtime.block_on(work));
        self.run(async { joined(task.await) }).await
    }

    /// Wraps a stream so that each item is subject to the limits; the stream ends after the
    /// first error.
    pub fn stream<S, T>(self, inner: S) -> impl Stream<Item = Result<T, PgWireError>> + Send
    where
        S: Stream<Item = Result<T, PgWireError>> + Send + Unpin + 'static,
        T: Send + 'static,
    {
        futures::stream::unfold(Some((inner, self)), |state| async move {
            let (mut inner, limits) = state?;
            match limits.run(async { Ok(inner.next().await) }).await {
                Ok(Some(Ok(item))) => Some((Ok(item), Some((inner, limits)))),
                Ok(Some(Err(e))) | Err(e) => Some((Err(e), None)),
                Ok(None) => None,
            }
        })
    }
}

/// Runs a write to its end on a task of its own, whatever happens to the statement that
/// started it. A write dropped by a cancel or a deadline while its Delta commit was under way
/// could leave the client told 57014 while its rows are in the table (and its retry doubling
/// them); PostgreSQL likewise lets a commit in progress finish. A write's *input* is what the
/// statement's limits stop: a canceled input fails the write before anything is committed.
pub async fn uninterrupted<T, W>(write: W) -> Result<T, PgWireError>
where
    T: Send + 'static,
    W: Future<Output = Result<T, PgWireError>> + Send + 'static,
{
    joined(tokio::spawn(write).await)
}

/// The outcome of a task the statement waited for; a panic in it is resumed here, to end the
/// statement as any panic does.
fn joined<T>(outcome: Result<Result<T, PgWireError>, tokio::task::JoinError>) -> Result<T, PgWireError> {
    match outcome {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(internal(e)),
    }
}

/// A memory pool that gives one connection at most `cap` bytes of a shared pool. Hand-written
/// because DataFusion's pools each own their whole budget; this one layers a per-query cap on
/// the server-wide pool, so spilling operators spill at the cap and the rest fail with a
/// clear error instead of the process growing until the OS kills it.
#[derive(Debug)]
pub struct CappedPool {
    inner: Arc<dyn MemoryPool>,
    cap: usize,
    used: AtomicUsize,
}

impl CappedPool {
    pub fn new(inner: Arc<dyn MemoryPool>, cap: usize) -> Self {
        CappedPool { inner, cap, used: AtomicUsize::new(0) }
    }
}

impl std::fmt::Display for CappedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query cap {} MiB over {}", self.cap >> 20, self.inner)
    }
}

impl MemoryPool for CappedPool {
    fn name(&self) -> &str {
        "northstar-query-cap"
    }
    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.inner.register(consumer)
    }
    fn unregister(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.inner.unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.inner.grow(reservation, additional)
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.inner.shrink(reservation, shrink)
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        let used = self.used.fetch_add(additional, Ordering::Relaxed);
        if used + additional > self.cap {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(resources_datafusion_err!(
                "query memory limit of {} MiB reached by {} (set with serve --query-memory)",
                self.cap >> 20,
                reservation.consumer().name()
            ));
        }
        self.inner.try_grow(reservation, additional).inspect_err(|_| {
            self.used.fetch_sub(additional, Ordering::Relaxed);
        })
    }
    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.cap)
    }
}
