//! `DELETE` and `UPDATE` on tables made by SQL, run as a query that picks the rows.
//!
//! DataFusion 55 hands a table provider only the conditions it finds in `Filter` nodes. An `IN`
//! or `EXISTS` subquery becomes a semi join, no condition is found, and `MemTable` deletes or
//! updates every row (apache/datafusion#24654: dbt's incremental models lost all their rows
//! this way). Here the statement's own `WHERE` (and `USING`/`FROM`) runs as a `SELECT` over a
//! numbered copy of the table: DataFusion plans that as it plans any query, so a condition that
//! selects anything selects exactly the rows PostgreSQL changes, and one it cannot plan is an
//! error, never every row. The table's rows are then replaced in one step, only if no other
//! statement changed them meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::compute::{cast_with_options, concat_batches, filter_record_batch, take, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::ParamValues;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, Ident, ObjectName, SelectItem, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, UpdateTableFromKind,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::PgWireResult;

use northstar_engine::partitions_of;

use crate::errors::{error, from_datafusion, FEATURE_NOT_SUPPORTED, NOT_NULL_VIOLATION, UNDEFINED_COLUMN};
use crate::query::plan;
use crate::session::Session;

/// The row number column of the numbered copy.
const ROW: &str = "__northstar_row";

/// How often a statement is rerun when another one changed the table while it ran.
const ATTEMPTS: usize = 3;

/// Names of the numbered copies, unique in the process.
static COPIES: AtomicU64 = AtomicU64::new(0);

/// A DELETE or UPDATE, as the parts the row-picking query needs.
struct Change<'a> {
    table: &'a ObjectName,
    /// What the statement's condition calls the table: its alias, else its name.
    alias: Ident,
    /// Other relations of `USING` (DELETE) or `FROM` (UPDATE).
    joined: Vec<TableWithJoins>,
    selection: Option<&'a Expr>,
    /// UPDATE's `SET column = value`, in order; empty for DELETE.
    assignments: Vec<(String, Expr)>,
}

impl Session {
    /// Runs `statement` when it is a DELETE or UPDATE of a table made by SQL, answering the
    /// number of rows changed; `None` leaves any other statement to DataFusion.
    pub async fn change_table_rows(
        &self,
        statement: &Statement,
        params: Option<&ParamValues>,
    ) -> PgWireResult<Option<usize>> {
        let Some(change) = Change::of(statement)? else { return Ok(None) };
        let Ok(provider) = self.ctx.table_provider(change.table.to_string().as_str()).await else { return Ok(None) };
        let Some(table) = provider.downcast_ref::<MemTable>() else { return Ok(None) };
        for _ in 0..ATTEMPTS {
            let before = partitions_of(table).await;
            let rows = concat_batches(&table.schema(), before.iter().flatten()).map_err(internal_arrow)?;
            let picked = self.pick_rows(&change, &rows, params).await?;
            let (after, changed) = if change.assignments.is_empty() {
                (without(&rows, &picked.ids)?, picked.ids.len())
            } else {
                updated(&rows, &picked, &change.assignments)?
            };
            if replace_if_unchanged(table, &before, after).await {
                return Ok(Some(changed));
            }
        }
        Err(error("40001", format!("could not change \"{}\": other statements kept changing it", change.table)))
    }

    /// Refuses SQL-level `PREPARE name AS` a DELETE, an UPDATE or an INSERT into a table made
    /// by SQL: its `EXECUTE` would run in DataFusion past both the row picking above and the
    /// save to the data location. Clients' parameters go through the protocol's Bind instead,
    /// which takes the paths above.
    pub fn refuse_prepared_table_change(&self, statement: &Statement) -> PgWireResult<()> {
        let Statement::Prepare { statement: inner, .. } = statement else { return Ok(()) };
        let refused = match inner.as_ref() {
            Statement::Delete(_) | Statement::Update(_) => true,
            Statement::Insert(insert) => {
                !matches!(&insert.table, TableObject::TableName(name) if crate::statement::is_events(name))
            }
            _ => false,
        };
        if refused {
            return Err(error(
                FEATURE_NOT_SUPPORTED,
                "PREPARE of DELETE, UPDATE or INSERT into a table made by SQL is not supported: \
                 send the statement itself, with protocol parameters if needed",
            ));
        }
        Ok(())
    }

