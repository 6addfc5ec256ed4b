//! Statements: splitting and describing them (the extended protocol's query parser), and
//! running them on the connection's session under its limits.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use crate::catalog_rewrites::rewrite_catalog_queries;
use crate::column_names::name_columns_as_postgres;
use crate::complexity::deep;
use crate::copy::{refuse_server_file, PendingCopy};
use crate::errors::{self, error, from_datafusion, internal, FEATURE_NOT_SUPPORTED, SYNTAX_ERROR};
use crate::limits::StatementLimits;
use crate::row_batches::encoded_ahead;
use crate::session::{Session, Shared};
use crate::statement::{classify, classify_unparsed, Classified, Kind};
use crate::write::insert_column_types;

/// A parsed statement, as prepared statements and portals keep it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    /// The statement after datafusion-pg-catalog's client-compatibility rewrites; `None` for
    /// session statements sqlparser does not know (they are handled from `sql`).
    pub ast: Option<Statement>,
    pub statement: Classified,
    /// Types of `$1 … $n` as DataFusion inferred them.
    pub param_types: Vec<Option<DataType>>,
    /// Result columns, when the statement returns rows.
    pub schema: Option<SchemaRef>,
    /// PostgreSQL's names of the result columns, where DataFusion's schema cannot carry them
    /// (two columns of one name); see column_names.rs.
    pub output_names: Option<Vec<String>>,
}

pub struct StatementParser {
    pub shared: Arc<Shared>,
    pub session: Arc<OnceLock<Session>>,
}

impl StatementParser {
    /// Splits a query string into statements.
    pub fn split(&self, sql: &str) -> PgWireResult<Vec<Prepared>> {
        crate::complexity::check(sql)?;
        deep(|| self.split_checked(sql))
    }

    fn split_checked(&self, sql: &str) -> PgWireResult<Vec<Prepared>> {
        let prepared = |sql: String, ast: Option<Statement>, statement: Classified| {
            let mut ast = ast;
            let output_names = ast.as_mut().and_then(name_columns_as_postgres);
            Prepared { sql, ast, statement, param_types: vec![], schema: None, output_names }
        };
        let registers_aliased = crate::column_names::alias_renamed_registers(sql);
        match self.shared.parser.parse(registers_aliased.as_deref().unwrap_or(sql)) {
            Ok(statements) => Ok(statements
                .into_iter()
                .map(|s| {
                    let s = rewrite_catalog_queries(s);
                    let statement = classify(&s);
                    prepared(s.to_string(), Some(s), statement)
                })
                .collect()),
            Err(e) => {
                let text = sql.trim().trim_end_matches(';').trim().to_string();
                if let Some((ast, statement)) = self.reparse(&text) {
                    return Ok(vec![prepared(text, Some(ast), statement)]);
                }
                // sqlparser does not know every session statement clients send
                // (SET SESSION CHARACTERISTICS …); those are handled from their text.
                match classify_unparsed(&text) {
                    Some(statement) if !text.contains(';') => Ok(vec![prepared(text, None, statement)]),
                    _ => Err(error(SYNTAX_ERROR, format!("syntax error: {e}"))),
                }
            }
        }
    }

    /// Statements sqlparser 0.62 lacks that are another's words: `MOVE …` is `FETCH …` whose
    /// rows are skipped, `ALTER VIEW a RENAME TO b` is the `ALTER TABLE` form. The rest of the
    /// text is parsed as that statement, so only the expected shape gets through.
    fn reparse(&self, text: &str) -> Option<(Statement, Classified)> {
        let mut words = text.splitn(3, char::is_whitespace);
        let (first, second) =
            (words.next()?.to_ascii_uppercase(), words.next().unwrap_or_default().to_ascii_uppercase());
        let (as_sql, kind, tag) = match (first.as_str(), second.as_str()) {
            ("MOVE", _) => (format!("FETCH {}", &text[4..]), Kind::Fetch { moves: true }, "MOVE"),
            ("ALTER", "VIEW") => (format!("ALTER TABLE {}", words.next()?), Kind::Rename, "ALTER VIEW"),
            _ => return None,
        };
        let mut statements = self.shared.parser.parse(&as_sql).ok()?;
        let statement = statements.pop().filter(|_| statements.is_empty())?;
        let classified = classify(&statement);
        let expected = matches!(
            (&kind, &classified.kind),
            (Kind::Fetch { .. }, Kind::Fetch { .. }) | (Kind::Rename, Kind::Rename)
        );
        expected.then(|| (statement, Classified { kind, tag: tag.to_string(), ..classified }))
    }

