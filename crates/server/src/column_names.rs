//! PostgreSQL's names for result columns.
//!
//! Clients key results by column name: pandas' columns, Superset's metrics, dbt's tests. An
//! unaliased `count(*)` is `count` in PostgreSQL and `count(*)` in DataFusion, `1 + 1` is
//! `?column?` there and `Int64(1) + Int64(1)` here, and `SELECT count FROM (SELECT count(*) …)`
//! only works with PostgreSQL's name. So every unaliased select item gets the name PostgreSQL
//! would give it (`FigureColname` in PostgreSQL's `parse_target.c`, followed rule by rule), as an
//! alias in the statement (seen by subqueries, CTEs, views and Describe) where that name is
//! unique in its select list, and as the result column's name on the wire where it is not
//! (PostgreSQL allows two columns named `count`; a DataFusion schema does not).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr,
    Statement, TimezoneInfo, TrimWhereField, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The name PostgreSQL gives a column nothing names.
const UNNAMED: &str = "?column?";

/// Aliases every query's unaliased select items with PostgreSQL's names, and returns the
/// statement's result column names (a query's, or a cursor's) when they are known without the
/// tables (no `*`).
pub fn name_columns_as_postgres(statement: &mut Statement) -> Option<Vec<String>> {
    let names = match statement {
        Statement::Query(query) => output_names(query),
        Statement::Declare { stmts } => stmts.first().and_then(|d| d.for_query.as_deref()).and_then(output_names),
        _ => None,
    };
    let _ = statement.visit(&mut AliasSelectItems);
    names
}

/// `sql` with each unaliased `current_user` or `current_catalog` select item aliased by that
/// keyword; `None` when it has none (or does not parse as it is). datafusion-pg-catalog's
/// parser renames them to `session_user` and `current_database()` before Northstar names the
/// columns, while PostgreSQL names each column by the keyword written, which clients read
/// back by name.
pub fn alias_renamed_registers(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    if !REGISTERS.iter().any(|r| lower.contains(r)) {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut visitor = AliasRegisters { changed: false };
    for statement in &mut statements {
        let _ = statement.visit(&mut visitor);
    }
    visitor.changed.then(|| statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// The special registers datafusion-pg-catalog renames.
const REGISTERS: [&str; 2] = ["current_user", "current_catalog"];

struct AliasRegisters {
    changed: bool,
}

impl VisitorMut for AliasRegisters {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else { return ControlFlow::Continue(()) };
        for item in &mut select.projection {
            let SelectItem::UnnamedExpr(Expr::Function(function)) = item else { continue };
            let name = last_name(&function.name);
            if !matches!(function.args, FunctionArguments::None) || !REGISTERS.contains(&name.as_str()) {
                continue;
            }
            let expr = Expr::Function(function.clone());
            *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', name) };
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

struct AliasSelectItems;

impl VisitorMut for AliasSelectItems {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        alias_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn alias_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => alias_select(select),
        SetExpr::SetOperation { left, right, .. } => {
            alias_set_expr(left);
            alias_set_expr(right);
        }
        _ => {}
    }
}

/// A select list with `*` is left alone: its other names could clash with the expansion. A
/// name that repeats is given to its first item, later ones get `name_2`, `name_3` … (unused
/// names), which only a `SELECT *` over this query shows: the wire gives PostgreSQL's names.
fn alias_select(select: &mut Select) {
    let Some(names) = select_names(select) else { return };
    let mut taken: Vec<String> = Vec::with_capacity(names.len());
    for (index, (item, name)) in select.projection.iter_mut().zip(&names).enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else {
            taken.push(name.clone());
            continue;
        };
        let mut alias = name.clone();
        let mut n = 1;
        while taken.contains(&alias) || (n > 1 && names[index + 1..].contains(&alias)) {
            n += 1;
            alias = format!("{name}_{n}");
        }
        taken.push(alias.clone());
        // Plain column references are already named as PostgreSQL names them.
        if alias == *name && matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        let expr = std::mem::replace(expr, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
        *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', alias) };
    }
}

/// The result names of a query: those of its first select, as PostgreSQL names set operations.
fn output_names(query: &Query) -> Option<Vec<String>> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => return select_names(select),
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            _ => return None,
        }
    }
}

fn select_names(select: &Select) -> Option<Vec<String>> {
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => Some(figure(expr).0),
            SelectItem::ExprWithAlias { alias, .. } => Some(identifier(alias)),
            _ => None,
        })
        .collect()
}

/// An identifier as PostgreSQL stores it: unquoted ones folded to lower case.
fn identifier(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn last_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => identifier(ident),
        _ => UNNAMED.to_string(),
    }
}

