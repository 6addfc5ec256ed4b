//! Newline-delimited JSON input: one object per line.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::convert::{from_json, Inferred};
use crate::mapping::{check_required, resolve_fields, target_name, FieldOverrides};
use crate::rejects::{Position, Rejects};
use crate::rows::{RowBatcher, BATCH_ROWS};
use crate::target::TargetSchema;
use crate::{excerpt, ImportError, Source};

/// An NDJSON input after its first lines were read to learn its fields.
pub struct NdjsonProbe {
    name: String,
    reader: Box<dyn BufRead + Send>,
    /// Lines read ahead for inference, replayed first.
    ahead: VecDeque<Vec<u8>>,
    infer_rows: usize,
    /// Source field → target column name.
    mapped: HashMap<String, String>,
    /// New (non-core) columns with their inferred types, in first-seen order.
    pub new_columns: Vec<(String, DataType)>,
}

impl NdjsonProbe {
    pub fn new(
        name: &str,
        mut reader: Box<dyn BufRead + Send>,
        infer_rows: usize,
        overrides: &FieldOverrides,
    ) -> Result<Self, ImportError> {
        let mut ahead = VecDeque::new();
        let mut fields: Vec<(String, Inferred)> = Vec::new();
        let mut seen = 0;
        while seen < infer_rows {
            let mut line = Vec::new();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| ImportError::input(name, e.to_string()))?;
            if n == 0 {
                break;
            }
            if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&line) {
                seen += 1;
                for (key, value) in &object {
                    match fields.iter_mut().find(|(k, _)| k == key) {
                        Some((_, inferred)) => *inferred = inferred.with_json(value),
                        None => fields.push((key.clone(), Inferred::default().with_json(value))),
                    }
                }
            }
            ahead.push_back(line);
        }
        let names: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
        let mapped = resolve_fields(&names, overrides);
        if seen > 0 {
            check_required(name, &mapped)?;
        }
        let new_columns = fields
            .iter()
            .map(|(k, inferred)| (target_name(k, &mapped), inferred.data_type()))
            .filter(|(t, _)| !northstar_storage::is_core_column(t))
            .collect();
        Ok(Self { name: name.to_string(), reader, ahead, infer_rows, mapped, new_columns })
    }

    pub fn into_source(self, target: Arc<TargetSchema>) -> NdjsonSource {
        let columns = self
            .mapped
            .iter()
            .filter_map(|(field, column)| target.index_of(column).map(|i| (field.clone(), i)))
            .collect();
        NdjsonSource {
            name: self.name,
            reader: self.reader,
            ahead: self.ahead,
            infer_rows: self.infer_rows,
            columns,
            batcher: RowBatcher::new(target),
            line_number: 0,
            line: Vec::new(),
        }
    }
}

pub struct NdjsonSource {
    name: String,
    reader: Box<dyn BufRead + Send>,
    ahead: VecDeque<Vec<u8>>,
    infer_rows: usize,
    /// Source field → target column index.
    columns: HashMap<String, usize>,
    batcher: RowBatcher,
    line_number: u64,
    line: Vec<u8>,
}

impl NdjsonSource {
    fn next_line(&mut self) -> Result<bool, ImportError> {
        self.line.clear();
        if let Some(line) = self.ahead.pop_front() {
            self.line = line;
        } else {
            let n = self.reader.read_until(b'\n', &mut self.line).map_err(|e| {
                ImportError::input(&self.name, format!("read error after line {}: {e}", self.line_number))
            })?;
            if n == 0 {
                return Ok(false);
            }
        }
        self.line_number += 1;
        Ok(true)
    }

    /// Converts one parsed object into the batcher's row.
    fn fill_row(&mut self, object: &Map<String, Value>) -> Result<(), String> {
        for (key, value) in object {
            match self.columns.get(key) {
                Some(&column) => {
                    let kind = self.batcher.kind(column);
                    self.batcher.row[column] = from_json(value, kind).map_err(|e| format!("field '{key}': {e}"))?;
                }
                None if value.is_null() => {}
                None => {
                    return Err(format!(
                        "field '{key}' did not occur in the first {} records, so it has no column (raise --infer-rows)",
                        self.infer_rows
                    ))
                }
            }
        }
        Ok(())
    }
}

impl Source for NdjsonSource {
    fn next_batch(&mut self, rejects: &mut Rejects) -> Result<Option<RecordBatch>, ImportError> {
        while self.batcher.buffered_rows() < BATCH_ROWS && self.next_line()? {
            let line = std::mem::take(&mut self.line);
            let text = trim_line(&line);
            if text.is_empty() {
                self.line = line;
                continue;
            }
            let outcome = match serde_json::from_slice::<Value>(text) {
                Ok(Value::Object(object)) => self.fill_row(&object),
                Ok(other) => Err(format!("expected a JSON object, got {}", excerpt(&other.to_string()))),
                Err(e) => Err(format!("column {}: invalid JSON: {}", e.column(), strip_position(&e.to_string()))),
            };
            let outcome = outcome.and_then(|()| self.batcher.commit_row());
            if let Err(reason) = outcome {
                self.batcher.discard_row();
                let raw = String::from_utf8_lossy(text).into_owned();
                rejects.reject(&self.name, Position::Line(self.line_number), reason, || raw)?;
            }
            self.line = line;
        }
        self.batcher.finish().map_err(|reason| ImportError::input(&self.name, reason))
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map(|p| p + 1).unwrap_or(0);
    &line[..end]
}

/// serde_json appends "at line L column C"; the import names the file's line itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(p) => message[..p].to_string(),
        None => message.to_string(),
    }
}