    /// After `CREATE TABLE … AS`: its columns accept NULL, as PostgreSQL's do (DataFusion kept
    /// the query's NOT NULL, so an UPDATE to NULL failed and reflection differed); answers the
    /// rows it holds, for PostgreSQL's `SELECT n` tag.
    pub async fn relax_created_table(&self, statement: &Statement) -> PgWireResult<Option<usize>> {
        let Statement::CreateTable(create) = statement else { return Ok(None) };
        if create.query.is_none() {
            return Ok(None);
        }
        let name = create.name.to_string();
        let Ok(provider) = self.ctx.table_provider(name.as_str()).await else { return Ok(None) };
        let Some(table) = provider.downcast_ref::<MemTable>() else { return Ok(None) };
        let partitions = partitions_of(table).await;
        let rows = partitions.iter().flatten().map(RecordBatch::num_rows).sum();
        let schema = table.schema();
        if schema.fields().iter().all(|f| f.is_nullable()) {
            return Ok(Some(rows));
        }
        let fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let nullable = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let partitions = partitions
            .into_iter()
            .map(|batches| {
                batches.into_iter().map(|b| RecordBatch::try_new(nullable.clone(), b.columns().to_vec())).collect()
            })
            .collect::<Result<Vec<Vec<_>>, _>>()
            .map_err(internal_arrow)?;
        let relaxed = MemTable::try_new(nullable, partitions).map_err(from_datafusion)?;
        northstar_engine::replace_table(&self.ctx, &name, Arc::new(relaxed)).map_err(from_datafusion)?;
        Ok(Some(rows))
    }

    /// The ids of the rows the statement's condition holds for (each once, the first match of
    /// an UPDATE … FROM as PostgreSQL takes one), with the new values of UPDATE's assignments.
    async fn pick_rows(
        &self,
        change: &Change<'_>,
        rows: &RecordBatch,
        params: Option<&ParamValues>,
    ) -> PgWireResult<Picked> {
        let numbered = numbered(rows)?;
        let copy = format!("{ROW}_{}", COPIES.fetch_add(1, Ordering::Relaxed));
        let table = MemTable::try_new(numbered.schema(), vec![vec![numbered]]).map_err(from_datafusion)?;
        self.ctx.register_table(copy.as_str(), Arc::new(table)).map_err(from_datafusion)?;
        let result = async {
            let mut planned = plan(self, DfStatement::Statement(Box::new(change.query(&copy))), &self.limits()).await?;
            if let Some(params) = params {
                planned = planned.replace_params_with_values(params).map_err(from_datafusion)?;
            }
            let limits = self.limits();
            let df =
                limits.run(async { self.ctx.execute_logical_plan(planned).await.map_err(from_datafusion) }).await?;
            limits.run(async { df.collect().await.map_err(from_datafusion) }).await
        }
        .await;
        let _ = self.ctx.deregister_table(copy.as_str());
        Picked::from_batches(result?)
    }
}

impl<'a> Change<'a> {
    fn of(statement: &'a Statement) -> PgWireResult<Option<Change<'a>>> {
        match statement {
            Statement::Delete(delete) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
                let [target] = from.as_slice() else { return Ok(None) };
                let Some((table, alias)) = target_of(target) else { return Ok(None) };
                refuse_extras(delete.returning.is_some(), delete.limit.is_some() || !delete.order_by.is_empty())?;
                let joined = delete.using.clone().unwrap_or_default();
                Ok(Some(Change { table, alias, joined, selection: delete.selection.as_ref(), assignments: vec![] }))
            }
            Statement::Update(update) => {
                let Some((table, alias)) = target_of(&update.table) else { return Ok(None) };
                refuse_extras(update.returning.is_some(), update.limit.is_some() || !update.order_by.is_empty())?;
                let joined = match &update.from {
                    Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) => from.clone(),
                    None => vec![],
                };
                let mut assignments = Vec::new();
                for assignment in &update.assignments {
                    let AssignmentTarget::ColumnName(column) = &assignment.target else {
                        return Err(error(
                            FEATURE_NOT_SUPPORTED,
                            "UPDATE … SET (a, b) = … is not supported: set each column",
                        ));
                    };
                    assignments.push((column_name(column), assignment.value.clone()));
                }
                Ok(Some(Change { table, alias, joined, selection: update.selection.as_ref(), assignments }))
            }
            _ => Ok(None),
        }
    }

    /// `SELECT alias.row, value AS value_0, … FROM copy AS alias, joined… WHERE selection`,
    /// built as a tree from the statement's own parts.
    fn query(&self, copy: &str) -> Statement {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 1 FROM copy AS alias")
            .expect("a constant query parses")
            .remove(0);
        let Statement::Query(query) = &mut statement else { unreachable!("a SELECT") };
        let SetExpr::Select(select) = query.body.as_mut() else { unreachable!("a SELECT") };
        if let TableFactor::Table { name, alias: Some(alias), .. } = &mut select.from[0].relation {
            *name = ObjectName::from(vec![Ident::new(copy)]);
            alias.name = self.alias.clone();
        }
        select.from.extend(self.joined.iter().cloned());
        select.projection = std::iter::once(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
            self.alias.clone(),
            Ident::new(ROW),
        ])))
        .chain(self.assignments.iter().enumerate().map(|(i, (_, value))| SelectItem::ExprWithAlias {
            expr: value.clone(),
            alias: Ident::new(format!("value_{i}")),
        }))
        .collect();
        select.selection = self.selection.cloned();
        statement
    }
}

