//! Background compaction while events stream in: every interval, when enough files were
//! added since the last pass, the small files are bin-packed (`EventStore::compact`), then
//! files older than the retention that no version needs are vacuumed. It runs on its own
//! handle of the table, so group commits never wait for it, and its commit is not in conflict
//! with theirs (they only add files); a failed pass is logged and tried again next interval.

use std::sync::Arc;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use northstar_storage::{DataLocation, EventStore, WriterLayout};

use crate::metrics::Metrics;
use crate::TableState;

pub struct CompactionOptions {
    pub interval: Duration,
    /// Files added since the last pass that make a pass worth running.
    pub min_new_files: usize,
    pub vacuum_retention: Duration,
    pub layout: WriterLayout,
}

pub fn spawn(location: DataLocation, options: CompactionOptions, metrics: Arc<Metrics>, table: Arc<TableState>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(options.interval);
        ticks.tick().await;
        let mut files_after_last_pass = None;
        loop {
            ticks.tick().await;
            match pass(&location, &options, files_after_last_pass).await {
                Ok(Some(Pass { version, files, files_it_left, rewrote })) => {
                    if rewrote {
                        table.saw(version, files);
                        metrics.compactions.inc();
                    }
                    files_after_last_pass = Some(files_it_left)
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("background compaction failed (tried again in {:?}): {e}", options.interval),
            }
        }
    });
}

/// What a pass left: the table's version and file count after it, the files of the version
/// it compacted once rewritten (those committed while it ran are new to the next pass), and
/// whether it rewrote files.
struct Pass {
    version: u64,
    files: usize,
    files_it_left: usize,
    rewrote: bool,
}

/// One pass, or `None` when too few files were added to make it worth it.
async fn pass(
    location: &DataLocation,
    options: &CompactionOptions,
    files_after_last_pass: Option<usize>,
) -> Result<Option<Pass>, northstar_storage::StorageError> {
    let mut store = EventStore::open(location).await?;
    if store.version().is_none() {
        return Ok(None);
    }
    let files = store.file_count();
    if files < files_after_last_pass.unwrap_or(0) + options.min_new_files {
        return Ok(None);
    }
    let summary = store.compact(SessionContext::new().state(), &options.layout).await?;
    let vacuumed = store.vacuum(options.vacuum_retention, false).await?;
    tracing::info!(
        "compacted {} files into {} ({} partitions), vacuumed {} files; {} files now",
        summary.files_removed,
        summary.files_added,
        summary.partitions_optimized,
        vacuumed.files_deleted,
        store.file_count()
    );
    let version = store.version().unwrap_or(summary.version);
    // Counted from the version the pass read, not from the table after it: files committed
    // while a pass runs (a minute of a busy stream) would otherwise never count as new, and
    // stay small once the stream stops.
    let files_it_left = (files + summary.files_added as usize).saturating_sub(summary.files_removed as usize);
    Ok(Some(Pass { version, files: store.file_count(), files_it_left, rewrote: summary.files_removed > 0 }))
}
