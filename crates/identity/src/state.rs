//! The identity state of one table version: every link with the data file it came from, which
//! files were read for links, and the persons they make. Bringing a state to another version
//! reads only the files it has not read (new appends, compacted files) and drops the links of
//! files the version no longer has, so a state of any version, or none, gives exactly the
//! persons of the version asked for: the mapping can never disagree with the events a reader
//! sees, and a lost or damaged saved state costs time, never correctness.
//!
//! Saved as one Parquet object, `_northstar_identity/links.parquet` under the events table
//! (its rows the links; its footer the version and the files read), replaced in one put.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::common::{exec_datafusion_err, Result};
use datafusion::execution::SessionState;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use northstar_storage::EventSnapshotSpec;
use serde::{Deserialize, Serialize};

use crate::extract::links_in_files;
use crate::links::{Link, LinkKind};
use crate::resolve::{resolve, Persons};

/// Where the state is saved, under the events table.
pub const SAVED_STATE: &str = "_northstar_identity/links.parquet";
const FOOTER_KEY: &str = "northstar.identity";

#[derive(Debug, Clone)]
pub struct IdentityState {
    /// The events table version this state is of.
    pub version: u64,
    /// Paths of the data files read for links (every file of the version).
    files_read: HashSet<Arc<str>>,
    links: Vec<(Arc<str>, Link)>,
    pub persons: Arc<Persons>,
}

/// What the saved object's footer says.
#[derive(Serialize, Deserialize)]
struct Footer {
    version: u64,
    files_read: Vec<String>,
}

impl IdentityState {
    /// Number of links (with repeats across files).
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Whether this is the state of exactly the version `spec` describes: its number and its
    /// files (a table recreated at the same location may reach the same version number with
    /// other files; then the state is brought to it like any other).
    pub fn is_of(&self, spec: &EventSnapshotSpec) -> bool {
        self.version == spec.version
            && self.files_read.len() == spec.files.len()
            && spec.files.iter().all(|f| self.files_read.contains(f.path.as_str()))
    }

    /// The state of the version `spec` describes, from `previous` (of any version) and the
    /// files it has not read.
    pub async fn bring_to(
        previous: Option<&IdentityState>,
        state: &SessionState,
        spec: &EventSnapshotSpec,
        schema: &SchemaRef,
    ) -> Result<Self> {
        let files_read: HashSet<Arc<str>> = spec.files.iter().map(|f| Arc::from(f.path.as_str())).collect();
        let mut links: Vec<(Arc<str>, Link)> = previous
            .map(|p| p.links.iter().filter(|(file, _)| files_read.contains(file)).cloned().collect())
            .unwrap_or_default();
        let unread = spec
            .files
            .iter()
            .filter(|f| previous.is_none_or(|p| !p.files_read.contains(f.path.as_str())))
            .cloned()
            .collect();
        links.extend(links_in_files(state, spec, schema, unread).await?);
        let persons = Arc::new(resolve(links.iter().map(|(_, link)| link)));
        Ok(Self { version: spec.version, files_read, links, persons })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let links = &self.links;
        let batch = RecordBatch::try_new(
            saved_schema(),
            vec![
                Arc::new(links.iter().map(|(file, _)| Some(file.as_ref())).collect::<StringArray>()),
                Arc::new(links.iter().map(|(_, l)| l.time).collect::<Int64Array>()),
                Arc::new(links.iter().map(|(_, l)| Some(l.user.as_str())).collect::<StringArray>()),
                Arc::new(links.iter().map(|(_, l)| l.other.as_deref()).collect::<StringArray>()),
                Arc::new(links.iter().map(|(_, l)| Some(l.kind.as_str())).collect::<StringArray>()),
            ],
        )?;
        let footer =
            Footer { version: self.version, files_read: self.files_read.iter().map(|f| f.to_string()).collect() };
        let footer = serde_json::to_string(&footer).map_err(|e| exec_datafusion_err!("{e}"))?;
        let properties = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(FOOTER_KEY.into(), footer)]))
            .build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(bytes)
    }

    pub fn decode(bytes: bytes::Bytes) -> Result<Self> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
        let footer = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == FOOTER_KEY))
            .and_then(|kv| kv.value.clone())
            .ok_or_else(|| exec_datafusion_err!("no {FOOTER_KEY} footer"))?;
        let footer: Footer = serde_json::from_str(&footer).map_err(|e| exec_datafusion_err!("{FOOTER_KEY}: {e}"))?;
        if reader.schema().fields() != saved_schema().fields() {
            return Err(exec_datafusion_err!("unexpected columns {:?}", reader.schema()));
        }
        let mut links = Vec::with_capacity(reader.metadata().file_metadata().num_rows() as usize);
        // The links of a file are saved together: one shared path per run of them.
        let mut file: Arc<str> = Arc::from("");
        for batch in reader.build()? {
            let batch = batch?;
            let text = |i: usize| batch.column(i).as_string::<i32>().clone();
            let (files, users, others, kinds) = (text(0), text(2), text(3), text(4));
            let times = batch.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let kind = LinkKind::parse(kinds.value(row))
                    .ok_or_else(|| exec_datafusion_err!("unknown link kind {}", kinds.value(row)))?;
                let other = others.is_valid(row).then(|| others.value(row).to_string());
                let link = Link { time: times.value(row), user: users.value(row).into(), other, kind };
                if file.as_ref() != files.value(row) {
                    file = Arc::from(files.value(row));
                }
                links.push((file.clone(), link));
            }
        }
        let persons = Arc::new(resolve(links.iter().map(|(_, link)| link)));
        let files_read = footer.files_read.iter().map(|f| Arc::from(f.as_str())).collect();
        Ok(Self { version: footer.version, files_read, links, persons })
    }
}

fn saved_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, true),
        Field::new("time", DataType::Int64, false),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("other_id", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, true),
    ]))
}
