//! `session_number`: numbers a user's sessions, starting a new one after a gap longer than
//! the given interval. A window function over a user's events in time order.
//!
//! ```sql
//! SELECT user_id, event_time, event,
//!        session_number(event_time, INTERVAL '30 minutes')
//!            OVER (PARTITION BY user_id ORDER BY event_time) AS session
//! FROM events;
//! ```
//!
//! The first row of a partition is session 1; each row whose time is more than `gap` after the
//! previous row's starts the next session (a gap of exactly `gap` stays in the session). Rows
//! with a NULL time keep the current session number. The rows must be ordered by the time
//! argument (the OVER clause's ORDER BY); out-of-order input is an error rather than a
//! silently wrong answer.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl};

use crate::common::{check_time, literal_arg, time_values, TimeKind, DOC_SECTION_BEHAVIOURAL};

const NAME: &str = "session_number";
const USAGE: &str = "session_number(timestamp, gap) OVER (PARTITION BY user_id ORDER BY timestamp)";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SessionNumber {
    signature: Signature,
}

impl Default for SessionNumber {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Window function: numbers the sessions of a partition (a user's events) from 1; each row more than \
         `gap` after the previous row starts the next session (a gap of exactly `gap` stays in the session). \
         Rows with a NULL time keep the current number. Rows must be ordered by the time argument (the OVER \
         clause's ORDER BY), otherwise the query fails.",
        "session_number(timestamp, gap) OVER (PARTITION BY user_id ORDER BY timestamp)",
    )
    .with_sql_example(
        r#"```sql
SELECT user_id, event_time, event,
       session_number(event_time, INTERVAL '30 minutes')
           OVER (PARTITION BY user_id ORDER BY event_time) AS session
FROM events;
```"#,
    )
    .with_argument("timestamp", "The event time: TIMESTAMP, DATE or an integer; the OVER clause orders by it.")
    .with_argument("gap", "Constant session gap: an INTERVAL or an integer (seconds for a TIMESTAMP).")
    .with_related_udf("session_transitions")
    .build()
});

impl WindowUDFImpl for SessionNumber {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!("{NAME} takes 2 arguments, got {}; usage: {USAGE}", arg_types.len());
        }
        check_time(NAME, arg_types, 0, USAGE)?;
        Ok(arg_types.to_vec())
    }

    fn partition_evaluator(&self, args: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        let kind = check_time(NAME, &[args.input_fields()[0].data_type().clone()], 0, USAGE)?;
        let gap = kind.window(NAME, literal_arg(NAME, "gap", &args.input_exprs()[1])?)?;
        Ok(Box::new(SessionEvaluator { kind, gap }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(field_args.name(), DataType::Int64, false)))
    }
}

#[derive(Debug)]
struct SessionEvaluator {
    kind: TimeKind,
    gap: i64,
}

impl PartitionEvaluator for SessionEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let times = self.kind.values(&values[0])?;
        let valid = |row: usize| times.is_valid(row);
        let times = time_values(&times);
        let mut session = 0i64;
        let mut previous: Option<i64> = None;
        let mut out = Vec::with_capacity(num_rows);
        for (row, &time) in times.iter().enumerate().take(num_rows) {
            if valid(row) {
                match previous {
                    None => session = 1,
                    Some(p) if time < p => {
                        return exec_err!(
                        "{NAME}: rows are not ordered by the time argument; use OVER (PARTITION BY … ORDER BY <time>)"
                    )
                    }
                    Some(p) if time - p > self.gap => session += 1,
                    Some(_) => {}
                }
                previous = Some(time);
            }
            out.push(session.max(1));
        }
        Ok(Arc::new(Int64Array::from(out)))
    }
}
