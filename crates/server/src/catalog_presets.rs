//! Catalog rows every PostgreSQL server has that datafusion-pg-catalog's tables lack, which
//! pgjdbc's DatabaseMetaData (DBeaver, Metabase) reads:
//!
//! - `pg_settings` holds the preset, read-only settings (`max_index_keys` and the like, which
//!   no session can change). pgjdbc's `getImportedKeys`/`getExportedKeys` read
//!   `max_index_keys` first and fail without it ("Unable to determine a value for
//!   MaxIndexKeys"). Session settings (`TimeZone`, `DateStyle`, `statement_timeout` …) are
//!   answered by `SHOW` and `current_setting()`, not here: a row would show one session's value.
//! - `pg_namespace` lists `information_schema`, as PostgreSQL's does (DataFusion serves that
//!   schema itself, outside the catalog datafusion-pg-catalog lists): `getSchemas` answers
//!   `information_schema, pg_catalog, public` on both.
//! - A view's columns are nullable in `pg_attribute` ([`PostgresCatalogInfo`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::{CatalogProviderList, MemTable, Session, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;

use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;

use crate::settings::{PG_VERSION, PG_VERSION_NUM};

/// `information_schema`'s oid: PostgreSQL's initdb gives it one between 12000 and 14000 (13,xxx
/// in 15); datafusion-pg-catalog numbers schemas from 16384.
const INFORMATION_SCHEMA_OID: i32 = 13_000;

/// A row of `pg_settings`.
struct Setting {
    name: &'static str,
    value: String,
    /// `vartype`: `bool`, `integer`, `string`.
    kind: &'static str,
    /// `context`: `internal` for the presets, which nothing can change.
    context: &'static str,
}

/// datafusion-pg-catalog's row (`standard_conforming_strings`), then the presets.
fn settings() -> Vec<Setting> {
    let preset = |name, value: &str, kind| Setting { name, value: value.to_string(), kind, context: "internal" };
    vec![
        Setting { name: "standard_conforming_strings", value: "on".into(), kind: "bool", context: "user" },
        preset("block_size", "8192", "integer"),
        preset("integer_datetimes", "on", "bool"),
        preset("max_function_args", "100", "integer"),
        preset("max_identifier_length", "63", "integer"),
        preset("max_index_keys", "32", "integer"),
        preset("server_encoding", "UTF8", "string"),
        preset("server_version", PG_VERSION, "string"),
        preset("server_version_num", PG_VERSION_NUM, "integer"),
    ]
}

/// `pg_settings` as datafusion-pg-catalog's with the presets.
pub fn pg_settings(schema: &SchemaRef) -> DfResult<Arc<MemTable>> {
    let rows = settings();
    let text =
        |f: &dyn Fn(&Setting) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let batch = batch_of(schema, rows.len(), |column| match column {
        "name" => Some(text(&|r| r.name)),
        "setting" | "boot_val" | "reset_val" => Some(text(&|r| &r.value)),
        "vartype" => Some(text(&|r| r.kind)),
        "context" => Some(text(&|r| r.context)),
        "source" => Some(text(&|_| "default")),
        _ => None,
    })?;
    Ok(Arc::new(MemTable::try_new(schema.clone(), vec![vec![batch]])?))
}

/// `pg_namespace` with `information_schema`'s row after the schemas datafusion-pg-catalog lists.
pub fn pg_namespace(listed: Arc<dyn TableProvider>) -> DfResult<Arc<dyn TableProvider>> {
    let schema = listed.schema();
    let row = batch_of(&schema, 1, |column| match column {
        "oid" => Some(Arc::new(datafusion::arrow::array::Int32Array::from(vec![INFORMATION_SCHEMA_OID]))),
        "nspname" => Some(Arc::new(StringArray::from(vec!["information_schema"]))),
        "nspowner" => Some(Arc::new(datafusion::arrow::array::Int32Array::from(vec![10]))),
        _ => None,
    })?;
    Ok(Arc::new(WithRows { listed, rows: Arc::new(MemTable::try_new(schema, vec![vec![row]])?) }))
}

/// Builds a batch of `schema` column by column: `value(column)` gives a column's array, or
/// `None` for its default (NULL where nullable, else zero, empty text or false).
pub(crate) fn batch_of(
    schema: &SchemaRef,
    rows: usize,
    mut value: impl FnMut(&str) -> Option<ArrayRef>,
) -> DfResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let array = match value(field.name()) {
                Some(array) => array,
                None if field.is_nullable() => datafusion::arrow::array::new_null_array(field.data_type(), rows),
                None => default_value(field.data_type())?.to_array_of_size(rows)?,
            };
            Ok(cast(&array, field.data_type())?)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The value of a NOT NULL catalog column a row does not set: false, empty text or zero.
fn default_value(data_type: &DataType) -> DfResult<ScalarValue> {
    match data_type {
        DataType::Boolean => Ok(ScalarValue::Boolean(Some(false))),
        DataType::Utf8 => Ok(ScalarValue::Utf8(Some(String::new()))),
        other => ScalarValue::new_zero(other),
    }
}

/// A catalog table's rows followed by fixed ones.
#[derive(Debug)]
struct WithRows {
    listed: Arc<dyn TableProvider>,
    rows: Arc<MemTable>,
}

#[async_trait]
impl TableProvider for WithRows {
    fn schema(&self) -> SchemaRef {
        self.listed.schema()
    }

    fn table_type(&self) -> TableType {
        self.listed.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let listed = self.listed.scan(state, projection, filters, limit).await?;
        let fixed = self.rows.scan(state, projection, filters, limit).await?;
        UnionExec::try_new(vec![listed, fixed])
    }
}

/// The tables datafusion-pg-catalog describes, as PostgreSQL describes them: a view's columns
/// are never NOT NULL there (`pg_attribute.attnotnull` is false; pgjdbc's `getColumns` says
/// `YES`), whatever the view's query guarantees; DataFusion's view schema says what the query
/// guarantees (`count(*)` is never NULL).
#[derive(Debug, Clone)]
pub struct PostgresCatalogInfo(pub Arc<dyn CatalogProviderList>);

#[async_trait]
impl CatalogInfo for PostgresCatalogInfo {
    async fn catalog_names(&self) -> DfResult<Vec<String>> {
        CatalogInfo::catalog_names(&self.0).await
    }

    async fn schema_names(&self, catalog: &str) -> DfResult<Option<Vec<String>>> {
        CatalogInfo::schema_names(&self.0, catalog).await
    }

    async fn table_names(&self, catalog: &str, schema: &str) -> DfResult<Option<Vec<String>>> {
        CatalogInfo::table_names(&self.0, catalog, schema).await
    }

    async fn table_schema(&self, catalog: &str, schema: &str, table: &str) -> DfResult<Option<SchemaRef>> {
        let Some(columns) = CatalogInfo::table_schema(&self.0, catalog, schema, table).await? else { return Ok(None) };
        if CatalogInfo::table_type(&self.0, catalog, schema, table).await? != Some(TableType::View) {
            return Ok(Some(columns));
        }
        let nullable: Vec<_> = columns.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        Ok(Some(Arc::new(Schema::new_with_metadata(nullable, columns.metadata().clone()))))
    }

    async fn table_type(&self, catalog: &str, schema: &str, table: &str) -> DfResult<Option<TableType>> {
        CatalogInfo::table_type(&self.0, catalog, schema, table).await
    }
}
