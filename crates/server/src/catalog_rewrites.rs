//! Rewrites of the catalog queries clients send, where datafusion-pg-catalog's tables or
//! DataFusion's SQL differ from PostgreSQL's. One pass over the expressions, a rule each:
//!
//! - datafusion-pg-catalog holds the int2vector/oidvector columns (`pg_index.indkey`,
//!   `indclass`, `indoption`, `indcollation`, `pg_constraint.conkey`, `confkey`) as
//!   space-separated text: `unnest`, `generate_subscripts` and `= ANY(…)` over them split it.
//! - SQLAlchemy's reflection selects `generate_subscripts(arr, 1)` next to `unnest(arr)`.
//!   DataFusion has no set-returning functions in the select list but zips `unnest`s the same
//!   way, so it becomes `unnest(generate_series(1, cardinality(arr)))` (one dimension).
//! - `x::name` becomes `x::text`: PostgreSQL's identifier type, unknown to DataFusion.
//! - `x::regtype::text` and `x::regtype[]::text[]` (pgcli) become the type names, not the
//!   oids datafusion-pg-catalog's integer `regtype` would print.
//! - `generate_series(…)` as a select-list item (psqlODBC's foreign keys number `conkey` so)
//!   becomes `unnest(generate_series(…))`: DataFusion's set-returning items are `unnest`s.
//! - psqlODBC's key queries subscript the vector columns (`i.indkey[n]`, from 0 as in
//!   PostgreSQL; `conkey[i]`, from 1) and take `array_lower`/`array_upper` of `conkey`.
//! - pg_type's function columns (`typreceive`, `typsend` …) compared with 0 (ADBC): held as
//!   the names PostgreSQL prints, so 0 becomes `'-'`, its name for none; compared with a
//!   `'name'::regproc` (pgjdbc's `typinput = 'pg_catalog.array_in'::regproc`), with the name.
//! - `information_schema._pg_expandarray(a)` (pgjdbc's primary keys and indexes), a
//!   set-returning function of `(x, n)` rows, becomes a struct of two zipped `unnest`s, and
//!   `(composite).field` DataFusion's `struct['field']`.
//! - A scalar subquery reading one catalog row by its oid (pgjdbc's types) selects `max(…)`
//!   of its item: DataFusion decorrelates scalar subqueries only when they aggregate.
//! - A catalog flag compared with `'t'`/`'f'` (SQLAlchemy 1.4's `ix.indisprimary = 'f'`):
//!   PostgreSQL reads the untyped literal as a boolean, DataFusion cannot compare text with one.
//! - `pg_get_viewdef(oid [, pretty])` (psql's `\d+`, SQLAlchemy, Superset): the view's query
//!   from `pg_views` (relations.rs), looked up by the view's oid in `pg_class` as a scalar
//!   subquery — an aggregate, so DataFusion can decorrelate it for `pg_get_viewdef(c.oid)`;
//!   NULL for an oid that is not a view, as PostgreSQL answers.
//! - `pg_get_userbyid(owner)` is the session's role: Northstar has no object owners.
//! - `pg_class` has no `reloptions` (storage parameters; Northstar has none), which SQLAlchemy's
//!   index reflection selects: a selected `….reloptions` becomes a NULL column of that name,
//!   and any other use of it (psql's `\d+`) a NULL text array.
//! - `ARRAY(subquery)` (psql's `\d+`), a constructor DataFusion lacks, becomes the scalar
//!   subquery `(SELECT array_agg(v) FROM (subquery) AS array_items(v))`: NULL for no rows
//!   where PostgreSQL gives an empty array.
//!
//! - Not the catalog's, but the same kind of difference in what clients send: an interval of
//!   seconds, minutes or hours times a number (Superset's 5-second … 30-minute time grains,
//!   `INTERVAL '5 minutes' * FLOOR(…)`), which DataFusion 55 cannot multiply, becomes that many
//!   nanoseconds cast to an interval: PostgreSQL keeps such a product in the interval's time
//!   part too, so it prints the same (`INTERVAL '30 minutes' * 100` is `50:00:00`). Days,
//!   months and years are calendar units with PostgreSQL rules of their own: left as written.
//! - Unquoted names of tables and table functions folded to lower case, as PostgreSQL folds
//!   them: DataFusion folds table names but looks table functions up as written, so
//!   Superset's `FUNNEL(ARRAY[…])` was not found.
//!
//! Replacements are written as SQL around the printed (already parsed) operands and parsed back.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, ObjectNamePart, Query, SelectItem, SetExpr, Statement, Subscript,
    TableAliasColumnDef, TableFactor, TableWithJoins, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Every rewrite above, applied to one statement.
