//! `northstar import`: NDJSON, CSV and Parquet files into the events table, streamed, in one
//! atomic Delta commit.
//!
//! Inputs are read on a blocking thread and handed to the Delta writer through a channel of
//! two batches; the writer finishes its files every few million rows, so memory stays bounded
//! whatever the input size. A bad row either ends the
//! import (naming file and line or row, nothing committed) or, with a rejects file, is written
//! there while the good rows are committed.

mod convert;
mod csv;
mod format;
mod mapping;
mod ndjson;
mod parquet;
mod progress;
mod rejects;
mod rows;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use northstar_storage::{AppendError, EventStore, StorageError, WriterLayout};
use tokio::sync::mpsc;

pub use convert::parse_timestamp_text;
pub use format::{Format, InputSpec};
pub use mapping::FieldOverrides;
pub use rejects::Position;

/// Why an import failed. Nothing was committed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{input}: {position}: {reason}")]
    BadRow { input: String, position: Position, reason: String },
    #[error("{input}: {reason}")]
    Input { input: String, reason: String },
    #[error("{0}")]
    Usage(String),
    /// Boxed: the store's error is large, and import errors travel through every batch's
    /// `Result` on the hot path.
    #[error(transparent)]
    Storage(Box<StorageError>),
}

impl From<StorageError> for ImportError {
    fn from(e: StorageError) -> Self {
        ImportError::Storage(Box::new(e))
    }
}

impl ImportError {
    pub fn input(input: &str, reason: impl Into<String>) -> Self {
        ImportError::Input { input: input.to_string(), reason: reason.into() }
    }
}

/// A reader of one input, yielding batches of the target schema.
pub(crate) trait Source: Send {
    /// The next batch of good rows (None at the end). Bad rows go through `rejects`.
    fn next_batch(&mut self, rejects: &mut rejects::Rejects) -> Result<Option<RecordBatch>, ImportError>;
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Format of every input; by default told from each file's extension.
    pub format: Option<Format>,
    pub overrides: FieldOverrides,
    /// Write bad rows here and commit the rest, instead of failing.
    pub rejects: Option<PathBuf>,
    /// Records read ahead per text input to learn the types of new columns.
    pub infer_rows: usize,
    /// Draw a progress bar on stderr (only shown on a terminal).
    pub progress: bool,
    pub layout: WriterLayout,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            format: None,
            overrides: FieldOverrides::default(),
            rejects: None,
            infer_rows: 10_000,
            progress: false,
            layout: WriterLayout::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub rows: u64,
    pub rejected: u64,
    pub input_bytes: u64,
    pub elapsed: Duration,
    pub version: u64,
}

impl ImportSummary {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An opened input whose fields are known.
enum Probe {
    Ndjson(ndjson::NdjsonProbe),
    Csv(csv::CsvProbe),
    Parquet(parquet::ParquetProbe),
}

impl Probe {
    fn open(spec: &InputSpec, options: &ImportOptions, counter: &progress::ByteCounter) -> Result<Self, ImportError> {
        Ok(match spec.format {
            Format::Ndjson => Probe::Ndjson(ndjson::NdjsonProbe::new(
                &spec.name,
                spec.open_text(counter.clone())?,
                options.infer_rows,
                &options.overrides,
            )?),
            Format::Csv => Probe::Csv(csv::CsvProbe::new(
                &spec.name,
                spec.open_text(counter.clone())?,
                options.infer_rows,
                &options.overrides,
            )?),
            Format::Parquet => Probe::Parquet(parquet::ParquetProbe::new(&spec.name, &options.overrides)?),
        })
    }

    fn new_columns(&self) -> &[(String, DataType)] {
        match self {
            Probe::Ndjson(p) => &p.new_columns,
            Probe::Csv(p) => &p.new_columns,
            Probe::Parquet(p) => &p.new_columns,
        }
    }

