//! `INSERT INTO events …` through the wire endpoint: one atomic Delta commit (nothing is
//! visible until the commit; a canceled or failed write leaves the table as it was). COPY
//! FROM STDIN, the other write, is in `copy` and shares the column checks here.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Column, ParamValues, ScalarValue};
use datafusion::logical_expr::{cast, lit, Expr};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Insert, Statement};
use futures::StreamExt;
use northstar_storage::columns::{EVENT_DATE, EVENT_TIME};
use northstar_storage::{AppendError, WriterLayout};
use pgwire::api::results::{Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};

use crate::catalog::SharedEventStore;
use crate::errors::{
    error, from_datafusion, internal, FEATURE_NOT_SUPPORTED, NOT_NULL_VIOLATION, SYNTAX_ERROR, UNDEFINED_COLUMN,
};
use crate::limits::uninterrupted;
use crate::session::Session;

/// Checks that every named column exists; returns the names, or the table's writable columns.
pub fn target_columns(schema: &SchemaRef, named: Vec<String>) -> PgWireResult<Vec<String>> {
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
pub async fn insert_column_types(events: &SharedEventStore, insert: &Insert) -> Vec<(usize, DataType)> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SetExpr, Value};
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

impl Session {
    /// Runs `INSERT INTO events …` as one commit.
    pub async fn insert_events(&self, insert: &Insert, params: Option<ParamValues>) -> PgWireResult<Response> {
        let session = self;
        let Some(source) = &insert.source else {
            return Err(error(FEATURE_NOT_SUPPORTED, "INSERT without VALUES or SELECT is not supported"));
        };
        let schema = self.shared.events.write_schema().await;
        let columns = target_columns(
            &schema,
            insert.columns.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect(),
        )?;
        let limits = self.limits();
        let statement = DfStatement::Statement(Box::new(Statement::Query(crate::complexity::deep(|| source.clone()))));
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
        let batches = Box::pin(limits.stream(batches));
        let shared = self.shared.clone();
        let summary = uninterrupted(async move {
            let layout = WriterLayout::default();
            shared
                .events
                .write(&shared.template, async |store| {
                    let mut rows = 0usize;
                    let counted = batches.inspect(|b| {
                        if let Ok(b) = b {
                            rows += b.num_rows();
                        }
                    });
                    store.append(schema.clone(), counted, &layout).await.map_err(|e| match e {
                        AppendError::Input(e) => e,
                        AppendError::Storage(e) => internal(e),
                    })?;
                    Ok::<usize, PgWireError>(rows)
                })
                .await
        })
        .await?;
        Ok(Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(summary)))
    }
}
