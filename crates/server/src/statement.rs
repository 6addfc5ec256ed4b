//! What a statement is, decided once from its AST: how the server runs it ([`Kind`]), the
//! command tag PostgreSQL answers with, and whether it reads or writes ([`Access`]), which is
//! all authorization looks at. Pure: no session, no I/O.

use datafusion::sql::sqlparser::ast::{
    CopyTarget, Ident, ObjectName, ObjectType, Query, SetExpr, Statement, TableObject,
};

/// How the server runs a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Planned and run by DataFusion (queries, DDL, EXPLAIN, PREPARE/EXECUTE, DML on
    /// in-memory tables).
    DataFusion,
    /// `INSERT INTO events …`: one Delta commit.
    EventsInsert,
    Set,
    /// `RESET name`; `None` for `RESET ALL`.
    Reset(Option<String>),
    /// `SHOW name` (`SHOW ALL` too), the name as written.
    Show(String),
    Begin,
    Commit,
    Rollback,
    /// `COPY … FROM STDIN`.
    CopyFrom,
    /// `COPY … TO STDOUT`.
    CopyTo,
    /// `COPY` to or from a server file or program: refused.
    CopyFile,
    /// Accepted and answered with its tag, with no effect (DISCARD ALL, DEALLOCATE …).
    NoOp,
    /// `DECLARE name CURSOR … FOR query` (cursor.rs).
    Declare,
    /// `FETCH`, or `MOVE` (`moves`: rows skipped, not returned).
    Fetch {
        moves: bool,
    },
    /// `CLOSE name` / `CLOSE ALL`.
    Close,
    /// `ALTER VIEW a RENAME TO b`, or `ALTER TABLE a RENAME TO b` (rename.rs).
    Rename,
}

/// Whether a statement reads or writes. A reader may run only [`Access::Read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// `EXECUTE name`: whatever the statement `PREPARE name` defined does.
    OfPrepared(String),
    /// No role may run it (the reason): it would replace or drop `events` or a system
    /// catalog's object, which every client relies on.
    Forbidden(String),
}

/// A statement classified: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub kind: Kind,
    /// PostgreSQL's command tag without the row count (`SELECT`, `INSERT`, `CREATE VIEW` …).
    pub tag: String,
    pub access: Access,
    /// For `PREPARE name AS …`: the name and what the prepared statement does.
    pub defines: Option<(String, Access)>,
}

impl Classified {
    fn new(kind: Kind, tag: impl Into<String>, access: Access) -> Self {
        Classified { kind, tag: tag.into(), access, defines: None }
    }
}

/// The one Delta-backed table; other tables (CREATE TABLE … in memory) go to DataFusion.
pub fn is_events(name: &ObjectName) -> bool {
    name.0.last().map(|part| part.to_string().trim_matches('"').eq_ignore_ascii_case("events")).unwrap_or(false)
}

