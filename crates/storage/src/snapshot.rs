//! `events` as DataFusion reads it: a plain Parquet scan over exactly the data files of one
//! committed Delta version.
//!
//! Why not delta-rs's own table provider: in deltalake 1.1 it plans one file group behind a
//! `DeltaScanExec` (Parquet decoding on one core, a round-robin split after it), and that node
//! has no physical codec, so it cannot travel to Ballista executors. Northstar's tables use
//! neither deletion vectors nor column mapping (checked when the file list is taken, with a
//! clear error otherwise), so a standard `DataSourceExec` over the version's files with their
//! partition values reads exactly what Delta defines — in parallel, and serializable by
//! datafusion-proto as it is. The file list is the snapshot: a reader keeps its version while
//! imports commit new ones, and only files the log references are read, never a failed
//! import's leftovers.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{plan_err, DFSchema, Result, ScalarValue, Statistics};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::TableType;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::columns::{EVENT_DATE, USER_BUCKET};
use crate::date_pruning::implied_date_filter;

/// One data file of the version: where it is, its size, its partition values as Delta writes
/// them (text), and its row count when the log has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path inside the object store (not a URL), e.g. `prefix/events/event_date=2025-01-01/part-….parquet`.
    pub path: String,
    pub size: u64,
    /// One per partition column, in [`EventSnapshotSpec::partition_columns`] order; `None` is a
    /// NULL partition.
    pub partition_values: Vec<Option<String>>,
    pub rows: Option<u64>,
}

/// What identifies the scan, and all that travels when a plan is sent to other processes
/// (Ballista's scheduler and executors): the table's schema travels alongside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSnapshotSpec {
    /// The object store holding the files: `s3://bucket`, `file:///`, `memory://name`.
    pub store_url: String,
    /// The table's location, for messages.
    pub table_url: String,
    pub version: u64,
    /// The table's Delta partition columns (`event_date`, and `user_bucket` unless the table
    /// predates user buckets).
    pub partition_columns: Vec<String>,
    pub files: Vec<DataFile>,
}

/// The `events` table provider: a snapshot of the table, the files of one committed version,
/// read as Parquet.
#[derive(Debug, Clone)]
pub struct EventSnapshot {
    spec: EventSnapshotSpec,
    /// Columns in table order (as clients see them).
    schema: SchemaRef,
    /// Columns the files hold (the table's minus the partition columns), in table order.
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// For each table column, its position in the scan's output (file columns, then
    /// partition columns).
    scan_positions: Vec<usize>,
}

impl EventSnapshot {
    /// `schema` is the table's as queries see it, in table order (without the user bucket).
    pub fn try_new(spec: EventSnapshotSpec, schema: SchemaRef) -> Result<Self> {
        let is_partition = |f: &FieldRef| spec.partition_columns.contains(f.name());
        let file_fields: Vec<FieldRef> = schema.fields().iter().filter(|f| !is_partition(f)).cloned().collect();
        let mut partition_fields = Vec::new();
        for name in &spec.partition_columns {
            match schema.field_with_name(name) {
                Ok(field) => partition_fields.push(Arc::new(field.clone())),
                // Scanned (its values travel with each file) but never projected.
                Err(_) if name == USER_BUCKET => {
                    partition_fields.push(Arc::new(Field::new(USER_BUCKET, DataType::Int32, false)))
                }
                Err(_) => return plan_err!("the events table at {} has no partition column {name}", spec.table_url),
            }
        }
        let scan_order: Vec<&str> = file_fields.iter().chain(&partition_fields).map(|f| f.name().as_str()).collect();
        let scan_positions = schema
            .fields()
            .iter()
            .map(|f| {
                scan_order.iter().position(|n| *n == f.name()).expect("every column is a file or partition column")
            })
            .collect();
        Ok(Self { file_schema: Arc::new(Schema::new(file_fields)), partition_fields, scan_positions, spec, schema })
    }

    pub fn spec(&self) -> &EventSnapshotSpec {
        &self.spec
    }

    pub fn store_url(&self) -> Result<ObjectStoreUrl> {
        ObjectStoreUrl::parse(&self.spec.store_url)
    }

    /// Typed partition values of each file.
    fn partition_values(&self, file: &DataFile) -> Result<Vec<ScalarValue>> {
        self.partition_fields
            .iter()
            .zip(&file.partition_values)
            .map(|(field, value)| match value {
                Some(text) => ScalarValue::try_from_string(text.clone(), field.data_type()),
                None => ScalarValue::try_from(field.data_type()),
            })
            .collect()
    }

