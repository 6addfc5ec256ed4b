//! Parquet input, converted a batch at a time (no per-row work unless a row is bad or a
//! column needs parsing).

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Date32Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use northstar_storage::{event_date_from_micros, is_core_column};

use crate::convert::{epoch_to_micros, parse_timestamp_text};
use crate::mapping::{check_required, resolve_fields, target_name, FieldOverrides};
use crate::progress::ByteCounter;
use crate::rejects::{Position, Rejects};
use crate::rows::{looks_like_json_object, BATCH_ROWS};
use crate::target::{
    delta_compatible, TargetSchema, EVENT_DATE_IDX, EVENT_IDX, EVENT_TIME_IDX, PROPERTIES_IDX, USER_ID_IDX,
};
use crate::{ImportError, Source};

pub struct ParquetProbe {
    name: String,
    builder: ParquetRecordBatchReaderBuilder<File>,
    /// Target column name per source column.
    targets: Vec<String>,
    pub new_columns: Vec<(String, DataType)>,
    total_rows: u64,
    file_bytes: u64,
}

impl ParquetProbe {
    pub fn new(name: &str, overrides: &FieldOverrides) -> Result<Self, ImportError> {
        let file = File::open(name).map_err(|e| ImportError::input(name, e.to_string()))?;
        let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
            ImportError::input(name, format!("not a readable Parquet file (truncated or corrupt?): {e}"))
        })?;
        let schema = builder.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mapped = resolve_fields(&names, overrides);
        check_required(name, &mapped)?;
        let targets: Vec<String> = names.iter().map(|n| target_name(n, &mapped)).collect();
        let new_columns = targets
            .iter()
            .zip(schema.fields())
            .filter(|(t, _)| !is_core_column(t))
            .map(|(t, f)| (t.clone(), delta_compatible(f.data_type())))
            .collect();
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        Ok(Self { name: name.to_string(), builder, targets, new_columns, total_rows, file_bytes })
    }

    pub fn into_source(self, target: Arc<TargetSchema>, progress: ByteCounter) -> Result<ParquetSource, ImportError> {
        let reader = self
            .builder
            .with_batch_size(BATCH_ROWS * 8)
            .build()
            .map_err(|e| ImportError::input(&self.name, format!("cannot read Parquet: {e}")))?;
        let mut source_of = vec![None; target.len()];
        for (source, name) in self.targets.iter().enumerate() {
            if let Some(t) = target.index_of(name) {
                source_of[t] = Some(source);
            }
        }
        let relaxed: Vec<Field> =
            target.schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        Ok(ParquetSource {
            name: self.name,
            reader,
            relaxed_schema: Arc::new(Schema::new(relaxed)),
            target,
            source_of,
            rows_read: 0,
            total_rows: self.total_rows,
            file_bytes: self.file_bytes,
            progress,
        })
    }
}

pub struct ParquetSource {
    name: String,
    reader: ParquetRecordBatchReader,
    target: Arc<TargetSchema>,
    /// The target schema with every column nullable.
    relaxed_schema: SchemaRef,
    /// Source column index feeding each target column.
    source_of: Vec<Option<usize>>,
    rows_read: u64,
    total_rows: u64,
    file_bytes: u64,
    progress: ByteCounter,
}

/// Per-row problems of one batch, filled lazily: most batches have none.
#[derive(Default)]
struct Problems(HashMap<usize, String>);

impl Problems {
    fn note(&mut self, row: usize, reason: impl FnOnce() -> String) {
        self.0.entry(row).or_insert_with(reason);
    }
}

