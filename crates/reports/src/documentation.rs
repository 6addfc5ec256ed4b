//! The reports' documentation, in DataFusion's [`Documentation`] form as the behavioural
//! functions have it. DataFusion's table functions have no `documentation()` (so
//! `information_schema.routines` lists the reports without a description); the PostgreSQL
//! catalog (`\df+ funnel`) and embedders read it from [`report_documentation`].

use std::sync::LazyLock;

use datafusion::logical_expr::{DocSection, Documentation};

/// Where the reports' documentation files them.
pub const DOC_SECTION_REPORTS: DocSection = DocSection {
    include: true,
    label: "Report Functions",
    description: Some("Product-analytics reports as table functions: SELECT * FROM funnel(...) (docs/reports.md)."),
};

const OPTIONS: &str = "Constant text 'key=value; key=value'. Every report takes table (a table or view with \
     user_id, event_time, event; default events), from and to (first and last day, YYYY-MM-DD, UTC), where \
     (an extra SQL condition on the rows) and by (person or user: whom to count; default person when events \
     has ids merged into persons)";

fn report(description: &str, syntax: &str, example: &str) -> datafusion::logical_expr::DocumentationBuilder {
    Documentation::builder(DOC_SECTION_REPORTS, description, syntax).with_sql_example(format!("```sql\n{example}\n```"))
}

static FUNNEL: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "Funnel report: one row per (breakdown, step) with the users who reached at least that step within the \
         window (window_funnel), conversion from the previous and the first step, drop-off, and the median and p90 \
         seconds from the previous step (funnel_step_times).",
        "funnel(steps, options)",
        "SELECT * FROM funnel(['signup', 'view_item', 'add_to_cart', 'purchase'],\n                     \
         'window=1 day; breakdown=platform; from=2025-01-01; to=2025-03-31');",
    )
    .with_argument("steps", "A list of steps: event names, or SQL conditions such as event = 'purchase' AND ...")
    .with_argument(
        "options",
        format!("{OPTIONS}; and window (default 1 day), order (ordered, strict, unordered), exclude, hold, breakdown."),
    )
    .with_related_udf("window_funnel")
    .build()
});

static RETENTION: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "Retention report: for each cohort (users by the period of their start event), how many came back with the \
         return event k periods later: cohort_start, cohort_size, period, retained, rate.",
        "retention(options)",
        "SELECT * FROM retention('start=signup; return=purchase; period=week; periods=8');",
    )
    .with_argument(
        "options",
        format!(
            "{OPTIONS}; and start, return (events), period (day, week, month), periods (N), criterion (on, \
             on_or_after), cohort (first, recurring), windows (calendar, rolling)."
        ),
    )
    .with_related_udf("retention")
    .build()
});

static TRENDS: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "Trends report: per period (and breakdown) the events and active users, and for daily trends the users \
         active over the 7 and 30 days ending that day (wau, mau).",
        "trends(options)",
        "SELECT period, active_users AS dau, wau, mau FROM trends('from=2025-01-01; to=2025-03-31');",
    )
    .with_argument("options", format!("{OPTIONS}; and interval (day, week, month), event, breakdown."))
    .build()
});

static LIFECYCLE: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "Lifecycle report: per period, the users who are new, returning, resurrecting or dormant (dormant users \
         counted negative).",
        "lifecycle(options)",
        "SELECT * FROM lifecycle('period=week');",
    )
    .with_argument("options", format!("{OPTIONS}; and period (day, week, month), event."))
    .build()
});

static STICKINESS: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "Stickiness report: per period, how many users were active on exactly n distinct UTC days of it.",
        "stickiness(options)",
        "SELECT * FROM stickiness('period=month; event=purchase');",
    )
    .with_argument("options", format!("{OPTIONS}; and period (week, month), event."))
    .build()
});

static PATHS: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "Paths report: the most frequent moves from one event to the next within sessions (consecutive repeats \
         collapsed): from_event, to_event, transitions, users.",
        "paths(options)",
        "SELECT * FROM paths('start=signup; top=10');",
    )
    .with_argument("options", format!("{OPTIONS}; and gap (default 30 minutes), start, end, top (default 20)."))
    .with_related_udf("session_transitions")
    .build()
});

static EXPERIMENT: LazyLock<Documentation> = LazyLock::new(|| {
    report(
        "A/B experiment report: per (metric, variant) the exposed users, the value, the absolute and relative lift \
         against control with Welch's t confidence interval and p-value, the chance to beat control, credible \
         interval and expected loss, and the sample-ratio mismatch check (docs/experiments.md).",
        "experiment(metrics, options)",
        "SELECT metric, variant, users, value, relative_lift, ci_low, ci_high, p_value, chance_to_win\n\
         FROM experiment(['conversion: purchase', 'sum: json_get_float(properties, ''price''); event=purchase'],\n\
                         'flag=checkout-redesign; window=7 days');",
    )
    .with_argument(
        "metrics",
        "A list of metrics: 'conversion: step, …', 'count: event', 'sum: expression; event=…; winsorize=0.99', \
         'ratio: expression; denominator=expression; event=…; denominator_event=…'; each may add name=….",
    )
    .with_argument(
        "options",
        format!(
            "{OPTIONS}; and exposure (default $feature_flag_called), flag, variant, control (default control), \
             variants, weights, multiple (exclude, first), window, alpha (0.05), cuped (off, on), cuped_days (14), \
             sequential (off, on), sequential_n (5000), correction (none, holm, bh)."
        ),
    )
    .build()
});

/// Every report's name and documentation, in the order [`crate::register_all`] registers them.
pub fn report_documentation() -> Vec<(&'static str, &'static Documentation)> {
    vec![
        ("funnel", &*FUNNEL),
        ("retention", &*RETENTION),
        ("trends", &*TRENDS),
        ("lifecycle", &*LIFECYCLE),
        ("stickiness", &*STICKINESS),
        ("paths", &*PATHS),
        ("experiment", &*EXPERIMENT),
    ]
}