pub fn rewrite_catalog_queries(mut statement: Statement) -> Statement {
    if let Statement::Query(query) = &mut statement {
        select_list_rewrites(query);
    }
    let _ = visit_expressions_mut(&mut statement, |expr| {
        let replacement = match &*expr {
            Expr::Function(function) => function_replacement(function).or_else(|| expand_array(function)),
            Expr::CompoundIdentifier(parts)
                if parts.last().is_some_and(|p| p.value.eq_ignore_ascii_case("reloptions")) =>
            {
                parse_expr("CAST(NULL AS TEXT[])")
            }
            Expr::BinaryOp { left, op: BinaryOperator::Multiply, right } => {
                interval_times_number(left, right).or_else(|| interval_times_number(right, left))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                vector_element(root, access_chain).or_else(|| composite_field(root, access_chain))
            }
            Expr::Cast { expr: operand, data_type, .. } => regtype_as_text(operand, data_type),
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        catalog_flag_as_boolean(expr);
        function_reference_compared(expr);
        if let Expr::Subquery(query) = expr {
            catalog_row_by_oid(query);
        }
        name_as_text(expr);
        ControlFlow::<()>::Continue(())
    });
    let _ = statement.visit(&mut TableFactors);
    statement
}

/// The rules on relations: unquoted table and table-function names folded to lower case, and
/// `unnest(array) x` naming its column `x` as in PostgreSQL (DataFusion names it `UNNEST(…)`).
struct TableFactors;

impl VisitorMut for TableFactors {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, .. } => {
                for part in name.0.iter_mut() {
                    if let ObjectNamePart::Identifier(ident) = part {
                        if ident.quote_style.is_none() {
                            ident.value = ident.value.to_lowercase();
                        }
                    }
                }
            }
            TableFactor::UNNEST {
                alias: Some(alias), array_exprs, with_offset: false, with_ordinality: false, ..
            } if alias.columns.is_empty() && array_exprs.len() == 1 => {
                alias.columns.push(TableAliasColumnDef::from_name(alias.name.value.clone()));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `INTERVAL 'n unit' * factor` for a unit of fixed length below a day, as an interval of
/// nanoseconds (rounded as PostgreSQL rounds to microseconds).
fn interval_times_number(interval: &Expr, factor: &Expr) -> Option<Expr> {
    let Expr::Interval(interval) = interval else { return None };
    if interval.leading_field.is_some() || interval.last_field.is_some() {
        return None;
    }
    let Expr::Value(value) = interval.value.as_ref() else { return None };
    let Value::SingleQuotedString(text) = &value.value else { return None };
    let (amount, unit) = text.trim().split_once(char::is_whitespace)?;
    let amount: f64 = amount.parse().ok()?;
    let unit_nanos: f64 = match unit.trim().to_ascii_lowercase().trim_end_matches('s') {
        "microsecond" | "usec" | "us" => 1e3,
        "millisecond" | "msec" | "ms" => 1e6,
        "second" | "sec" => 1e9,
        "minute" | "min" => 60e9,
        "hour" | "hr" | "h" => 3_600e9,
        _ => return None,
    };
    let nanos = amount * unit_nanos;
    parse_expr(&format!(
        "arrow_cast(arrow_cast(CAST(round(CAST(({factor}) AS DOUBLE) * {nanos} / 1000) * 1000 AS BIGINT), 'Duration(Nanosecond)'), 'Interval(MonthDayNano)')"
    ))
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()).ok()
}

fn is_vector_column(expr: &str) -> bool {
    let lower = expr.to_ascii_lowercase();
    ["indkey", "indclass", "indoption", "indcollation", "conkey", "confkey"].iter().any(|c| lower.ends_with(c))
}

/// `i.indkey[n]` (psqlODBC's primary keys) and `conkey[i]` (its foreign keys): an element of
/// a vector column's text. The int2vector/oidvector columns of `pg_index` count from 0, as in
/// PostgreSQL; `conkey` and `confkey` are ordinary arrays there, counted from 1.
fn vector_element(root: &Expr, access_chain: &[AccessExpr]) -> Option<Expr> {
    // `i.indkey[n]` parses as `i` with the accesses `.indkey` and `[n]`.
    let Some((AccessExpr::Subscript(Subscript::Index { index }), path)) = access_chain.split_last() else {
        return None;
    };
    if !path.iter().all(|a| matches!(a, AccessExpr::Dot(_))) {
        return None;
    }
    let column = format!("{root}{}", path.iter().map(ToString::to_string).collect::<String>());
    if !is_vector_column(&column) {
        return None;
    }
    let lower = column.to_ascii_lowercase();
    let first = if counts_from_one(&column) { 1 } else { 0 };
    let element_type = if lower.ends_with("indclass") || lower.ends_with("indcollation") { "INT" } else { "SMALLINT" };
    parse_expr(&format!("array_element({}, ({index}) + {})", vector_array(&column, Some(element_type)), 1 - first))
}

/// `pg_constraint.conkey`/`confkey`: smallint arrays in PostgreSQL, counted from 1.
fn counts_from_one(column: &str) -> bool {
    let lower = column.to_ascii_lowercase();
    lower.ends_with("conkey") || lower.ends_with("confkey")
}

/// A vector column's text as an array (of `element_type` when given).
fn vector_array(column: &str, element_type: Option<&str>) -> String {
    let split = format!("string_to_array(CAST({column} AS TEXT), ' ')");
    match element_type {
        Some(t) => format!("CAST({split} AS {t}[])"),
        None => split,
    }
}

/// The printed unnamed arguments of a call.
fn arguments(function: &Function) -> Vec<String> {
    match &function.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map_while(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn function_replacement(function: &Function) -> Option<Expr> {
    let name = function.name.to_string().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    if let (true, FunctionArguments::Subquery(query)) = (name == "array", &function.args) {
        return parse_expr(&format!("(SELECT array_agg(v) FROM ({query}) AS array_items(v))"));
    }
    let args = arguments(function);
    let first = args.first()?;
    let vector = is_vector_column(first);
    let sql = match name {
        "generate_subscripts" => {
            let array = if vector { vector_array(first, None) } else { first.clone() };
            format!("unnest(generate_series(1, cardinality({array})))")
        }
        "unnest" if vector => format!("unnest({})", vector_array(first, None)),
        // psqlODBC's foreign keys: `generate_series(array_lower(conkey, 1), array_upper(conkey, 1))`
        // (arrays counted from 1 in PostgreSQL too, unlike the int2vector columns).
        "array_lower" | "array_upper" | "array_length" | "cardinality" if counts_from_one(first) => {
            let rest: String = args[1..].iter().map(|a| format!(", {a}")).collect();
            format!("{name}({}{rest})", vector_array(first, Some("SMALLINT")))
        }
        // `a.attnum = ANY(ix.indkey)`, which datafusion-pg-catalog has made
        // `array_contains(ix.indkey, a.attnum)`.
        "array_contains" | "array_has" if vector && args.len() == 2 => {
            format!("{name}({}, {})", vector_array(first, Some("SMALLINT")), args[1])
        }
        // Northstar has no object owners (every writer may change every table): each session
        // sees its own role as the owner, as a database with one role shows (psql's and
        // pgcli's `\dt`). docs/clients.md.
        "pg_get_userbyid" => "session_user()".to_string(),
        "pg_get_viewdef" => format!(
            "(SELECT max(v.definition) FROM pg_catalog.pg_views v JOIN pg_catalog.pg_namespace n ON n.nspname = v.schemaname \
             JOIN pg_catalog.pg_class c ON c.relname = v.viewname AND c.relnamespace = n.oid WHERE c.oid = ({first}))"
        ),
        _ => return None,
    };
    parse_expr(&sql)
}

/// `x::name` (psqlODBC's `'db'::name AS "PKTABLE_CAT"`): PostgreSQL's identifier type, a
/// string of at most 63 bytes, which DataFusion does not know; text holds the same values.
fn name_as_text(expr: &mut Expr) {
    if let Expr::Cast { data_type, .. } = expr {
        if let DataType::Custom(name, modifiers) = &*data_type {
            let name = name.to_string().to_ascii_lowercase();
            if modifiers.is_empty() && (name == "name" || name == "pg_catalog.name") {
                *data_type = DataType::Text;
            }
        }
    }
}

/// `x::regtype::text` → `regtype_text(x)` and `x::regtype[]::text[]` →
/// `regtype_array_text(x)`, also for each argument of a `COALESCE` cast so (pgcli's column
/// and function listings): datafusion-pg-catalog plans `regtype` as a plain integer, so the
/// text would be the oid where PostgreSQL prints the type's name.
fn regtype_as_text(operand: &Expr, target: &DataType) -> Option<Expr> {
    let type_name = |t: &DataType| t.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.").to_string();
    // A single `regtype` stays cast, so that a type name (`'int4'::regtype`) is read as an
    // oid by datafusion-pg-catalog first; a `regtype[]` is the vector itself (its text or
    // array), which the function reads.
    let (function, regtype, keeps_cast) = match type_name(target).as_str() {
        "text" => (crate::function_catalog::REGTYPE_TEXT, "regtype", true),
        "text[]" => (crate::function_catalog::REGTYPE_ARRAY_TEXT, "regtype[]", false),
        _ => return None,
    };
    let call = |e: &Expr| match e {
        Expr::Cast { expr, data_type, .. } if type_name(data_type) == regtype => {
            Some(format!("{function}({})", if keeps_cast { e } else { &**expr }))
        }
        _ => None,
    };
    if let Some(call) = call(operand) {
        return parse_expr(&call);
    }
    let Expr::Function(coalesce) = operand else { return None };
    if !coalesce.name.to_string().eq_ignore_ascii_case("coalesce") {
        return None;
    }
    let FunctionArguments::List(list) = &coalesce.args else { return None };
    let each = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => call(e),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    parse_expr(&format!("coalesce({})", each.join(", ")))
}

/// `flag = 't'` → `flag = true` for catalog flags, named so in PostgreSQL's catalogs.
fn catalog_flag_as_boolean(expr: &mut Expr) {
    let Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } = expr else { return };
    let (Expr::CompoundIdentifier(_) | Expr::Identifier(_), Expr::Value(value)) = (&**left, &mut **right) else {
        return;
    };
    let column = left.to_string().rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    let flag = ["indis", "relis", "relhas", "attis", "atthas", "attnotnull"].iter().any(|p| column.starts_with(p));
    let truth = match &value.value {
        Value::SingleQuotedString(text) if flag => match text.as_str() {
            "t" | "true" => true,
            "f" | "false" => false,
            _ => return,
        },
        _ => return,
    };
    value.value = Value::Boolean(truth);
}

/// `typreceive != 0` (ADBC's PostgreSQL driver lists the types it can read so) and
/// `typinput = 'pg_catalog.array_in'::regproc` (pgjdbc tells arrays so): pg_type's function
/// columns are `regproc`, which PostgreSQL compares with an oid and prints as a name, `-` for
/// none; datafusion-pg-catalog holds the printed text, so 0 becomes `'-'`, and a function
/// named as a `regproc` (which datafusion-pg-catalog has made a `pg_proc` oid lookup) its name.
fn function_reference_compared(expr: &mut Expr) {
    let Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } = expr else { return };
    if !matches!(&**left, Expr::CompoundIdentifier(_) | Expr::Identifier(_)) {
        return;
    }
    let column = left.to_string().rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    const REGPROC: [&str; 8] =
        ["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze", "typsubscript"];
    if !REGPROC.contains(&column.as_str()) {
        return;
    }
    let name = match &**right {
        Expr::Value(value) if matches!(&value.value, Value::Number(n, _) if n == "0") => "-".to_string(),
        Expr::Subquery(query) => match regproc_lookup(query) {
            Some(name) => name.strip_prefix("pg_catalog.").unwrap_or(&name).to_string(),
            None => return,
        },
        _ => return,
    };
    **right = Expr::value(Value::SingleQuotedString(name));
}

/// The function name of datafusion-pg-catalog's form of `'name'::regproc`:
/// `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'name')`.
fn regproc_lookup(query: &Query) -> Option<String> {
    let SetExpr::Select(select) = &*query.body else { return None };
    let [from] = &select.from[..] else { return None };
    if !from.joins.is_empty() || from.relation.to_string() != "pg_catalog.pg_proc" {
        return None;
    }
    let Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right }) = &select.selection else { return None };
    let Expr::Value(value) = &**right else { return None };
    match (&value.value, left.to_string().as_str()) {
        (Value::SingleQuotedString(name), "proname") => Some(name.clone()),
        _ => None,
    }
}

