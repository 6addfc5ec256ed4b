//! `paths(options)`: the most frequent transitions between consecutive events of a session.
//! Sessions split at gaps longer than `gap` (30 minutes); consecutive repeats of an event are
//! collapsed to one; with `start`, only what follows a session's first start event counts, with
//! `end`, only what precedes its last end event.
//!
//! ```sql
//! SELECT * FROM paths('start=signup; top=10');
//! ```

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::logical_expr::Expr;

use crate::options::{condition, single_options_arg};
use crate::table::ReportSql;
use crate::Report;

#[derive(Debug)]
pub struct Paths;

impl Report for Paths {
    fn name(&self) -> &'static str {
        "paths"
    }

    fn build(&self, args: &[Expr]) -> Result<ReportSql> {
        let o = single_options_arg("paths", args, "paths('gap=30 minutes; start=event; end=event; top=20; from=…; to=…')", &["gap", "start", "end", "top"])?;
        let gap = o.interval("gap", "30 minutes")?;
        let top = o.count("top", 20, 10_000)?;
        let source = o.source()?;
        let mut ctes = vec![
            source.cte(),
            // Plain Utf8 rather than string views: DataFusion 55's sort charges each view
            // batch for the whole data buffers it points into, which at 20M events asks the
            // memory pool for hundreds of gigabytes.
            format!("sessions AS (SELECT arrow_cast(user_id, 'Utf8') AS user_id, arrow_cast(event, 'Utf8') AS event, event_time, session_number(event_time, {gap}) OVER (PARTITION BY user_id ORDER BY event_time, event) AS session FROM base)"),
            "collapsed AS (SELECT user_id, session, event, event_time FROM (SELECT *, lag(event) OVER (PARTITION BY user_id, session ORDER BY event_time, event) AS previous FROM sessions) WHERE previous IS NULL OR previous <> event)".into(),
        ];
        let mut bounded = "collapsed".to_string();
        if let Some(start) = o.get("start") {
            ctes.push(format!(
                "after_start AS (SELECT c.* FROM {bounded} c JOIN (SELECT user_id, session, min(event_time) AS t FROM {bounded} WHERE {} GROUP BY 1, 2) s ON c.user_id = s.user_id AND c.session = s.session AND c.event_time >= s.t)",
                condition(start)
            ));
            bounded = "after_start".into();
        }
        if let Some(end) = o.get("end") {
            ctes.push(format!(
                "before_end AS (SELECT c.* FROM {bounded} c JOIN (SELECT user_id, session, max(event_time) AS t FROM {bounded} WHERE {} GROUP BY 1, 2) e ON c.user_id = e.user_id AND c.session = e.session AND c.event_time <= e.t)",
                condition(end)
            ));
            bounded = "before_end".into();
        }
        ctes.push(format!("pairs AS (SELECT user_id, event AS from_event, lead(event) OVER (PARTITION BY user_id, session ORDER BY event_time, event) AS to_event FROM {bounded})"));
        let sql = format!(
            "WITH {} SELECT CAST(from_event AS TEXT) AS from_event, CAST(to_event AS TEXT) AS to_event, CAST(count(*) AS BIGINT) AS transitions, CAST(count(DISTINCT user_id) AS BIGINT) AS users \
             FROM pairs WHERE to_event IS NOT NULL GROUP BY 1, 2 ORDER BY transitions DESC, from_event, to_event LIMIT {top}",
            ctes.join(",\n")
        );
        Ok(ReportSql {
            sql,
            schema: Arc::new(Schema::new(vec![
                Field::new("from_event", DataType::Utf8, true),
                Field::new("to_event", DataType::Utf8, true),
                Field::new("transitions", DataType::Int64, true),
                Field::new("users", DataType::Int64, true),
            ])),
        })
    }
}
