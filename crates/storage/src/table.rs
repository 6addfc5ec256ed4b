//! Opening, appending to and maintaining the `events` Delta table.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use delta_kernel::table_properties::DataSkippingNumIndexedCols;
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::operations::optimize::OptimizeType;
use deltalake::protocol::DeltaOperation;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;

use crate::columns::{EVENT_TIME, USER_BUCKET, USER_ID};
use crate::location::storage_options;
use crate::schema::user_bucket;
use crate::snapshot::{query_field, store_and_root, DataFile, EventSnapshot, EventSnapshotSpec};
use crate::{DataLocation, Result, StorageError, PARTITION_COLUMNS};

const EVENTS: &str = "events";

/// The Parquet layout of data files. Chosen by measurement: see docs/storage.md.
#[derive(Debug, Clone)]
pub struct WriterLayout {
    pub zstd_level: i32,
    pub row_group_rows: usize,
    /// Roll to a new file once a file reaches this many bytes.
    pub target_file_bytes: u64,
    /// Rows written before every open file is finished (bounds an import's memory).
    pub chunk_rows: usize,
    /// Text columns written PLAIN, without a dictionary and with statistics for the whole
    /// column chunk only. For the collector's group commits: their ids and JSON are nearly all
    /// distinct, so a dictionary is built for every value only to be dropped, and compaction
    /// rewrites those files (with this list empty) within minutes. Empty by default.
    pub plain_columns: Vec<String>,
}

impl Default for WriterLayout {
    fn default() -> Self {
        Self {
            zstd_level: 1,
            row_group_rows: 1024 * 1024,
            target_file_bytes: 256 << 20,
            chunk_rows: 2 << 20,
            plain_columns: Vec::new(),
        }
    }
}

impl WriterLayout {
    pub fn writer_properties(&self) -> WriterProperties {
        let mut builder = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.zstd_level).expect("zstd level 1..=22")))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            // Timestamps rarely repeat, so a dictionary fails and falls back to 8 plain bytes a
            // row for ZSTD to chew through on every read; their deltas pack into a few bits.
            .set_column_dictionary_enabled(EVENT_TIME.into(), false)
            .set_column_encoding(EVENT_TIME.into(), Encoding::DELTA_BINARY_PACKED);
        for column in &self.plain_columns {
            builder = builder
                .set_column_dictionary_enabled(column.as_str().into(), false)
                .set_column_encoding(column.as_str().into(), Encoding::PLAIN)
                .set_column_statistics_enabled(column.as_str().into(), EnabledStatistics::Chunk);
        }
        builder.build()
    }
}

