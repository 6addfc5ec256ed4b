//! Statements: splitting and classifying them, the simple and extended query protocols, and
//! running them on the connection's DataFusion session under its limits.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use crate::auth::Role;
use crate::connection::{Connection, Session, Shared};
use crate::errors::{self, error, from_datafusion, read_only, SYNTAX_ERROR};
use crate::limits::StatementLimits;

/// What a statement is, told from its leading keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    /// Changes the catalog or data through DataFusion (CREATE, DROP …): writers only.
    Ddl,
    Set,
    Reset,
    Show,
    Begin,
    Commit,
    Rollback,
    Insert,
    Copy,
    /// Accepted and answered with this tag, with no effect (DISCARD ALL, DEALLOCATE …).
    NoOp(&'static str),
}

pub fn classify(sql: &str) -> Kind {
    let mut words = sql.split(|c: char| c.is_whitespace() || c == '(' || c == ';').filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    match first.as_str() {
        "SET" => Kind::Set,
        "RESET" => Kind::Reset,
        "SHOW" => Kind::Show,
        "BEGIN" | "START" => Kind::Begin,
        "COMMIT" | "END" => Kind::Commit,
        "ROLLBACK" | "ABORT" => Kind::Rollback,
        "INSERT" => Kind::Insert,
        "COPY" => Kind::Copy,
        "DISCARD" => Kind::NoOp("DISCARD ALL"),
        "DEALLOCATE" => Kind::NoOp("DEALLOCATE"),
        "SAVEPOINT" => Kind::NoOp("SAVEPOINT"),
        "RELEASE" => Kind::NoOp("RELEASE"),
        "LISTEN" => Kind::NoOp("LISTEN"),
        "UNLISTEN" => Kind::NoOp("UNLISTEN"),
        "CREATE" | "DROP" | "ALTER" | "DELETE" | "UPDATE" | "TRUNCATE" | "MERGE" | "GRANT" | "REVOKE" => Kind::Ddl,
        _ => Kind::Query,
    }
}

/// A parsed statement, as prepared statements and portals keep it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    /// The statement after datafusion-pg-catalog's client-compatibility rewrites; `None` for
    /// session statements sqlparser does not know (they are handled from `sql`).
    pub ast: Option<Statement>,
    pub kind: Kind,
    /// Types of `$1 … $n` as DataFusion inferred them.
    pub param_types: Vec<Option<DataType>>,
    /// Result columns, when the statement returns rows.
    pub schema: Option<SchemaRef>,
}

pub struct StatementParser {
    pub shared: Arc<Shared>,
    pub session: Arc<OnceLock<Session>>,
}

impl StatementParser {
    /// Splits a query string into statements.
    pub fn split(&self, sql: &str) -> PgWireResult<Vec<Prepared>> {
        let prepared = |sql: String, ast: Option<Statement>| Prepared {
            kind: classify(&sql),
            sql,
            ast,
            param_types: vec![],
            schema: None,
        };
        match self.shared.parser.parse(sql) {
            Ok(statements) => Ok(statements
                .into_iter()
                .map(|s| {
                    let s = rewrite_missing_catalog_columns(rewrite_generate_subscripts(s));
                    prepared(s.to_string(), Some(s))
                })
                .collect()),
            Err(e) => {
                // sqlparser does not know every session statement clients send
                // (SET SESSION CHARACTERISTICS …); those are handled from their text.
                let text = sql.trim().trim_end_matches(';').trim().to_string();
                match classify(&text) {
                    Kind::Set
                    | Kind::Reset
                    | Kind::Show
                    | Kind::Begin
                    | Kind::Commit
                    | Kind::Rollback
                    | Kind::NoOp(_)
                        if !text.contains(';') =>
                    {
                        Ok(vec![prepared(text, None)])
                    }
                    _ => Err(error(SYNTAX_ERROR, format!("syntax error: {e}"))),
                }
            }
        }
    }

    fn session(&self) -> PgWireResult<&Session> {
        self.session
            .get()
            .ok_or_else(|| errors::fatal(errors::PROTOCOL_VIOLATION, "statement before authentication finished"))
    }