    fn session(&self) -> PgWireResult<&Session> {
        self.session
            .get()
            .ok_or_else(|| errors::fatal(errors::PROTOCOL_VIOLATION, "statement before authentication finished"))
    }

    /// Fills in parameter types and the result schema (for Describe).
    async fn describe(&self, prepared: &mut Prepared) -> PgWireResult<()> {
        let session = self.session()?;
        // Authorized at Parse as well as at execution: a driver that gets an error at Execute of
        // a COPY FROM it already prepared closes the connection (tokio-postgres does).
        session.authorize(&prepared.statement)?;
        match &prepared.statement.kind {
            Kind::DataFusion => {
                let plan = plan(session, datafusion_statement(prepared)?, &session.limits()).await?;
                prepared.param_types = parameter_types(&plan)?;
                if returns_rows(&plan) {
                    prepared.schema = Some(with_names(plan.schema().as_arrow(), prepared.output_names.as_deref()));
                }
            }
            Kind::EventsInsert => {
                let Some(Statement::Insert(insert)) = &prepared.ast else { return Ok(()) };
                if let Some(source) = &insert.source {
                    let query = DfStatement::Statement(Box::new(Statement::Query(deep(|| source.clone()))));
                    let plan = plan(session, query, &session.limits()).await?;
                    prepared.param_types = parameter_types(&plan)?;
                    // `VALUES ($1, $2)`: a parameter takes the type of the column it fills.
                    let targets = insert_column_types(&self.shared.events, insert).await;
                    for (n, data_type) in targets {
                        if let Some(slot) = prepared.param_types.get_mut(n - 1) {
                            slot.get_or_insert(data_type);
                        }
                    }
                }
            }
            Kind::Show(name) => prepared.schema = Some(show_schema(name)),
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.split(sql)?;
        if statements.len() > 1 {
            return Err(error(SYNTAX_ERROR, "cannot insert multiple commands into a prepared statement"));
        }
        let Some(mut prepared) = statements.pop() else { return Ok(None) };
        self.describe(&mut prepared).await?;
        Ok(Some(prepared))
    }

    /// A parameter whose type nothing determines is text, as PostgreSQL resolves `unknown`.
    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        prepared.param_types.iter().map(|t| t.as_ref().map(into_pg_type).unwrap_or(Ok(Type::TEXT))).collect()
    }

    fn get_result_schema(&self, prepared: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match &prepared.schema {
            Some(schema) => arrow_schema_to_pg_fields(schema, format.unwrap_or(&Format::UnifiedText), None),
            None => Ok(vec![]),
        }
    }
}

/// The statement as DataFusion's planner takes it.
fn datafusion_statement(prepared: &Prepared) -> PgWireResult<DfStatement> {
    match &prepared.ast {
        Some(ast) => Ok(DfStatement::Statement(Box::new(deep(|| ast.clone())))),
        None => Err(error(SYNTAX_ERROR, format!("cannot plan '{}'", prepared.sql))),
    }
}