fn target_of(target: &TableWithJoins) -> Option<(&ObjectName, Ident)> {
    match &target.relation {
        TableFactor::Table { name, alias, args: None, .. } if target.joins.is_empty() => {
            let alias = alias.as_ref().map(|a| a.name.clone()).or_else(|| name.0.last()?.as_ident().cloned())?;
            Some((name, alias))
        }
        _ => None,
    }
}

fn refuse_extras(returning: bool, ordered_or_limited: bool) -> PgWireResult<()> {
    if returning {
        return Err(error(FEATURE_NOT_SUPPORTED, "RETURNING is not supported on DELETE or UPDATE"));
    }
    if ordered_or_limited {
        return Err(error(FEATURE_NOT_SUPPORTED, "ORDER BY and LIMIT are not supported on DELETE or UPDATE"));
    }
    Ok(())
}

/// A column name as the catalog holds it: folded to lower case unless quoted.
fn column_name(column: &ObjectName) -> String {
    match column.0.last().and_then(|p| p.as_ident()) {
        Some(ident) if ident.quote_style.is_some() => ident.value.clone(),
        Some(ident) => ident.value.to_lowercase(),
        None => column.to_string(),
    }
}

struct Picked {
    /// Row ids, each once, in the order first picked.
    ids: Vec<u64>,
    /// For each id, where its values are in `values`.
    value_rows: Vec<u64>,
    values: Option<RecordBatch>,
}

impl Picked {
    fn from_batches(batches: Vec<RecordBatch>) -> PgWireResult<Picked> {
        let Some(first) = batches.first() else { return Ok(Picked { ids: vec![], value_rows: vec![], values: None }) };
        let all = concat_batches(&first.schema(), &batches).map_err(internal_arrow)?;
        let ids = all.column(0).as_any().downcast_ref::<UInt64Array>().expect("row ids are UInt64").clone();
        let mut seen = HashMap::new();
        let (mut unique, mut value_rows) = (Vec::new(), Vec::new());
        for (at, id) in ids.iter().enumerate() {
            let id = id.expect("row ids are not null");
            if seen.insert(id, at).is_none() {
                unique.push(id);
                value_rows.push(at as u64);
            }
        }
        Ok(Picked { ids: unique, value_rows, values: Some(all) })
    }
}

/// Writes `after` as the table's rows if its partitions still hold `before`'s batches.
async fn replace_if_unchanged(table: &MemTable, before: &[Vec<RecordBatch>], after: RecordBatch) -> bool {
    let mut guards = Vec::with_capacity(table.batches.len());
    for partition in &table.batches {
        guards.push(partition.write().await);
    }
    let unchanged = guards.iter().zip(before).all(|(now, then)| {
        now.len() == then.len()
            && now.iter().zip(then).all(|(a, b)| a.columns().iter().zip(b.columns()).all(|(x, y)| Arc::ptr_eq(x, y)))
    });
    if unchanged {
        for (i, guard) in guards.iter_mut().enumerate() {
            **guard = if i == 0 && after.num_rows() > 0 { vec![after.clone()] } else { vec![] };
        }
    }
    unchanged
}

/// `rows` with a last column numbering them from 0.
fn numbered(rows: &RecordBatch) -> PgWireResult<RecordBatch> {
    if rows.schema().column_with_name(ROW).is_some() {
        return Err(error(FEATURE_NOT_SUPPORTED, format!("a table with a column named {ROW} cannot be changed")));
    }
    let mut fields = rows.schema().fields().to_vec();
    fields.push(Arc::new(Field::new(ROW, DataType::UInt64, false)));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(UInt64Array::from_iter_values(0..rows.num_rows() as u64)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal_arrow)
}

fn is_picked(rows: usize, ids: &[u64]) -> BooleanArray {
    let mut picked = vec![false; rows];
    for &id in ids {
        picked[id as usize] = true;
    }
    BooleanArray::from(picked)
}

