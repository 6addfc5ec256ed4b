//! Writes through the wire endpoint: `INSERT INTO events …` and `COPY events FROM STDIN`, each
//! one atomic Delta commit (nothing is visible until the commit; a canceled or failed write
//! leaves the table as it was), and `COPY … TO STDOUT`.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use bytes::{Buf, Bytes, BytesMut};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Column, ParamValues, ScalarValue};
use datafusion::logical_expr::{cast, lit, Expr};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, ObjectName, Statement, TableObject,
};
use futures::{stream, Sink, SinkExt, StreamExt};
use northstar_import::{ImportError, ImportOptions, Position};
use northstar_storage::columns::{EVENT_DATE, EVENT_TIME};
use northstar_storage::{AppendError, WriterLayout};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;

use crate::auth::Role;
use crate::connection::{Connection, Session};
use crate::errors::{
    error, from_datafusion, read_only, BAD_COPY_FORMAT, FEATURE_NOT_SUPPORTED, INTERNAL_ERROR, NOT_NULL_VIOLATION,
    SYNTAX_ERROR, UNDEFINED_COLUMN,
};
use crate::limits::StatementLimits;
use crate::query::Prepared;

/// The one Delta-backed table; other tables (CREATE TABLE … in memory) go to DataFusion.
pub fn is_events(name: &ObjectName) -> bool {
    name.0.last().map(|part| part.to_string().trim_matches('"').eq_ignore_ascii_case("events")).unwrap_or(false)
}

pub fn is_events_insert(prepared: &Prepared) -> bool {
    matches!(&prepared.ast, Some(Statement::Insert(insert)) if matches!(&insert.table, TableObject::TableName(name) if is_events(name)))
}

fn storage_error(e: impl std::fmt::Display) -> PgWireError {
    error(INTERNAL_ERROR, e.to_string())
}

/// Checks that every named column exists; returns the names, or the table's writable columns.
fn target_columns(schema: &SchemaRef, named: Vec<String>) -> PgWireResult<Vec<String>> {
    if named.is_empty() {
        return Ok(schema.fields().iter().map(|f| f.name().clone()).filter(|n| n != EVENT_DATE).collect());
    }
    for name in &named {
        if name == EVENT_DATE {
            return Err(error(
                "428C9",
                format!("column \"{EVENT_DATE}\" is derived from {EVENT_TIME} and cannot be written"),
            ));
        }
        if schema.field_with_name(name).is_err() {
            return Err(error(UNDEFINED_COLUMN, format!("column \"{name}\" of relation \"events\" does not exist")));
        }
    }
    Ok(named)
}

/// For `INSERT INTO events (cols) VALUES ($1, …)`: the parameter number and the type of the
/// column each placeholder fills.
pub async fn insert_column_types(events: &crate::catalog::EventsTable, prepared: &Prepared) -> Vec<(usize, DataType)> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SetExpr, Value};
    let Some(Statement::Insert(insert)) = &prepared.ast else { return vec![] };
    let Some(source) = &insert.source else { return vec![] };
    let SetExpr::Values(values) = source.body.as_ref() else { return vec![] };
    let schema = events.write_schema().await;
    let Ok(columns) =
        target_columns(&schema, insert.columns.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect())
    else {
        return vec![];
    };
    let mut out = vec![];
    for row in &values.rows {
        for (expr, column) in row.iter().zip(&columns) {
            if let SqlExpr::Value(v) = expr {
                if let Value::Placeholder(p) = &v.value {
                    if let (Ok(n), Ok(field)) =
                        (p.trim_start_matches('$').parse::<usize>(), schema.field_with_name(column))
                    {
                        out.push((n, field.data_type().clone()));
                    }
                }
            }
        }
    }
    out
}

fn check_not_null(schema: &SchemaRef, batch: &RecordBatch) -> PgWireResult<()> {
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(error(
                NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"events\" violates not-null constraint",
                    field.name()
                ),
            ));
        }
    }
    Ok(())
}