/// `CREATE TEMPORARY TABLE` as a plain CREATE TABLE (DataFusion has no temporary tables) and
/// the name to drop when the session ends. The table is not saved to the data location;
/// unlike PostgreSQL's, other sessions can see it while it lives (docs/clients.md).
fn without_temporary(statement: DfStatement) -> (DfStatement, Option<String>) {
    if let DfStatement::Statement(inner) = &statement {
        if let Statement::CreateTable(create) = inner.as_ref() {
            if create.temporary {
                let mut create = create.clone();
                create.temporary = false;
                let name = create.name.to_string();
                return (DfStatement::Statement(Box::new(Statement::CreateTable(create))), Some(name));
            }
        }
    }
    (statement, None)
}

/// Plans a statement under the limits of a statement: a cancel or the deadline stops the wait
/// for the planner. At Parse/Describe as well as at Execute: PostgreSQL's `statement_timeout`
/// runs from the first message of an extended query.
pub(crate) async fn plan(
    session: &Session,
    statement: DfStatement,
    limits: &StatementLimits,
) -> PgWireResult<LogicalPlan> {
    let state = session.ctx.state();
    limits.run_blocking(async move { state.statement_to_plan(statement).await.map_err(from_datafusion) }).await
}

/// A result schema under PostgreSQL's column names, when they are known for every column.
pub(crate) fn with_names(schema: &Schema, names: Option<&[String]>) -> SchemaRef {
    match names {
        Some(names) if names.len() == schema.fields().len() => Arc::new(Schema::new_with_metadata(
            schema.fields().iter().zip(names).map(|(f, n)| f.as_ref().clone().with_name(n)).collect::<Vec<_>>(),
            schema.metadata().clone(),
        )),
        _ => Arc::new(schema.clone()),
    }
}

fn returns_rows(plan: &LogicalPlan) -> bool {
    !matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Statement(_))
        && !plan.schema().fields().is_empty()
}

