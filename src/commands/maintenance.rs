//! `northstar optimize` and `northstar vacuum`: compaction and removal of unreferenced files.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use northstar_storage::{DataLocation, EventStore};

use crate::cli::{MaintenanceArgs, VacuumArgs};

pub async fn optimize(args: MaintenanceArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let ctx = northstar_engine::new_context(&args.engine.options())?;
    let mut store = EventStore::open(&location).await?;
    let before = store.file_count();
    let started = Instant::now();
    let summary = store.optimize(ctx.state(), &args.layout.layout()).await?;
    eprintln!(
        "optimized {} partitions: {} files → {} files ({} removed, {} added) in {:.2} s; table version {}",
        summary.partitions_optimized,
        before,
        store.file_count(),
        summary.files_removed,
        summary.files_added,
        started.elapsed().as_secs_f64(),
        summary.version
    );
    Ok(())
}

pub async fn vacuum(args: VacuumArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let mut store = EventStore::open(&location).await?;
    if store.version().is_none() {
        bail!("no events table at {}", args.data.data);
    }
    let summary = store.vacuum(Duration::from_secs(args.retention_hours * 3600), args.dry_run).await?;
    let verb = if summary.dry_run { "would delete" } else { "deleted" };
    eprintln!("{verb} {} unreferenced files older than {} h", summary.files_deleted, args.retention_hours);
    Ok(())
}