/// `information_schema._pg_expandarray(a)` (pgjdbc's primary keys and indexes): PostgreSQL's
/// set-returning function of the rows `(x, n)`, each element with its position. DataFusion's
/// set-returning items are `unnest`s, zipped row by row as PostgreSQL zips set-returning items,
/// so it becomes `named_struct('x', unnest(a), 'n', unnest(generate_series(1, cardinality(a))))`
/// (an int2vector column of `pg_index` read as its array).
fn expand_array(function: &Function) -> Option<Expr> {
    let name = function.name.to_string().to_ascii_lowercase();
    if name.trim_start_matches("information_schema.") != "_pg_expandarray" {
        return None;
    }
    let [array] = &arguments(function)[..] else { return None };
    let array = if is_vector_column(array) { vector_array(array, Some("SMALLINT")) } else { array.clone() };
    parse_expr(&format!("named_struct('x', unnest({array}), 'n', unnest(generate_series(1, cardinality({array}))))"))
}

/// `(composite).field` (pgjdbc's `(information_schema._pg_expandarray(i.indkey)).n`):
/// DataFusion reads a struct's field by name as `struct['field']`.
fn composite_field(root: &Expr, access_chain: &[AccessExpr]) -> Option<Expr> {
    let (Expr::Nested(inner), [AccessExpr::Dot(Expr::Identifier(field))]) = (root, access_chain) else {
        return None;
    };
    // An unquoted field name folds to lower case, as PostgreSQL folds it; a quoted one is kept.
    let name = if field.quote_style.is_some() { field.value.clone() } else { field.value.to_lowercase() };
    Some(Expr::CompoundFieldAccess {
        root: inner.clone(),
        access_chain: vec![AccessExpr::Subscript(Subscript::Index {
            index: Expr::value(Value::SingleQuotedString(name)),
        })],
    })
}

