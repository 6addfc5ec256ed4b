//! `trends(options)`: events and active users per period, and for daily trends the rolling
//! WAU (7 days) and MAU (30 days) ending each day, with an optional breakdown.
//!
//! ```sql
//! SELECT period, dau_or_active_users, wau, mau FROM trends('interval=day; from=2025-01-01; to=2025-03-31');
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
pub struct Trends;

impl Report for Trends {
    fn name(&self) -> &'static str {
        "trends"
    }

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'interval=day|week|month; event=name or condition; breakdown=expr; from=…; to=…'",
            &["interval", "event", "breakdown"],
            call,
        )?;
        let interval = o.choice("interval", &["day", "week", "month"])?;
        let event = o.event("event")?.unwrap_or_else(|| "TRUE".into());
        let breakdown = o
            .expression("breakdown")?
            .map(|b| format!("CAST({b} AS TEXT)"))
            .unwrap_or_else(|| "CAST(NULL AS TEXT)".into());
        let source = o.source()?;
        // Per user (and breakdown value) in one pass: a daily trend's active days and rolling
        // 7- and 30-day window changes (`rolling_activity`), a weekly or monthly trend's active
        // periods (`days_active`). Without a breakdown the grouping is by user_id alone, which
        // the bucket rule runs without a repartition.
        let (per_user_group, per_user_breakdown) = match o.get("breakdown") {
            Some(_) => ("user_id, breakdown", "breakdown"),
            None => ("user_id", "CAST(NULL AS TEXT)"),
        };
        let (per_user, users) = if interval == "day" {
            (
                "rolling_activity(event_time)".to_string(),
                "SELECT breakdown, period, users, sum(wau_change) OVER (PARTITION BY breakdown ORDER BY period) AS wau, \
                 sum(mau_change) OVER (PARTITION BY breakdown ORDER BY period) AS mau FROM \
                 (SELECT breakdown, c['day'] AS period, sum(c['active']) AS users, sum(c['wau_change']) AS wau_change, \
                 sum(c['mau_change']) AS mau_change FROM changes GROUP BY 1, 2)",
            )
        } else {
            (
                format!("days_active(event_time, '{interval}')"),
                "SELECT breakdown, c['period'] AS period, count(*) AS users, NULL AS wau, NULL AS mau FROM changes GROUP BY 1, 2",
            )
        };
        let sql = format!(
            "WITH {base}, \
             picked AS (SELECT user_id, event_time, {breakdown} AS breakdown FROM base WHERE {event}), \
             per AS (SELECT CAST(date_trunc('{interval}', event_time) AS DATE) AS period, breakdown, count(*) AS events FROM picked GROUP BY 1, 2), \
             changes AS (SELECT breakdown, unnest(c) AS c FROM (SELECT {per_user_breakdown} AS breakdown, {per_user} AS c \
                         FROM picked GROUP BY {per_user_group})), \
             users AS ({users}) \
             SELECT per.period AS period, CAST(per.breakdown AS TEXT) AS breakdown, CAST(per.events AS BIGINT) AS events, \
             CAST(users.users AS BIGINT) AS active_users, CAST(users.wau AS BIGINT) AS wau, CAST(users.mau AS BIGINT) AS mau \
             FROM per JOIN users ON users.period = per.period AND (users.breakdown IS NOT DISTINCT FROM per.breakdown) \
             ORDER BY period, breakdown NULLS FIRST",
            base = source.cte(),
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