pub fn classify(statement: &Statement) -> Classified {
    use Access::{Read, Write};
    let datafusion = |tag: &str, access| Classified::new(Kind::DataFusion, tag, access);
    match statement {
        Statement::Query(query) => {
            let tag = query_tag(query);
            datafusion(tag, if query_writes(query) { Write } else { Read })
        }
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) if is_events(name) => Classified::new(Kind::EventsInsert, "INSERT", Write),
            _ => datafusion("INSERT", Write),
        },
        Statement::Update(_) => datafusion("UPDATE", Write),
        Statement::Delete(_) => datafusion("DELETE", Write),
        Statement::Merge(_) => datafusion("MERGE", Write),
        Statement::Explain { analyze, statement, .. } => {
            // EXPLAIN ANALYZE runs the statement; plain EXPLAIN only plans it.
            let inner = classify(statement);
            let access = if *analyze { inner.access } else { Read };
            datafusion("EXPLAIN", access)
        }
        Statement::Prepare { name, statement, .. } => {
            let inner = classify(statement);
            // A reader may not even prepare a write, so EXECUTE of one it prepared never writes.
            let mut prepare = datafusion("PREPARE", inner.access.clone());
            prepare.defines = Some((name.value.clone(), inner.access));
            prepare
        }
        Statement::Execute { name: Some(name), .. } => {
            datafusion("EXECUTE", Access::OfPrepared(name.to_string().trim_matches('"').to_string()))
        }
        Statement::Copy { to, target, .. } => match (to, target) {
            (true, CopyTarget::Stdout) => Classified::new(Kind::CopyTo, "COPY", Read),
            (false, CopyTarget::Stdin) => Classified::new(Kind::CopyFrom, "COPY", Write),
            _ => Classified::new(Kind::CopyFile, "COPY", Write),
        },
        Statement::Set(_) => Classified::new(Kind::Set, "SET", Read),
        Statement::Reset(reset) => {
            use datafusion::sql::sqlparser::ast::Reset;
            let name = match &reset.reset {
                Reset::ALL => None,
                Reset::ConfigurationParameter(name) => Some(name.to_string().trim_matches('"').to_string()),
            };
            Classified::new(Kind::Reset(name), "RESET", Read)
        }
        Statement::ShowVariable { variable } => {
            let name = variable.iter().map(|i| i.value.clone()).collect::<Vec<_>>().join(" ");
            Classified::new(Kind::Show(name), "SHOW", Read)
        }
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowObjects(_)
        | Statement::ShowStatus { .. }
        | Statement::ShowCollation { .. } => datafusion("SHOW", Read),
        // `DESCRIBE t`: the table's columns.
        Statement::ExplainTable { .. } => datafusion("DESCRIBE", Read),
        Statement::StartTransaction { .. } => Classified::new(Kind::Begin, "BEGIN", Read),
        Statement::Commit { .. } => Classified::new(Kind::Commit, "COMMIT", Read),
        Statement::Rollback { .. } => Classified::new(Kind::Rollback, "ROLLBACK", Read),
        Statement::Discard { object_type } => Classified::new(Kind::NoOp, format!("DISCARD {object_type}"), Read),
        Statement::Deallocate { .. } => Classified::new(Kind::NoOp, "DEALLOCATE", Read),
        Statement::Savepoint { .. } => Classified::new(Kind::NoOp, "SAVEPOINT", Read),
        Statement::ReleaseSavepoint { .. } => Classified::new(Kind::NoOp, "RELEASE", Read),
        Statement::LISTEN { .. } => Classified::new(Kind::NoOp, "LISTEN", Read),
        Statement::UNLISTEN { .. } => Classified::new(Kind::NoOp, "UNLISTEN", Read),
        Statement::CreateView(view) => datafusion(
            if view.materialized { "CREATE MATERIALIZED VIEW" } else { "CREATE VIEW" },
            guarded(Write, [&view.name]),
        ),
        Statement::CreateTable(table) => datafusion("CREATE TABLE", guarded(Write, [&table.name])),
        Statement::CreateSchema { schema_name, .. } => {
            let name = ObjectName::from(vec![Ident::new(schema_name.to_string())]);
            datafusion("CREATE SCHEMA", guarded_schemas(Write, [&name]))
        }
        Statement::CreateDatabase { .. } => datafusion("CREATE DATABASE", Write),
        Statement::CreateIndex(_) => datafusion("CREATE INDEX", Write),
        Statement::CreateFunction(_) => datafusion("CREATE FUNCTION", Write),
        Statement::Drop { object_type: ObjectType::Schema, names, .. } => {
            datafusion("DROP SCHEMA", guarded_schemas(Write, names))
        }
        Statement::Drop { object_type, names, .. } => datafusion(&format!("DROP {object_type}"), guarded(Write, names)),
        Statement::AlterTable(table) if renames(table) => {
            Classified::new(Kind::Rename, "ALTER TABLE", guarded(Write, [&table.name]))
        }
        Statement::AlterTable(table) => datafusion("ALTER TABLE", guarded(Write, [&table.name])),
        Statement::Declare { stmts } => {
            let writes = stmts.iter().any(|d| d.for_query.as_ref().is_some_and(|q| query_writes(q)));
            Classified::new(Kind::Declare, "DECLARE CURSOR", if writes { Write } else { Read })
        }
        Statement::Fetch { .. } => Classified::new(Kind::Fetch { moves: false }, "FETCH", Read),
        Statement::Close { .. } => Classified::new(Kind::Close, "CLOSE CURSOR", Read),
        Statement::AlterView { name, .. } => datafusion("ALTER VIEW", guarded(Write, [name])),
        Statement::Truncate(_) => datafusion("TRUNCATE TABLE", Write),
        Statement::Grant(_) => datafusion("GRANT", Write),
        Statement::Revoke(_) => datafusion("REVOKE", Write),
        // Anything else is DataFusion's to accept or refuse; unknown means it may write.
        other => {
            let tag = other.to_string().split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            datafusion(&tag, Write)
        }
    }
}

