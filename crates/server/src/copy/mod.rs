//! `COPY events FROM STDIN` (the client's data spooled, then imported as one atomic Delta
//! commit) and `COPY … TO STDOUT` (a query's result streamed), in PostgreSQL's text and CSV
//! formats, and out in its binary format.

mod csv;
mod options;
mod text;

use std::fmt::Debug;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use bytes::Bytes;
use datafusion::sql::sqlparser::ast::{CopySource, Statement};
use futures::{stream, Sink, SinkExt, Stream, StreamExt};
use northstar_import::{ImportError, ImportOptions, Position};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;

use self::options::CopyFormat;
use crate::errors::{error, from_datafusion, internal, BAD_COPY_FORMAT, FEATURE_NOT_SUPPORTED, SYNTAX_ERROR};
use crate::limits::uninterrupted;
use crate::row_batches::encoded_ahead;
use crate::session::Session;
use crate::statement::is_events;
use crate::write::target_columns;

/// A COPY FROM STDIN in progress: the client's data is spooled to a temporary file, then
/// imported in one commit when the client sends CopyDone.
pub struct CopyIn {
    spool: BufWriter<tempfile::NamedTempFile>,
    format: CopyFormat,
    columns: Vec<String>,
}

/// The COPY FROM STDIN a connection is receiving data for, if any.
pub type PendingCopy = tokio::sync::Mutex<Option<CopyIn>>;

impl CopyIn {
    /// Spools one CopyData message.
    pub fn write(&mut self, data: &[u8]) -> PgWireResult<()> {
        self.spool.write_all(data).map_err(internal)
    }
}

/// The parts of a COPY statement, or a clear error when `statement` is not one.
fn copy_parts(statement: &Statement) -> PgWireResult<(&CopySource, CopyFormat)> {
    match statement {
        Statement::Copy { source, options, legacy_options, .. } => {
            Ok((source, CopyFormat::from_options(options, legacy_options)?))
        }
        other => Err(error(SYNTAX_ERROR, format!("not a COPY statement: {other}"))),
    }
}

/// COPY to or from a server file or program.
pub fn refuse_server_file() -> PgWireError {
    error(FEATURE_NOT_SUPPORTED, "COPY to or from a server file is not supported: use STDIN/STDOUT (psql: \\copy)")
}

/// The binary format's end: a tuple count of -1.
const BINARY_TRAILER: [u8; 2] = [0xFF, 0xFF];

/// A COPY TO's CopyData messages, each with whether it holds a row. The CSV header or the
/// binary signature (`prefix`) goes with the first row, or alone when there is none; the
/// binary trailer goes last, with the signature when there are no rows, as PostgreSQL sends
/// it: tokio-postgres (ConnectorX) reads the signature and a tuple count from one message and
/// failed on a signature alone. An error ends the messages.
fn copy_lines(
    format: Arc<CopyFormat>,
    prefix: Option<Vec<u8>>,
    rows: impl Stream<Item = PgWireResult<DataRow>> + Send + 'static,
) -> impl Stream<Item = PgWireResult<(CopyData, bool)>> + Send + 'static {
    stream::unfold((Box::pin(rows), prefix, false), move |(mut rows, mut prefix, ended)| {
        let format = format.clone();
        async move {
            if ended {
                return None;
            }
            match rows.next().await {
                Some(Ok(row)) => {
                    let mut line = prefix.take().unwrap_or_default();
                    format.encode_row(&row, &mut line);
                    Some((Ok((CopyData::new(Bytes::from(line)), true)), (rows, None, false)))
                }
                Some(Err(e)) => Some((Err(e), (rows, None, true))),
                None => {
                    if format.binary {
                        prefix.get_or_insert_with(Vec::new).extend_from_slice(&BINARY_TRAILER);
                    }
                    prefix.map(|last| (Ok((CopyData::new(Bytes::from(last)), false)), (rows, None, true)))
                }
            }
        }
    })
}

