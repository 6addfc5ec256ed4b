//! `stickiness(options)`: per week or month, how many users were active on exactly d distinct
//! days (UTC).
//!
//! ```sql
//! SELECT * FROM stickiness('period=week; event=purchase');
//! ```

use std::sync::Arc;

use crate::options::Call;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::logical_expr::Expr;

use crate::options::single_options_arg;
use crate::table::ReportSql;
use crate::Report;

#[derive(Debug)]
pub struct Stickiness;

impl Report for Stickiness {
    fn name(&self) -> &'static str {
        "stickiness"
    }

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'period=week|month; event=name or condition; from=…; to=…'",
            &["period", "event"],
            call,
        )?;
        let p = o.choice("period", &["week", "month"])?;
        let event = o.event("event")?.unwrap_or_else(|| "TRUE".into());
        let source = o.source()?;
        // Each user's distinct days per period in one pass (`days_active`).
        let sql = format!(
            "WITH {}, per_user AS (SELECT unnest(d) AS d FROM (SELECT days_active(event_time, '{p}') AS d FROM base WHERE {event} GROUP BY user_id)) \
             SELECT d['period'] AS period, d['days'] AS days_active, CAST(count(*) AS BIGINT) AS users FROM per_user GROUP BY 1, 2 ORDER BY 1, 2",
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
