//! The table a report call returns: its schema is known at the call, its SQL is planned when
//! the table is scanned (planning needs the session, which table functions only see then).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{internal_datafusion_err, plan_datafusion_err, plan_err, Column, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;

use crate::finish::{Finish, FinishExec};

/// A report's SQL and the schema its final SELECT produces (every column cast explicitly).
#[derive(Debug, Clone)]
pub struct ReportSql {
    pub sql: String,
    /// The report's output: the SQL's, or with `after`, what its finish function returns.
    pub schema: SchemaRef,
    pub after: Option<After>,
}

/// For a report that finishes in Rust: the function over the SQL's rows, and the user
/// expressions to check first, so that a wrong type is an error naming the option.
impl ReportSql {
    /// The report as one SQL statement: what it runs, or what its finish is equal to.
    pub fn stands_for(&self) -> &str {
        self.after.as_ref().and_then(|a| a.stands_for.as_deref()).unwrap_or(&self.sql)
    }
}

#[derive(Clone)]
pub struct After {
    pub finish: Finish,
    pub checks: Vec<Check>,
    /// The whole report as one SQL statement, when the finish computes what SQL could (the
    /// funnel's per-step figures): shown instead of the SQL that runs, and tested equal.
    pub stands_for: Option<String>,
}

impl std::fmt::Debug for After {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("After").field("checks", &self.checks).finish_non_exhaustive()
    }
}

/// A user expression of a report option, planned alone over the report's table.
#[derive(Debug, Clone)]
pub struct Check {
    /// The option, as error messages name it (`variant`, `metric 2 value`).
    pub what: String,
    /// `SELECT <expression> FROM <table>`.
    pub sql: String,
    pub want: Want,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A condition.
    Boolean,
    /// A value summed or averaged.
    Number,
    /// Anything that can be cast to text (a variant name).
    Any,
}

impl Check {
    async fn run(&self, report: &str, state: &SessionState) -> Result<()> {
        let plan = state
            .create_logical_plan(&self.sql)
            .await
            .map_err(|e| plan_datafusion_err!("{report}: {}: {}", self.what, e.strip_backtrace()))?;
        let field = plan.schema().field(0);
        let ok = match self.want {
            Want::Boolean => matches!(field.data_type(), DataType::Boolean | DataType::Null),
            Want::Number => field.data_type().is_numeric() || field.data_type() == &DataType::Null,
            Want::Any => true,
        };
        if !ok {
            let want = if self.want == Want::Boolean { "a condition (boolean)" } else { "numeric" };
            return plan_err!("{report}: {} must be {want}, got {}", self.what, field.data_type());
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct ReportTable {
    /// The report's name, for error messages.
    name: &'static str,
    report: ReportSql,
}

impl ReportTable {
    pub fn new(name: &'static str, report: ReportSql) -> Self {
        ReportTable { name, report }
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
        let utc = in_utc(state);
        let state = utc.as_ref();
        // Shows users (and benches/reports.py) the SQL a report stands for.
        if std::env::var_os("NORTHSTAR_REPORT_SQL").is_some() {
            eprintln!("{}", self.report.stands_for());
        }
        if let Some(after) = &self.report.after {
            return self.finished(state, after, projection).await;
        }
        let plan = state.create_logical_plan(&self.report.sql).await?;
        if plan.schema().fields().len() != self.report.schema.fields().len() {
            return plan_err!(
                "report SQL produced {} columns, expected {}",
                plan.schema().fields().len(),
                self.report.schema.fields().len()
            );
        }
        // Every column as the declared schema says: the planner may pick another string type
        // (Utf8View for a CASE of literals), and a plan whose schema differs from the
        // table's fails above it (`SELECT DISTINCT * FROM lifecycle(…)`, found by the SQL fuzz).
        let fields = self.report.schema.fields();
        let columns = projection
            .cloned()
            .unwrap_or_else(|| (0..fields.len()).collect())
            .into_iter()
            .map(|i| {
                let (declared, planned) = (&fields[i], plan.schema().field(i));
                let column = Expr::Column(Column::new_unqualified(planned.name()));
                if planned.data_type() == declared.data_type() {
                    column.alias(declared.name())
                } else {
                    datafusion::logical_expr::cast(column, declared.data_type().clone()).alias(declared.name())
                }
            })
            .collect::<Vec<_>>();
        let mut builder = LogicalPlanBuilder::from(plan).project(columns)?;
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        state.create_physical_plan(&builder.build()?).await
    }
}

impl ReportTable {
    async fn finished(
        &self,
        state: &SessionState,
        after: &After,
        projection: Option<&Vec<usize>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        for check in &after.checks {
            check.run(self.name, state).await?;
        }
        let plan = state.create_logical_plan(&self.report.sql).await?;
        let input = state.create_physical_plan(&plan).await?;
        Ok(Arc::new(FinishExec::new(input, after.finish.clone(), self.report.schema.clone(), projection.cloned())?))
    }
}

/// `state` with UTC as its time zone: a report counts UTC days, as its functions
/// (`days_active`, `lifecycle_statuses` …) do, whatever the session's `SET TIME ZONE` (which
/// would move the periods its SQL computes with `date_trunc`, and not theirs).
fn in_utc(state: &SessionState) -> std::borrow::Cow<'_, SessionState> {
    let zone = state.config().options().execution.time_zone.as_deref();
    if zone.is_none_or(northstar_functions::is_utc_zone) {
        return std::borrow::Cow::Borrowed(state);
    }
    let mut utc = state.clone();
    utc.config_mut().options_mut().execution.time_zone = Some("UTC".into());
    std::borrow::Cow::Owned(utc)
}
