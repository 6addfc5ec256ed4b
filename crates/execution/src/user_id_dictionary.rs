//! Reading `user_id` from Parquet as a dictionary column, for `BucketAggregateExec` and
//! `UserNumbersExec`.
//!
//! Why: a Parquet file stores `user_id` dictionary-encoded (each of an event file's ~50k rows
//! names one of a few thousand users). Read as a string column, every row's id is rebuilt
//! and later hashed on its own; read as `Dictionary(Int32, Utf8)`, each row is a small key
//! into the file's id list, which one batch after another shares, so the per-bucket
//! aggregate hashes each distinct id once per file.
//!
//! The Parquet reader returns a dictionary when the file's embedded Arrow schema asks for
//! one. Our files were written with `user_id` as a plain string, so this reader rewrites
//! that embedded schema as it loads the footer. It reads the same bytes as the default
//! reader; nothing is written back.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{internal_datafusion_err, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{DefaultParquetFileReaderFactory, ParquetFileReaderFactory};
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::arrow::{encode_arrow_schema, parquet_to_arrow_schema, ARROW_SCHEMA_META_KEY};
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use futures::FutureExt;
use northstar_storage::columns::USER_ID;
use object_store::ObjectStore;

/// The type `user_id` is read as by a dictionary scan.
pub fn user_id_dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Opens event files as the scan's own reader factory does (DataFusion's cached one, which
/// keeps footers in the session's metadata cache, so a repeated query does not load them
/// again), with `user_id` read as a dictionary.
#[derive(Debug)]
pub struct DictionaryUserIdReaderFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
}

impl DictionaryUserIdReaderFactory {
    /// Wraps `inner`, or DataFusion's default reader of `store` when the scan has none.
    pub fn new(inner: Option<Arc<dyn ParquetFileReaderFactory>>, store: Arc<dyn ObjectStore>) -> Self {
        Self { inner: inner.unwrap_or_else(|| Arc::new(DefaultParquetFileReaderFactory::new(store))) }
    }
}

impl ParquetFileReaderFactory for DictionaryUserIdReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(DictionaryUserIdReader { inner }))
    }
}

struct DictionaryUserIdReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for DictionaryUserIdReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<bytes::Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, ParquetResult<Vec<bytes::Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            Ok(Arc::new(with_dictionary_user_ids(&metadata)?))
        }
        .boxed()
    }
}

/// `metadata` with its embedded Arrow schema saying `user_id` is a dictionary column. A
/// file without a `user_id` column is returned as it is.
fn with_dictionary_user_ids(metadata: &ParquetMetaData) -> ParquetResult<ParquetMetaData> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone();
            // Any string type: files rewritten by an older compaction say `Utf8View`.
            if f.name() == USER_ID && matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
            {
                field.with_data_type(user_id_dictionary_type())
            } else {
                field
            }
        })
        .collect();
    let rewritten = Schema::new_with_metadata(fields, schema.metadata().clone());
    if rewritten == schema {
        return Ok(metadata.clone());
    }
    let mut key_values: Vec<KeyValue> =
        file.key_value_metadata().into_iter().flatten().filter(|kv| kv.key != ARROW_SCHEMA_META_KEY).cloned().collect();
    key_values.push(KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), encode_arrow_schema(&rewritten)));
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        Some(key_values),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    Ok(ParquetMetaDataBuilder::new(file)
        .set_row_groups(metadata.row_groups().to_vec())
        .set_column_index(metadata.column_index().cloned())
        .set_offset_index(metadata.offset_index().cloned())
        .build())
}

/// `plan` with its Parquet reader set to read `user_id` as a dictionary: the scan's own
/// reader wrapped, or one of the task's object store (known only at execution).
pub(crate) fn with_dictionary_reader(
    plan: &Arc<dyn ExecutionPlan>,
    context: &TaskContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(scan) = plan.downcast_ref::<DataSourceExec>() else {
        let children =
            plan.children().into_iter().map(|c| with_dictionary_reader(c, context)).collect::<Result<Vec<_>>>()?;
        return plan.clone().replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep));
    };
    let config = scan
        .data_source()
        .downcast_ref::<FileScanConfig>()
        .ok_or_else(|| internal_datafusion_err!("a dictionary scan reads files"))?;
    let source = config
        .file_source()
        .downcast_ref::<ParquetSource>()
        .ok_or_else(|| internal_datafusion_err!("a dictionary scan reads Parquet"))?;
    let store = context.runtime_env().object_store(&config.object_store_url)?;
    let reader = DictionaryUserIdReaderFactory::new(source.parquet_file_reader_factory().cloned(), store);
    let source = source.clone().with_parquet_file_reader_factory(Arc::new(reader));
    let config = FileScanConfigBuilder::from(config.clone()).with_source(Arc::new(source)).build();
    Ok(DataSourceExec::from_data_source(config))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, RecordBatch, StringViewArray};
    use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;

    use super::*;

    /// Files written from view-typed batches (an older compaction) say `Utf8View` in their
    /// embedded schema; they are read as a dictionary too, with the same ids.
    #[test]
    fn user_ids_of_any_string_type_are_read_as_a_dictionary() {
        let schema = Arc::new(Schema::new(vec![Field::new(USER_ID, DataType::Utf8View, false)]));
        let ids = StringViewArray::from(vec!["u1", "u2", "u1"]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).unwrap();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let file = bytes::Bytes::from(file);

        let metadata = ParquetMetaDataReader::new().parse_and_finish(&file).unwrap();
        let rewritten = Arc::new(with_dictionary_user_ids(&metadata).unwrap());
        let options = ArrowReaderOptions::new();
        let reader = ArrowReaderMetadata::try_new(rewritten, options).unwrap();
        assert_eq!(reader.schema().field(0).data_type(), &user_id_dictionary_type());
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::new_with_metadata(file, reader)
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let read = batches[0].column(0).as_dictionary::<datafusion::arrow::datatypes::Int32Type>();
        let values = read.downcast_dict::<datafusion::arrow::array::StringArray>().unwrap();
        assert_eq!(values.into_iter().collect::<Vec<_>>(), [Some("u1"), Some("u2"), Some("u1")]);
    }
}
