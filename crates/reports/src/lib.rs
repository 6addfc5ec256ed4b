//! Product-analytics reports in one SQL call: `SELECT * FROM funnel(…)`, `retention(…)`,
//! `trends(…)`, `lifecycle(…)`, `stickiness(…)`, `paths(…)`, `experiment(…)`.
//!
//! Each report is a table function that writes the SQL an analyst would write by hand — with
//! the behavioural functions where they apply — and plans it when the report is scanned. So a
//! report is exactly as fast as its hand-written SQL, runs wherever that SQL runs (CLI, wire
//! endpoint, spilling, many partitions), and its definition is readable: `docs/reports.md`
//! shows each report's SQL, and [`ReportFunction::sql`] returns it.
//!
//! ```sql
//! SELECT * FROM funnel(['signup', 'view_item', 'purchase'], 'window=1 day; breakdown=platform');
//! ```

pub mod documentation;
mod experiment;
mod finish;
mod fragment;
mod funnel;
mod funnel_steps;
mod lifecycle;
mod options;
mod paths;
mod retention;
mod retention_matrix;
mod stickiness;
mod table;
mod trends;

use std::sync::Arc;

use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_datafusion_err, Result};
use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::{dialect_from_str, GenericDialect};

pub use options::{By, Call, Options};
pub use table::{ReportSql, ReportTable};

/// A report: its name, how its arguments become SQL, and its output schema.
pub trait Report: std::fmt::Debug + Send + Sync + 'static {
    /// The table function's name, also the prefix of its error messages.
    fn name(&self) -> &'static str;
    /// The SQL for these call arguments, and the output schema it produces. SQL fragments in
    /// the arguments are checked with `dialect`, the one the SQL will be parsed with.
    fn build(&self, args: &[datafusion::prelude::Expr], call: &Call<'_>) -> Result<ReportSql>;
}

impl<R: Report + ?Sized> Report for Arc<R> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn build(&self, args: &[datafusion::prelude::Expr], call: &Call<'_>) -> Result<ReportSql> {
        (**self).build(args, call)
    }
}

/// Every report, each once: registration names the table functions after [`Report::name`].
pub fn reports() -> Vec<Arc<dyn Report>> {
    vec![
        Arc::new(funnel::Funnel),
        Arc::new(retention::Retention),
        Arc::new(trends::Trends),
        Arc::new(lifecycle::Lifecycle),
        Arc::new(stickiness::Stickiness),
        Arc::new(paths::Paths),
        Arc::new(experiment::Experiment),
    ]
}

/// Decides, for a call in a session, whom reports count when `by` is not given (the engine
/// answers persons when the session's `events` holds identity links).
pub type DefaultBy = Arc<dyn Fn(&dyn Session) -> By + Send + Sync>;

/// Adapts a [`Report`] to DataFusion's table-function interface.
pub struct ReportFunction<R: Report> {
    pub report: R,
    pub default_by: DefaultBy,
}

impl<R: Report> std::fmt::Debug for ReportFunction<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReportFunction").field(&self.report).finish()
    }
}

impl<R: Report> ReportFunction<R> {
    /// A report that counts users unless its call says `by=person`.
    pub fn by_user(report: R) -> Self {
        ReportFunction { report, default_by: Arc::new(|_| By::User) }
    }

    /// The SQL a call stands for (for docs, tests and `EXPLAIN`-like inspection), with
    /// DataFusion's default dialect (`datafusion.sql_parser.dialect = generic`), counting users
    /// unless the call says `by=person`.
    pub fn sql(&self, args: &[datafusion::prelude::Expr]) -> Result<String> {
        Ok(self
            .report
            .build(args, &Call { dialect: &GenericDialect {}, default_by: By::User })?
            .stands_for()
            .to_string())
    }
}

impl<R: Report> TableFunctionImpl for ReportFunction<R> {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = args.session().config().options().sql_parser.dialect;
        let dialect = dialect_from_str(name)
            .ok_or_else(|| plan_datafusion_err!("{}: unsupported SQL dialect {name}", self.report.name()))?;
        let call = Call { dialect: dialect.as_ref(), default_by: (self.default_by)(args.session()) };
        let built = self.report.build(args.exprs(), &call)?;
        Ok(Arc::new(ReportTable::new(self.report.name(), built)))
    }
}

/// Registers every report in `ctx`; `default_by` decides whom they count when a call does not
/// say.
pub fn register_all(ctx: &SessionContext, default_by: DefaultBy) {
    for report in reports() {
        ctx.register_udtf(report.name(), Arc::new(ReportFunction { report, default_by: default_by.clone() }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_is_registered_under_its_name() {
        let ctx = SessionContext::new();
        register_all(&ctx, Arc::new(|_| By::User));
        for report in reports() {
            assert!(ctx.table_function(report.name()).is_ok(), "{}", report.name());
        }
    }

    #[test]
    fn every_report_has_a_section_in_the_docs() {
        let docs = include_str!("../../../docs/reports.md");
        for report in reports() {
            assert!(
                docs.contains(&format!("\n## {}(", report.name())),
                "docs/reports.md: no section for {}",
                report.name()
            );
        }
    }
}
