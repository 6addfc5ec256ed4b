//! `lifecycle(options)`: per period, users who are new (first active period ever), returning
//! (active in the previous period too), resurrecting (inactive in the previous period, active
//! before), and dormant (active in the previous period, not in this one; counted negative).
//!
//! ```sql
//! SELECT * FROM lifecycle('period=week; from=2025-01-06; to=2025-03-30');
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
pub struct Lifecycle;

impl Report for Lifecycle {
    fn name(&self) -> &'static str {
        "lifecycle"
    }

    fn build(&self, args: &[Expr], dialect: &dyn Dialect) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'period=day|week|month; event=name or condition; from=…; to=…'",
            &["period", "event"],
            dialect,
        )?;
        let p = o.choice("period", &["day", "week", "month"])?;
        let event = o.event("event")?.unwrap_or_else(|| "TRUE".into());
        let source = o.source()?;
        // Activity over all time (so "new" means new ever), reported for the periods in range.
        let sql = format!(
            "WITH active AS (SELECT DISTINCT user_id, date_trunc('{p}', event_time) AS period FROM {table} WHERE {all_time} AND {event}), \
             shown AS (SELECT DISTINCT date_trunc('{p}', event_time) AS period FROM {table} WHERE {filter} AND {event}), \
             firsts AS (SELECT user_id, min(period) AS first FROM active GROUP BY user_id), \
             statuses AS (SELECT a.period, CASE WHEN a.period = f.first THEN 'new' WHEN prev.user_id IS NOT NULL THEN 'returning' ELSE 'resurrecting' END AS status \
                          FROM active a JOIN firsts f ON a.user_id = f.user_id \
                          LEFT JOIN active prev ON prev.user_id = a.user_id AND prev.period = a.period - INTERVAL '1 {p}'), \
             dormant AS (SELECT a.period + INTERVAL '1 {p}' AS period, 'dormant' AS status FROM active a \
                         LEFT JOIN active nxt ON nxt.user_id = a.user_id AND nxt.period = a.period + INTERVAL '1 {p}' WHERE nxt.user_id IS NULL), \
             counted AS (SELECT period, status, count(*) AS users FROM statuses GROUP BY 1, 2 \
                         UNION ALL SELECT period, status, -count(*) FROM dormant GROUP BY 1, 2), \
             ranked AS (SELECT c.period AS p, c.status AS s, c.users AS n, CASE c.status WHEN 'new' THEN 1 WHEN 'returning' THEN 2 WHEN 'resurrecting' THEN 3 ELSE 4 END AS r \
                        FROM counted c JOIN shown ON shown.period = c.period) \
             SELECT CAST(p AS DATE) AS period, CAST(s AS TEXT) AS status, CAST(n AS BIGINT) AS users FROM ranked ORDER BY p, r",
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