    /// Fills in parameter types and the result schema (for Describe).
    async fn describe(&self, prepared: &mut Prepared) -> PgWireResult<()> {
        let session = self.session()?;
        // Refused at Parse already, so a client's prepare fails cleanly (PostgreSQL refuses at
        // execution; the SQLSTATE is the same).
        if session.role == Role::Reader && is_write(prepared) {
            return Err(read_only(&command_tag(&prepared.sql)));
        }
        match prepared.kind {
            Kind::Query | Kind::Ddl => {
                let plan = plan(session, prepared).await?;
                prepared.param_types = parameter_types(&plan)?;
                if returns_rows(&plan) {
                    prepared.schema = Some(Arc::new(plan.schema().as_arrow().clone()));
                }
            }
            Kind::Insert => {
                let source = match &prepared.ast {
                    Some(Statement::Insert(insert)) => insert.source.clone(),
                    _ => None,
                };
                if let Some(source) = source {
                    let plan = session
                        .ctx
                        .state()
                        .statement_to_plan(DfStatement::Statement(Box::new(Statement::Query(source.clone()))))
                        .await
                        .map_err(from_datafusion)?;
                    prepared.param_types = parameter_types(&plan)?;
                    // `VALUES ($1, $2)`: a parameter takes the type of the column it fills.
                    let targets = crate::write::insert_column_types(&self.shared.events, prepared).await;
                    for (n, data_type) in targets {
                        if let Some(slot) = prepared.param_types.get_mut(n - 1) {
                            slot.get_or_insert(data_type);
                        }
                    }
                }
            }
            Kind::Show => prepared.schema = Some(show_schema(&show_target(&prepared.sql))),
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

/// SQLAlchemy's reflection selects `generate_subscripts(indkey, 1)` next to
/// `unnest(indkey)`. DataFusion has no set-returning functions in the select list but zips
/// `unnest`s the same way, so it becomes `unnest(generate_series(1, cardinality(arr)))`
/// (one-dimensional arrays). datafusion-pg-catalog stores the int2vector/oidvector columns
/// (`indkey`, `indclass`, `indoption`) as space-separated text; they are split into arrays.
fn rewrite_generate_subscripts(mut statement: Statement) -> Statement {
    use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr, FunctionArguments};
    let parse = |sql: &str| {
        datafusion::sql::sqlparser::parser::Parser::new(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .ok()
    };
    let _ = visit_expressions_mut(&mut statement, |expr| {
        let call = match &*expr {
            Expr::Function(f) => match &f.args {
                FunctionArguments::List(list) => {
                    list.args.first().map(|a| (f.name.to_string().to_ascii_lowercase(), a.to_string()))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((name, first)) = call {
            let vector = ["indkey", "indclass", "indoption", "indcollation"]
                .iter()
                .any(|c| first.to_ascii_lowercase().ends_with(c));
            let array = if vector { format!("string_to_array(CAST({first} AS TEXT), ' ')") } else { first.clone() };
            let replacement = match name.as_str() {
                "generate_subscripts" | "pg_catalog.generate_subscripts" => {
                    Some(format!("unnest(generate_series(1, cardinality({array})))"))
                }
                "unnest" if vector => Some(format!("unnest({array})")),
                _ => None,
            };
            if let Some(parsed) = replacement.as_deref().and_then(parse) {
                *expr = parsed;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    statement
}

/// datafusion-pg-catalog's `pg_class` has no `reloptions` (storage parameters; Northstar has
/// none), which SQLAlchemy's index reflection selects: a selected `….reloptions` becomes a NULL
/// column of that name.
fn rewrite_missing_catalog_columns(mut statement: Statement) -> Statement {
    use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, TableFactor};
    fn query(q: &mut Query) {
        set_expr(&mut q.body);
    }
    fn set_expr(body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for item in select.projection.iter_mut() {
                    if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item {
                        if parts.last().is_some_and(|p| p.value.eq_ignore_ascii_case("reloptions")) {
                            *item = SelectItem::ExprWithAlias {
                                expr: Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into()),
                                alias: Ident::new("reloptions"),
                            };
                        }
                    }
                }
                for table in select.from.iter_mut() {
                    for factor in
                        std::iter::once(&mut table.relation).chain(table.joins.iter_mut().map(|j| &mut j.relation))
                    {
                        if let TableFactor::Derived { subquery, .. } = factor {
                            query(subquery);
                        }
                    }
                }
            }
            SetExpr::Query(q) => query(q),
            SetExpr::SetOperation { left, right, .. } => {
                set_expr(left);
                set_expr(right);
            }
            _ => {}
        }
    }
    if let Statement::Query(q) = &mut statement {
        query(q);
    }
    statement
}

async fn plan(session: &Session, prepared: &Prepared) -> PgWireResult<LogicalPlan> {
    let statement = match &prepared.ast {
        Some(ast) => DfStatement::Statement(Box::new(ast.clone())),
        None => return Err(error(SYNTAX_ERROR, format!("cannot plan '{}'", prepared.sql))),
    };
    session.ctx.state().statement_to_plan(statement).await.map_err(from_datafusion)
}

/// Statements a read-only user may not run, known before planning.
fn is_write(prepared: &Prepared) -> bool {
    match prepared.kind {
        Kind::Ddl | Kind::Insert => true,
        Kind::Copy => matches!(&prepared.ast, Some(Statement::Copy { to: false, .. })),
        _ => false,
    }
}

fn returns_rows(plan: &LogicalPlan) -> bool {
    !matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Statement(_))
        && !plan.schema().fields().is_empty()
}

/// `$1 … $n` in order, with the types DataFusion inferred.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types().map_err(from_datafusion)?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
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

/// Decodes a portal's parameters with the types the statement was described with.
pub fn portal_parameters(portal: &Portal<Prepared>) -> PgWireResult<Option<ParamValues>> {
    let prepared = &portal.statement.statement;
    if portal.parameter_len() == 0 {
        return Ok(None);
    }
    let inferred: Vec<Option<&DataType>> = prepared.param_types.iter().map(|t| t.as_ref()).collect();
    arrow_pg::datatypes::df::deserialize_parameters(portal, &inferred).map(Some)
}

/// The name after SHOW, normalised (`SHOW TRANSACTION ISOLATION LEVEL` → its parameter).
fn show_target(sql: &str) -> String {
    let rest = sql.trim().trim_end_matches(';')[4..].trim();
    rest.trim_matches('"').to_string()
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

fn command_tag(sql: &str) -> String {
    let words: Vec<String> = sql.split_whitespace().take(6).map(|w| w.to_ascii_uppercase()).collect();
    match words.first().map(String::as_str) {
        Some("CREATE" | "DROP" | "ALTER") => {
            let object = words[1..]
                .iter()
                .find(|w| !matches!(w.as_str(), "OR" | "REPLACE" | "EXTERNAL" | "TEMP" | "TEMPORARY" | "UNLOGGED"))
                .map(String::as_str)
                .unwrap_or("");
            format!("{} {}", words[0], object)
        }
        Some(first) => first.to_string(),
        None => String::new(),
    }
}

impl Connection {
    fn limits(&self, session: &Session) -> StatementLimits {
        StatementLimits::start(self.cancel.clone(), session.settings.statement_timeout())
    }

    /// Runs one statement.
    pub async fn execute<C>(
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
        let session = self.session()?;
        match prepared.kind {
            Kind::Set => self.set(client, session, prepared).await,
            Kind::Reset => {
                let name = prepared.sql.trim()[5..].trim().trim_end_matches(';').trim();
                let fresh = crate::settings::Settings::new(
                    &session.user,
                    crate::catalog::DATABASE,
                    "",
                    session.role == Role::Reader,
                );
                let all = name.eq_ignore_ascii_case("all");
                let names: Vec<String> =
                    if all { fresh.all().into_iter().map(|(n, _)| n).collect() } else { vec![name.to_string()] };
                for name in names {
                    match session.settings.reset(&name, &fresh) {
                        Ok(Some((name, value))) => {
                            client
                                .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name, value)))
                                .await?
                        }
                        Ok(None) => {}
                        // RESET ALL passes over the parameters that cannot be set.
                        Err(_) if all => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Response::Execution(Tag::new("RESET")))
            }
            Kind::Show => self.show(session, prepared, format).await,
            Kind::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Kind::Commit => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Kind::Rollback => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Kind::NoOp(tag) => Ok(Response::Execution(Tag::new(tag))),
            Kind::Insert if crate::write::is_events_insert(prepared) => self.insert(session, prepared, params).await,
            Kind::Insert => self.run_datafusion(client, session, prepared, params, format).await,
            Kind::Copy => self.copy(session, prepared).await,
            Kind::Query | Kind::Ddl => self.run_datafusion(client, session, prepared, params, format).await,
        }
    }

    async fn set<C>(&self, client: &mut C, session: &Session, prepared: &Prepared) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some((name, value)) = parse_set(&prepared.sql)? {
            if name.to_ascii_lowercase().starts_with("datafusion.") {
                session.ctx.sql(&prepared.sql).await.map_err(from_datafusion)?;
            } else if let Some((name, value)) = session.settings.set(&name, &value)? {
                client.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name, value))).await?;
            }
        }
        Ok(Response::Execution(Tag::new("SET")))
    }

