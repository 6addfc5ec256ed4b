//! What SQL creates besides events, saved to the data location so it survives restarts and
//! every client sees it: views (their CREATE statement) and tables (their rows, see
//! `northstar_storage::SavedTable`). The in-memory catalog answers queries; the data location
//! is brought in step after each statement that changes either.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, MemorySchemaProvider, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{ResolvedTableReference, TableReference};
use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{FromTable, ObjectName, ObjectType, Statement, TableFactor, TableObject};
use northstar_storage::{EventStore, StorageError};

use crate::EVENTS_TABLE;

type Result<T> = std::result::Result<T, StorageError>;

/// Creates the saved views of the data location in `ctx`. A view that no longer plans (its
/// columns went away) is skipped with a warning rather than making the whole location unusable.
pub async fn load_views(ctx: &SessionContext, store: &EventStore) -> Result<()> {
    for (name, sql) in store.views().await? {
        if name.eq_ignore_ascii_case(EVENTS_TABLE) {
            // Saved by a version that let a view replace the table: it would hide every event.
            tracing::warn!("saved view {name} ignored: a view may not replace the event table");
            continue;
        }
        if let Err(e) = ctx.sql(&sql).await {
            tracing::warn!("saved view {name} was not loaded: {e}");
        }
    }
    Ok(())
}

/// Registers the saved tables of the data location in `ctx` (before the views, which may read
/// them), creating their schemas when missing.
pub async fn load_saved_tables(ctx: &SessionContext, store: &EventStore) -> Result<()> {
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let Some(catalog) = ctx.catalog(&catalog_name) else { return Ok(()) };
    for table in store.saved_tables().await? {
        if catalog.schema(&table.schema_name).is_none() {
            catalog.register_schema(&table.schema_name, Arc::new(MemorySchemaProvider::new()))?;
        }
        let reference = TableReference::full(catalog_name.clone(), table.schema_name.clone(), table.table_name.clone());
        let provider = MemTable::try_new(table.columns, vec![table.rows])?;
        ctx.register_table(reference, Arc::new(provider))?;
    }
    Ok(())
}

/// Runs one SQL statement and collects its answer; what it changes of views and tables is
/// saved to the data location before the answer is returned.
pub async fn execute_sql(ctx: &SessionContext, store: &EventStore, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let dialect = ctx.state().config().options().sql_parser.dialect;
    let statement = ctx.state().sql_to_statement(sql, &dialect)?;
    if let DfStatement::Statement(inner) = &statement {
        if let Statement::CreateView(view) = inner.as_ref() {
            if last_name(&view.name).eq_ignore_ascii_case(EVENTS_TABLE) {
                return Err(StorageError::DataFusion(datafusion::error::DataFusionError::Plan(
                    "a view may not replace the event table \"events\": create it under another name".to_string(),
                )));
            }
        }
    }
    let plan = ctx.state().statement_to_plan(statement.clone()).await?;
    refuse_dml_with_joins(&plan)?;
    let df = ctx.execute_logical_plan(plan).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    if let DfStatement::Statement(statement) = &statement {
        persist_catalog_change(ctx, store, statement).await?;
    }
    Ok((schema, batches))
}

/// DataFusion 55 applies a DELETE or UPDATE whose condition became a join (an `IN`/`EXISTS`
/// subquery, `USING`, `FROM`) to every row (apache/datafusion#24654). The server runs those
/// itself (crates/server/src/table_rows.rs); here they are refused rather than run wrong.
fn refuse_dml_with_joins(plan: &LogicalPlan) -> datafusion::error::Result<()> {
    let LogicalPlan::Dml(dml) = plan else { return Ok(()) };
    if !matches!(dml.op, WriteOp::Delete | WriteOp::Update) {
        return Ok(());
    }
    let subquery = |e: &Expr| Ok(matches!(e, Expr::InSubquery(_) | Expr::Exists(_) | Expr::ScalarSubquery(_)));
    let joins = dml.input.exists(|node| {
        Ok(matches!(node, LogicalPlan::Join(_) | LogicalPlan::Subquery(_))
            || node.expressions().iter().any(|e| e.exists(subquery).unwrap_or(true)))
    })?;
    if joins {
        return Err(datafusion::error::DataFusionError::NotImplemented(format!(
            "{} with a subquery, USING or FROM is run by the server only (northstar serve)",
            dml.op
        )));
    }
    Ok(())
}

