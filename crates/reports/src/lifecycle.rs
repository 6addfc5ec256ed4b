//! `lifecycle(options)`: per period, users who are new (first active period ever), returning
//! (active in the previous period too), resurrecting (inactive in the previous period, active
//! before), and dormant (active in the previous period, not in this one; counted negative).
//!
//! ```sql
//! SELECT * FROM lifecycle('period=week; from=2025-01-06; to=2025-03-30');
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
pub struct Lifecycle;

impl Report for Lifecycle {
    fn name(&self) -> &'static str {
        "lifecycle"
    }

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'period=day|week|month; event=name or condition; from=…; to=…'",
            &["period", "event"],
            call,
        )?;
        let p = o.choice("period", &["day", "week", "month"])?;
        let event = o.event("event")?.unwrap_or_else(|| "TRUE".into());
        let source = o.source()?;
        // Statuses from activity over all time (so "new" means new ever), per user in one pass
        // (`lifecycle_statuses`); shown for the periods with activity in range.
        let sql = format!(
            "WITH statuses AS (SELECT unnest(s) AS s FROM (SELECT lifecycle_statuses(event_time, '{p}') AS s \
                               FROM {table} WHERE {all_time} AND {event} GROUP BY user_id)), \
             counted AS (SELECT s['period'] AS period, s['status'] AS status, count(*) AS users FROM statuses GROUP BY 1, 2), \
             shown AS (SELECT DISTINCT CAST(date_trunc('{p}', event_time) AS DATE) AS period FROM {table} WHERE {filter} AND {event}), \
             ranked AS (SELECT c.period AS p, c.status AS s, c.users AS n, \
                               CASE c.status WHEN 'new' THEN 1 WHEN 'returning' THEN 2 WHEN 'resurrecting' THEN 3 ELSE 4 END AS r \
                        FROM counted c JOIN shown ON shown.period = c.period) \
             SELECT p AS period, CAST(s AS TEXT) AS status, CAST(CASE WHEN s = 'dormant' THEN -n ELSE n END AS BIGINT) AS users \
             FROM ranked ORDER BY p, r",
            table = source.table,
            all_time = source.all_time,
            filter = source.filter,
        );
        Ok(ReportSql {
            after: None,
            sql,
            schema: Arc::new(Schema::new(vec![
                Field::new("period", DataType::Date32, true),
                Field::new("status", DataType::Utf8, true),
                Field::new("users", DataType::Int64, true),
            ])),
        })
    }
}
