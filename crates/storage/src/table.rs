//! Opening, appending to and maintaining the `events` Delta table.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};

use crate::location::storage_options;
use crate::{DataLocation, Result, StorageError, PARTITION_COLUMNS};

const EVENTS: &str = "events";

/// The Parquet layout of data files. Chosen by measurement: see docs/storage.md.
#[derive(Debug, Clone)]
pub struct WriterLayout {
    pub zstd_level: i32,
    pub row_group_rows: usize,
    /// Roll to a new file once a file reaches this many bytes.
    pub target_file_bytes: u64,
}

impl Default for WriterLayout {
    fn default() -> Self {
        Self { zstd_level: 1, row_group_rows: 1024 * 1024, target_file_bytes: 256 << 20 }
    }
}

impl WriterLayout {
    pub fn writer_properties(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(self.zstd_level).expect("zstd level 1..=22"),
            ))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .build()
    }
}

/// What one append committed.
#[derive(Debug, Clone)]
pub struct AppendSummary {
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct OptimizeSummary {
    pub version: u64,
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions_optimized: u64,
}

#[derive(Debug, Clone)]
pub struct VacuumSummary {
    pub files_deleted: usize,
    pub dry_run: bool,
}

/// A handle on the events table of one data location.
#[derive(Clone)]
pub struct EventStore {
    location: DataLocation,
    table: DeltaTable,
}

impl EventStore {
    /// Opens the events table; a location without one yields a handle with no version yet,
    /// which the first append creates.
    pub async fn open(location: &DataLocation) -> Result<Self> {
        register_object_store_handlers();
        let url = location.table_url(EVENTS);
        let context = |what: &str| format!("{what} {location}");
        if let Ok(path) = url.to_file_path() {
            std::fs::create_dir_all(&path).map_err(|e| {
                StorageError::InvalidLocation(location.to_string(), format!("cannot create {}: {e}", path.display()))
            })?;
        }
        let mut builder = DeltaTableBuilder::from_url(url.clone())
            .map_err(|source| StorageError::Delta { context: context("opening"), source })?
            .with_storage_options(storage_options(location));
        if let Some((store, base)) = location.memory_store() {
            builder = builder.with_storage_backend(store, base);
        }
        let mut table = builder
            .build()
            .map_err(|source| StorageError::Delta { context: context("opening"), source })?;
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => {}
            Err(source) => {
                return Err(StorageError::Delta { context: context("loading the events table at"), source })
            }
        }
        Ok(Self { location: location.clone(), table })
    }

    pub fn location(&self) -> &DataLocation {
        &self.location
    }

    /// The committed version, or `None` before the first import.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    pub fn delta_table(&self) -> &DeltaTable {
        &self.table
    }

    /// Number of data files in the current version.
    pub fn file_count(&self) -> usize {
        self.table.snapshot().map(|s| s.log_data().num_files()).unwrap_or(0)
    }

    /// A DataFusion table provider for the current version.
    pub async fn table_provider(&self, state: &SessionState) -> Result<Arc<dyn TableProvider>> {
        if self.version().is_none() {
            return Err(StorageError::NoTable(self.location.to_string()));
        }
        self.table.update_datafusion_session(state).map_err(|source| StorageError::Delta {
            context: format!("registering {} with the session", self.location),
            source,
        })?;
        self.table.table_provider().await.map_err(StorageError::from)
    }

    /// Appends everything `plan` produces in one Delta commit. New columns in the plan's
    /// schema are added to the table schema in that same commit. If the plan fails (bad input,
    /// I/O error, the process is killed), nothing is committed: files already written stay
    /// unreferenced until `vacuum` removes them.
    pub async fn append(
        &mut self,
        plan: LogicalPlan,
        state: SessionState,
        layout: &WriterLayout,
    ) -> Result<AppendSummary> {
        let table = self
            .table
            .clone()
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(state))
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_partition_columns(PARTITION_COLUMNS)
            .with_writer_properties(layout.writer_properties())
            .with_target_file_size(NonZeroU64::new(layout.target_file_bytes))
            .with_table_name("events")
            .await
            .map_err(|source| self.delta_error("appending to", source))?;
        self.table = table;
        Ok(AppendSummary { version: self.version().unwrap_or(0) })
    }

    /// Rewrites small files of each day into large ones, Z-ordered by user and time so that a
    /// user's events sit together (fast per-user aggregates) and time ranges prune well.
    pub async fn optimize(
        &mut self,
        state: SessionState,
        layout: &WriterLayout,
    ) -> Result<OptimizeSummary> {
        self.require_table()?;
        let (table, metrics) = self
            .table
            .clone()
            .optimize()
            .with_type(OptimizeType::ZOrder(vec!["user_id".into(), "event_time".into()]))
            .with_session_state(Arc::new(state))
            .with_writer_properties(layout.writer_properties())
            .with_target_size(NonZeroU64::new(layout.target_file_bytes).expect("non-zero"))
            .with_max_concurrent_tasks(1)
            .await
            .map_err(|source| self.delta_error("optimizing", source))?;
        self.table = table;
        Ok(OptimizeSummary {
            version: self.version().unwrap_or(0),
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            partitions_optimized: metrics.partitions_optimized,
        })
    }

    /// Deletes data files no version within `retention` refers to. Readers of any version
    /// younger than the retention period keep working.
    pub async fn vacuum(&mut self, retention: Duration, dry_run: bool) -> Result<VacuumSummary> {
        self.require_table()?;
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let (table, metrics) = self
            .table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .await
            .map_err(|source| self.delta_error("vacuuming", source))?;
        self.table = table;
        Ok(VacuumSummary { files_deleted: metrics.files_deleted.len(), dry_run: metrics.dry_run })
    }

    fn require_table(&self) -> Result<()> {
        match self.version() {
            Some(_) => Ok(()),
            None => Err(StorageError::NoTable(self.location.to_string())),
        }
    }

    fn delta_error(&self, what: &str, source: DeltaTableError) -> StorageError {
        StorageError::Delta { context: format!("{what} the events table at {}", self.location), source }
    }
}

impl From<DeltaTableError> for StorageError {
    fn from(source: DeltaTableError) -> Self {
        StorageError::Delta { context: "delta".into(), source }
    }
}

/// S3 URL schemes are handled by the deltalake-aws crate, which must register itself once.
fn register_object_store_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| deltalake::aws::register_handlers(None));
}
