//! SQL-level cursors: `DECLARE name CURSOR [WITH HOLD] FOR query`, `FETCH`, `MOVE`, `CLOSE`.
//!
//! psycopg's and psycopg2's named cursors, psqlODBC's declare/fetch mode and Tableau read large
//! results through them a batch at a time. A cursor is the query's DataFusion stream, kept in the
//! session and pulled as far as each `FETCH` asks: nothing is materialized, and the rows are
//! those of the table version the `DECLARE` planned against. Cursors scan forward only (as
//! PostgreSQL's `NO SCROLL` cursors); `SCROLL` is refused. As in PostgreSQL, `DECLARE` without
//! `WITH HOLD` needs a transaction block and its cursor closes when the transaction ends; a
//! `WITH HOLD` cursor lives until `CLOSE` or the end of the connection (docs/clients.md).

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, FetchDirection, Ident, Statement, Value};
use futures::{stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;

use crate::errors::{error, from_datafusion, FEATURE_NOT_SUPPORTED};
use crate::query::{plan, with_names};
use crate::result_stream::start_stream;
use crate::row_batches::encode_batch;
use crate::session::{OpenCursor, Session};

const INVALID_CURSOR_NAME: &str = "34000";
const DUPLICATE_CURSOR: &str = "42P03";
const NO_ACTIVE_TRANSACTION: &str = "25P01";
const OBJECT_NOT_IN_STATE: &str = "55000";

/// Cursor names as PostgreSQL keeps them: unquoted ones folded to lower case.
fn cursor_name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// How many rows a FETCH or MOVE asks for; `None` for all. Backward and absolute moves need a
/// scrollable cursor.
fn forward_count(direction: &FetchDirection) -> PgWireResult<Option<usize>> {
    let number = |value: &Value| match value {
        Value::Number(n, _) => n.parse::<i64>().ok(),
        _ => None,
    };
    let count = match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
        FetchDirection::All | FetchDirection::ForwardAll => None,
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            match number(&limit.value) {
                Some(n) if n >= 0 => Some(n as usize),
                _ => return Err(scroll_refused()),
            }
        }
        _ => return Err(scroll_refused()),
    };
    Ok(count)
}

fn scroll_refused() -> pgwire::error::PgWireError {
    error(OBJECT_NOT_IN_STATE, "cursor can only scan forward (Northstar's cursors are NO SCROLL)")
}

impl Session {
    /// `DECLARE`: plans the query and starts its stream; no row is computed until a FETCH.
    pub async fn declare(
        &self,
        declare: &Declare,
        in_transaction: bool,
        params: Option<ParamValues>,
        names: Option<&[String]>,
    ) -> PgWireResult<Response> {
        let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
            return Err(error(FEATURE_NOT_SUPPORTED, "only DECLARE name CURSOR FOR query is supported"));
        };
        if declare.scroll == Some(true) {
            return Err(error(FEATURE_NOT_SUPPORTED, "SCROLL cursors are not supported; cursors scan forward"));
        }
        let hold = declare.hold == Some(true);
        if !hold && !in_transaction {
            return Err(error(NO_ACTIVE_TRANSACTION, "DECLARE CURSOR can only be used in transaction blocks"));
        }
        let name = cursor_name(name);
        if self.cursors.lock().await.contains_key(&name) {
            return Err(error(DUPLICATE_CURSOR, format!("cursor \"{name}\" already exists")));
        }
        self.shared.events.refresh(&self.shared.template).await.map_err(crate::errors::internal)?;
        let limits = self.limits();
        let statement = DfStatement::Statement(Box::new(Statement::Query(query.clone())));
        let mut plan = plan(self, statement, &limits).await?;
        if let Some(params) = &params {
            plan = plan.replace_params_with_values(params).map_err(from_datafusion)?;
        }
        let df = limits.run(async { self.ctx.execute_logical_plan(plan).await.map_err(from_datafusion) }).await?;
        let schema = with_names(df.schema().as_arrow(), names);
        let stream = start_stream(&limits, df).await?;
        let cursor = OpenCursor { schema, stream, pending: VecDeque::new(), hold };
        self.cursors.lock().await.insert(name, cursor);
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }

    /// `FETCH` (rows returned) or `MOVE` (rows skipped, counted in the tag).
    pub async fn fetch(
        &self,
        name: &Ident,
        direction: &FetchDirection,
        moves: bool,
        format: &Format,
        options: Arc<FormatOptions>,
    ) -> PgWireResult<Response> {
        let wanted = forward_count(direction)?;
        let name = cursor_name(name);
        let mut cursors = self.cursors.lock().await;
        let cursor = cursors
            .get_mut(&name)
            .ok_or_else(|| error(INVALID_CURSOR_NAME, format!("cursor \"{name}\" does not exist")))?;
        let batches = self.limits().run(take(cursor, wanted)).await?;
        let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if moves {
            return Ok(Response::Execution(Tag::new("MOVE").with_rows(count)));
        }
        let fields = Arc::new(arrow_schema_to_pg_fields(&cursor.schema, format, Some(options))?);
        let encoded = fields.clone();
        let rows = stream::iter(batches).flat_map(move |batch| stream::iter(encode_batch(&encoded, &batch)));
        let mut response = QueryResponse::new(fields, rows);
        response.set_command_tag(&format!("FETCH {count}"));
        Ok(Response::Query(response))
    }

    /// The columns of an open cursor, for a protocol-level Describe of a portal of its name:
    /// PostgreSQL's SQL cursors are portals, and psycopg 3 describes its named cursors so.
    pub async fn cursor_fields(&self, name: &str) -> Option<PgWireResult<Vec<pgwire::api::results::FieldInfo>>> {
        let cursors = self.cursors.lock().await;
        let cursor = cursors.get(name)?;
        Some(arrow_schema_to_pg_fields(&cursor.schema, &Format::UnifiedText, None))
    }

    /// `CLOSE name` / `CLOSE ALL`.
    pub async fn close(&self, which: &CloseCursor) -> PgWireResult<Response> {
        let mut cursors = self.cursors.lock().await;
        match which {
            CloseCursor::All => cursors.clear(),
            CloseCursor::Specific { name } => {
                let name = cursor_name(name);
                if cursors.remove(&name).is_none() {
                    return Err(error(INVALID_CURSOR_NAME, format!("cursor \"{name}\" does not exist")));
                }
            }
        }
        Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
    }

    /// The transaction ended: its cursors close, `WITH HOLD` ones stay.
    pub async fn end_transaction(&self) {
        self.cursors.lock().await.retain(|_, cursor| cursor.hold);
    }
}

/// The cursor's next `wanted` rows (all that are left for `None`), pulling batches as needed.
async fn take(cursor: &mut OpenCursor, wanted: Option<usize>) -> PgWireResult<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut left = wanted.unwrap_or(usize::MAX);
    while left > 0 {
        let batch = match cursor.pending.pop_front() {
            Some(batch) => batch,
            None => match cursor.stream.next().await {
                Some(batch) => batch.map_err(from_datafusion)?,
                None => break,
            },
        };
        if batch.num_rows() > left {
            cursor.pending.push_front(batch.slice(left, batch.num_rows() - left));
            out.push(batch.slice(0, left));
            left = 0;
        } else {
            left -= batch.num_rows();
            out.push(batch);
        }
    }
    Ok(out)
}
