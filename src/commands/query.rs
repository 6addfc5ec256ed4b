//! `northstar query`: one SQL statement, printed as a table, CSV or JSON lines.

use anyhow::Result;
use datafusion::arrow::record_batch::RecordBatch;
use northstar_engine::open_session;
use northstar_storage::{DataLocation, EventStore};

use crate::cli::{QueryArgs, QueryFormat};
use crate::output;

pub async fn run(args: QueryArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let ctx = open_session(&location, &args.engine.options()).await?;
    let store = EventStore::open(&location).await?;
    let (schema, mut batches) = northstar_engine::execute_sql(&ctx, &store, &args.sql).await?;
    if batches.is_empty() {
        // so that CSV output still has its header line
        batches.push(RecordBatch::new_empty(schema));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        QueryFormat::Table => output::write_table(&mut out, &batches)?,
        QueryFormat::Csv => output::write_csv(&mut out, &batches)?,
        QueryFormat::Json => output::write_json(&mut out, &batches)?,
    }
    Ok(())
}
