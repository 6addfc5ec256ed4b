//! Product-analytics reports in one SQL call: `SELECT * FROM funnel(…)`, `retention(…)`,
//! `trends(…)`, `lifecycle(…)`, `stickiness(…)`, `paths(…)`.
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
mod funnel;
mod lifecycle;
mod options;
mod paths;
mod retention;
mod stickiness;
mod table;
mod trends;

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::Result;
use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;

pub use options::Options;
use table::ReportTable;

/// A report: its name, how its arguments become SQL, and its output schema.
pub trait Report: std::fmt::Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The SQL for these call arguments, and the output schema it produces.
    fn build(&self, args: &[datafusion::prelude::Expr]) -> Result<table::ReportSql>;
}

/// Adapts a [`Report`] to DataFusion's table-function interface.
#[derive(Debug)]
pub struct ReportFunction<R: Report>(pub R);

impl<R: Report> ReportFunction<R> {
    /// The SQL a call would run (for docs, tests and `EXPLAIN`-like inspection).
    pub fn sql(&self, args: &[datafusion::prelude::Expr]) -> Result<String> {
        Ok(self.0.build(args)?.sql)
    }
}

impl<R: Report> TableFunctionImpl for ReportFunction<R> {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let built = self.0.build(args.exprs())?;
        Ok(Arc::new(ReportTable::new(built)))
    }
}

/// Registers every report in `ctx`.
pub fn register_all(ctx: &SessionContext) {
    ctx.register_udtf("funnel", Arc::new(ReportFunction(funnel::Funnel)));
    ctx.register_udtf("retention", Arc::new(ReportFunction(retention::Retention)));
    ctx.register_udtf("trends", Arc::new(ReportFunction(trends::Trends)));
    ctx.register_udtf("lifecycle", Arc::new(ReportFunction(lifecycle::Lifecycle)));
    ctx.register_udtf("stickiness", Arc::new(ReportFunction(stickiness::Stickiness)));
    ctx.register_udtf("paths", Arc::new(ReportFunction(paths::Paths)));
}