impl Connection {
    pub(crate) async fn insert(
        &self,
        session: &Session,
        prepared: &Prepared,
        params: Option<ParamValues>,
    ) -> PgWireResult<Response> {
        if session.role == Role::Reader {
            return Err(read_only("INSERT"));
        }
        let Some(Statement::Insert(insert)) = &prepared.ast else {
            return Err(error(SYNTAX_ERROR, "malformed INSERT"));
        };
        let Some(source) = &insert.source else {
            return Err(error(FEATURE_NOT_SUPPORTED, "INSERT without VALUES or SELECT is not supported"));
        };
        let schema = self.shared.events.write_schema().await;
        let columns = target_columns(
            &schema,
            insert.columns.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect(),
        )?;
        let limits = StatementLimits::start(self.cancel.clone(), session.settings.statement_timeout());
        let statement = DfStatement::Statement(Box::new(Statement::Query(source.clone())));
        let mut plan = session.ctx.state().statement_to_plan(statement).await.map_err(from_datafusion)?;
        if let Some(params) = &params {
            plan = plan.replace_params_with_values(params).map_err(from_datafusion)?;
        }
        let df = session.ctx.execute_logical_plan(plan).await.map_err(from_datafusion)?;
        if df.schema().fields().len() != columns.len() {
            return Err(error(
                SYNTAX_ERROR,
                format!("INSERT has {} expressions for {} target columns", df.schema().fields().len(), columns.len()),
            ));
        }
        let source_column = |name: &str| {
            columns.iter().position(|c| c == name).map(|i| Expr::Column(Column::from(df.schema().qualified_field(i))))
        };
        let exprs: Vec<Expr> = schema
            .fields()
            .iter()
            .map(|f| {
                let value = if f.name() == EVENT_DATE {
                    source_column(EVENT_TIME).map(|t| {
                        cast(cast(t, schema.field_with_name(EVENT_TIME).unwrap().data_type().clone()), DataType::Date32)
                    })
                } else {
                    source_column(f.name()).map(|c| cast(c, f.data_type().clone()))
                };
                value.unwrap_or_else(|| cast(lit(ScalarValue::Null), f.data_type().clone())).alias(f.name())
            })
            .collect();
        let df = df.select(exprs).map_err(from_datafusion)?;
        let batches = limits.run(async { df.execute_stream().await.map_err(from_datafusion) }).await?;
        let target = schema.clone();
        let batches = batches.map(move |batch| {
            let batch = batch.map_err(from_datafusion)?;
            check_not_null(&target, &batch)?;
            RecordBatch::try_new(target.clone(), batch.columns().to_vec())
                .map_err(|e| error(NOT_NULL_VIOLATION, e.to_string()))
        });
        let layout = WriterLayout::default();
        let summary = limits
            .run(self.shared.events.write(&self.shared.template, async |store| {
                let mut rows = 0usize;
                let counted = batches.inspect(|b| {
                    if let Ok(b) = b {
                        rows += b.num_rows();
                    }
                });
                let counted = Box::pin(counted);
                store.append(schema.clone(), counted, &layout).await.map_err(|e| match e {
                    AppendError::Input(e) => e,
                    AppendError::Storage(e) => storage_error(e),
                })?;
                Ok::<usize, PgWireError>(rows)
            }))
            .await?;
        Ok(Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(summary)))
    }

    pub(crate) async fn copy(&self, session: &Session, prepared: &Prepared) -> PgWireResult<Response> {
        let Some(Statement::Copy { source, to, target, options, legacy_options, .. }) = &prepared.ast else {
            return Err(error(SYNTAX_ERROR, format!("cannot parse COPY statement '{}'", prepared.sql)));
        };
        let format = CopyFormat::from_options(options, legacy_options)?;
        match (to, target) {
            (true, CopyTarget::Stdout) => self.copy_out(session, source, format).await,
            (false, CopyTarget::Stdin) => self.copy_in_start(session, source, format).await,
            _ => Err(error(
                FEATURE_NOT_SUPPORTED,
                "COPY to or from a server file is not supported: use STDIN/STDOUT (psql: \\copy)",
            )),
        }
    }

    async fn copy_in_start(
        &self,
        session: &Session,
        source: &CopySource,
        format: CopyFormat,
    ) -> PgWireResult<Response> {
        if session.role == Role::Reader {
            return Err(read_only("COPY FROM"));
        }
        let CopySource::Table { table_name, columns } = source else {
            return Err(error(SYNTAX_ERROR, "COPY FROM needs a table"));
        };
        if !is_events(table_name) {
            return Err(error(
                FEATURE_NOT_SUPPORTED,
                format!("COPY FROM is supported into events only, not {table_name}"),
            ));
        }
        let schema = self.shared.events.write_schema().await;
        let columns = target_columns(&schema, columns.iter().map(|c| c.value.clone()).collect())?;
        let spool = tempfile::NamedTempFile::new().map_err(storage_error)?;
        let count = columns.len();
        *self.copy_in.lock().await = Some(CopyIn { spool: BufWriter::new(spool), format, columns });
        Ok(Response::CopyIn(CopyResponse::new(0, count, stream::empty())))
    }

    async fn copy_out(&self, session: &Session, source: &CopySource, format: CopyFormat) -> PgWireResult<Response> {
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
        self.shared.events.refresh(&self.shared.template).await.map_err(storage_error)?;
        let limits = StatementLimits::start(self.cancel.clone(), session.settings.statement_timeout());
        let df = limits.run(async { session.ctx.sql(&sql).await.map_err(from_datafusion) }).await?;
        let fields = Arc::new(arrow_schema_to_pg_fields(df.schema().as_arrow(), &Format::UnifiedText, None)?);
        let mut header = format.header.then(|| format.header_line(fields.iter().map(|f| f.name().to_string())));
        let count = fields.len();
        let batches = limits.run(async { df.execute_stream().await.map_err(from_datafusion) }).await?;
        let lines = limits
            .stream(batches.map(|b| b.map_err(from_datafusion)))
            .map(move |batch| -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> {
                match batch {
                    Ok(batch) => encode_recordbatch(fields.clone(), batch),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            })
            .flat_map(stream::iter)
            .map(move |row| {
                let mut line = header.take().unwrap_or_default();
                format.encode_row(&row?, &mut line);
                Ok(CopyData::new(Bytes::from(line)))
            });
        Ok(Response::CopyOut(CopyResponse::new(0, count, lines)))
    }

    async fn copy_in_finish(&self, copy: CopyIn, session: &Session) -> PgWireResult<usize> {
        let CopyIn { spool, format, columns } = copy;
        let spool = spool.into_inner().map_err(|e| storage_error(e.error()))?;
        let header_lines = format.header as u64;
        let normalized = tokio::task::spawn_blocking(move || format.normalize(spool.path(), &columns))
            .await
            .map_err(storage_error)??;
        let options = ImportOptions { format: Some(northstar_import::Format::Csv), ..ImportOptions::default() };
        let path = normalized.path().to_string_lossy().to_string();
        let limits = StatementLimits::start(self.cancel.clone(), session.settings.statement_timeout());
        let summary = limits
            .run(self.shared.events.write(&self.shared.template, async |store| {
                northstar_import::import(store, std::slice::from_ref(&path), &options)
                    .await
                    .map_err(|e| copy_error(e, header_lines))
            }))
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
        ImportError::Storage(e) => storage_error(e),
        other => error(BAD_COPY_FORMAT, format!("COPY events: {other}")),
    }
}

