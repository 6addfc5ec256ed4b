//! CSV input with a header line.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;

use crate::convert::{from_text, Inferred};
use crate::mapping::{check_required, resolve_fields, target_name, FieldOverrides};
use crate::rejects::{Position, Rejects};
use crate::rows::{RowBatcher, BATCH_ROWS};
use crate::target::TargetSchema;
use crate::{ImportError, Source};

type Record = Result<csv::StringRecord, csv::Error>;

pub struct CsvProbe {
    name: String,
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    ahead: VecDeque<Record>,
    headers: Vec<String>,
    /// Target column name per header position.
    targets: Vec<String>,
    pub new_columns: Vec<(String, DataType)>,
}

impl CsvProbe {
    pub fn new(
        name: &str,
        reader: Box<dyn BufRead + Send>,
        infer_rows: usize,
        overrides: &FieldOverrides,
    ) -> Result<Self, ImportError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| ImportError::input(name, format!("line 1: cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mapped = resolve_fields(&headers, overrides);
        check_required(name, &mapped)?;
        let mut inferred = vec![Inferred::default(); headers.len()];
        let mut ahead = VecDeque::new();
        for record in reader.records().take(infer_rows) {
            if let Ok(r) = &record {
                for (i, value) in r.iter().enumerate().take(headers.len()) {
                    inferred[i] = inferred[i].with_text(value);
                }
            }
            ahead.push_back(record);
        }
        let targets: Vec<String> = headers.iter().map(|h| target_name(h, &mapped)).collect();
        let new_columns = targets
            .iter()
            .zip(&inferred)
            .filter(|(t, _)| !northstar_storage::is_core_column(t))
            .map(|(t, i)| (t.clone(), i.data_type()))
            .collect();
        Ok(Self { name: name.to_string(), reader, ahead, headers, targets, new_columns })
    }

    pub fn into_source(self, target: Arc<TargetSchema>) -> CsvSource {
        let columns = self.targets.iter().map(|t| target.index_of(t)).collect();
        CsvSource {
            name: self.name,
            reader: self.reader,
            ahead: self.ahead,
            headers: self.headers,
            columns,
            batcher: RowBatcher::new(target),
        }
    }
}

pub struct CsvSource {
    name: String,
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    ahead: VecDeque<Record>,
    headers: Vec<String>,
    /// Target column index per header position.
    columns: Vec<Option<usize>>,
    batcher: RowBatcher,
}

impl CsvSource {
    fn next_record(&mut self) -> Option<Record> {
        if let Some(r) = self.ahead.pop_front() {
            return Some(r);
        }
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(true) => Some(Ok(record)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn fill_row(&mut self, record: &csv::StringRecord) -> Result<(), String> {
        for (i, value) in record.iter().enumerate() {
            if let Some(column) = self.columns[i] {
                let kind = self.batcher.kind(column);
                self.batcher.row[column] =
                    from_text(value, kind).map_err(|e| format!("column '{}': {e}", self.headers[i]))?;
            }
        }
        Ok(())
    }
}

impl Source for CsvSource {
    fn next_batch(&mut self, rejects: &mut Rejects) -> Result<Option<RecordBatch>, ImportError> {
        while self.batcher.buffered_rows() < BATCH_ROWS {
            let Some(record) = self.next_record() else { break };
            let (line, outcome, raw) = match record {
                Ok(r) => {
                    let line = r.position().map(|p| p.line()).unwrap_or(0);
                    let outcome = self.fill_row(&r).and_then(|()| self.batcher.commit_row());
                    (line, outcome, r.iter().collect::<Vec<_>>().join(","))
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    (line, Err(csv_reason(&e)), String::new())
                }
            };
            if let Err(reason) = outcome {
                self.batcher.discard_row();
                rejects.reject(&self.name, Position::Line(line), reason, || raw)?;
            }
        }
        self.batcher.finish().map_err(|reason| ImportError::input(&self.name, reason))
    }
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields, found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        _ => e.to_string(),
    }
}