/// `$1 … $n` in order, with the types DataFusion inferred, or else the types their use
/// gives them, as PostgreSQL infers them: `$1::text[]` is a text array, and so is `$1` in
/// `relkind = ANY($1)` (ADBC's table listing), an array of what it is compared with.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types().map_err(from_datafusion)?;
    let from_use = parameter_types_from_use(plan).map_err(from_datafusion)?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .map(|(name, t)| {
            let t = t.or_else(|| from_use.get(&name).cloned());
            (name, t)
        })
        .filter_map(|(name, t)| name.trim_start_matches('$').parse::<usize>().ok().map(|n| (n, t)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let count = numbered.last().map(|(n, _)| *n).unwrap_or(0);
    let mut out = vec![None; count];
    for (n, t) in numbered {
        out[n - 1] = t;
    }
    Ok(out)
}

/// Types of untyped placeholders from where they are used: cast to a type, or the array of
/// an `= ANY(…)` (planned as `array_has(array, value)`).
fn parameter_types_from_use(plan: &LogicalPlan) -> datafusion::error::Result<HashMap<String, DataType>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::expr::{Cast, Placeholder, ScalarFunction};
    use datafusion::logical_expr::ExprSchemable;
    let mut found = HashMap::new();
    plan.apply_with_subqueries(|node| {
        let mut schema = datafusion::common::DFSchema::empty();
        for input in node.inputs() {
            schema.merge(input.schema());
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                match e {
                    Expr::Cast(Cast { expr, field }) => {
                        if let Expr::Placeholder(Placeholder { id, field: None }) = expr.as_ref() {
                            found.entry(id.clone()).or_insert_with(|| field.data_type().clone());
                        }
                    }
                    Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "array_has" => {
                        if let [Expr::Placeholder(Placeholder { id, field: None }), value] = &args[..] {
                            if let Ok(item) = value.get_type(&schema) {
                                found.entry(id.clone()).or_insert_with(|| DataType::new_list(item, true));
                            }
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(found)
}

/// Decodes a portal's parameters with the types the statement was described with.
pub fn portal_parameters(portal: &Portal<Prepared>) -> PgWireResult<Option<ParamValues>> {
    let prepared = &portal.statement.statement;
    if portal.parameter_len() == 0 {
        return Ok(None);
    }
    let inferred: Vec<Option<&DataType>> = prepared.param_types.iter().map(|t| t.as_ref()).collect();
    let mut params = arrow_pg::datatypes::df::deserialize_parameters(portal, &inferred)?;
    // pgwire's array reader keeps the blanks around elements (`{"p", "f"}` gives " f", which
    // ADBC's table listing sends): text arrays in text format are read here as PostgreSQL
    // reads them.
    if let ParamValues::List(values) = &mut params {
        for (i, value) in values.iter_mut().enumerate() {
            let declared = portal.statement.parameter_types.get(i).cloned().flatten();
            let is_text_list = match declared {
                Some(declared) => declared == Type::TEXT_ARRAY || declared == Type::VARCHAR_ARRAY,
                None => matches!(
                    inferred.get(i),
                    Some(Some(DataType::List(item))) if matches!(item.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
                ),
            };
            let raw = portal.parameters.get(i).and_then(|p| p.as_ref());
            if let (true, true, Some(raw)) = (is_text_list, portal.parameter_format.is_text(i), raw) {
                let items = std::str::from_utf8(raw).ok().and_then(text_array_items).ok_or_else(|| {
                    error("22P02", format!("malformed array literal: \"{}\"", String::from_utf8_lossy(raw)))
                })?;
                let items: Vec<ScalarValue> = items.into_iter().map(ScalarValue::Utf8).collect();
                value.value = ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Utf8));
            }
        }
    }
    Ok(Some(params))
}

/// The items of a one-dimensional PostgreSQL array literal (`{a, "b c", NULL}`): blanks
/// around items ignored, double quotes and backslashes as in PostgreSQL's `array_in`, an
/// unquoted NULL is NULL. `None` when it is not such a literal.
fn text_array_items(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    if inner.trim().is_empty() {
        return Some(items);
    }
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        let mut quoted = false;
        let mut unquoted = String::new();
        if chars.next_if_eq(&'"').is_some() {
            quoted = true;
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                match c {
                    '\\' => unquoted.push(chars.next()?),
                    '{' | '}' | '"' => return None,
                    c => unquoted.push(c),
                }
            }
            item = unquoted.trim_end().to_string();
            if item.is_empty() {
                return None;
            }
        }
        items.push((quoted || !item.eq_ignore_ascii_case("NULL")).then_some(item));
        match chars.next() {
            None => return Some(items),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

fn show_schema(name: &str) -> SchemaRef {
    let column = if name.eq_ignore_ascii_case("all") {
        return Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, true),
        ]));
    } else {
        name.to_ascii_lowercase().replace(' ', "_")
    };
    let column = if column == "transaction_isolation_level" { "transaction_isolation".to_string() } else { column };
    Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, true)]))
}

/// `SET [SESSION|LOCAL] name {TO|=} value`, `SET TIME ZONE value`; `None` for forms that
/// set nothing Northstar keeps (`SET SESSION CHARACTERISTICS AS TRANSACTION …`).
fn parse_set(sql: &str) -> PgWireResult<Option<(String, String)>> {
    let body = sql.trim().trim_end_matches(';')[3..].trim();
    let upper = body.to_ascii_uppercase();
    let body = if upper.starts_with("SESSION ")
        && !upper.starts_with("SESSION CHARACTERISTICS")
        && !upper.starts_with("SESSION AUTHORIZATION")
    {
        body[8..].trim()
    } else if upper.starts_with("LOCAL ") {
        body[6..].trim()
    } else {
        body
    };
    let upper = body.to_ascii_uppercase();
    if upper.starts_with("SESSION CHARACTERISTICS") || upper.starts_with("TRANSACTION") {
        return Ok(None);
    }
    if let Some(zone) = upper.strip_prefix("TIME ZONE").map(|_| body[9..].trim()) {
        return Ok(Some(("TimeZone".into(), zone.trim_matches('\'').to_string())));
    }
    let split = body.find('=').map(|i| (i, 1)).or_else(|| upper.find(" TO ").map(|i| (i, 4)));
    let Some((at, len)) = split else {
        return Err(error(SYNTAX_ERROR, format!("syntax error in '{sql}': expected SET name TO value")));
    };
    let name = body[..at].trim().trim_matches('"').to_string();
    let value = body[at + len..].trim();
    // A list (`SET search_path = a, b`) keeps its text; quotes around single values go.
    let value = if value.starts_with('\'')
        && value.ends_with('\'')
        && value.len() >= 2
        && !value[1..value.len() - 1].contains('\'')
    {
        value[1..value.len() - 1].to_string()
    } else {
        value.to_string()
    };
    Ok(Some((name, value)))
}

