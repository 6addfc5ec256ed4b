//! `funnel(steps, options)`: users reaching each step, conversion, drop-off and time to convert.
//!
//! ```sql
//! SELECT * FROM funnel(['signup', 'view_item', 'add_to_cart', 'purchase'],
//!                      'window=1 day; order=ordered; breakdown=platform; from=2025-01-01; to=2025-01-31');
//! ```
//!
//! Ordered and strict funnels use `funnel_step_times` (ClickHouse's windowFunnel chain, default
//! or `strict_order` mode); unordered funnels count, per user, the most distinct steps done
//! within one window that starts at any step event. Definitions: docs/reports.md.

use std::sync::Arc;

use crate::options::Call;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::Expr;

use crate::finish::Finish;
use crate::funnel_steps::per_step;
use crate::options::{keys, text_arg, text_list_arg, Options};
use crate::table::{After, ReportSql};
use crate::Report;

#[derive(Debug)]
pub struct Funnel;

const OWN_KEYS: [&str; 5] = ["window", "order", "exclude", "hold", "breakdown"];

impl Report for Funnel {
    fn name(&self) -> &'static str {
        "funnel"
    }

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
        let report = self.name();
        let usage = "['step1', 'step2', …], 'window=1 day; order=ordered|strict|unordered; exclude=event,…; hold=expr; breakdown=expr; from=YYYY-MM-DD; to=YYYY-MM-DD; table=events; where=condition'";
        if args.is_empty() || args.len() > 2 {
            return plan_err!("{report} takes 1 or 2 arguments: {report}({usage})");
        }
        let steps = text_list_arg(report, &args[0], "steps")?;
        if !(1..=32).contains(&steps.len()) {
            return plan_err!("{report}: 1 to 32 steps, got {}: {report}({usage})", steps.len());
        }
        let options_text = args.get(1).map(|a| text_arg(report, a, "options")).transpose()?.unwrap_or_default();
        let o = Options::parse(report, &options_text, &keys(&OWN_KEYS), call)?;
        let window = o.interval("window", "1 day")?;
        let order = o.choice("order", &["ordered", "strict", "unordered"])?;
        let exclude = o.events("exclude")?;
        if order == "unordered" && !exclude.is_empty() {
            return plan_err!("{report}: exclude applies to ordered and strict funnels only");
        }
        let source = o.source()?;
        let step_label = |i: usize| format!("step {}", i + 1);
        let conditions =
            steps.iter().enumerate().map(|(i, s)| o.condition(&step_label(i), s)).collect::<Result<Vec<_>>>()?;
        let n = steps.len();
        let hold = o.expression("hold")?;
        let breakdown = o.expression("breakdown")?.map(|b| format!("CAST({b} AS TEXT)"));

        let group_keys = match &hold {
            Some(h) => format!("user_id, {h}"),
            None => "user_id".to_string(),
        };
        let hold_filter = hold.as_ref().map(|h| format!(" AND {h} IS NOT NULL")).unwrap_or_default();
        let any_step = conditions.join(" OR ");
        let mut ctes = vec![source.cte()];
        if order == "unordered" {
            let flags = conditions
                .iter()
                .enumerate()
                .map(|(i, c)| format!("CASE WHEN {c} THEN 1 ELSE 0 END AS s{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let (hold_column, partition) = match &hold {
                Some(h) => (format!("{h} AS hold, "), "user_id, hold"),
                None => (String::new(), "user_id"),
            };
            ctes.push(format!(
                "flags AS (SELECT user_id, event_time, {hold_column}{flags} FROM base WHERE ({any_step}){hold_filter})"
            ));
            let frame = format!(
                "PARTITION BY {partition} ORDER BY event_time RANGE BETWEEN CURRENT ROW AND {window} FOLLOWING"
            );
            let in_window = (0..n).map(|i| format!("max(s{i}) OVER ({frame})")).collect::<Vec<_>>().join(" + ");
            ctes.push(format!("windows AS (SELECT user_id, {in_window} AS level FROM flags)"));
            ctes.push(
                "best AS (SELECT user_id, CAST(max(level) AS INT) AS level FROM windows GROUP BY user_id)".into(),
            );
        } else {
            let mode = if order == "strict" { "'strict_order', " } else { "" };
            ctes.push(format!(
                "chains AS (SELECT user_id, funnel_step_times({window}, {mode}event_time, {}) AS t FROM base WHERE TRUE{hold_filter} GROUP BY {group_keys})",
                conditions.join(", ")
            ));
            if hold.is_some() {
                // A user's best chain over the held values: the longest, then the earliest.
                ctes.push("ranked AS (SELECT user_id, t, row_number() OVER (PARTITION BY user_id ORDER BY cardinality(t) DESC, t[1] ASC) AS r FROM chains)".into());
                ctes.push("best0 AS (SELECT user_id, t FROM ranked WHERE r = 1)".into());
            } else {
                ctes.push("best0 AS (SELECT user_id, t FROM chains)".into());
            }
            if exclude.is_empty() {
                ctes.push("best AS (SELECT user_id, t, CAST(cardinality(t) AS INT) AS level FROM best0)".into());
            } else {
                ctes.push(format!(
                    "excluded AS (SELECT DISTINCT c.user_id FROM base b JOIN best0 c ON b.user_id = c.user_id WHERE ({}) AND cardinality(c.t) >= 2 AND b.event_time > c.t[1] AND b.event_time < c.t[CAST(cardinality(c.t) AS BIGINT)])",
                    exclude.join(" OR ")
                ));
                ctes.push("best AS (SELECT user_id, t, CAST(cardinality(t) AS INT) AS level FROM best0 WHERE user_id NOT IN (SELECT user_id FROM excluded))".into());
            }
        }
        let first_touch_condition = if order == "unordered" { any_step.clone() } else { conditions[0].clone() };
        match &breakdown {
            Some(b) => {
                ctes.push(format!("touch AS (SELECT user_id, first_value({b} ORDER BY event_time) FILTER (WHERE {first_touch_condition}) AS breakdown FROM base GROUP BY user_id)"));
                ctes.push("users AS (SELECT touch.breakdown, best.* FROM best LEFT JOIN touch ON best.user_id = touch.user_id WHERE best.level > 0)".into());
            }
            None => ctes.push(
                "users AS (SELECT CAST(NULL AS TEXT) AS breakdown, best.* FROM best WHERE best.level > 0)".into(),
            ),
        }
        // What runs: the per-user rows, once; `funnel_steps::per_step` makes the report of them.
        let chain = if order == "unordered" { "" } else { ", t" };
        let per_user = format!("WITH {} SELECT breakdown, level{chain} FROM users", ctes.join(",\n"));
        ctes.push(format!("steps AS (SELECT CAST(k AS INT) AS step FROM (SELECT unnest(range(1, {})) AS k))", n + 1));
        // Every (breakdown, step) appears, with zeros when nobody got there (unknown events).
        ctes.push("groups AS (SELECT DISTINCT breakdown FROM users UNION ALL SELECT CAST(NULL AS TEXT) FROM (SELECT count(*) AS c FROM users) WHERE c = 0)".into());
        let seconds = if order == "unordered" {
            "CAST(NULL AS DOUBLE)".to_string()
        } else {
            "CASE WHEN s.step > 1 THEN date_part('epoch', u.t[s.step]) - date_part('epoch', u.t[s.step - 1]) END"
                .to_string()
        };
        ctes.push(format!(
            "per_step AS (SELECT g.breakdown, s.step, count(u.level) AS users, median({seconds}) AS median_seconds, percentile_cont({seconds}, 0.9) AS p90_seconds \
             FROM groups g CROSS JOIN steps s LEFT JOIN users u ON (u.breakdown IS NOT DISTINCT FROM g.breakdown) AND u.level >= s.step \
             GROUP BY g.breakdown, s.step)"
        ));
        let names = steps
            .iter()
            .enumerate()
            .map(|(i, s)| Ok(format!("WHEN {} THEN {}", i + 1, o.literal(&step_label(i), s)?)))
            .collect::<Result<Vec<_>>>()?
            .join(" ");
        // Without a breakdown every row's is NULL: partitioning by that constant is needless,
        // and on Ballista 55 the window then fails ("Expects PARTITION BY expression to be
        // ordered"): its stage split forgets that the column is constant, so nothing sorts it.
        let over = if breakdown.is_some() { "PARTITION BY breakdown ORDER BY step" } else { "ORDER BY step" };
        // What the report stands for, as one statement (shown by NORTHSTAR_REPORT_SQL=1).
        let stands_for = format!(
            "WITH {} SELECT CAST(breakdown AS TEXT) AS breakdown, CAST(step AS INT) AS step, CAST(CASE step {names} END AS TEXT) AS step_name, \
             CAST(users AS BIGINT) AS users, \
             CAST(coalesce(CAST(users AS DOUBLE) / NULLIF(CASE WHEN step = 1 THEN users ELSE lag(users) OVER ({over}) END, 0), 0.0) AS DOUBLE) AS conversion_from_previous, \
             CAST(coalesce(CAST(users AS DOUBLE) / NULLIF(first_value(users) OVER ({over}), 0), 0.0) AS DOUBLE) AS conversion_from_first, \
             CAST(CASE WHEN step = 1 THEN 0 ELSE lag(users) OVER ({over}) - users END AS BIGINT) AS drop_off, \
             CAST(median_seconds AS DOUBLE) AS median_seconds_from_previous, CAST(p90_seconds AS DOUBLE) AS p90_seconds_from_previous \
             FROM per_step ORDER BY breakdown NULLS FIRST, step",
            ctes.join(",\n")
        );
        let schema = Arc::new(schema());
        let finish: Finish = {
            let schema = schema.clone();
            Arc::new(move |rows: &[RecordBatch]| per_step(rows, &steps, schema.clone()))
        };
        Ok(ReportSql {
            sql: per_user,
            schema,
            after: Some(After { finish, checks: vec![], stands_for: Some(stands_for) }),
        })
    }
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("breakdown", DataType::Utf8, true),
        Field::new("step", DataType::Int32, true),
        Field::new("step_name", DataType::Utf8, true),
        Field::new("users", DataType::Int64, true),
        Field::new("conversion_from_previous", DataType::Float64, true),
        Field::new("conversion_from_first", DataType::Float64, true),
        Field::new("drop_off", DataType::Int64, true),
        Field::new("median_seconds_from_previous", DataType::Float64, true),
        Field::new("p90_seconds_from_previous", DataType::Float64, true),
    ])
}
