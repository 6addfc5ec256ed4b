//! `trends(options)`: events and active users per period, and for daily trends the rolling
//! WAU (7 days) and MAU (30 days) ending each day, with an optional breakdown.
//!
//! ```sql
//! SELECT period, dau_or_active_users, wau, mau FROM trends('interval=day; from=2025-01-01; to=2025-03-31');
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
pub struct Trends;

impl Report for Trends {
    fn name(&self) -> &'static str {
        "trends"
    }

    fn build(&self, args: &[Expr], dialect: &dyn Dialect) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'interval=day|week|month; event=name or condition; breakdown=expr; from=…; to=…'",
            &["interval", "event", "breakdown"],
            dialect,
        )?;
        let interval = o.choice("interval", &["day", "week", "month"])?;
        let event = o.event("event")?.unwrap_or_else(|| "TRUE".into());
        let breakdown = o
            .expression("breakdown")?
            .map(|b| format!("CAST({b} AS TEXT)"))
            .unwrap_or_else(|| "CAST(NULL AS TEXT)".into());
        let source = o.source()?;
        let mut ctes = vec![
            source.cte(),
            format!("picked AS (SELECT user_id, event_time, {breakdown} AS breakdown FROM base WHERE {event})"),
            format!("per AS (SELECT date_trunc('{interval}', event_time) AS period, breakdown, count(*) AS events, count(DISTINCT user_id) AS users FROM picked GROUP BY 1, 2)"),
        ];
        let rolling = if interval == "day" {
            // A user active on day d is in the rolling window of every day d .. d+n-1. Counting
            // each (user, window day) once without DISTINCT: a day adds the window days its
            // predecessor (the user's previous active day p) did not already cover,
            // max(d, p+n) .. d+n-1.
            ctes.push("user_days AS (SELECT DISTINCT user_id, breakdown, CAST(CAST(date_trunc('day', event_time) AS DATE) AS BIGINT) AS day FROM picked)".into());
            ctes.push("spans AS (SELECT breakdown, day, lag(day) OVER (PARTITION BY user_id, breakdown ORDER BY day) AS previous FROM user_days)".into());
            for (name, days) in [("wau", 7), ("mau", 30)] {
                ctes.push(format!(
                    "{name} AS (SELECT d AS day, breakdown, count(*) AS users FROM (SELECT breakdown, unnest(range(greatest(day, coalesce(previous + {days}, day)), day + {days})) AS d FROM spans) GROUP BY 1, 2)"
                ));
            }
            "LEFT JOIN wau ON wau.day = CAST(CAST(per.period AS DATE) AS BIGINT) AND (wau.breakdown IS NOT DISTINCT FROM per.breakdown) \
             LEFT JOIN mau ON mau.day = CAST(CAST(per.period AS DATE) AS BIGINT) AND (mau.breakdown IS NOT DISTINCT FROM per.breakdown)"
        } else {
            ""
        };
        let (wau, mau) = if interval == "day" { ("wau.users", "mau.users") } else { ("NULL", "NULL") };
        let sql = format!(
            "WITH {} SELECT CAST(per.period AS DATE) AS period, CAST(per.breakdown AS TEXT) AS breakdown, CAST(per.events AS BIGINT) AS events, \
             CAST(per.users AS BIGINT) AS active_users, CAST({wau} AS BIGINT) AS wau, CAST({mau} AS BIGINT) AS mau \
             FROM per {rolling} ORDER BY period, breakdown NULLS FIRST",
            ctes.join(",\n")
        );
        Ok(ReportSql {
            after: None,
            sql,
            schema: Arc::new(Schema::new(vec![
                Field::new("period", DataType::Date32, true),
                Field::new("breakdown", DataType::Utf8, true),
                Field::new("events", DataType::Int64, true),
                Field::new("active_users", DataType::Int64, true),
                Field::new("wau", DataType::Int64, true),
                Field::new("mau", DataType::Int64, true),
            ])),
        })
    }
}
