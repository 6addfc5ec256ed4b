//! `retention(options)`: the cohort matrix — cohort start, cohort size, period k, retained
//! users, rate.
//!
//! ```sql
//! SELECT * FROM retention('start=signup; return=purchase; period=week; periods=8');
//! ```
//!
//! Definitions (docs/reports.md): a cohort is the period of a user's first start event
//! (`cohort=first`) or of each period with a start event (`cohort=recurring`). Period 0 is the
//! cohort itself (retained = cohort size). A user is retained in period k ≥ 1 when a return
//! event falls in period k (`criterion=on`) or in any period ≥ k (`criterion=on_or_after`).
//! Periods are calendar periods (UTC days, ISO weeks, months) or, with `windows=rolling`,
//! consecutive 24-hour / 7-day / 30-day windows from the user's start event. Periods after the
//! data's last event are left out, not reported as zero.

use std::sync::Arc;

use crate::options::Call;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::Expr;

use crate::finish::Finish;
use crate::options::single_options_arg;
use crate::retention_matrix::{matrix, Matrix};
use crate::table::{After, ReportSql};
use crate::Report;
use northstar_functions::Period;

#[derive(Debug)]
pub struct Retention;

const OWN_KEYS: [&str; 7] = ["start", "return", "period", "periods", "criterion", "cohort", "windows"];

/// Seconds in a rolling period; a rolling month is 30 days.
pub fn rolling_seconds(period: &str) -> u32 {
    match period {
        "day" => 86_400,
        "week" => 604_800,
        _ => 2_592_000,
    }
}

/// Calendar periods from `earlier` to `later` (both truncated to the period), as SQL.
pub fn calendar_index(period: &str, later: &str, earlier: &str) -> String {
    match period {
        "month" => format!(
            "CAST((date_part('year', {later}) - date_part('year', {earlier})) * 12 + date_part('month', {later}) - date_part('month', {earlier}) AS BIGINT)"
        ),
        p => format!("CAST(round((date_part('epoch', {later}) - date_part('epoch', {earlier})) / {}) AS BIGINT)", rolling_seconds(p)),
    }
}

