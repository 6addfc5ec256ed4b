//! `northstar optimize`, `northstar vacuum` and `northstar rebuild-persons`: compaction, removal
//! of unreferenced files, and the persons derived again from the events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use northstar_engine::EngineOptions;
use northstar_identity::IdentityState;
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

pub async fn rebuild_persons(args: MaintenanceArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let store = EventStore::open(&location).await?;
    let started = Instant::now();
    let identity = persons_of(&store, &args.engine.options(), true).await?;
    eprintln!("{}", persons_summary(&identity, started.elapsed()));
    Ok(())
}

/// The identity state of the version `store` holds: brought up to date from the saved one, or
/// (`rebuild`) derived from the events alone.
pub async fn persons_of(store: &EventStore, options: &EngineOptions, rebuild: bool) -> Result<Arc<IdentityState>> {
    if store.version().is_none() {
        bail!("no events table at {}", store.location());
    }
    let ctx = northstar_engine::new_context(options)?;
    let state = ctx.state();
    let schema = store.table_provider(&state).await?.schema();
    Ok(match rebuild {
        true => northstar_identity::rebuild(store, &state, &schema).await?,
        false => northstar_identity::identity_at(store, &state, &schema).await?,
    })
}

pub fn persons_summary(identity: &IdentityState, took: Duration) -> String {
    format!(
        "persons of table version {}: {} identity links, {} ids merged into another id's person, in {:.2} s",
        identity.version,
        identity.link_count(),
        identity.persons.merged_ids(),
        took.as_secs_f64()
    )
}
