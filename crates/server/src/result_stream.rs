//! A statement's result as a stream of record batches, started under its limits: shared by
//! query results, SQL cursors and COPY out.

use std::sync::Arc;

use pgwire::error::PgWireResult;

use crate::errors::from_datafusion;
use crate::limits::StatementLimits;

/// Starts a result's stream: the optimizers and the physical planner run before the first
/// batch, without awaiting, so they run on a blocking thread the statement's limits race.
pub async fn start_stream(
    limits: &StatementLimits,
    df: datafusion::dataframe::DataFrame,
) -> PgWireResult<datafusion::execution::SendableRecordBatchStream> {
    let task = Arc::new(df.task_ctx());
    let zone = task.session_config().options().execution.time_zone.clone();
    let physical = limits.run_blocking(async move { df.create_physical_plan().await.map_err(from_datafusion) }).await?;
    let stream = datafusion::physical_plan::execute_stream(physical, task).map_err(from_datafusion)?;
    Ok(crate::time_zone::in_session_zone(stream, zone.as_deref()))
}
