//! Northstar's behavioural SQL functions, with ClickHouse-exact semantics where ClickHouse has
//! the function: `window_funnel`, `retention`, `sequence_match`, `sequence_count`; and beyond
//! it: `funnel_step_times`, `cohort_periods`, `session_transitions` and the window function `session_number`. Each is documented with
//! its rules in docs/functions.md.

mod cohort_periods;
mod common;
mod event_list;
mod flat_groups;
mod funnel;
mod funnel_step_times;
mod retention;
mod sequence;
mod sequence_match;
mod session_number;
mod session_transitions;
mod text_equals;
mod window_funnel;

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

pub use funnel::{Funnel, FunnelModes, FunnelResult};
pub use sequence::Pattern;
pub use text_equals::TextEquals;

/// The functions whose partial state is all their input rows: planned in one aggregation
/// stage (the `SingleStageEventAggregates` rule of the execution crate).
pub const EVENT_LIST_FUNCTIONS: [&str; 5] =
    ["window_funnel", "funnel_step_times", "sequence_match", "sequence_count", "session_transitions"];

/// Every aggregate function Northstar adds.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(window_funnel::WindowFunnel::default()),
        AggregateUDF::from(funnel_step_times::FunnelStepTimes::default()),
        AggregateUDF::from(retention::Retention::default()),
        AggregateUDF::from(cohort_periods::CohortPeriods::default()),
        AggregateUDF::from(session_transitions::SessionTransitions::default()),
        AggregateUDF::from(sequence_match::SequenceFunction::sequence_match()),
        AggregateUDF::from(sequence_match::SequenceFunction::sequence_count()),
    ]
}

/// Every scalar function Northstar adds.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(TextEquals::default())]
}

/// Every window function Northstar adds.
pub fn window_functions() -> Vec<WindowUDF> {
    vec![WindowUDF::from(session_number::SessionNumber::default())]
}

/// Registers all of Northstar's functions.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in aggregate_functions() {
        registry.register_udaf(f.into())?;
    }
    for f in window_functions() {
        registry.register_udwf(f.into())?;
    }
    for f in scalar_functions() {
        registry.register_udf(f.into())?;
    }
    Ok(())
}