impl Session {
    /// Starts `COPY … FROM STDIN`: answers CopyInResponse; the data follows in CopyData.
    pub async fn copy_in_start(&self, statement: &Statement) -> PgWireResult<(Response, CopyIn)> {
        let (source, format) = copy_parts(statement)?;
        let CopySource::Table { table_name, columns } = source else {
            return Err(error(SYNTAX_ERROR, "COPY FROM needs a table"));
        };
        if format.binary {
            return Err(error(FEATURE_NOT_SUPPORTED, "COPY FROM in binary format is not supported: use text or csv"));
        }
        if !is_events(table_name) {
            return Err(error(
                FEATURE_NOT_SUPPORTED,
                format!("COPY FROM is supported into events only, not {table_name}"),
            ));
        }
        let schema = self.shared.events.write_schema().await;
        let columns = target_columns(&schema, columns.iter().map(|c| c.value.clone()).collect())?;
        let spool = tempfile::NamedTempFile::new().map_err(internal)?;
        let count = columns.len();
        let copy = CopyIn { spool: BufWriter::new(spool), format, columns };
        Ok((Response::CopyIn(CopyResponse::new(0, count, stream::empty())), copy))
    }

    /// `COPY table|(query) TO STDOUT`: the result streamed as CopyData lines, then tagged
    /// `COPY n` with n the rows sent. Sent here rather than through pgwire's `CopyOut` response,
    /// which tags the COPY with its count of data messages: a CSV header or a binary signature
    /// alone made an empty result's tag `COPY 1` (psycopg's `rowcount`), where PostgreSQL says
    /// `COPY 0`. An error after the first rows ends the COPY with an ErrorResponse, as
    /// PostgreSQL does. After earlier statements of the same simple query, whose results
    /// pgwire sends once all have run, the rows go through pgwire's response after them.
    pub async fn copy_out<C>(&self, client: &mut C, statement: &Statement) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (source, format) = copy_parts(statement)?;
        let sql = match source {
            CopySource::Table { table_name, columns } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
            CopySource::Table { table_name, columns } => {
                format!(
                    "SELECT {} FROM {table_name}",
                    columns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
                )
            }
            CopySource::Query(query) => query.to_string(),
        };
        self.shared.events.refresh(&self.shared.template).await.map_err(internal)?;
        let limits = self.limits();
        let df = limits.run(async { self.ctx.sql(&sql).await.map_err(from_datafusion) }).await?;
        let row_format = if format.binary { Format::UnifiedBinary } else { Format::UnifiedText };
        let fields = Arc::new(arrow_schema_to_pg_fields(df.schema().as_arrow(), &row_format, None)?);
        let columns = fields.len() as i16;
        let prefix = format.prefix(fields.iter().map(|f| f.name().to_string()));
        let binary = format.binary as i8;
        // Through `start_stream`, as query results: planned under the limits, timestamps shown
        // in the session's time zone.
        let batches = crate::result_stream::start_stream(&limits, df).await?;
        let rows = encoded_ahead(fields, limits.stream(batches.map(|b| b.map_err(from_datafusion))));
        let lines = copy_lines(Arc::new(format), prefix, rows);
        if self.earlier_results_unsent.load(std::sync::atomic::Ordering::Relaxed) {
            // Made as text, then marked binary: `CopyResponse::new` of a binary response adds
            // the trailer as a message of its own. pgwire tags it with its count of messages.
            let mut response = CopyResponse::new(0, columns as usize, lines.map(|line| line.map(|(data, _)| data)));
            response.format = binary;
            return Ok(Response::CopyOut(response));
        }
        let column_formats = vec![binary as i16; columns as usize];
        client
            .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(binary, columns, column_formats)))
            .await?;
        let mut lines = std::pin::pin!(lines);
        let mut sent = 0;
        while let Some(line) = lines.next().await {
            let (data, is_row) = line?;
            sent += is_row as usize;
            client.feed(PgWireBackendMessage::CopyData(data)).await?;
        }
        client.feed(PgWireBackendMessage::CopyDone(CopyDone::new())).await?;
        Ok(Response::Execution(Tag::new("COPY").with_rows(sent)))
    }

    /// Imports the spooled data in one commit; returns the number of rows.
    pub async fn copy_in_finish(&self, copy: CopyIn) -> PgWireResult<usize> {
        let CopyIn { spool, format, columns } = copy;
        let spool = spool.into_inner().map_err(|e| internal(e.error()))?;
        let header_lines = format.header as u64;
        let normalized = tokio::task::spawn_blocking(move || normalize(&format, spool.path(), &columns))
            .await
            .map_err(internal)??;
        let options = ImportOptions { format: Some(northstar_import::Format::Csv), ..ImportOptions::default() };
        let path = normalized.path().to_string_lossy().to_string();
        // All the data is here: the load runs to its end (see `uninterrupted`), bounded by its size.
        let shared = self.shared.clone();
        let summary = uninterrupted(async move {
            let _normalized = normalized; // the file lives until the import has read it
            shared
                .events
                .write(&shared.template, async |store| {
                    northstar_import::import(store, std::slice::from_ref(&path), &options)
                        .await
                        .map_err(|e| copy_error(e, header_lines))
                })
                .await
        })
        .await?;
        Ok(summary.rows as usize)
    }
}