/// PostgreSQL's name for an expression and its strength: 2 for a name from a column or
/// function, 1 for a type's name (a cast of something unnamed), 0 for none. A cast keeps its
/// operand's name unless that is weaker than the type's.
fn figure(expr: &Expr) -> (String, u8) {
    let named = |name: &str| (name.to_string(), 2);
    match expr {
        Expr::Identifier(ident) => (identifier(ident), 2),
        Expr::CompoundIdentifier(parts) => parts.last().map_or((UNNAMED.into(), 0), |p| (identifier(p), 2)),
        Expr::Function(function) => (last_name(&function.name), 2),
        Expr::Cast { expr, data_type, .. } => match figure(expr) {
            (name, 2) => (name, 2),
            _ => (type_name(data_type), 1),
        },
        Expr::TypedString(typed) => (type_name(&typed.data_type), 1),
        Expr::Interval(_) => ("interval".into(), 1),
        Expr::Nested(inner) => figure(inner),
        Expr::Case { .. } => named("case"),
        Expr::Array(_) => named("array"),
        Expr::Exists { .. } => named("exists"),
        Expr::Subquery(query) => output_names_strength(query),
        Expr::Extract { .. } => named("extract"),
        Expr::Substring { .. } => named("substring"),
        Expr::Position { .. } => named("position"),
        Expr::Overlay { .. } => named("overlay"),
        Expr::Ceil { .. } => named("ceil"),
        Expr::Floor { .. } => named("floor"),
        Expr::AtTimeZone { .. } => named("timezone"),
        Expr::Trim { trim_where, .. } => named(match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }),
        _ => (UNNAMED.into(), 0),
    }
}

/// A scalar subquery is named by its first column.
fn output_names_strength(query: &Query) -> (String, u8) {
    match query.body.as_ref() {
        SetExpr::Select(select) => match select.projection.first() {
            Some(SelectItem::UnnamedExpr(expr)) => figure(expr),
            Some(SelectItem::ExprWithAlias { alias, .. }) => (identifier(alias), 2),
            _ => (UNNAMED.into(), 0),
        },
        _ => (UNNAMED.into(), 0),
    }
}

/// A type's name as PostgreSQL's catalog spells it (`int4`, not `integer`).
fn type_name(data_type: &DataType) -> String {
    let name = match data_type {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4",
        DataType::BigInt(_) | DataType::Int8(_) => "int8",
        DataType::SmallInt(_) | DataType::Int2(_) => "int2",
        DataType::Real | DataType::Float4 => "float4",
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 | DataType::Float(_) => "float8",
        DataType::Numeric(_) | DataType::Decimal(_) => "numeric",
        DataType::Bool | DataType::Boolean => "bool",
        DataType::Text => "text",
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar",
        DataType::Char(_) | DataType::Character(_) => "bpchar",
        DataType::Date => "date",
        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timestamptz",
        DataType::Timestamp(..) => "timestamp",
        DataType::Time(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timetz",
        DataType::Time(..) => "time",
        DataType::Interval { .. } => "interval",
        DataType::JSON => "json",
        DataType::JSONB => "jsonb",
        DataType::Uuid => "uuid",
        DataType::Bytea => "bytea",
        DataType::Custom(name, _) => return last_name(name),
        other => return other.to_string().to_lowercase(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_registers_keep_their_own_names() {
        let aliased =
            alias_renamed_registers("SELECT current_user, CURRENT_CATALOG, session_user, current_user AS u").unwrap();
        assert_eq!(
            aliased,
            r#"SELECT current_user AS "current_user", CURRENT_CATALOG AS "current_catalog", session_user, current_user AS u"#
        );
        assert_eq!(alias_renamed_registers("SELECT session_user, 'current_user'"), None);
        assert_eq!(alias_renamed_registers("SELECT current_user AS u"), None);
    }

    fn named(sql: &str) -> (String, Option<Vec<String>>) {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let names = name_columns_as_postgres(&mut statement);
        (statement.to_string(), names)
    }

    #[test]
    fn unaliased_items_get_postgres_names() {
        let (_, names) = named(
            "SELECT count(*), 1 + 1, e.user_id, 'a'::text, CAST(event_time AS date), '1'::integer, \
             CASE WHEN true THEN 1 END, Upper(x), \"Quoted\", TIMESTAMP '2025-01-01', trim(x), (max(y)), \
             x::timestamp with time zone, (SELECT max(z) FROM t) FROM events e",
        );
        let expected = [
            "count",
            "?column?",
            "user_id",
            "text",
            "event_time",
            "int4",
            "case",
            "upper",
            "Quoted",
            "timestamp",
            "btrim",
            "max",
            "x",
            "max",
        ];
        assert_eq!(names.unwrap(), expected);
    }

    #[test]
    fn aliases_only_names_unique_in_their_select_list() {
        let (sql, names) = named("SELECT count(*), count(DISTINCT u), max(x) AS Top, x::date, x FROM t");
        assert_eq!(names.unwrap(), ["count", "count", "top", "x", "x"]);
        assert_eq!(
            sql,
            "SELECT count(*) AS \"count\", count(DISTINCT u) AS \"count_2\", max(x) AS Top, x::DATE AS \"x\", x AS \"x_2\" FROM t"
        );
        let (sql, _) = named("SELECT * FROM (SELECT event, count(*) FROM t GROUP BY event) AS s");
        assert!(sql.contains("count(*) AS \"count\""), "{sql}");
    }

    #[test]
    fn select_lists_with_a_star_are_left_alone() {
        let (sql, names) = named("SELECT *, count(*) OVER () FROM t");
        assert_eq!(names, None);
        assert_eq!(sql, "SELECT *, count(*) OVER () FROM t");
    }
}
