//! Row-at-a-time batch building for the text formats (NDJSON, CSV).
//!
//! Hand-written rather than arrow-json / arrow-csv readers: those reject a whole batch on the
//! first bad value and cannot say which line it was on, while imports must name the line and,
//! with `--rejects`, keep every good row.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::record_batch::RecordBatch;
use northstar_storage::columns::{EVENT, USER_ID};
use northstar_storage::event_date_from_micros;

use crate::convert::{Cell, Kind};
use crate::target::{TargetSchema, EVENT_DATE_IDX, EVENT_IDX, EVENT_TIME_IDX, PROPERTIES_IDX, USER_ID_IDX};

pub const BATCH_ROWS: usize = 8192;

enum Builder {
    Micros(TimestampMicrosecondBuilder),
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Days(Date32Builder),
}

impl Builder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Timestamp => Builder::Micros(TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS)),
            Kind::Utf8 | Kind::Other => Builder::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)),
            Kind::Int64 => Builder::Int(Int64Builder::with_capacity(BATCH_ROWS)),
            Kind::Float64 => Builder::Float(Float64Builder::with_capacity(BATCH_ROWS)),
            Kind::Boolean => Builder::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            Kind::Date => Builder::Days(Date32Builder::with_capacity(BATCH_ROWS)),
        }
    }

    /// Appends a cell already converted for this builder's kind.
    fn append(&mut self, cell: &mut Cell) {
        match (self, cell) {
            (Builder::Micros(b), Cell::Micros(v)) => b.append_value(*v),
            (Builder::Text(b), Cell::Text(v)) => b.append_value(v),
            (Builder::Int(b), Cell::Int(v)) => b.append_value(*v),
            (Builder::Float(b), Cell::Float(v)) => b.append_value(*v),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (Builder::Days(b), Cell::Days(v)) => b.append_value(*v),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Micros(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Int(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Days(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Micros(b) => Arc::new(b.finish().with_timezone("UTC")),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Days(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Micros(b) => b.len(),
            Builder::Text(b) => b.len(),
            Builder::Int(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Days(b) => b.len(),
        }
    }
}

/// Collects validated rows into record batches of the target schema.
pub struct RowBatcher {
    target: Arc<TargetSchema>,
    builders: Vec<Builder>,
    /// The row being assembled, one cell per target column.
    pub row: Vec<Cell>,
}

impl RowBatcher {
    pub fn new(target: Arc<TargetSchema>) -> Self {
        let builders = target.kinds.iter().map(|k| Builder::new(*k)).collect();
        let row = vec![Cell::Null; target.len()];
        Self { target, builders, row }
    }

    pub fn kind(&self, column: usize) -> Kind {
        self.target.kinds[column]
    }

    /// Checks the assembled row and appends it, or says what is wrong. Resets the row either way.
    pub fn commit_row(&mut self) -> Result<(), String> {
        let result = self.validate();
        if result.is_ok() {
            for (builder, cell) in self.builders.iter_mut().zip(self.row.iter_mut()) {
                builder.append(cell);
            }
        }
        self.discard_row();
        result
    }

    fn validate(&mut self) -> Result<(), String> {
        let micros = match self.row[EVENT_TIME_IDX] {
            Cell::Micros(m) => m,
            _ => return Err("missing event_time".into()),
        };
        for (idx, name) in [(USER_ID_IDX, USER_ID), (EVENT_IDX, EVENT)] {
            match &self.row[idx] {
                Cell::Text(s) if !s.is_empty() => {}
                _ => return Err(format!("missing {name}")),
            }
        }
        if let Cell::Text(p) = &self.row[PROPERTIES_IDX] {
            if !looks_like_json_object(p) {
                return Err(format!("properties is not a JSON object: {}", crate::excerpt(p)));
            }
        }
        self.row[EVENT_DATE_IDX] = Cell::Days(event_date_from_micros(micros));
        Ok(())
    }

    /// Drops the row being assembled (it was rejected before it could be committed).
    pub fn discard_row(&mut self) {
        self.row.iter_mut().for_each(|c| *c = Cell::Null);
    }

    pub fn buffered_rows(&self) -> usize {
        self.builders[0].len()
    }

    /// Finishes the buffered rows as a batch (None when empty).
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, String> {
        if self.buffered_rows() == 0 {
            return Ok(None);
        }
        let schema = self.target.schema.clone();
        let mut columns = Vec::with_capacity(self.builders.len());
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let array = builder.finish();
            let field = schema.field(i);
            let array = if array.data_type() == field.data_type() {
                array
            } else {
                let options = CastOptions { safe: false, ..Default::default() };
                cast_with_options(&array, field.data_type(), &options)
                    .map_err(|e| format!("column '{}': cannot convert to {}: {e}", field.name(), field.data_type()))?
            };
            columns.push(array);
        }
        RecordBatch::try_new(schema, columns).map(Some).map_err(|e| e.to_string())
    }
}

/// A cheap shape check of a `properties` value. Full JSON validation of every row would cost
/// more than the rest of the import together; a text that starts and ends like an object
/// catches the usual mistakes (a bare string, a number, a truncated line).
pub fn looks_like_json_object(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('{') && t.ends_with('}')
}
