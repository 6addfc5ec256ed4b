//! Northstar's behavioural SQL functions, with ClickHouse-exact semantics where ClickHouse has
//! the function: `window_funnel`, `retention`, `sequence_match`, `sequence_count`; and beyond
//! it: `funnel_step_times`, `cohort_periods`, `lifecycle_statuses`, `days_active`,
//! `rolling_activity`, `session_transitions`, `experiment_user` and the window function `session_number`. Each is
//! documented with its rules in docs/functions.md. `register_all` also gives DataFusion's
//! `to_char`, `to_timestamp` and `to_date` PostgreSQL's date/time templates
//! (datetime_template.rs), and `sqlstate` carries PostgreSQL's error codes.

mod cohort_periods;
mod common;
mod datetime_template;
mod days_active;
mod event_list;
mod experiment_user;
mod flat_groups;
mod funnel;
mod funnel_step_times;
mod lifecycle_statuses;
mod merged_properties;
mod periods;
mod retention;
mod rolling_activity;
mod sequence;
mod sequence_match;
mod session_number;
mod session_transitions;
mod template_args;
mod text_equals;
mod time_zone_setting;
mod timestamp_text;
mod to_char;
mod to_date;
mod to_timestamp;
mod utc_date;
mod utc_date_trunc;
mod utc_midnight;
mod window_funnel;
mod wrapped;

pub mod expr_fn;
pub mod sqlstate;

use std::sync::{Arc, LazyLock};

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

pub use funnel::{Funnel, FunnelModes, FunnelResult};
pub use periods::Period;
pub use sequence::Pattern;
pub use text_equals::TextEquals;
pub use time_zone_setting::{time_zone_setting, SessionZone};
pub use timestamp_text::{postgres_timestamp_text, TimestampText};
pub use to_char::ToChar;
pub use to_date::ToDate;
pub use to_timestamp::ToTimestamp;
pub use utc_date::{is_utc_zone, UtcDate};
pub use utc_date_trunc::UtcDateTrunc;
pub use utc_midnight::{CalendarUnit, UtcMidnight};

/// The functions whose partial state is all their input rows: planned in one aggregation
/// stage (the `SingleStageEventAggregates` rule of the execution crate).
pub const EVENT_LIST_FUNCTIONS: [&str; 6] = [
    "window_funnel",
    "funnel_step_times",
    "sequence_match",
    "sequence_count",
    "session_transitions",
    "experiment_user",
];