/// `ALTER TABLE a RENAME TO b` and nothing else.
fn renames(table: &datafusion::sql::sqlparser::ast::AlterTable) -> bool {
    use datafusion::sql::sqlparser::ast::AlterTableOperation;
    matches!(table.operations.as_slice(), [AlterTableOperation::RenameTable { .. }])
}

/// Schemas whose objects are the server's: the catalogs clients introspect.
const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

fn unquoted(part: &impl std::fmt::Display) -> String {
    part.to_string().trim_matches('"').to_ascii_lowercase()
}

/// `access`, or [`Access::Forbidden`] when a statement creating, replacing, altering or
/// dropping `names` would touch `events` (in the default schema) or a system catalog's object.
fn guarded<'a>(access: Access, names: impl IntoIterator<Item = &'a ObjectName>) -> Access {
    for name in names {
        let parts: Vec<String> = name.0.iter().map(unquoted).collect();
        let schema = parts.len().checked_sub(2).map(|i| parts[i].as_str());
        if let Some(schema) = schema.filter(|s| SYSTEM_SCHEMAS.contains(s)) {
            return Access::Forbidden(format!(
                "permission denied: {schema} belongs to the server and cannot be changed"
            ));
        }
        if is_events(name) && matches!(schema, None | Some("public")) {
            return Access::Forbidden(
                "permission denied: \"events\" is the event table; it cannot be replaced, altered or dropped \
                 (create a view under another name)"
                    .to_string(),
            );
        }
    }
    access
}

/// Like [`guarded`] for statements on schemas themselves.
fn guarded_schemas<'a>(access: Access, names: impl IntoIterator<Item = &'a ObjectName>) -> Access {
    for name in names {
        let schema = name.0.last().map(unquoted).unwrap_or_default();
        if SYSTEM_SCHEMAS.contains(&schema.as_str()) || schema == "public" {
            return Access::Forbidden(format!("permission denied: schema {schema} belongs to the server"));
        }
    }
    access
}