/// A COPY FROM STDIN in progress: the client's data is spooled to a temporary file, then
/// imported in one commit when the client sends CopyDone.
pub struct CopyIn {
    spool: BufWriter<tempfile::NamedTempFile>,
    format: CopyFormat,
    columns: Vec<String>,
}

#[derive(Debug, Clone)]
struct CopyFormat {
    csv: bool,
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: String,
    header: bool,
}

impl CopyFormat {
    fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<Self> {
        let mut f =
            CopyFormat { csv: false, delimiter: b'\t', quote: b'"', escape: b'"', null: "\\N".into(), header: false };
        let mut delimiter = None;
        let mut null = None;
        let byte = |c: char| -> PgWireResult<u8> {
            u8::try_from(c).map_err(|_| {
                error(FEATURE_NOT_SUPPORTED, format!("COPY delimiter and quote must be one ASCII character, not '{c}'"))
            })
        };
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                    "csv" => f.csv = true,
                    "text" => f.csv = false,
                    other => {
                        return Err(error(
                            FEATURE_NOT_SUPPORTED,
                            format!("COPY format \"{other}\" is not supported: use text or csv"),
                        ))
                    }
                },
                CopyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => f.header = *h,
                CopyOption::Quote(c) => f.quote = byte(*c)?,
                CopyOption::Escape(c) => f.escape = byte(*c)?,
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(error(FEATURE_NOT_SUPPORTED, format!("COPY option {other} is not supported"))),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv_options) => {
                    f.csv = true;
                    for o in csv_options {
                        match o {
                            CopyLegacyCsvOption::Header => f.header = true,
                            CopyLegacyCsvOption::Quote(c) => f.quote = byte(*c)?,
                            CopyLegacyCsvOption::Escape(c) => f.escape = byte(*c)?,
                            other => {
                                return Err(error(
                                    FEATURE_NOT_SUPPORTED,
                                    format!("COPY option {other} is not supported"),
                                ))
                            }
                        }
                    }
                }
                CopyLegacyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Binary => {
                    return Err(error(FEATURE_NOT_SUPPORTED, "COPY BINARY is not supported: use text or csv"))
                }
                other => return Err(error(FEATURE_NOT_SUPPORTED, format!("COPY option {other} is not supported"))),
            }
        }
        if f.csv {
            f.delimiter = b',';
            f.null = String::new();
        }
        if let Some(d) = delimiter {
            f.delimiter = d;
        }
        if let Some(n) = null {
            f.null = n;
        }
        if f.header && !f.csv {
            return Err(error(FEATURE_NOT_SUPPORTED, "COPY HEADER is available only in CSV mode"));
        }
        Ok(f)
    }

    fn header_line(&self, names: impl Iterator<Item = String>) -> Vec<u8> {
        let mut line = Vec::new();
        for (i, name) in names.enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            self.write_csv_field(&mut line, name.as_bytes());
        }
        line.push(b'\n');
        line
    }

    fn write_csv_field(&self, out: &mut Vec<u8>, value: &[u8]) {
        let needs_quotes = value.is_empty()
            || value.iter().any(|&b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r')
            || value == self.null.as_bytes();
        if !needs_quotes {
            out.extend_from_slice(value);
            return;
        }
        out.push(self.quote);
        for &b in value {
            if b == self.quote || b == self.escape {
                out.push(self.escape);
            }
            out.push(b);
        }
        out.push(self.quote);
    }

    /// One COPY line from a text-format DataRow (fields are length-prefixed, -1 for NULL).
    fn encode_row(&self, row: &DataRow, out: &mut Vec<u8>) {
        let mut data = BytesMut::from(&row.data[..]).freeze();
        for i in 0..row.field_count {
            if i > 0 {
                out.push(self.delimiter);
            }
            let len = data.get_i32();
            if len < 0 {
                out.extend_from_slice(self.null.as_bytes());
                continue;
            }
            let value = data.split_to(len as usize);
            if self.csv {
                self.write_csv_field(out, &value);
            } else {
                for &b in value.iter() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' if self.delimiter == b'\t' => out.extend_from_slice(b"\\t"),
                        b if b == self.delimiter => {
                            out.push(b'\\');
                            out.push(b);
                        }
                        b => out.push(b),
                    }
                }
            }
        }
        out.push(b'\n');
    }

    /// Rewrites the client's data as a CSV file with a header naming `columns`, which the
    /// import path reads (types, errors with line numbers, one commit).
    fn normalize(&self, spool: &std::path::Path, columns: &[String]) -> PgWireResult<tempfile::NamedTempFile> {
        let out = tempfile::NamedTempFile::new().map_err(storage_error)?;
        let mut writer = csv::WriterBuilder::new().from_writer(BufWriter::new(out.reopen().map_err(storage_error)?));
        writer.write_record(columns).map_err(storage_error)?;
        let input = std::io::BufReader::new(std::fs::File::open(spool).map_err(storage_error)?);
        let wrong_width = |line: u64, got: usize| {
            error(BAD_COPY_FORMAT, format!("COPY events, line {line}: expected {} columns, got {got}", columns.len()))
        };
        if self.csv {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(self.header)
                .delimiter(self.delimiter)
                .quote(self.quote)
                .escape((self.escape != self.quote).then_some(self.escape))
                .double_quote(self.escape == self.quote)
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
                    record.iter().map(|f| if f == self.null.as_bytes() { &b""[..] } else { f }).collect();
                writer.write_record(&fields).map_err(storage_error)?;
            }
        } else {
            use std::io::BufRead;
            for (i, line) in input.split(b'\n').enumerate() {
                let line = line.map_err(storage_error)?;
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line == b"\\." {
                    break;
                }
                let fields: Vec<Vec<u8>> = line
                    .split(|&b| b == self.delimiter)
                    .map(|f| if f == self.null.as_bytes() { Vec::new() } else { unescape_text(f) })
                    .collect();
                if fields.len() != columns.len() {
                    return Err(wrong_width(i as u64 + 1, fields.len()));
                }
                writer.write_record(&fields).map_err(storage_error)?;
            }
        }
        writer.into_inner().map_err(|e| storage_error(e.error()))?.flush().map_err(storage_error)?;
        Ok(out)
    }
}

/// COPY text format's backslash escapes.
fn unescape_text(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 1 < field.len() {
            i += 1;
            out.push(match field[i] {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 8,
                b'f' => 12,
                b'v' => 11,
                other => other,
            });
        } else {
            out.push(field[i]);
        }
        i += 1;
    }
    out
}

#[async_trait::async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut copy = self.copy_in.lock().await;
        let copy = copy
            .as_mut()
            .ok_or_else(|| error(crate::errors::PROTOCOL_VIOLATION, "COPY data without COPY FROM STDIN"))?;
        copy.spool.write_all(&data.data).map_err(storage_error)
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self
            .copy_in
            .lock()
            .await
            .take()
            .ok_or_else(|| error(crate::errors::PROTOCOL_VIOLATION, "CopyDone without COPY FROM STDIN"))?;
        let rows = self.copy_in_finish(copy, self.session()?).await?;
        client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(rows).into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copy_in.lock().await.take();
        error(crate::errors::QUERY_CANCELED, format!("COPY from stdin failed: {}", fail.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_escapes_round_trip() {
        assert_eq!(unescape_text(b"a\\tb\\\\c\\nd"), b"a\tb\\c\nd");
    }
}
