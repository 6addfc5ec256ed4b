//! Northstar's physical plan: the operator and the physical optimizer rules that replace parts
//! of DataFusion's plans for the events table and the behavioural functions. Each keeps the
//! answers of the plan it replaces; docs/storage.md and docs/functions.md say what each saves.
//!
//! An analyzer rule runs after DataFusion's type coercion: [`SessionTimeZone`] computes
//! `date_trunc`, `date_part`, `to_char` and casts of UTC timestamps in the session's time zone
//! when that is not UTC; then [`TimestampText`] writes casts of timestamps to text as
//! PostgreSQL does (`timestamp_text`); then [`DurationComparisons`] compares durations with
//! clock-time interval literals as durations (`gap > INTERVAL '30 minutes'`). Two logical rules run after DataFusion's own: [`UtcDates`] (`CAST(t AS DATE)` of a UTC
//! timestamp becomes `utc_date(t)`) and [`DatesFromEventDate`] (`utc_date(event_time)` of the
//! events table reads `event_date`); and [`SortKeysAfterUnnest`] stands in for DataFusion's
//! `eliminate_duplicated_expr`, which lost ORDER BY keys after `unnest`. The physical rules run in this order (as the engine
//! registers them):
//! - [`FastTextEquality`]: `event = 'purchase'` in aggregate arguments becomes `text_equals`;
//! - [`SingleStageEventAggregates`]: the event-list functions aggregate in one stage;
//! - [`BucketAggregateRule`]: `GROUP BY user_id` (alone or with other keys) runs per user
//!   bucket, without a repartition, in [`BucketAggregateExec`] where it can; `GROUP BY person_id` likewise, with
//!   [`BucketRoutingExec`] moving the rows of persons whose ids span buckets; joins and
//!   windows on `user_id` read their inputs bucket by bucket instead of repartitioning them;
//!   a window by `user_id` and one time column sorts each bucket by a user number and the
//!   time (`user_number_sort`), and a join by bucket joins on user numbers
//!   (`user_number_join`).

mod bucket_aggregate_exec;
mod bucket_aggregate_rule;
mod bucket_partitions_exec;
mod bucket_routing_exec;
mod duration_comparison_rule;
mod event_date_rule;
mod plan_expressions;
mod session_time_zone_rule;
mod single_stage_rule;
mod text_equality_rule;
mod timestamp_text_rule;
mod unnest_dependencies_rule;
mod user_id_dictionary;
mod user_ids;
mod user_number_join;
mod user_number_sort;
mod user_numbers_exec;
mod utc_dates_rule;

pub use bucket_aggregate_exec::BucketAggregateExec;
pub use bucket_aggregate_rule::BucketAggregateRule;
pub use bucket_partitions_exec::BucketPartitionsExec;
pub use bucket_routing_exec::BucketRoutingExec;
pub use duration_comparison_rule::DurationComparisons;
pub use event_date_rule::DatesFromEventDate;
pub use session_time_zone_rule::SessionTimeZone;
pub use single_stage_rule::SingleStageEventAggregates;
pub use text_equality_rule::FastTextEquality;
pub use timestamp_text_rule::TimestampText;
pub use unnest_dependencies_rule::SortKeysAfterUnnest;
pub use utc_dates_rule::UtcDates;