/// `rows` without the picked ones (DELETE).
fn without(rows: &RecordBatch, ids: &[u64]) -> PgWireResult<RecordBatch> {
    let kept = datafusion::arrow::compute::not(&is_picked(rows.num_rows(), ids)).map_err(internal_arrow)?;
    filter_record_batch(rows, &kept).map_err(internal_arrow)
}

/// The rows not picked, then the picked ones with their new values (UPDATE), and how many.
fn updated(rows: &RecordBatch, picked: &Picked, assignments: &[(String, Expr)]) -> PgWireResult<(RecordBatch, usize)> {
    let schema: SchemaRef = rows.schema();
    let Some(values) = &picked.values else { return Ok((rows.clone(), 0)) };
    let targets = UInt64Array::from(picked.ids.clone());
    let sources = UInt64Array::from(picked.value_rows.clone());
    let mut columns: Vec<ArrayRef> = rows
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &targets, None))
        .collect::<Result<_, _>>()
        .map_err(internal_arrow)?;
    for (i, (name, _)) in assignments.iter().enumerate() {
        let Some((at, field)) = schema.column_with_name(name) else {
            return Err(error(UNDEFINED_COLUMN, format!("column \"{name}\" of relation does not exist")));
        };
        let value = take(values.column(i + 1).as_ref(), &sources, None).map_err(internal_arrow)?;
        let options = CastOptions { safe: false, ..Default::default() };
        let value = cast_with_options(&value, field.data_type(), &options)
            .map_err(|e| error("22P02", format!("column \"{name}\": {e}")))?;
        if !field.is_nullable() && value.null_count() > 0 {
            return Err(error(
                NOT_NULL_VIOLATION,
                format!("null value in column \"{name}\" violates not-null constraint"),
            ));
        }
        columns[at] = value;
    }
    let changed = RecordBatch::try_new(schema.clone(), columns).map_err(internal_arrow)?;
    let kept = without(rows, &picked.ids)?;
    let all = concat_batches(&schema, [&kept, &changed]).map_err(internal_arrow)?;
    Ok((all, picked.ids.len()))
}

fn internal_arrow(e: impl std::fmt::Display) -> pgwire::error::PgWireError {
    crate::errors::internal(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_picking_query_keeps_the_statements_own_condition_and_values() {
        let parse = |sql: &str| Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let delete = parse("DELETE FROM t AS d WHERE (x) IN (SELECT x FROM s) AND d.y IS NULL");
        let change = Change::of(&delete).unwrap().unwrap();
        assert_eq!(
            change.query("copy_1").to_string(),
            "SELECT d.__northstar_row FROM copy_1 AS d WHERE (x) IN (SELECT x FROM s) AND d.y IS NULL"
        );
        let update = parse("UPDATE public.t SET Y = s.y, \"Z\" = $1 FROM s WHERE t.x = s.x");
        let change = Change::of(&update).unwrap().unwrap();
        assert_eq!(
            change.query("copy_2").to_string(),
            "SELECT t.__northstar_row, s.y AS value_0, $1 AS value_1 FROM copy_2 AS t, s WHERE t.x = s.x"
        );
        assert_eq!(change.assignments.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["y", "Z"]);
        assert!(Change::of(&parse("DELETE FROM t RETURNING x")).is_err());
        let prepare = parse("PREPARE wipe AS DELETE FROM t WHERE x IN (SELECT x FROM t)");
        assert!(matches!(prepare, Statement::Prepare { .. }), "{prepare:?}");
        assert!(Change::of(&parse("SELECT 1")).unwrap().is_none());
    }

    #[test]
    fn an_update_from_several_matches_changes_each_row_once() {
        let rows =
            RecordBatch::try_from_iter([("x", Arc::new(UInt64Array::from(vec![10, 20, 30])) as ArrayRef)]).unwrap();
        let values = RecordBatch::try_from_iter([
            ("row", Arc::new(UInt64Array::from(vec![2, 0, 2])) as ArrayRef),
            ("value_0", Arc::new(UInt64Array::from(vec![7, 8, 9])) as ArrayRef),
        ])
        .unwrap();
        let picked = Picked::from_batches(vec![values]).unwrap();
        let set = Expr::value(datafusion::sql::sqlparser::ast::Value::Null);
        let (after, changed) = updated(&rows, &picked, &[("x".to_string(), set)]).unwrap();
        assert_eq!(changed, 2);
        let x = after.column(0).as_any().downcast_ref::<UInt64Array>().unwrap();
        assert_eq!(x.values().to_vec(), vec![20, 7, 8]);
        let (kept, _) = (without(&rows, &[1]).unwrap(), ());
        assert_eq!(kept.num_rows(), 2);
    }
}
