//! The table a report call returns: its schema is known at the call, its SQL is planned when
//! the table is scanned (planning needs the session, which table functions only see then).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{internal_datafusion_err, plan_err, Column, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;

/// A report's SQL and the schema its final SELECT produces (every column cast explicitly).
#[derive(Debug, Clone)]
pub struct ReportSql {
    pub sql: String,
    pub schema: SchemaRef,
}

#[derive(Debug)]
pub struct ReportTable {
    report: ReportSql,
}

impl ReportTable {
    pub fn new(report: ReportSql) -> Self {
        ReportTable { report }
    }
}

#[async_trait]
impl TableProvider for ReportTable {
    fn schema(&self) -> SchemaRef {
        self.report.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| internal_datafusion_err!("report scanned outside a DataFusion session"))?;
        // Shows users (and benches/reports.py) the SQL a report stands for.
        if std::env::var_os("NORTHSTAR_REPORT_SQL").is_some() {
            eprintln!("{}", self.report.sql);
        }
        let plan = state.create_logical_plan(&self.report.sql).await?;
        if plan.schema().fields().len() != self.report.schema.fields().len() {
            return plan_err!(
                "report SQL produced {} columns, expected {}",
                plan.schema().fields().len(),
                self.report.schema.fields().len()
            );
        }
        let mut builder = LogicalPlanBuilder::from(plan);
        if let Some(projection) = projection {
            let columns = projection
                .iter()
                .map(|&i| Expr::Column(Column::new_unqualified(self.report.schema.field(i).name())))
                .collect::<Vec<_>>();
            builder = builder.project(columns)?;
        }
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        state.create_physical_plan(&builder.build()?).await
    }
}