    /// The files whose partition values can satisfy `filters` (those that only mention
    /// partition columns); the others are not even opened.
    fn pruned_files(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<PartitionedFile>> {
        let mut files = Vec::with_capacity(self.spec.files.len());
        for file in &self.spec.files {
            let mut partitioned =
                PartitionedFile::new(file.path.clone(), file.size).with_partition_values(self.partition_values(file)?);
            if let Some(rows) = file.rows {
                let mut stats = Statistics::new_unknown(&self.file_schema);
                stats.num_rows = Precision::Exact(rows as usize);
                partitioned = partitioned.with_statistics(Arc::new(stats));
            }
            files.push(partitioned);
        }
        let partition_names: Vec<&str> = self.partition_fields.iter().map(|f| f.name().as_str()).collect();
        let on_partitions = |f: &Expr| {
            !f.column_refs().is_empty() && f.column_refs().iter().all(|c| partition_names.contains(&c.name.as_str()))
        };
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter_map(|f| match on_partitions(f) {
                true => Some(f.clone()),
                // Days implied by a filter on the event time (date_pruning.rs).
                false => implied_date_filter(f).filter(|_| partition_names.contains(&EVENT_DATE)),
            })
            .collect();
        let Some(predicate) = conjunction(partition_filters) else {
            return Ok(files);
        };
        // Evaluate the filter on a batch holding one row of partition values per file.
        let schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let columns = (0..self.partition_fields.len())
            .map(|i| ScalarValue::iter_to_array(files.iter().map(|f| f.partition_values[i].clone())))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let physical = state.create_physical_expr(predicate, &DFSchema::try_from(schema)?)?;
        let keep = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let keep = keep.as_boolean();
        Ok(files.into_iter().enumerate().filter(|(i, _)| keep.is_valid(*i) && keep.value(*i)).map(|(_, f)| f).collect())
    }

    /// The scan's own column order: file columns, then partition columns.
    fn scan_schema(&self) -> SchemaRef {
        let fields: Vec<FieldRef> = self.file_schema.fields().iter().chain(&self.partition_fields).cloned().collect();
        Arc::new(Schema::new(fields))
    }
}

#[async_trait]
impl TableProvider for EventSnapshot {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip files and row groups; DataFusion still applies every filter to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table_columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let files = self.pruned_files(state, filters)?;
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(Arc::new(self.schema.project(&table_columns)?))));
        }
        let scan_schema = self.scan_schema();
        let rows: Option<usize> =
            files.iter().map(|f| f.statistics.as_ref().and_then(|s| s.num_rows.get_value().copied())).sum();
        let mut statistics = Statistics::new_unknown(&scan_schema);
        if let Some(rows) = rows {
            statistics.num_rows = Precision::Exact(rows);
        }
        let groups = FileGroup::new(files).split_files(state.config().target_partitions().max(1));
        let table_schema = datafusion::datasource::table_schema::TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let mut source = ParquetSource::new(table_schema);
        if let Some(predicate) = conjunction(filters.to_vec()) {
            let predicate = state.create_physical_expr(predicate, &DFSchema::try_from(scan_schema.clone())?)?;
            source = source.with_predicate(predicate);
        }
        // Read the columns in scan order (each once), then put them in the asked order.
        let mut scan_columns: Vec<usize> = table_columns.iter().map(|&c| self.scan_positions[c]).collect();
        scan_columns.sort_unstable();
        scan_columns.dedup();
        let config = FileScanConfigBuilder::new(self.store_url()?, Arc::new(source))
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(Some(scan_columns.clone()))?
            .with_limit(limit)
            .build();
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let scan = format.create_physical_plan(state, config).await?;
        let wanted: Vec<usize> = table_columns.iter().map(|&c| self.scan_positions[c]).collect();
        if wanted == scan_columns {
            return Ok(scan);
        }
        let scan_out = scan.schema();
        let exprs = table_columns
            .iter()
            .map(|&c| {
                let at = scan_columns.iter().position(|&s| s == self.scan_positions[c]).expect("scanned");
                let column = datafusion::physical_expr::expressions::col(scan_out.field(at).name(), &scan_out)?;
                Ok((column, self.schema.field(c).name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}

/// Where the files of a table at `table_url` live: the object store's URL (scheme and
/// authority) and the table's path inside it.
pub fn store_and_root(table_url: &Url) -> Result<(String, Path)> {
    let store_url = match table_url.scheme() {
        "file" => "file:///".to_string(),
        scheme => format!("{scheme}://{}", table_url.authority()),
    };
    let root = Path::from_url_path(table_url.path())
        .or_else(|e| plan_err!("table location {table_url} is not a valid object path: {e}"))?;
    Ok((store_url, root))
}

/// A field's type as queries see it: text and binary as views when the session reads Parquet
/// that way (DataFusion's default), as delta-rs's provider also presents them.
pub fn query_field(field: &Field, view_types: bool) -> Field {
    let data_type = match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 if view_types => DataType::Utf8View,
        DataType::Binary | DataType::LargeBinary if view_types => DataType::BinaryView,
        other => other.clone(),
    };
    field.clone().with_data_type(data_type)
}