impl ParquetSource {
    fn convert(&self, batch: &RecordBatch) -> Result<(RecordBatch, Problems), ImportError> {
        let rows = batch.num_rows();
        let mut problems = Problems::default();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.target.len());
        let mut micros: Option<TimestampMicrosecondArray> = None;
        for (t, field) in self.target.schema.fields().iter().enumerate() {
            let source = self.source_of[t].map(|s| batch.column(s));
            let array: ArrayRef = match (t, source) {
                (EVENT_DATE_IDX, _) => Arc::new(event_dates(micros.as_ref().expect("event_time is column 0"))),
                (EVENT_TIME_IDX, Some(source)) => {
                    let times = self.event_times(source, &mut problems)?;
                    micros = Some(times.clone());
                    Arc::new(times)
                }
                (_, None) => new_null_array(field.data_type(), rows),
                (_, Some(source)) => {
                    let converted = cast(source, field.data_type()).map_err(|e| {
                        ImportError::input(
                            &self.name,
                            format!(
                                "column '{}': cannot convert {} to {}: {e}",
                                field.name(),
                                source.data_type(),
                                field.data_type()
                            ),
                        )
                    })?;
                    for row in 0..rows {
                        if converted.is_null(row) && !source.is_null(row) {
                            problems.note(row, || {
                                format!(
                                    "column '{}': cannot convert '{}' to {}",
                                    field.name(),
                                    value_text(source, row),
                                    field.data_type()
                                )
                            });
                        }
                    }
                    converted
                }
            };
            if matches!(t, USER_ID_IDX | EVENT_IDX) {
                let text = array.as_string::<i32>();
                for row in 0..rows {
                    if text.is_null(row) || text.value(row).is_empty() {
                        problems.note(row, || format!("missing {}", field.name()));
                    }
                }
            }
            if t == PROPERTIES_IDX {
                check_properties(array.as_string::<i32>(), &mut problems);
            }
            columns.push(array);
        }
        // Bad rows may hold NULLs where the table allows none: assemble under a schema that
        // allows them; `next_batch` filters them out before the batch takes the real schema.
        let converted = RecordBatch::try_new(self.relaxed_schema.clone(), columns)
            .map_err(|e| ImportError::input(&self.name, e.to_string()))?;
        Ok((converted, problems))
    }

    /// `event_time` as microseconds since the epoch, UTC. Timestamps without a zone are UTC;
    /// text is parsed; numbers are epoch values with the unit told by magnitude.
    fn event_times(
        &self,
        source: &ArrayRef,
        problems: &mut Problems,
    ) -> Result<TimestampMicrosecondArray, ImportError> {
        let values: TimestampMicrosecondArray = match source.data_type() {
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                let cast_to = DataType::Timestamp(TimeUnit::Microsecond, None);
                let converted =
                    cast(source, &cast_to).map_err(|e| ImportError::input(&self.name, format!("event_time: {e}")))?;
                converted.as_primitive::<TimestampMicrosecondType>().clone()
            }
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt32
            | DataType::UInt64 => {
                let ints = cast(source, &DataType::Int64).map_err(|e| ImportError::input(&self.name, e.to_string()))?;
                ints.as_primitive::<Int64Type>().iter().map(|v| v.and_then(|v| epoch_to_micros(v as f64))).collect()
            }
            DataType::Float32 | DataType::Float64 => {
                let floats =
                    cast(source, &DataType::Float64).map_err(|e| ImportError::input(&self.name, e.to_string()))?;
                floats.as_primitive::<Float64Type>().iter().map(|v| v.and_then(epoch_to_micros)).collect()
            }
            _ => {
                let text = cast(source, &DataType::Utf8)
                    .map_err(|e| ImportError::input(&self.name, format!("event_time: {e}")))?;
                text.as_string::<i32>().iter().map(|v| v.and_then(parse_timestamp_text)).collect()
            }
        };
        for row in 0..values.len() {
            if values.is_null(row) {
                problems.note(row, || match source.is_null(row) {
                    true => "missing event_time".to_string(),
                    false => format!("event_time: cannot read '{}' as a timestamp", value_text(source, row)),
                });
            }
        }
        Ok(values.with_timezone("UTC"))
    }

    fn render_row(batch: &RecordBatch, row: usize) -> String {
        let object: serde_json::Map<String, serde_json::Value> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| (f.name().clone(), serde_json::Value::String(value_text(c, row))))
            .collect();
        serde_json::Value::Object(object).to_string()
    }
}

impl Source for ParquetSource {
    fn next_batch(&mut self, rejects: &mut Rejects) -> Result<Option<RecordBatch>, ImportError> {
        let Some(batch) = self.reader.next() else { return Ok(None) };
        let batch = batch.map_err(|e| {
            ImportError::input(
                &self.name,
                format!("after row {}: cannot read Parquet (truncated or corrupt?): {e}", self.rows_read),
            )
        })?;
        let (converted, problems) = self.convert(&batch)?;
        let first_row = self.rows_read;
        self.rows_read += batch.num_rows() as u64;
        if let Some(share) = (self.file_bytes * batch.num_rows() as u64).checked_div(self.total_rows) {
            self.progress.add(share);
        }
        let with_target_schema = |batch: RecordBatch| {
            RecordBatch::try_new(self.target.schema.clone(), batch.columns().to_vec())
                .map_err(|e| ImportError::input(&self.name, e.to_string()))
        };
        if problems.0.is_empty() {
            return with_target_schema(converted).map(Some);
        }
        let mut bad: Vec<_> = problems.0.into_iter().collect();
        bad.sort_by_key(|(row, _)| *row);
        let mut keep = vec![true; converted.num_rows()];
        for (row, reason) in bad {
            keep[row] = false;
            rejects.reject(&self.name, Position::Row(first_row + row as u64 + 1), reason, || {
                Self::render_row(&batch, row)
            })?;
        }
        let kept = filter_record_batch(&converted, &BooleanArray::from(keep))
            .map_err(|e| ImportError::input(&self.name, e.to_string()))?;
        with_target_schema(kept).map(Some)
    }
}

fn event_dates(micros: &TimestampMicrosecondArray) -> Date32Array {
    micros.iter().map(|m| Some(event_date_from_micros(m.unwrap_or(0)))).collect()
}

fn check_properties(properties: &StringArray, problems: &mut Problems) {
    for (row, value) in properties.iter().enumerate() {
        if let Some(text) = value {
            if !looks_like_json_object(text) {
                problems.note(row, || format!("properties is not a JSON object: {}", crate::excerpt(text)));
            }
        }
    }
}

fn value_text(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_string();
    }
    array_value_to_string(array, row).unwrap_or_default()
}