impl Session {
    /// Runs one statement, after the one authorization check every statement passes
    /// (whichever protocol it came by). A `COPY … FROM STDIN` leaves its state in `copy_in`
    /// for the CopyData that follows.
    pub async fn execute<C>(
        &self,
        client: &mut C,
        prepared: &Prepared,
        params: Option<ParamValues>,
        format: &Format,
        copy_in: &PendingCopy,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.authorize(&prepared.statement)?;
        let ast =
            || prepared.ast.as_ref().ok_or_else(|| error(SYNTAX_ERROR, format!("cannot parse '{}'", prepared.sql)));
        match &prepared.statement.kind {
            Kind::Set => self.set(client, prepared).await,
            Kind::Reset(name) => self.reset(client, name.as_deref()).await,
            Kind::Show(name) => self.show(name, prepared, format).await,
            Kind::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Kind::Commit => {
                self.end_transaction().await;
                Ok(Response::TransactionEnd(Tag::new("COMMIT")))
            }
            Kind::Rollback => {
                self.end_transaction().await;
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Declare => match ast()? {
                Statement::Declare { stmts } if stmts.len() == 1 => {
                    let in_transaction = client.transaction_status() != TransactionStatus::Idle;
                    self.declare(&stmts[0], in_transaction, params, prepared.output_names.as_deref()).await
                }
                other => Err(error(FEATURE_NOT_SUPPORTED, format!("only one cursor per DECLARE: {other}"))),
            },
            Kind::Fetch { moves } => match ast()? {
                Statement::Fetch { name, direction, .. } => {
                    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                    self.fetch(name, direction, *moves, format, options).await
                }
                other => Err(error(SYNTAX_ERROR, format!("not a FETCH: {other}"))),
            },
            Kind::Close => match ast()? {
                Statement::Close { cursor } => self.close(cursor).await,
                other => Err(error(SYNTAX_ERROR, format!("not a CLOSE: {other}"))),
            },
            Kind::Rename => match ast()? {
                Statement::AlterTable(alter) => {
                    self.rename_relation(alter).await?;
                    Ok(Response::Execution(Tag::new(&prepared.statement.tag)))
                }
                other => Err(error(SYNTAX_ERROR, format!("not a RENAME: {other}"))),
            },
            Kind::NoOp => Ok(Response::Execution(Tag::new(&prepared.statement.tag))),
            Kind::EventsInsert => match ast()? {
                Statement::Insert(insert) => self.insert_events(insert, params).await,
                other => Err(error(SYNTAX_ERROR, format!("not an INSERT: {other}"))),
            },
            Kind::CopyFrom => {
                let (response, copy) = self.copy_in_start(ast()?).await?;
                *copy_in.lock().await = Some(copy);
                Ok(response)
            }
            Kind::CopyTo => self.copy_out(client, ast()?).await,
            Kind::CopyFile => Err(refuse_server_file()),
            Kind::DataFusion => self.run_datafusion(client, prepared, params, format).await,
        }
    }

    async fn set<C>(&self, client: &mut C, prepared: &Prepared) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some((name, value)) = parse_set(&prepared.sql)? {
            crate::auth::authorize_setting(&name)?;
            if name.to_ascii_lowercase().starts_with("datafusion.") {
                self.ctx.sql(&prepared.sql).await.map_err(from_datafusion)?;
            } else {
                let reported = self.settings.set(&name, &value)?;
                self.apply_time_zone()?;
                if let Some((name, value)) = reported {
                    client.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name, value))).await?;
                }
            }
        }
        Ok(Response::Execution(Tag::new("SET")))
    }

    /// `RESET name` / `RESET ALL` (`None`): back to the values the session started with.
    async fn reset<C>(&self, client: &mut C, name: Option<&str>) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let all = name.is_none();
        let names: Vec<String> = match name {
            None => self.startup.all().into_iter().map(|(n, _)| n).collect(),
            Some(name) => vec![name.to_string()],
        };
        for name in names {
            match self.settings.reset(&name, &self.startup) {
                Ok(Some((name, value))) => {
                    client.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name, value))).await?
                }
                Ok(None) => {}
                // RESET ALL passes over the parameters that cannot be set.
                Err(_) if all => {}
                Err(e) => return Err(e),
            }
        }
        self.apply_time_zone()?;
        Ok(Response::Execution(Tag::new("RESET")))
    }

    async fn show(&self, name: &str, prepared: &Prepared, format: &Format) -> PgWireResult<Response> {
        if name.to_ascii_lowercase().starts_with("datafusion.") {
            let df = self.ctx.sql(&prepared.sql).await.map_err(from_datafusion)?;
            return self.stream_with(self.limits(), df, format, None, None).await;
        }
        let rows: Vec<Vec<Option<String>>> = if name.eq_ignore_ascii_case("all") {
            self.settings.all().into_iter().map(|(n, v)| vec![Some(n), Some(v)]).collect()
        } else {
            vec![vec![Some(self.settings.show(name)?)]]
        };
        Ok(Response::Query(text_rows(&show_schema(name), rows, format)?))
    }

    async fn run_datafusion<C>(
        &self,
        client: &mut C,
        prepared: &Prepared,
        params: Option<ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.shared.events.refresh(&self.shared.template).await.map_err(internal)?;
        if let Some(ast) = &prepared.ast {
            self.refuse_prepared_table_change(ast)?;
            if let Some(changed) = self.change_table_rows(ast, params.as_ref()).await? {
                self.shared.events.persist_catalog_change(&self.ctx, ast).await.map_err(internal)?;
                self.remember_prepared(&prepared.statement);
                return Ok(Response::Execution(Tag::new(&prepared.statement.tag).with_rows(changed)));
            }
        }
        let limits = self.limits();
        let (statement, temporary) = without_temporary(datafusion_statement(prepared)?);
        let mut plan = plan(self, statement, &limits).await?;
        if let Some(params) = &params {
            plan = plan.replace_params_with_values(params).map_err(from_datafusion)?;
        }
        let rows = returns_rows(&plan);
        let dml = matches!(plan, LogicalPlan::Dml(_));
        let df = limits.run(async { self.ctx.execute_logical_plan(plan).await.map_err(from_datafusion) }).await?;
        self.remember_prepared(&prepared.statement);
        if rows {
            let format_options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            self.stream_with(limits, df, format, Some(format_options), prepared.output_names.as_deref()).await
        } else {
            let batches = limits.run(async { df.collect().await.map_err(from_datafusion) }).await?;
            let mut created = None;
            if let Some(ast) = &prepared.ast {
                created = self.relax_created_table(ast).await?;
                self.shared.events.persist_catalog_change(&self.ctx, ast).await.map_err(internal)?;
            }
            if let Some(name) = temporary {
                self.remember_temporary_table(name).await;
            }
            if let Some(rows) = created {
                // PostgreSQL answers CREATE TABLE … AS with the rows it selected.
                return Ok(Response::Execution(Tag::new("SELECT").with_rows(rows)));
            }
            let tag = Tag::new(&prepared.statement.tag);
            Ok(Response::Execution(if dml { with_row_count(tag, &prepared.statement.tag, &batches) } else { tag }))
        }
    }

    /// Streams a result to the client, batch by batch, under the statement's limits.
    async fn stream_with(
        &self,
        limits: StatementLimits,
        df: datafusion::dataframe::DataFrame,
        format: &Format,
        options: Option<Arc<FormatOptions>>,
        names: Option<&[String]>,
    ) -> PgWireResult<Response> {
        let schema = with_names(df.schema().as_arrow(), names);
        let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, options)?);
        let batches = crate::result_stream::start_stream(&limits, df).await?.map(|b| b.map_err(from_datafusion));
        let rows = encoded_ahead(fields.clone(), limits.stream(batches));
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
}