impl Report for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'start=signup; return=purchase; period=day|week|month; periods=7; criterion=on|on_or_after; cohort=first|recurring; windows=calendar|rolling; from=…; to=…'",
            &OWN_KEYS,
            call,
        )?;
        let start = o.event("start")?.unwrap_or_else(|| "TRUE".into());
        let ret = o.event("return")?.unwrap_or_else(|| "TRUE".into());
        let period = o.choice("period", &["day", "week", "month"])?;
        let periods = o.count("periods", 7, 366)?;
        let criterion = o.choice("criterion", &["on", "on_or_after"])?;
        let cohort = o.choice("cohort", &["first", "recurring"])?;
        let windows = o.choice("windows", &["calendar", "rolling"])?;
        let source = o.source()?;

        let mut ctes = vec![source.cte()];
        ctes.push(match cohort {
            "first" => format!("starts AS (SELECT user_id, min(event_time) AS start_time FROM base WHERE {start} GROUP BY user_id), cohorts AS (SELECT user_id, start_time, date_trunc('{period}', start_time) AS cohort FROM starts)"),
            _ => format!("cohorts AS (SELECT user_id, min(event_time) AS start_time, date_trunc('{period}', event_time) AS cohort FROM base WHERE {start} GROUP BY user_id, date_trunc('{period}', event_time))"),
        });
        let k = if windows == "calendar" {
            ctes.push(format!(
                "rets AS (SELECT DISTINCT user_id, date_trunc('{period}', event_time) AS t FROM base WHERE {ret})"
            ));
            calendar_index(period, "r.t", "c.cohort")
        } else {
            ctes.push(format!("rets AS (SELECT user_id, event_time AS t FROM base WHERE {ret})"));
            format!(
                "CAST(floor((date_part('epoch', r.t) - date_part('epoch', c.start_time)) / {}) AS BIGINT)",
                rolling_seconds(period)
            )
        };
        let since = if windows == "calendar" { "c.cohort" } else { "c.start_time" };
        ctes.push(format!(
            "hits AS (SELECT DISTINCT c.cohort, c.user_id, {k} AS k FROM cohorts c JOIN rets r ON r.user_id = c.user_id AND r.t >= {since})"
        ));
        ctes.push("sizes AS (SELECT cohort, count(*) AS size FROM cohorts GROUP BY cohort)".into());
        ctes.push(format!(
            "grid AS (SELECT s.cohort, s.size, g.k FROM sizes s CROSS JOIN (SELECT unnest(range(0, {})) AS k) g)",
            periods + 1
        ));
        ctes.push(match criterion {
            "on" => format!("counts AS (SELECT cohort, k, count(*) AS retained FROM hits WHERE k BETWEEN 1 AND {periods} GROUP BY cohort, k)"),
            _ => "reached AS (SELECT cohort, user_id, max(k) AS k FROM hits GROUP BY cohort, user_id), \
                  counts AS (SELECT g.cohort, g.k, count(*) AS retained FROM grid g JOIN reached r ON r.cohort = g.cohort AND r.k >= g.k WHERE g.k >= 1 GROUP BY g.cohort, g.k)"
                .into(),
        });
        ctes.push(format!("last AS (SELECT max(event_time) AS t FROM base), last_period AS (SELECT date_trunc('{period}', t) AS t FROM last)"));
        let observable = if windows == "calendar" {
            format!("{} >= g.k", calendar_index(period, "(SELECT t FROM last_period)", "g.cohort"))
        } else {
            format!(
                "date_part('epoch', g.cohort) + g.k * {} <= date_part('epoch', (SELECT t FROM last))",
                rolling_seconds(period)
            )
        };
        let stands_for = format!(
            "WITH {} SELECT CAST(g.cohort AS DATE) AS cohort_start, CAST(g.size AS BIGINT) AS cohort_size, CAST(g.k AS INT) AS period, \
             CAST(CASE WHEN g.k = 0 THEN g.size ELSE coalesce(c.retained, 0) END AS BIGINT) AS retained, \
             CAST(CAST(CASE WHEN g.k = 0 THEN g.size ELSE coalesce(c.retained, 0) END AS DOUBLE) / g.size AS DOUBLE) AS rate \
             FROM grid g LEFT JOIN counts c ON c.cohort = g.cohort AND c.k = g.k WHERE {observable} ORDER BY cohort_start, period",
            ctes.join(",\n")
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("cohort_start", DataType::Date32, true),
            Field::new("cohort_size", DataType::Int64, true),
            Field::new("period", DataType::Int32, true),
            Field::new("retained", DataType::Int64, true),
            Field::new("rate", DataType::Float64, true),
        ]));
        if windows == "rolling" || cohort == "recurring" {
            return Ok(ReportSql { after: None, sql: stands_for, schema });
        }
        // The calendar matrix of first cohorts, the default, in one pass per user: each
        // user's start and return periods and last day; `retention_matrix` counts them.
        let per_user = format!(
            "WITH {} SELECT days_active(event_time, '{period}') FILTER (WHERE {start}) AS starts, \
             days_active(event_time, '{period}') FILTER (WHERE {ret}) AS returns, CAST(max(event_time) AS DATE) AS last_day \
             FROM base GROUP BY user_id",
            source.cte()
        );
        let m = Matrix {
            period: Period::parse(self.name(), "period", period)?,
            periods: periods as usize,
            on_or_after: criterion == "on_or_after",
        };
        let finish: Finish = {
            let schema = schema.clone();
            Arc::new(move |rows: &[RecordBatch]| matrix(rows, m, schema.clone()))
        };
        Ok(ReportSql {
            sql: per_user,
            schema,
            after: Some(After { finish, checks: vec![], stands_for: Some(stands_for) }),
        })
    }
}