    fn into_source(
        self,
        target: Arc<target::TargetSchema>,
        counter: progress::ByteCounter,
    ) -> Result<Box<dyn Source>, ImportError> {
        Ok(match self {
            Probe::Ndjson(p) => Box::new(p.into_source(target)),
            Probe::Csv(p) => Box::new(p.into_source(target)),
            Probe::Parquet(p) => Box::new(p.into_source(target, counter)?),
        })
    }
}

/// New columns of all inputs, in first-seen order. A column two inputs type differently
/// becomes text, which holds both.
fn merge_new_columns(probes: &[Probe]) -> Vec<(String, DataType)> {
    let mut merged: Vec<(String, DataType)> = Vec::new();
    for (name, data_type) in probes.iter().flat_map(|p| p.new_columns()) {
        match merged.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) if existing != data_type => *existing = DataType::Utf8,
            Some(_) => {}
            None => merged.push((name.clone(), data_type.clone())),
        }
    }
    merged
}

/// Imports `inputs` into the store's events table in one commit.
pub async fn import(
    store: &mut EventStore,
    inputs: &[String],
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    if inputs.is_empty() {
        return Err(ImportError::Usage("no input files given".into()));
    }
    let specs = inputs.iter().map(|i| InputSpec::resolve(i, options.format)).collect::<Result<Vec<_>, _>>()?;
    if specs.iter().filter(|s| s.name == "-").count() > 1 {
        return Err(ImportError::Usage("stdin ('-') can be named only once".into()));
    }
    let total_bytes: u64 = specs.iter().filter_map(|s| s.size()).sum();
    let counter = progress::ByteCounter::new(total_bytes, options.progress);

    let probes = {
        let (specs, options, counter) = (specs.clone(), options.clone(), counter.clone());
        tokio::task::spawn_blocking(move || {
            specs.iter().map(|s| Probe::open(s, &options, &counter)).collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| ImportError::Usage(format!("input reader failed: {e}")))??
    };
    let existing = store.delta_table().snapshot().ok().map(|s| s.snapshot().arrow_schema());
    let target = Arc::new(target::TargetSchema::build(existing.as_deref(), &merge_new_columns(&probes))?);

    let mut rejects = match &options.rejects {
        Some(path) => rejects::Rejects::to_file(path)?,
        None => rejects::Rejects::fail_fast(),
    };
    let (sender, receiver) = mpsc::channel::<Result<RecordBatch, ImportError>>(2);
    let producer = {
        let (target, counter) = (target.clone(), counter.clone());
        std::thread::spawn(move || -> (u64, u64) {
            let mut rows = 0u64;
            let outcome = (|| -> Result<(), ImportError> {
                for probe in probes {
                    let mut source = probe.into_source(target.clone(), counter.clone())?;
                    while let Some(batch) = source.next_batch(&mut rejects)? {
                        rows += batch.num_rows() as u64;
                        if sender.blocking_send(Ok(batch)).is_err() {
                            return Ok(()); // the writer stopped; its error is reported
                        }
                    }
                }
                rejects.finish()
            })();
            if let Err(e) = outcome {
                let _ = sender.blocking_send(Err(e));
            }
            (rows, rejects.count)
        })
    };

    let batches =
        futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        );
    let appended = store.append(target.schema.clone(), Box::pin(batches), &options.layout).await;

    counter.finish();
    let (rows, rejected) = producer.join().map_err(|_| ImportError::Usage("input reader panicked".into()))?;
    let summary = appended.map_err(|e| match e {
        AppendError::Input(e) => e,
        AppendError::Storage(e) => e.into(),
    })?;
    Ok(ImportSummary {
        rows,
        rejected,
        input_bytes: counter.get().max(total_bytes),
        elapsed: started.elapsed(),
        version: summary.version,
    })
}

/// The first 60 characters of a value, for messages.
pub(crate) fn excerpt(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text.to_string()
    }
}