/// A scalar subquery that reads one catalog row by its oid (pgjdbc's types:
/// `(SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)`) selects
/// `max(…)` of its item: DataFusion runs a correlated scalar subquery only as an aggregate, and
/// an oid names at most one row, so the answer is the same.
fn catalog_row_by_oid(query: &mut Query) {
    let SetExpr::Select(select) = &mut *query.body else { return };
    let [from] = &select.from[..] else { return };
    let TableFactor::Table { name, alias, .. } = &from.relation else { return };
    // datafusion-pg-catalog's parser has qualified every `pg_…` table by now; the rule is for
    // its catalog tables only, whose `oid` is a key (a user's table may repeat one).
    let table = name.to_string().to_ascii_lowercase();
    if !from.joins.is_empty() || !table.starts_with("pg_catalog.pg_") {
        return;
    }
    let qualifier =
        alias.as_ref().map_or(table.rsplit('.').next().unwrap_or_default().to_string(), |a| a.name.value.clone());
    let by_oid = |e: &Expr| e.to_string().eq_ignore_ascii_case(&format!("{qualifier}.oid"));
    let keyed = matches!(&select.selection, Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right })
        if by_oid(left) != by_oid(right));
    let [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] = &mut select.projection[..]
    else {
        return;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty());
    if !keyed || grouped || matches!(item, Expr::Function(_)) {
        return;
    }
    if let Some(aggregated) = parse_expr(&format!("max({item})")) {
        *item = aggregated;
    }
}