/// Why an append failed: the input stream's own error, or the store's. Nothing was committed.
#[derive(Debug)]
pub enum AppendError<E> {
    Input(E),
    Storage(StorageError),
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
    /// The newest commit file checked to be whole (see `log_check`).
    checked_through: Option<u64>,
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
        let table = builder.build().map_err(|source| StorageError::Delta { context: context("opening"), source })?;
        let mut store = Self { location: location.clone(), table, checked_through: None };
        store.load("loading").await?;
        Ok(store)
    }

    /// Loads the newest version, then checks the commit files not checked before; when the
    /// load itself fails, the check names the damaged file if that is the cause.
    async fn load(&mut self, what: &str) -> Result<()> {
        let loaded = self.table.load().await;
        if matches!(loaded, Err(DeltaTableError::NotATable(_))) {
            return Ok(());
        }
        let store = self.table.log_store().object_store(None);
        let root = format!("{}/{EVENTS}", self.location);
        let log = object_store::path::Path::from("_delta_log");
        self.checked_through = crate::log_check::check_log(&store, &log, self.checked_through, None, &root).await?;
        loaded.map_err(|source| self.delta_error(what, source))
    }

    /// The schema an append must produce: core columns, then the table's other columns.
    pub fn write_schema(&self) -> SchemaRef {
        let existing = self.table.snapshot().ok().map(|s| s.snapshot().arrow_schema());
        Arc::new(Schema::new(crate::schema::write_fields(existing.as_deref())))
    }

    /// Loads the newest committed version (commits by other processes included).
    pub async fn reload(&mut self) -> Result<()> {
        self.load("reloading").await
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

    /// The table's Delta partition columns: [`PARTITION_COLUMNS`] for tables this version
    /// creates, only `event_date` for tables written before user buckets.
    pub fn partition_columns(&self) -> Vec<String> {
        match self.table.snapshot() {
            Ok(snapshot) => snapshot.metadata().partition_columns().to_vec(),
            Err(_) => PARTITION_COLUMNS.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Number of data files in the current version.
    pub fn file_count(&self) -> usize {
        self.table.snapshot().map(|s| s.log_data().num_files()).unwrap_or(0)
    }

    /// A DataFusion table provider for the current version: its data files read as Parquet
    /// ([`EventSnapshot`]), with the table's object store registered in `state`'s runtime.
    pub async fn table_provider(&self, state: &SessionState) -> Result<Arc<dyn TableProvider>> {
        self.provider_of(state, self.snapshot_spec()?)
    }

    fn provider_of(&self, state: &SessionState, spec: EventSnapshotSpec) -> Result<Arc<dyn TableProvider>> {
        let table_url = self.location.table_url(EVENTS);
        if !table_url.scheme().starts_with("file") {
            let store_url = url::Url::parse(&spec.store_url)
                .map_err(|e| StorageError::InvalidLocation(self.location.to_string(), e.to_string()))?;
            state.runtime_env().register_object_store(&store_url, self.table.log_store().root_object_store(None));
        }
        let view_types = state.config_options().execution.parquet.schema_force_view_types;
        let arrow_schema = self.table.snapshot().map_err(|e| self.delta_error("reading", e))?.snapshot().arrow_schema();
        // The user bucket is layout, not data: queries do not see it.
        let schema = Schema::new(
            arrow_schema
                .fields()
                .iter()
                .filter(|f| f.name() != USER_BUCKET)
                .map(|f| query_field(f, view_types))
                .collect::<Vec<_>>(),
        );
        Ok(Arc::new(EventSnapshot::try_new(spec, Arc::new(schema))?))
    }

    /// The data files of the current version, as the scan needs them. Fails, naming the
    /// feature, for tables whose files cannot be read as plain Parquet (deletion vectors,
    /// column mapping: written by other tools, never by Northstar).
    pub fn snapshot_spec(&self) -> Result<EventSnapshotSpec> {
        self.snapshot_spec_of(|_| true)
    }

    /// A table provider over only the data files written at or after `millis` (since the
    /// epoch, by their Delta modification time): the collector reads the message ids of
    /// recent commits from them when it starts.
    pub async fn recent_files_provider(&self, state: &SessionState, millis: i64) -> Result<Arc<dyn TableProvider>> {
        self.provider_of(state, self.snapshot_spec_of(|modified| modified >= millis)?)
    }

    fn snapshot_spec_of(&self, keep: impl Fn(i64) -> bool) -> Result<EventSnapshotSpec> {
        let version = self.version().ok_or_else(|| StorageError::NoTable(self.location.to_string()))?;
        let snapshot = self.table.snapshot().map_err(|e| self.delta_error("reading", e))?;
        let unsupported = |what: &str| {
            StorageError::InvalidLocation(
                self.location.to_string(),
                format!("the events table uses {what}, which Northstar does not read"),
            )
        };
        if snapshot
            .snapshot()
            .table_properties()
            .column_mapping_mode
            .is_some_and(|m| m != delta_kernel::table_features::ColumnMappingMode::None)
        {
            return Err(unsupported("column mapping"));
        }
        let table_url = self.location.table_url(EVENTS);
        let (store_url, root) = store_and_root(&table_url)?;
        let partition_columns = self.partition_columns();
        let mut files = Vec::new();
        for file in snapshot.log_data().iter() {
            if file.deletion_vector_descriptor().is_some() {
                return Err(unsupported("deletion vectors"));
            }
            if !keep(file.modification_time()) {
                continue;
            }
            let relative = file.path();
            let path = match url::Url::parse(&relative) {
                Ok(absolute) => absolute.path().trim_start_matches('/').to_string(),
                Err(_) => format!("{root}/{relative}"),
            };
            let values = file.partition_values_map();
            files.push(DataFile {
                path,
                size: file.size().max(0) as u64,
                partition_values: partition_columns.iter().map(|c| values.get(c).cloned().flatten()).collect(),
                rows: file.num_records().map(|n| n as u64),
            });
        }
        Ok(EventSnapshotSpec { store_url, table_url: table_url.to_string(), version, partition_columns, files })
    }

    /// Appends every batch of `batches` (all of schema `schema`) in one Delta commit. New
    /// columns in `schema` are added to the table schema in that same commit. The user
    /// bucket, where the table has one, is added to each batch here (from `user_id`).
    ///
    /// Batches are written in chunks of [`WriterLayout::chunk_rows`] rows: every data file
    /// of a chunk is finished and uploaded before the next chunk starts, so memory holds one
    /// chunk whatever the input size (delta-rs's own streaming write keeps every partition's
    /// file open until the end, which grows with the input). Nothing is visible until the
    /// commit: if the stream fails or the process dies, the table stays as it was, and the
    /// files already written stay unreferenced until `vacuum` removes them.
    pub async fn append<E>(
        &mut self,
        schema: SchemaRef,
        mut batches: impl futures::Stream<Item = Result<RecordBatch, E>> + Unpin,
        layout: &WriterLayout,
    ) -> std::result::Result<AppendSummary, AppendError<E>> {
        let partition_columns = self.partition_columns();
        let bucketed = partition_columns.iter().any(|c| c == USER_BUCKET);
        let schema = if bucketed { with_user_bucket(&schema) } else { schema };
        let new_writer = || {
            let config = WriterConfig::new(
                schema.clone(),
                partition_columns.clone(),
                Some(layout.writer_properties()),
                NonZeroU64::new(layout.target_file_bytes),
                None,
                DataSkippingNumIndexedCols::NumColumns(32),
                None,
            );
            DeltaWriter::new(self.table.object_store(), config)
        };
        let storage = |source| AppendError::Storage(self.delta_error("writing to", source));
        let mut adds = Vec::new();
        let mut writer = new_writer();
        let mut chunk_rows = 0usize;
        while let Some(batch) = batches.next().await {
            let mut batch = batch.map_err(AppendError::Input)?;
            if bucketed {
                batch = add_user_bucket(&batch, &schema)
                    .map_err(|e| AppendError::Storage(datafusion::error::DataFusionError::from(e).into()))?;
            }
            chunk_rows += batch.num_rows();
            writer.write(&batch).await.map_err(storage)?;
            if chunk_rows >= layout.chunk_rows {
                adds.extend(writer.close().await.map_err(storage)?);
                writer = new_writer();
                chunk_rows = 0;
            }
        }
        adds.extend(writer.close().await.map_err(storage)?);
        self.commit(schema, partition_columns, adds).await.map_err(AppendError::Storage)
    }

    /// Commits written files (and, when the schema grew, the new schema) as one version.
    async fn commit(
        &mut self,
        schema: SchemaRef,
        partition_columns: Vec<String>,
        adds: Vec<Add>,
    ) -> Result<AppendSummary> {
        let kernel_schema: StructType =
            schema.as_ref().try_into_kernel().map_err(|e| self.delta_error("converting the schema of", e.into()))?;
        let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        let Ok(snapshot) = self.table.snapshot() else {
            let table = CreateBuilder::new()
                .with_log_store(self.table.log_store())
                .with_table_name("events")
                .with_columns(kernel_schema.fields().cloned())
                .with_partition_columns(partition_columns)
                .with_actions(actions)
                .await
                .map_err(|source| self.delta_error("creating", source))?;
            self.table = table;
            return Ok(AppendSummary { version: self.version().unwrap_or(0) });
        };
        let mut all = Vec::with_capacity(actions.len() + 1);
        if snapshot.snapshot().arrow_schema().fields().len() != schema.fields().len() {
            let metadata = MetadataExt::with_schema(snapshot.metadata().clone(), &kernel_schema)
                .map_err(|source| self.delta_error("evolving the schema of", source.into()))?;
            all.push(Action::Metadata(metadata));
        }
        all.extend(actions);
        let operation =
            DeltaOperation::Write { mode: SaveMode::Append, partition_by: Some(partition_columns), predicate: None };
        // CommitProperties' defaults include the post-commit hook that writes a checkpoint
        // every `delta.checkpointInterval` (100) commits; without it every reader would replay
        // the whole log, and many small imports would slow every query down.
        let committed = CommitBuilder::from(CommitProperties::default())
            .with_actions(all)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(|source| self.delta_error("committing to", source))?;
        self.table.update_state().await.map_err(|source| self.delta_error("reloading", source))?;
        Ok(AppendSummary { version: committed.version })
    }

    /// Rewrites small files of each day into large ones, Z-ordered by user and time so that a
    /// user's events sit together (fast per-user aggregates) and time ranges prune well.
    pub async fn optimize(&mut self, state: SessionState, layout: &WriterLayout) -> Result<OptimizeSummary> {
        let z_order = OptimizeType::ZOrder(vec![USER_ID.into(), EVENT_TIME.into()]);
        self.rewrite_files(state, layout, z_order, "optimizing").await
    }

    /// Bin-packs the small files of each partition into files of the target size, leaving
    /// files already that large alone (cheap enough to run while a collector streams: the
    /// growing files of today are rewritten until they reach the target, then never again).
    /// Concurrent appends are not in conflict with it: they only add files.
    pub async fn compact(&mut self, state: SessionState, layout: &WriterLayout) -> Result<OptimizeSummary> {
        self.rewrite_files(state, layout, OptimizeType::Compact, "compacting").await
    }

    /// delta-rs's optimize of the kind `kind`, one partition at a time.
    async fn rewrite_files(
        &mut self,
        state: SessionState,
        layout: &WriterLayout,
        kind: OptimizeType,
        what: &str,
    ) -> Result<OptimizeSummary> {
        self.require_table()?;
        // delta-rs writes the types its rewrite scan reads; with DataFusion's view types those
        // would be `Utf8View`, so rewritten files would differ from imported ones and every
        // later scan would cast them (a funnel over a compacted table took 2.4 x as long).
        let mut state = state;
        state.config_mut().options_mut().execution.parquet.schema_force_view_types = false;
        let (table, metrics) = self
            .table
            .clone()
            .optimize()
            .with_type(kind)
            .with_session_state(Arc::new(state))
            .with_writer_properties(layout.writer_properties())
            .with_target_size(NonZeroU64::new(layout.target_file_bytes).expect("non-zero"))
            .with_max_concurrent_tasks(1)
            .await
            .map_err(|source| self.delta_error(what, source))?;
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

/// `schema` with the user bucket column at the end.
fn with_user_bucket(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(USER_BUCKET, DataType::Int32, false)));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with the bucket of each row's `user_id` appended (as `schema`, from
/// [`with_user_bucket`], says).
fn add_user_bucket(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{AsArray, Int32Array};
    let user_ids = batch.column_by_name(USER_ID).expect("every write has user_id");
    // A NULL user_id is rejected by the non-null schema on write; bucket 0 meanwhile.
    let buckets: Int32Array = match user_ids.data_type() {
        DataType::Utf8 => user_ids.as_string::<i32>().iter().map(|u| Some(u.map_or(0, user_bucket))).collect(),
        DataType::LargeUtf8 => user_ids.as_string::<i64>().iter().map(|u| Some(u.map_or(0, user_bucket))).collect(),
        DataType::Utf8View => user_ids.as_string_view().iter().map(|u| Some(u.map_or(0, user_bucket))).collect(),
        other => {
            return Err(datafusion::arrow::error::ArrowError::InvalidArgumentError(format!(
                "user_id must be text, not {other}"
            )))
        }
    };
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(buckets));
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::Encoding;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    use super::WriterLayout;

    #[test]
    fn plain_columns_are_written_without_a_dictionary_and_the_others_with_one() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("properties", DataType::Utf8, false),
        ]));
        let values: Vec<String> = (0..1000).map(|i| format!("{{\"n\":{}}}", i % 10)).collect();
        let column = || Arc::new(StringArray::from(values.clone()));
        let batch = RecordBatch::try_new(schema.clone(), vec![column(), column()]).unwrap();
        let layout = WriterLayout { plain_columns: vec!["properties".into()], ..WriterLayout::default() };
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, schema, Some(layout.writer_properties())).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).unwrap();
        let group = reader.metadata().row_group(0);
        let encodings = |i: usize| group.column(i).encodings().collect::<Vec<_>>();
        assert!(encodings(0).contains(&Encoding::RLE_DICTIONARY), "{:?}", encodings(0));
        assert!(!encodings(1).contains(&Encoding::RLE_DICTIONARY), "{:?}", encodings(1));
        assert!(encodings(1).contains(&Encoding::PLAIN), "{:?}", encodings(1));
        assert!(group.column(1).statistics().is_some(), "the chunk keeps its statistics");
    }
}
