//! `paths(options)`: the most frequent transitions between consecutive events of a session.
//! Sessions split at gaps longer than `gap` (30 minutes); consecutive repeats of an event are
//! collapsed to one; with `start`, only what follows a session's first start event counts, with
//! `end`, only what precedes its last end event.
//!
//! ```sql
//! SELECT * FROM paths('start=signup; top=10');
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
pub struct Paths;

impl Report for Paths {
    fn name(&self) -> &'static str {
        "paths"
    }

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
        let o = single_options_arg(
            self.name(),
            args,
            "'gap=30 minutes; start=event; end=event; top=20; from=…; to=…'",
            &["gap", "start", "end", "top"],
            call,
        )?;
        let gap = o.interval("gap", "30 minutes")?;
        let top = o.count("top", 20, 10_000)?;
        let source = o.source()?;
        // One aggregation per user (session_transitions sorts each user's events alone): the
        // same report as window functions sorted all events at once, which at 100M events
        // needed more memory than the pool accounts for.
        let start = o.event("start")?.unwrap_or_else(|| "TRUE".into());
        let end = o.event("end")?.unwrap_or_else(|| "TRUE".into());
        // Each user's distinct moves once, with their count: users per move is then a count of
        // rows, not a DISTINCT over (move, user) of every transition.
        let sql = format!(
            "WITH {}, pairs AS (SELECT unnest(session_transition_counts(event_time, event, {gap}, {start}, {end})) AS t FROM base GROUP BY user_id) \
             SELECT CAST(t['from'] AS TEXT) AS from_event, CAST(t['to'] AS TEXT) AS to_event, CAST(sum(t['transitions']) AS BIGINT) AS transitions, CAST(count(*) AS BIGINT) AS users \
             FROM pairs GROUP BY 1, 2 ORDER BY transitions DESC, from_event, to_event LIMIT {top}",
            source.cte()
        );
        Ok(ReportSql {
            after: None,
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