/// An import error as COPY reports it, with the line of the client's data.
fn copy_error(e: ImportError, header_lines: u64) -> PgWireError {
    match e {
        // The normalized file has one header line of its own; the client's data may have had one.
        ImportError::BadRow { position: Position::Line(n), reason, .. } => {
            error("22P02", format!("COPY events, line {}: {reason}", n - 1 + header_lines))
        }
        ImportError::BadRow { position, reason, .. } => error("22P02", format!("COPY events, {position}: {reason}")),
        ImportError::Storage(e) => internal(e),
        other => error(BAD_COPY_FORMAT, format!("COPY events: {other}")),
    }
}

/// Rewrites the client's data as a CSV file with a header naming `columns`, which the import
/// path reads (types, errors with line numbers, one commit). NULL becomes an empty field.
fn normalize(
    format: &CopyFormat,
    spool: &std::path::Path,
    columns: &[String],
) -> PgWireResult<tempfile::NamedTempFile> {
    let out = tempfile::NamedTempFile::new().map_err(internal)?;
    let mut writer = ::csv::WriterBuilder::new().from_writer(BufWriter::new(out.reopen().map_err(internal)?));
    writer.write_record(columns).map_err(internal)?;
    let input = std::io::BufReader::new(std::fs::File::open(spool).map_err(internal)?);
    let wrong_width = |line: u64, got: usize| {
        error(BAD_COPY_FORMAT, format!("COPY events, line {line}: expected {} columns, got {got}", columns.len()))
    };
    let style = &format.style;
    if format.csv {
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(format.header)
            .delimiter(style.delimiter)
            .quote(style.quote)
            .escape((style.escape != style.quote).then_some(style.escape))
            .double_quote(style.escape == style.quote)
            .flexible(true)
            .from_reader(input);
        for record in reader.byte_records() {
            let record = record.map_err(|e| error(BAD_COPY_FORMAT, format!("COPY events: {e}")))?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.len() == 1 && &record[0] == b"\\." {
                break;
            }
            if record.len() != columns.len() {
                return Err(wrong_width(line, record.len()));
            }
            let fields: Vec<&[u8]> =
                record.iter().map(|f| if f == style.null.as_bytes() { &b""[..] } else { f }).collect();
            writer.write_record(&fields).map_err(internal)?;
        }
    } else {
        use std::io::BufRead;
        for (i, line) in input.split(b'\n').enumerate() {
            let line = line.map_err(internal)?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line == b"\\." {
                break;
            }
            let fields = text::parse_line(line, style.delimiter, style.null.as_bytes());
            if fields.len() != columns.len() {
                return Err(wrong_width(i as u64 + 1, fields.len()));
            }
            writer.write_record(fields.iter().map(|f| f.as_deref().unwrap_or_default())).map_err(internal)?;
        }
    }
    writer.into_inner().map_err(|e| internal(e.error()))?.flush().map_err(internal)?;
    Ok(out)
}