    async fn show(&self, session: &Session, prepared: &Prepared, format: &Format) -> PgWireResult<Response> {
        let name = show_target(&prepared.sql);
        if name.to_ascii_lowercase().starts_with("datafusion.") {
            let df = session.ctx.sql(&prepared.sql).await.map_err(from_datafusion)?;
            return self.stream_dataframe(session, df, format).await;
        }
        let rows: Vec<Vec<Option<String>>> = if name.eq_ignore_ascii_case("all") {
            session.settings.all().into_iter().map(|(n, v)| vec![Some(n), Some(v)]).collect()
        } else {
            vec![vec![Some(session.settings.show(&name)?)]]
        };
        Ok(Response::Query(text_rows(&show_schema(&name), rows, format)?))
    }

    async fn run_datafusion<C>(
        &self,
        client: &mut C,
        session: &Session,
        prepared: &Prepared,
        params: Option<ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if matches!(prepared.kind, Kind::Ddl | Kind::Insert) && session.role == Role::Reader {
            return Err(read_only(&command_tag(&prepared.sql)));
        }
        self.shared
            .events
            .refresh(&self.shared.template)
            .await
            .map_err(|e| error(errors::INTERNAL_ERROR, e.to_string()))?;
        let limits = self.limits(session);
        let mut plan = limits.run(plan(session, prepared)).await?;
        if let Some(params) = &params {
            plan = plan.replace_params_with_values(params).map_err(from_datafusion)?;
        }
        if session.role == Role::Reader
            && matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_))
        {
            return Err(read_only(&command_tag(&prepared.sql)));
        }
        let rows = returns_rows(&plan);
        let df = limits.run(async { session.ctx.execute_logical_plan(plan).await.map_err(from_datafusion) }).await?;
        if rows {
            let format_options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            self.stream_with(limits, df, format, Some(format_options)).await
        } else {
            limits.run(async { df.collect().await.map_err(from_datafusion) }).await?;
            if let Some(ast) = &prepared.ast {
                self.shared
                    .events
                    .persist_view_change(ast)
                    .await
                    .map_err(|e| error(errors::INTERNAL_ERROR, e.to_string()))?;
            }
            Ok(Response::Execution(Tag::new(&command_tag(&prepared.sql))))
        }
    }

    async fn stream_dataframe(
        &self,
        session: &Session,
        df: datafusion::dataframe::DataFrame,
        format: &Format,
    ) -> PgWireResult<Response> {
        self.stream_with(self.limits(session), df, format, None).await
    }

    /// Streams a result to the client, batch by batch, under the statement's limits.
    async fn stream_with(
        &self,
        limits: StatementLimits,
        df: datafusion::dataframe::DataFrame,
        format: &Format,
        options: Option<Arc<FormatOptions>>,
    ) -> PgWireResult<Response> {
        let fields = Arc::new(arrow_schema_to_pg_fields(df.schema().as_arrow(), format, options)?);
        let batches = limits.run(async { df.execute_stream().await.map_err(from_datafusion) }).await?;
        let batches = batches.map(|b| b.map_err(from_datafusion));
        let encoded_fields = fields.clone();
        let rows = limits
            .stream(batches)
            .map(move |batch| -> Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send> {
                match batch {
                    Ok(batch) => encode_recordbatch(encoded_fields.clone(), batch),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            })
            .flat_map(stream::iter);
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
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

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.split(query)?;
        let mut responses = Vec::with_capacity(statements.len());
        for prepared in statements {
            match self.execute(client, &prepared, None, &Format::UnifiedText).await {
                Ok(response) => responses.push(response),
                Err(e) if responses.is_empty() => return Err(e),
                // Later statements of a multi-statement query: report and stop, as PostgreSQL does.
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let params = portal_parameters(portal)?;
        self.execute(client, &portal.statement.statement, params, &portal.result_column_format).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_by_leading_keywords() {
        assert_eq!(classify("select 1"), Kind::Query);
        assert_eq!(classify("  SET extra_float_digits = 3"), Kind::Set);
        assert_eq!(classify("start transaction"), Kind::Begin);
        assert_eq!(classify("COPY events FROM STDIN"), Kind::Copy);
        assert_eq!(classify("create view v as select 1"), Kind::Ddl);
        assert_eq!(classify("(select 1)"), Kind::Query);
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

    #[test]
    fn command_tags_name_the_object() {
        assert_eq!(command_tag("CREATE TABLE t AS SELECT 1"), "CREATE TABLE");
        assert_eq!(command_tag("create or replace view v as select 1"), "CREATE VIEW");
        assert_eq!(command_tag("DROP VIEW v"), "DROP VIEW");
    }
}