/// Session statements sqlparser cannot parse (`SET SESSION CHARACTERISTICS …`), told from
/// their first word; `None` for anything else, which is then a syntax error.
pub fn classify_unparsed(sql: &str) -> Option<Classified> {
    let first = sql.split(|c: char| c.is_whitespace() || c == ';').find(|w| !w.is_empty())?.to_ascii_uppercase();
    let rest = sql.trim()[first.len()..].trim().trim_end_matches(';').trim();
    let (kind, tag) = match first.as_str() {
        "SET" => (Kind::Set, "SET"),
        "RESET" if rest.eq_ignore_ascii_case("all") => (Kind::Reset(None), "RESET"),
        "RESET" => (Kind::Reset(Some(rest.trim_matches('"').to_string())), "RESET"),
        "SHOW" => (Kind::Show(rest.trim_matches('"').to_string()), "SHOW"),
        "BEGIN" | "START" => (Kind::Begin, "BEGIN"),
        "COMMIT" | "END" => (Kind::Commit, "COMMIT"),
        "ROLLBACK" | "ABORT" => (Kind::Rollback, "ROLLBACK"),
        "DISCARD" => (Kind::NoOp, "DISCARD ALL"),
        "DEALLOCATE" => (Kind::NoOp, "DEALLOCATE"),
        "SAVEPOINT" => (Kind::NoOp, "SAVEPOINT"),
        "RELEASE" => (Kind::NoOp, "RELEASE"),
        "LISTEN" => (Kind::NoOp, "LISTEN"),
        "UNLISTEN" => (Kind::NoOp, "UNLISTEN"),
        _ => return None,
    };
    Some(Classified::new(kind, tag, Access::Read))
}

/// The tag of a query: `WITH … INSERT …` answers as an INSERT.
fn query_tag(query: &Query) -> &'static str {
    fn body_tag(body: &SetExpr) -> &'static str {
        match body {
            SetExpr::Insert(_) => "INSERT",
            SetExpr::Update(_) => "UPDATE",
            SetExpr::Delete(_) => "DELETE",
            SetExpr::Merge(_) => "MERGE",
            SetExpr::Query(q) => body_tag(&q.body),
            _ => "SELECT",
        }
    }
    body_tag(&query.body)
}

