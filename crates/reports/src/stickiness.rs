//! `stickiness(options)`: per week or month, how many users were active on exactly d distinct
//! days (UTC).
//!
//! ```sql
//! SELECT * FROM stickiness('period=week; event=purchase');
//! ```

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::dialect::Dialect;

use crate::options::single_options_arg;
use crate::table::ReportSql;
use crate::Report;

#[derive(Debug)]
pub struct Stickiness;

impl Report for Stickiness {
    fn name(&self) -> &'static str {
        "stickiness"
    }

    fn build(&self, args: &[Expr], dialect: &dyn Dialect) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'period=week|month; event=name or condition; from=…; to=…'",
            &["period", "event"],
            dialect,
        )?;
        let p = o.choice("period", &["week", "month"])?;
        let event = o.event("event")?.unwrap_or_else(|| "TRUE".into());
        let source = o.source()?;
        let sql = format!(
            "WITH {}, per_user AS (SELECT user_id, date_trunc('{p}', event_time) AS period, count(DISTINCT date_trunc('day', event_time)) AS days FROM base WHERE {event} GROUP BY 1, 2) \
             SELECT CAST(period AS DATE) AS period, CAST(days AS INT) AS days_active, CAST(count(*) AS BIGINT) AS users FROM per_user GROUP BY 1, 2 ORDER BY 1, 2",
            source.cte()
        );
        Ok(ReportSql {
            after: None,
            sql,
            schema: Arc::new(Schema::new(vec![
                Field::new("period", DataType::Date32, true),
                Field::new("days_active", DataType::Int32, true),
                Field::new("users", DataType::Int64, true),
            ])),
        })
    }
}