/// Defines `$name() -> Arc<$udf>`: one shared instance per process, as DataFusion's
/// `create_func!` does, so every session and every expression built by [`expr_fn`] refers to
/// the same function object.
macro_rules! singleton {
    ($(#[$doc:meta])* $name:ident, $udf:ty, $make:expr) => {
        $(#[$doc])*
        pub fn $name() -> Arc<$udf> {
            static INSTANCE: LazyLock<Arc<$udf>> = LazyLock::new(|| Arc::new(<$udf>::from($make)));
            Arc::clone(&INSTANCE)
        }
    };
}

singleton!(
    /// The `window_funnel` aggregate.
    window_funnel_udaf,
    AggregateUDF,
    window_funnel::WindowFunnel::default()
);
singleton!(
    /// The `funnel_step_times` aggregate.
    funnel_step_times_udaf,
    AggregateUDF,
    funnel_step_times::FunnelStepTimes::default()
);
singleton!(
    /// The `retention` aggregate.
    retention_udaf,
    AggregateUDF,
    retention::Retention::default()
);
singleton!(
    /// The `cohort_periods` aggregate.
    cohort_periods_udaf,
    AggregateUDF,
    cohort_periods::CohortPeriods::default()
);
singleton!(
    /// The `lifecycle_statuses` aggregate.
    lifecycle_statuses_udaf,
    AggregateUDF,
    lifecycle_statuses::LifecycleStatuses::default()
);
singleton!(
    /// The `days_active` aggregate.
    days_active_udaf,
    AggregateUDF,
    days_active::DaysActive::default()
);
singleton!(
    /// The `rolling_activity` aggregate.
    rolling_activity_udaf,
    AggregateUDF,
    rolling_activity::RollingActivity::default()
);
singleton!(
    /// The `session_transitions` aggregate.
    session_transitions_udaf,
    AggregateUDF,
    session_transitions::SessionTransitions::default()
);
singleton!(
    /// The `session_transition_counts` aggregate.
    session_transition_counts_udaf,
    AggregateUDF,
    session_transitions::SessionTransitions::counted()
);
singleton!(
    /// The `experiment_user` aggregate.
    experiment_user_udaf,
    AggregateUDF,
    experiment_user::ExperimentUser::default()
);
singleton!(
    /// The `merged_properties` aggregate.
    merged_properties_udaf,
    AggregateUDF,
    merged_properties::MergedProperties::default()
);
singleton!(
    /// The `sequence_match` aggregate.
    sequence_match_udaf,
    AggregateUDF,
    sequence_match::SequenceFunction::sequence_match()
);
singleton!(
    /// The `sequence_count` aggregate.
    sequence_count_udaf,
    AggregateUDF,
    sequence_match::SequenceFunction::sequence_count()
);
singleton!(
    /// The `session_number` window function.
    session_number_udwf,
    WindowUDF,
    session_number::SessionNumber::default()
);
singleton!(
    /// The `text_equals` scalar function.
    text_equals_udf,
    ScalarUDF,
    TextEquals::default()
);
singleton!(
    /// The `timestamp_text` scalar function.
    timestamp_text_udf,
    ScalarUDF,
    TimestampText::default()
);
singleton!(
    /// The `utc_date` scalar function.
    utc_date_udf,
    ScalarUDF,
    UtcDate::default()
);
singleton!(
    /// The `utc_midnight` scalar function.
    utc_midnight_udf,
    ScalarUDF,
    UtcMidnight::default()
);

/// Every aggregate function Northstar adds.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        window_funnel_udaf(),
        funnel_step_times_udaf(),
        retention_udaf(),
        cohort_periods_udaf(),
        lifecycle_statuses_udaf(),
        days_active_udaf(),
        rolling_activity_udaf(),
        session_transitions_udaf(),
        session_transition_counts_udaf(),
        experiment_user_udaf(),
        merged_properties_udaf(),
        sequence_match_udaf(),
        sequence_count_udaf(),
    ]
}

/// Every scalar function Northstar adds.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![text_equals_udf(), timestamp_text_udf(), utc_date_udf(), utc_midnight_udf()]
}

/// Every window function Northstar adds.
pub fn window_functions() -> Vec<Arc<WindowUDF>> {
    vec![session_number_udwf()]
}

/// Registers all of Northstar's functions.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in aggregate_functions() {
        registry.register_udaf(f)?;
    }
    for f in window_functions() {
        registry.register_udwf(f)?;
    }
    for f in scalar_functions() {
        registry.register_udf(f)?;
    }
    // DataFusion's `date_trunc`, with a fast path for UTC timestamps (utc_date_trunc.rs).
    if let Ok(inner) = registry.udf("date_trunc") {
        if inner.inner().downcast_ref::<UtcDateTrunc>().is_none() {
            registry.register_udf(Arc::new(ScalarUDF::from(UtcDateTrunc::new(inner))))?;
        }
    }
    // DataFusion's `to_char`, `to_timestamp` and `to_date` with PostgreSQL's template patterns
    // (datetime_template.rs); chrono `%` formats still go to DataFusion's functions.
    if let Ok(inner) = registry.udf("to_char") {
        if inner.inner().downcast_ref::<ToChar>().is_none() {
            registry.register_udf(Arc::new(ScalarUDF::from(ToChar::new(inner))))?;
        }
    }
    if let Ok(inner) = registry.udf("to_timestamp") {
        if inner.inner().downcast_ref::<ToTimestamp>().is_none() {
            registry.register_udf(Arc::new(ScalarUDF::from(ToTimestamp::new(inner))))?;
        }
    }
    if let Ok(inner) = registry.udf("to_date") {
        if inner.inner().downcast_ref::<ToDate>().is_none() {
            registry.register_udf(Arc::new(ScalarUDF::from(ToDate::new(inner))))?;
        }
    }
    Ok(())
}