/// Whether a query changes data: a data-modifying body or CTE, or `SELECT … INTO`.
fn query_writes(query: &Query) -> bool {
    fn body_writes(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(select) => select.into.is_some(),
            SetExpr::Query(q) => query_writes(q),
            SetExpr::SetOperation { left, right, .. } => body_writes(left) || body_writes(right),
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => true,
            SetExpr::Values(_) | SetExpr::Table(_) => false,
        }
    }
    query.with.as_ref().is_some_and(|with| with.cte_tables.iter().any(|cte| query_writes(&cte.query)))
        || body_writes(&query.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn of(sql: &str) -> Classified {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        assert_eq!(statements.len(), 1, "{sql}");
        classify(&statements.pop().unwrap())
    }

    fn summary(sql: &str) -> (Kind, String, Access) {
        let c = of(sql);
        (c.kind, c.tag, c.access)
    }

    #[test]
    fn queries_read_and_data_modifying_queries_write() {
        assert_eq!(summary("select 1"), (Kind::DataFusion, "SELECT".into(), Access::Read));
        // Introspection reads, whatever DataFusion then makes of it.
        for sql in
            ["DESCRIBE events", "SHOW TABLES", "SHOW COLUMNS FROM events", "SHOW SCHEMAS", "SHOW CREATE TABLE events"]
        {
            assert_eq!(of(sql).access, Access::Read, "{sql}");
        }
        assert_eq!(summary("(select 1) union (select 2)"), (Kind::DataFusion, "SELECT".into(), Access::Read));
        assert_eq!(
            summary("WITH s AS (SELECT 1 AS x) INSERT INTO t SELECT x FROM s"),
            (Kind::DataFusion, "INSERT".into(), Access::Write)
        );
        assert_eq!(of("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d").access, Access::Write);
        assert_eq!(of("SELECT 1 INTO new_table").access, Access::Write);
    }

    #[test]
    fn inserts_into_events_are_delta_commits() {
        assert_eq!(
            summary("INSERT INTO events (event) VALUES ('x')"),
            (Kind::EventsInsert, "INSERT".into(), Access::Write)
        );
        assert_eq!(
            summary("insert into \"events\" select * from e"),
            (Kind::EventsInsert, "INSERT".into(), Access::Write)
        );
        assert_eq!(summary("INSERT INTO other VALUES (1)"), (Kind::DataFusion, "INSERT".into(), Access::Write));
    }

    #[test]
    fn explain_analyze_runs_its_statement() {
        assert_eq!(of("EXPLAIN INSERT INTO events (event) VALUES ('x')").access, Access::Read);
        assert_eq!(
            summary("EXPLAIN ANALYZE INSERT INTO events (event) VALUES ('x')"),
            (Kind::DataFusion, "EXPLAIN".into(), Access::Write)
        );
        assert_eq!(of("EXPLAIN ANALYZE SELECT 1").access, Access::Read);
    }

    #[test]
    fn prepare_carries_the_class_of_its_statement_and_execute_refers_to_it() {
        let prepare = of("PREPARE p AS INSERT INTO events (event) VALUES ($1)");
        assert_eq!(
            (prepare.kind, prepare.tag.as_str(), &prepare.access),
            (Kind::DataFusion, "PREPARE", &Access::Write)
        );
        assert_eq!(prepare.defines, Some(("p".into(), Access::Write)));
        let read = of("PREPARE q (int) AS SELECT $1");
        assert_eq!((read.access, read.defines), (Access::Read, Some(("q".into(), Access::Read))));
        assert_eq!(summary("EXECUTE p('x')"), (Kind::DataFusion, "EXECUTE".into(), Access::OfPrepared("p".into())));
    }

    #[test]
    fn copy_from_stdin_writes_and_copy_to_stdout_reads() {
        assert_eq!(summary("COPY events (event) FROM STDIN"), (Kind::CopyFrom, "COPY".into(), Access::Write));
        assert_eq!(summary("COPY events TO STDOUT WITH (FORMAT csv)"), (Kind::CopyTo, "COPY".into(), Access::Read));
        assert_eq!(summary("COPY (SELECT 1) TO STDOUT"), (Kind::CopyTo, "COPY".into(), Access::Read));
        assert_eq!(summary("COPY events FROM '/etc/passwd'"), (Kind::CopyFile, "COPY".into(), Access::Write));
        assert_eq!(of("COPY events TO '/tmp/x'").access, Access::Write);
    }

    #[test]
    fn session_statements_read() {
        assert_eq!(summary("SET extra_float_digits = 3"), (Kind::Set, "SET".into(), Access::Read));
        assert_eq!(
            summary("SHOW transaction isolation level"),
            (Kind::Show("transaction isolation level".into()), "SHOW".into(), Access::Read)
        );
        assert_eq!(of("SHOW ALL").kind, Kind::Show("ALL".into()));
        assert_eq!(of("RESET statement_timeout").kind, Kind::Reset(Some("statement_timeout".into())));
        assert_eq!(of("RESET ALL").kind, Kind::Reset(None));
        assert_eq!(of("start transaction").kind, Kind::Begin);
        assert_eq!(of("END").kind, Kind::Commit);
        assert_eq!(summary("DISCARD ALL"), (Kind::NoOp, "DISCARD ALL".into(), Access::Read));
    }

    #[test]
    fn ddl_writes_and_is_tagged_with_its_object() {
        assert_eq!(
            summary("create or replace view v as select 1"),
            (Kind::DataFusion, "CREATE VIEW".into(), Access::Write)
        );
        assert_eq!(summary("CREATE TABLE t AS SELECT 1"), (Kind::DataFusion, "CREATE TABLE".into(), Access::Write));
        assert_eq!(summary("DROP VIEW v"), (Kind::DataFusion, "DROP VIEW".into(), Access::Write));
        assert_eq!(of("DELETE FROM events").access, Access::Write);
        assert_eq!(of("TRUNCATE events").access, Access::Write);
    }

    #[test]
    fn unparsed_session_statements_by_first_word() {
        let c = classify_unparsed("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED").unwrap();
        assert_eq!((c.kind, c.access), (Kind::Set, Access::Read));
        assert_eq!(classify_unparsed("INSERT INTO events VALUES (").map(|c| c.kind), None);
    }
}
