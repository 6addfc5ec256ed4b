//! `northstar import`: files or stdin into the events table, in one commit.

use anyhow::Result;
use indicatif::HumanBytes;
use northstar_import::{FieldOverrides, ImportOptions, ImportSummary};
use northstar_storage::{DataLocation, EventStore};

use crate::cli::ImportArgs;

pub async fn run(args: ImportArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let options = ImportOptions {
        format: args.format,
        overrides: FieldOverrides::parse(&args.map)?,
        rejects: args.rejects.clone(),
        infer_rows: args.infer_rows,
        progress: true,
        layout: args.layout.layout(),
    };
    let summary = import_into(&location, &args.files, &options).await?;
    eprintln!(
        "imported {} rows ({} rejected) from {} in {:.2} s: {:.0} rows/s; table version {}",
        summary.rows,
        summary.rejected,
        HumanBytes(summary.input_bytes),
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second(),
        summary.version
    );
    if summary.rejected > 0 {
        if let Some(path) = &args.rejects {
            eprintln!("rejected rows and reasons: {}", path.display());
        }
    }
    // The rows are committed whatever happens next; bringing the persons up to date here
    // spares the first query the time. If it fails, that query does it (docs/identity.md).
    let started = std::time::Instant::now();
    let store = EventStore::open(&location).await?;
    match super::maintenance::persons_of(&store, &northstar_engine::EngineOptions::default(), false).await {
        Ok(identity) => eprintln!("{}", super::maintenance::persons_summary(&identity, started.elapsed())),
        Err(e) => eprintln!("warning: the rows are imported, but bringing the persons up to date failed: {e:#}"),
    }
    Ok(())
}

/// Imports `files` into the table at `location` (also used by `demo`).
pub async fn import_into(location: &DataLocation, files: &[String], options: &ImportOptions) -> Result<ImportSummary> {
    let mut store = EventStore::open(location).await?;
    Ok(northstar_import::import(&mut store, files, options).await?)
}
