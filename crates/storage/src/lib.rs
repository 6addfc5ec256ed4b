//! The Northstar event store: one Delta Lake table, `events`, under a data location.
//!
//! A data location is a local directory (the default, `./northstar-data`), an S3-compatible
//! prefix (`s3://bucket/prefix`, configured by the usual `AWS_*` variables) or `memory://name`
//! (process-local, for tests). The events table lives at `<location>/events`.
//!
//! Every write is one Delta commit: data files are written first and become visible only when
//! the log entry naming them is committed, so a crash leaves the table exactly as before.

pub mod columns;
mod date_pruning;
mod derived;
pub mod id_views;
mod location;
mod log_check;
mod saved_tables;
mod schema;
mod snapshot;
mod table;
mod views;

pub use location::DataLocation;
pub use log_check::{check_commit_bytes, Damage};
pub use saved_tables::SavedTable;
pub use schema::{
    core_schema, event_date_from_micros, event_time_type, is_core_column, user_bucket, write_fields, CORE_COLUMNS,
    PARTITION_COLUMNS, USER_BUCKETS,
};
pub use snapshot::{query_field, store_and_root, DataFile, EventSnapshot, EventSnapshotSpec};
pub use table::{AppendError, AppendSummary, EventStore, OptimizeSummary, VacuumSummary, WriterLayout};

/// Errors of the event store. Messages name the location and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid data location '{0}': {1}")]
    InvalidLocation(String, String),
    #[error("no events table at {0}: import data first (northstar import --data {0} FILE)")]
    NoTable(String),
    #[error("{context}: {source}")]
    Delta {
        context: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A file of the table is not as its log says: nothing is answered from it.
    #[error(transparent)]
    Damaged(#[from] Damage),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