/// Brings the data location in step with a statement that ran to completion: CREATE/DROP VIEW
/// save or remove the view; CREATE TABLE, INSERT, UPDATE, DELETE and TRUNCATE save the whole
/// table they changed, DROP TABLE removes it. Temporary tables and `events` (a Delta table of
/// its own) are not saved; other statements change nothing here.
pub async fn persist_catalog_change(ctx: &SessionContext, store: &EventStore, statement: &Statement) -> Result<()> {
    match statement {
        Statement::CreateView(create) => store.save_view(&last_name(&create.name), &statement.to_string()).await,
        Statement::Drop { object_type: ObjectType::View, names, .. } => {
            for name in names {
                store.drop_view(&last_name(name)).await?;
            }
            Ok(())
        }
        Statement::Drop { object_type: ObjectType::Table, names, .. } => {
            for name in names {
                let table = resolve(ctx, name)?;
                if ctx.table_exist(table.clone())? {
                    continue; // DROP TABLE IF EXISTS of a name that is not a table (a view)
                }
                store.drop_table(&table.schema, &table.table).await?;
            }
            Ok(())
        }
        Statement::CreateTable(create) if !create.temporary => save_table(ctx, store, &create.name).await,
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => save_table(ctx, store, name).await,
            TableObject::TableFunction(_) | TableObject::TableQuery(_) => Ok(()),
        },
        Statement::Update(update) => match &update.table.relation {
            TableFactor::Table { name, .. } => save_table(ctx, store, name).await,
            _ => Ok(()),
        },
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
            for table in from {
                if let TableFactor::Table { name, .. } = &table.relation {
                    save_table(ctx, store, name).await?;
                }
            }
            Ok(())
        }
        Statement::Truncate(truncate) => {
            for target in &truncate.table_names {
                save_table(ctx, store, &target.name).await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Saves every row of the in-memory table `name`; a name that is not such a table (events, a
/// view, a table that is gone) is left alone.
pub async fn save_table(ctx: &SessionContext, store: &EventStore, name: &ObjectName) -> Result<()> {
    let table = resolve(ctx, name)?;
    if table.table.eq_ignore_ascii_case(EVENTS_TABLE) {
        return Ok(());
    }
    let Ok(provider) = ctx.table_provider(table.clone()).await else { return Ok(()) };
    let Some(memory) = provider.downcast_ref::<MemTable>() else { return Ok(()) };
    let rows: Vec<_> = partitions_of(memory).await.into_iter().flatten().collect();
    store.save_table(&table.schema, &table.table, memory.schema(), &rows).await
}

/// The batches each partition of an in-memory table holds now.
pub async fn partitions_of(table: &MemTable) -> Vec<Vec<RecordBatch>> {
    let mut partitions = Vec::with_capacity(table.batches.len());
    for partition in &table.batches {
        partitions.push(partition.read().await.clone());
    }
    partitions
}

/// Removes a saved table (after it was renamed away).
pub async fn drop_saved_table(ctx: &SessionContext, store: &EventStore, name: &ObjectName) -> Result<()> {
    let table = resolve(ctx, name)?;
    store.drop_table(&table.schema, &table.table).await
}

/// `name` as the catalog holds it: identifiers folded as DataFusion folds them, the session's
/// default catalog and schema filled in.
fn resolve(ctx: &SessionContext, name: &ObjectName) -> datafusion::error::Result<ResolvedTableReference> {
    let options = ctx.state().config().options().clone();
    let reference = object_name_to_table_reference(name.clone(), options.sql_parser.enable_ident_normalization)?;
    Ok(reference.resolve(&options.catalog.default_catalog, &options.catalog.default_schema))
}

fn last_name(name: &ObjectName) -> String {
    name.0.last().map(|p| p.to_string().trim_matches('"').to_string()).unwrap_or_default()
}