/// The rules on select lists, in `query` and the subqueries it reads from: `reloptions` as a
/// NULL column, and `generate_series(…)` as an item (psqlODBC's foreign keys) as
/// `unnest(generate_series(…))`, DataFusion's form of a set-returning item.
fn select_list_rewrites(query: &mut Query) {
    select_list_rewrites_in(&mut query.body);
}

/// The select-list rules in the subqueries `table` reads, also inside parenthesized joins
/// (psqlODBC nests its seven joins so).
fn derived_tables_rewritten(table: &mut TableWithJoins) {
    for factor in std::iter::once(&mut table.relation).chain(table.joins.iter_mut().map(|j| &mut j.relation)) {
        match factor {
            TableFactor::Derived { subquery, .. } => select_list_rewrites(subquery),
            TableFactor::NestedJoin { table_with_joins, .. } => derived_tables_rewritten(table_with_joins),
            _ => {}
        }
    }
}

fn select_list_rewrites_in(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in select.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
                    let is_series = matches!(expr, Expr::Function(f)
                        if f.name.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.") == "generate_series");
                    if let Some(unnest) = is_series.then(|| parse_expr(&format!("unnest({expr})"))).flatten() {
                        *expr = unnest;
                    }
                }
                if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item {
                    if parts.last().is_some_and(|p| p.value.eq_ignore_ascii_case("reloptions")) {
                        *item = SelectItem::ExprWithAlias {
                            expr: Expr::Value(Value::Null.into()),
                            alias: Ident::new("reloptions"),
                        };
                    }
                }
            }
            for table in select.from.iter_mut() {
                derived_tables_rewritten(table);
            }
        }
        SetExpr::Query(q) => select_list_rewrites(q),
        SetExpr::SetOperation { left, right, .. } => {
            select_list_rewrites_in(left);
            select_list_rewrites_in(right);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite_catalog_queries(statement).to_string()
    }

    #[test]
    fn each_rule_rewrites_what_clients_send() {
        assert_eq!(
            rewritten("SELECT generate_subscripts(ix.indkey, 1), unnest(ix.indkey) FROM pg_index ix"),
            "SELECT unnest(generate_series(1, cardinality(string_to_array(CAST(ix.indkey AS TEXT), ' ')))), \
             unnest(string_to_array(CAST(ix.indkey AS TEXT), ' ')) FROM pg_index ix"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE array_contains(ix.indkey, a.attnum) AND ix.indisprimary = 'f'"),
            "SELECT 1 FROM t WHERE array_contains(CAST(string_to_array(CAST(ix.indkey AS TEXT), ' ') AS SMALLINT[]), a.attnum) \
             AND ix.indisprimary = false"
        );
        assert!(
            rewritten("SELECT pg_catalog.pg_get_viewdef(c.oid, true) FROM pg_class c").contains("max(v.definition)")
        );
        assert_eq!(rewritten("SELECT i.reloptions FROM pg_class i"), "SELECT NULL AS reloptions FROM pg_class i");
        // Text compared with text, and arrays that are not catalog vectors, are left alone.
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE name = 'f' AND array_has(tags, 'x')"),
            "SELECT 1 FROM t WHERE name = 'f' AND array_has(tags, 'x')"
        );
        assert_eq!(
            rewritten("SELECT * FROM FUNNEL(ARRAY['a', 'b']) JOIN Public.Events ON true JOIN \"Mixed\" ON true"),
            "SELECT * FROM funnel(ARRAY['a', 'b']) JOIN public.events ON true JOIN \"Mixed\" ON true"
        );
    }

    #[test]
    fn a_series_in_a_select_list_is_unnested() {
        assert_eq!(
            rewritten("SELECT * FROM (SELECT oid, generate_series(1, 3) AS i FROM c) AS r WHERE i > 1"),
            "SELECT * FROM (SELECT oid, unnest(generate_series(1, 3)) AS i FROM c) AS r WHERE i > 1"
        );
        assert_eq!(
            rewritten("SELECT r.i FROM ((SELECT generate_series(1, 2) AS i) r JOIN t ON t.a = r.i)"),
            "SELECT r.i FROM ((SELECT unnest(generate_series(1, 2)) AS i) r JOIN t ON t.a = r.i)"
        );
        assert_eq!(rewritten("SELECT * FROM generate_series(1, 3)"), "SELECT * FROM generate_series(1, 3)");
    }

    #[test]
    fn regtype_text_is_the_type_name() {
        assert_eq!(
            rewritten("SELECT prorettype::regtype::text FROM pg_proc"),
            "SELECT regtype_text(prorettype::regtype) FROM pg_proc"
        );
        assert_eq!(
            rewritten("SELECT COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[] FROM pg_proc"),
            "SELECT coalesce(regtype_array_text(proallargtypes), regtype_array_text(proargtypes)) FROM pg_proc"
        );
        // Compared as a regtype (an oid), it stays one.
        assert_eq!(
            rewritten("SELECT 1 WHERE p.prorettype::regtype <> 'trigger'::regtype"),
            "SELECT 1 WHERE p.prorettype::regtype <> 'trigger'::regtype"
        );
    }

    #[test]
    fn function_references_compared_with_zero_compare_with_the_dash() {
        assert_eq!(
            rewritten("SELECT oid FROM pg_catalog.pg_type WHERE (typreceive != 0 OR t.typsend <> 0) AND typlen = 0"),
            "SELECT oid FROM pg_catalog.pg_type WHERE (typreceive <> '-' OR t.typsend <> '-') AND typlen = 0"
        );
    }

    #[test]
    fn pgjdbc_regproc_names_expanded_arrays_and_rows_by_oid() {
        // datafusion-pg-catalog's parser has made `'pg_catalog.array_in'::regproc` this lookup.
        assert_eq!(
            rewritten("SELECT typinput = (SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'pg_catalog.array_in') FROM pg_type"),
            "SELECT typinput = 'array_in' FROM pg_type"
        );
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(i.indkey)).n AS k FROM pg_index i"),
            "SELECT named_struct('x', unnest(CAST(string_to_array(CAST(i.indkey AS TEXT), ' ') AS SMALLINT[])), \
             'n', unnest(generate_series(1, cardinality(CAST(string_to_array(CAST(i.indkey AS TEXT), ' ') AS SMALLINT[])))))['n'] \
             AS k FROM pg_index i"
        );
        assert_eq!(rewritten("SELECT (r.keys).X, (r.keys).\"N\" FROM r"), "SELECT r.keys['x'], r.keys['N'] FROM r");
        assert_eq!(
            rewritten("SELECT 1 FROM pg_type t WHERE t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)"),
            "SELECT 1 FROM pg_type t WHERE t.typrelid = 0 OR (SELECT max(c.relkind = 'c') FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)"
        );
        // Not keyed by the oid (several rows may match), or already an aggregate: left alone.
        for sql in [
            "SELECT (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relnamespace = t.typnamespace) FROM pg_type t",
            "SELECT (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) FROM pg_type t",
            "SELECT (SELECT c.name FROM pg_things c WHERE c.oid = t.thing) FROM t",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }

    #[test]
    fn psqlodbc_subscripts_and_bounds_of_vector_columns() {
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE ta.attnum = i.indkey[ia.attnum - 1]"),
            "SELECT 1 FROM t WHERE ta.attnum = array_element(CAST(string_to_array(CAST(i.indkey AS TEXT), ' ') AS SMALLINT[]), (ia.attnum - 1) + 1)"
        );
        assert_eq!(
            rewritten("SELECT conkey[i], generate_series(array_lower(conkey, 1), array_upper(conkey, 1)) FROM c"),
            "SELECT array_element(CAST(string_to_array(CAST(conkey AS TEXT), ' ') AS SMALLINT[]), (i) + 0), \
             unnest(generate_series(array_lower(CAST(string_to_array(CAST(conkey AS TEXT), ' ') AS SMALLINT[]), 1), \
             array_upper(CAST(string_to_array(CAST(conkey AS TEXT), ' ') AS SMALLINT[]), 1))) FROM c"
        );
        assert_eq!(rewritten("SELECT arr[1] FROM t"), "SELECT arr[1] FROM t", "other arrays are left alone");
        assert_eq!(
            rewritten("SELECT 'db'::name AS cat, CAST(x AS pg_catalog.name)"),
            "SELECT 'db'::TEXT AS cat, CAST(x AS TEXT)"
        );
    }

    #[test]
    fn psql_describe_plus_reads_no_reloptions_and_an_array_subquery() {
        assert_eq!(
            rewritten("SELECT array_to_string(c.reloptions || array(select 'toast.' || x from unnest(tc.reloptions) x), ', ') FROM pg_class c"),
            "SELECT array_to_string(CAST(NULL AS TEXT[]) || (SELECT array_agg(v) FROM (SELECT 'toast.' || x FROM UNNEST(CAST(NULL AS TEXT[])) x (x)) AS array_items (v)), ', ') FROM pg_class c"
        );
    }

    #[test]
    fn an_interval_below_a_day_times_a_number_becomes_nanoseconds() {
        let grain =
            rewritten("SELECT DATE_TRUNC('hour', t) + INTERVAL '5 minutes' * FLOOR(EXTRACT(MINUTE FROM t) / 5)");
        assert!(grain.contains("CAST(round(CAST((FLOOR(EXTRACT(MINUTE FROM t) / 5)) AS DOUBLE) * 300000000000 / 1000) * 1000 AS BIGINT), 'Duration(Nanosecond)'), 'Interval(MonthDayNano)')"), "{grain}");
        assert!(rewritten("SELECT 2 * INTERVAL '1.5 sec'").contains("* 1500000000 /"));
        // Calendar units keep PostgreSQL's own rules: left as written.
        for kept in ["SELECT INTERVAL '1 day' * 2", "SELECT INTERVAL '1 month' * 2", "SELECT INTERVAL '5' MINUTE * 2"] {
            assert_eq!(rewritten(kept), kept);
        }
    }
}