/// DataFusion's DML answers with one `count` row; PostgreSQL's tag carries it (`INSERT 0 n`).
fn with_row_count(tag: Tag, name: &str, batches: &[RecordBatch]) -> Tag {
    use datafusion::arrow::array::{Array, UInt64Array};
    let rows: u64 = batches
        .iter()
        .filter_map(|b| b.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned()))
        .map(|counts| counts.iter().flatten().sum::<u64>())
        .sum();
    let tag = if name == "INSERT" { tag.with_oid(0) } else { tag };
    tag.with_rows(rows as usize)
}

/// A small all-text result (SHOW).
fn text_rows(schema: &SchemaRef, rows: Vec<Vec<Option<String>>>, format: &Format) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| FieldInfo::new(f.name().clone(), None, None, Type::TEXT, format.format_for(i)))
            .collect::<Vec<_>>(),
    );
    let encoded = rows
        .into_iter()
        .map(|row| {
            let mut encoder = DataRowEncoder::new(fields.clone());
            for value in row {
                encoder.encode_field(&value)?;
            }
            Ok(encoder.take_row())
        })
        .collect::<Vec<_>>();
    Ok(QueryResponse::new(fields, stream::iter(encoded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_array_parameters_are_read_as_postgres_reads_them() {
        let some = |v: &[Option<&str>]| Some(v.iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>());
        assert_eq!(text_array_items(r#"{"p", "f", t}"#), some(&[Some("p"), Some("f"), Some("t")]));
        assert_eq!(
            text_array_items(r#"{ a b , "c,\"d", NULL, "NULL", ""}"#),
            some(&[Some("a b"), Some("c,\"d"), None, Some("NULL"), Some("")])
        );
        assert_eq!(text_array_items("{}"), some(&[]));
        for bad in ["p,f", "{a,,b}", "{\"a\" b}", "{a", "{{a}}"] {
            assert_eq!(text_array_items(bad), None, "{bad}");
        }
    }

    #[test]
    fn set_forms_clients_send() {
        assert_eq!(parse_set("SET extra_float_digits = 3").unwrap(), Some(("extra_float_digits".into(), "3".into())));
        assert_eq!(
            parse_set("SET application_name TO 'PostgreSQL JDBC Driver'").unwrap(),
            Some(("application_name".into(), "PostgreSQL JDBC Driver".into()))
        );
        assert_eq!(
            parse_set("SET TIME ZONE 'Europe/Paris'").unwrap(),
            Some(("TimeZone".into(), "Europe/Paris".into()))
        );
        assert_eq!(
            parse_set("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED").unwrap(),
            None
        );
        assert_eq!(
            parse_set("SET search_path = public, pg_catalog").unwrap(),
            Some(("search_path".into(), "public, pg_catalog".into()))
        );
        assert!(parse_set("SET nonsense").is_err());
    }
}
