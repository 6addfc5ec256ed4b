//! A physical optimizer rule: `GROUP BY user_id` over the events table runs in one stage per
//! user bucket, with no hash repartition.
//!
//! Why: every file of a bucketed table holds the users of one bucket ([`northstar_storage::user_bucket`]),
//! so when each scan partition reads whole buckets, no user's rows are in two partitions and
//! each partition can aggregate its users on its own. That saves DataFusion's partial
//! aggregate (a per-partition table of every user), the repartition of its rows (or, for the
//! event-list functions, of every event) and the final merge; each partition's hash table
//! also holds only its bucket's users. Measured in docs/benchmarks.md.
//!
//! ```text
//! AggregateExec: mode=FinalPartitioned, gby=[user_id]
//!   RepartitionExec: Hash([user_id], n)                ==>   AggregateExec: mode=SinglePartitioned, gby=[user_id]
//!     AggregateExec: mode=Partial, gby=[user_id]                <filters, projections>
//!       <filters, projections>                                     DataSourceExec: one group per bucket (n > 1, one node)
//!         DataSourceExec: files of the version
//! ```
//! (also from `SinglePartitioned ← RepartitionExec`, the form `SingleStageEventAggregates`
//! leaves). A hash join on `user_id` and a window partitioned by it read their inputs by bucket
//! the same way ([`by_bucket`]), both join sides alike. Rewritten only where nothing above
//! relies on the output being hash-partitioned the way DataFusion hashes: bucket partitions
//! are user-disjoint but not DataFusion's hash partitions.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{internal_datafusion_err, JoinSide, JoinType, Result, ScalarValue};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{
    replace_children_if_necessary, ChildrenPropertiesMode, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::utils::{build_join_schema, ColumnIndex};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::InterleaveExec;
use datafusion::physical_plan::{Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning};
use northstar_identity::PersonOf;
use northstar_storage::columns::{EVENT_DATE, USER_BUCKET, USER_ID};
use northstar_storage::USER_BUCKETS;

use crate::bucket_aggregate_exec::BucketAggregateExec;
use crate::bucket_partitions_exec::BucketPartitionsExec;
use crate::bucket_routing_exec::BucketRoutingExec;
use crate::user_id_dictionary::user_id_dictionary_type;
use crate::user_number_join::{numbered_join, NumberedJoin};
use crate::user_number_sort::window_by_user_number;

/// Plans `GROUP BY user_id` over the events table in one stage per user bucket, in
/// [`BucketAggregateExec`] where it can.
#[derive(Debug, Default)]
pub struct BucketAggregateRule;

impl PhysicalOptimizerRule for BucketAggregateRule {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let on_cluster = config.extensions.iter().any(|(prefix, _)| prefix == "ballista");
        rewrite(plan, false, false, if on_cluster { Place::Cluster } else { Place::SingleNode })
    }

    // Kept from before the type's rename: EXPLAIN VERBOSE shows it, and earlier notes name it.
    fn name(&self) -> &str {
        "UserBucketAggregation"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Where the plan runs, which decides what an aggregate may become.
///
/// Either way a rewritten aggregate reads one partition per bucket whenever the plan above
/// already takes several partitions: more partitions than cores costs little, and each
/// partition's hash table then holds a quarter of the users instead of a half on two cores,
/// so fewer lookups miss the cache (measured in docs/storage.md). A single partition stays
/// single: the plan above may rely on it.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// One process: [`BucketAggregateExec`] where it applies, else DataFusion's
    /// `SinglePartitioned` aggregate over the bucket scan; `GROUP BY person_id` too.
    SingleNode,
    /// A Ballista cluster: [`BucketAggregateExec`] only (executors decode it with
    /// `northstar_distributed`'s codec). Ballista runs DataFusion's distribution rule again on
    /// each stage, and `AggregateExec` requires its input key-partitioned, which a bucket scan
    /// does not declare; so the rule would hash-repartition inside the stage, and Ballista,
    /// which restricts each task to the stage's partitions by cutting the scan's file groups
    /// to that count, would then read only the first groups: rows were lost (the "lost rows"
    /// of docs/distributed.md). `BucketAggregateExec` requires nothing of its input.
    Cluster,
}

/// `plan` with its eligible aggregates rewritten. `partitioning_matters`: something above
/// relies on how `plan`'s output rows are spread over partitions; `order_matters`: something
/// above requires the order of `plan`'s output rows within a partition.
fn rewrite(
    plan: Arc<dyn ExecutionPlan>,
    partitioning_matters: bool,
    order_matters: bool,
    place: Place,
) -> Result<Arc<dyn ExecutionPlan>> {
    if !partitioning_matters {
        if let Some((rewritten, _)) = aggregate_by_bucket(&plan, place)? {
            return Ok(rewritten);
        }
        if let Some(rewritten) = inputs_by_bucket(&plan, order_matters, place)? {
            return Ok(rewritten);
        }
    }
    // These produce a partitioning of their own, whatever their input's.
    let resets = plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<SortPreservingMergeExec>().is_some();
    // Interleaving requires its inputs to be hash-partitioned alike, without saying so.
    let interleaves = plan.downcast_ref::<InterleaveExec>().is_some();
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    let requirements = plan.input_distribution_requirements().into_per_child();
    let orderings = plan.required_input_ordering();
    let maintains_order = plan.maintains_input_order();
    let mut new_children = Vec::with_capacity(children.len());
    for (index, (child, requirement)) in children.into_iter().zip(requirements).enumerate() {
        let order_matters = orderings.get(index).is_some_and(Option::is_some)
            || (order_matters && maintains_order.get(index).copied().unwrap_or(false));
        let matters = !resets
            && (interleaves
                || match requirement {
                    Distribution::SinglePartition => false,
                    Distribution::UnspecifiedDistribution => partitioning_matters,
                    _ => true,
                });
        new_children.push(rewrite(child, matters, order_matters, place)?);
    }
    replace_children_if_necessary(plan, new_children)
}

/// A plan whose partitions hold one user bucket each, by the value of one of its output
/// columns (the index): partition `i` holds exactly the rows whose value has
/// `user_bucket(value) % partitions == i`, and no row without one.
type Bucketed = (Arc<dyn ExecutionPlan>, usize);

/// The one-stage, bucket-partitioned form of `plan` when it is a hash-repartitioned
/// aggregate grouped by the events table's `user_id` (alone or with other keys), with the
/// output column of the key its partitions follow; otherwise `None`.
fn aggregate_by_bucket(plan: &Arc<dyn ExecutionPlan>, place: Place) -> Result<Option<Bucketed>> {
    let Some(last) = plan.downcast_ref::<AggregateExec>() else { return Ok(None) };
    let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else {
        // Over an input partitioned by the key already (a join on it): by bucket if the input
        // can be.
        if *last.mode() == AggregateMode::SinglePartitioned && last.group_expr().is_single() {
            return aggregate_by_bucket_and_more(last, last, last.input(), USER_BUCKETS as usize, place);
        }
        return Ok(None);
    };
    let Partitioning::Hash(_, partitions) = repartition.partitioning() else { return Ok(None) };
    if repartition.preserve_order() || *partitions > USER_BUCKETS as usize {
        return Ok(None);
    }
    let grouped = match last.mode() {
        AggregateMode::FinalPartitioned => match repartition.input().downcast_ref::<AggregateExec>() {
            Some(partial) if *partial.mode() == AggregateMode::Partial => partial,
            _ => return Ok(None),
        },
        AggregateMode::SinglePartitioned => last,
        _ => return Ok(None),
    };
    let group = grouped.group_expr();
    if !group.is_single() {
        return Ok(None);
    }
    let input = if std::ptr::eq(grouped, last) { repartition.input() } else { grouped.input() };
    let partitions = if *partitions > 1 { USER_BUCKETS as usize } else { 1 };
    if group.expr().len() > 1 {
        return aggregate_by_bucket_and_more(last, grouped, input, partitions, place);
    }
    let Some(key) = group.expr()[0].0.downcast_ref::<Column>() else { return Ok(None) };
    let Some(by_bucket) = scan_by_bucket(input, key.index(), partitions)? else {
        if place == Place::SingleNode && partitions > 1 {
            // Over a join or window of bucket partitions, or grouped by person.
            if let Some(bucketed) = aggregate_by_bucket_and_more(last, grouped, input, partitions, place)? {
                return Ok(Some(bucketed));
            }
            return Ok(aggregate_by_person_bucket(last, grouped, key.index(), input, partitions)?.map(|p| (p, 0)));
        }
        return Ok(None);
    };
    let single = single_stage(last, grouped, by_bucket.clone())?;
    if single.schema() != last.schema() {
        return Ok(None);
    }
    // Group by the Parquet dictionary of user_id where the plan allows (BucketAggregateExec).
    if !references(grouped_expressions(grouped), key.index()) {
        if let Some(dictionary_input) = rewrite_scan(&by_bucket, key.index(), Uses::PassThroughOnly, &dictionary_scan)?
        {
            if let Some(exec) = BucketAggregateExec::try_new(&single, key.index(), dictionary_input) {
                return Ok(Some((Arc::new(exec), 0)));
            }
        }
    }
    Ok((place == Place::SingleNode).then(|| (Arc::new(single) as Arc<dyn ExecutionPlan>, 0)))
}

/// The aggregate `last` (with its partial step `grouped`, or `grouped` itself) in one stage
/// over `input`, whose partitions hold disjoint groups.
fn single_stage(last: &AggregateExec, grouped: &AggregateExec, input: Arc<dyn ExecutionPlan>) -> Result<AggregateExec> {
    Ok(AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        grouped.group_expr().clone(),
        grouped.aggr_expr().to_vec(),
        grouped.filter_expr().to_vec(),
        input,
        grouped.input_schema(),
    )?
    .with_limit_options(last.limit_options()))
}

/// `GROUP BY user_id, <other keys>` (the inner step of `count(DISTINCT user_id) … GROUP BY
/// <period>`, among others), or by `user_id` alone over an input that is not a plain scan (a
/// join or window on it), in one stage per bucket: every group's rows share a user, so lie
/// in one bucket. DataFusion's `SinglePartitioned` aggregate over the input read by bucket
/// ([`by_bucket`]), which saves the repartition and the final merge of the partial groups (a
/// quarter of DAU's time, docs/benchmarks.md); one node only ([`Place::Cluster`] says why).
fn aggregate_by_bucket_and_more(
    last: &AggregateExec,
    grouped: &AggregateExec,
    input: &Arc<dyn ExecutionPlan>,
    partitions: usize,
    place: Place,
) -> Result<Option<Bucketed>> {
    if place == Place::Cluster || partitions == 1 {
        return Ok(None);
    }
    for (position, (expr, _)) in grouped.group_expr().expr().iter().enumerate() {
        let Some(key) = expr.downcast_ref::<Column>() else { continue };
        let Some(bucketed) = by_bucket(input, key.index(), place)? else { continue };
        let single = single_stage(last, grouped, bucketed)?;
        return Ok((single.schema() == last.schema()).then(|| (Arc::new(single) as Arc<dyn ExecutionPlan>, position)));
    }
    Ok(None)
}

/// `plan` rewritten so that its [`USER_BUCKETS`] partitions hold one user bucket each by its
/// output column `column` (see [`Bucketed`]); `None` when `plan` has no such form. One node
/// only ([`Place::Cluster`] says why). Looks through filters, projections, batch coalescing
/// and sorts within partitions; a hash or round-robin repartition is dropped (the buckets
/// spread the rows by user already); it ends at
/// - an events scan whose `user_id` the column is: read whole buckets per partition;
/// - an aggregate grouped by the column ([`aggregate_by_bucket`]);
/// - a hash join on the column, each side by bucket ([`join_by_bucket`]).
fn by_bucket(plan: &Arc<dyn ExecutionPlan>, column: usize, place: Place) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    // A single partition stays single: what reads it may rely on that.
    if place == Place::Cluster || plan.output_partitioning().partition_count() == 1 {
        return Ok(None);
    }
    let rebuilt = |input| rebuilt_over(plan, input);
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let Some(source) = projection.expr().get(column).and_then(|e| e.expr.downcast_ref::<Column>()) else {
            return Ok(None);
        };
        return by_bucket(projection.input(), source.index(), place)?.map(rebuilt).transpose();
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let column = filter.projection().as_ref().map_or(column, |p| p[column]);
        return by_bucket(filter.input(), column, place)?.map(rebuilt).transpose();
    }
    let within_partitions =
        plan.downcast_ref::<SortExec>().is_some_and(|s| s.preserve_partitioning() && s.fetch().is_none())
            || plan.name() == "CoalesceBatchesExec";
    if within_partitions {
        return by_bucket(plan.children()[0], column, place)?.map(rebuilt).transpose();
    }
    if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
        // With more partitions than buckets, DataFusion's plan stays (as for aggregates).
        let spreads_by_column = match repartition.partitioning() {
            Partitioning::Hash(exprs, n) => *n <= USER_BUCKETS as usize && exprs.iter().any(|e| is_column(e, column)),
            Partitioning::RoundRobinBatch(n) => *n <= USER_BUCKETS as usize,
            _ => false,
        };
        if !spreads_by_column || repartition.preserve_order() {
            return Ok(None);
        }
        return by_bucket(repartition.input(), column, place);
    }
    if plan.downcast_ref::<AggregateExec>().is_some() {
        let bucketed = aggregate_by_bucket(plan, place)?;
        return Ok(bucketed.filter(|(p, key)| *key == column && has_bucket_partitions(p)).map(|(p, _)| p));
    }
    if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        return join_by_bucket(join, Some(column), place);
    }
    let Some(config) = events_scan(plan) else { return Ok(None) };
    if plan.schema().field(column).name() != USER_ID || !reads_user_id_as_stored(config, column) {
        return Ok(None);
    }
    bucket_scan(config, column, USER_BUCKETS as usize, None)
}

/// Whether `plan` is an aggregate, under row-preserving operators: at most one row per group.
fn is_aggregated(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut plan = plan;
    loop {
        if plan.downcast_ref::<AggregateExec>().is_some() || plan.downcast_ref::<BucketAggregateExec>().is_some() {
            return true;
        }
        let passes_rows = plan.downcast_ref::<ProjectionExec>().is_some()
            || plan.downcast_ref::<FilterExec>().is_some()
            || plan.downcast_ref::<SortExec>().is_some()
            || plan.downcast_ref::<BucketPartitionsExec>().is_some()
            || plan.name() == "CoalesceBatchesExec";
        match plan.children().as_slice() {
            [child] if passes_rows => plan = child,
            _ => return false,
        }
    }
}

fn is_column(expr: &Arc<dyn PhysicalExpr>, column: usize) -> bool {
    expr.downcast_ref::<Column>().is_some_and(|c| c.index() == column)
}

fn has_bucket_partitions(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.output_partitioning().partition_count() == USER_BUCKETS as usize
}

/// `plan` with the inputs it wants hash-partitioned by a user read by bucket instead: a
/// partitioned join on `user_id` (both sides) or a window partitioned by it (the events of a
/// user, sorted, per bucket), without repartitioning every row; such a window sorts by user
/// number unless `order_matters` (its output is then not in `user_id` order). `None` for
/// other plans.
fn inputs_by_bucket(
    plan: &Arc<dyn ExecutionPlan>,
    order_matters: bool,
    place: Place,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        return join_by_bucket(join, None, place);
    }
    if plan.downcast_ref::<AggregateExec>().is_some() || plan.children().len() != 1 {
        return Ok(None);
    }
    let requirements = plan.input_distribution_requirements().into_per_child();
    let [Distribution::KeyPartitioned(keys)] = requirements.as_slice() else { return Ok(None) };
    for key in keys {
        let Some(key) = key.downcast_ref::<Column>() else { continue };
        if let Some(input) = by_bucket(plan.children()[0], key.index(), place)? {
            let rebuilt = rebuilt_over(plan, input)?;
            if order_matters {
                return Ok(Some(rebuilt));
            }
            return Ok(Some(window_by_user_number(&rebuilt, &dictionary_input)?.unwrap_or(rebuilt)));
        }
    }
    Ok(None)
}

/// `input` (filters and projections over an events scan) with the scan reading `user_id`
/// (output column `column`) as a dictionary, where nothing between reads the id.
fn dictionary_input(input: &Arc<dyn ExecutionPlan>, column: usize) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    rewrite_scan(input, column, Uses::PassThroughOnly, &dictionary_scan)
}

/// `join` over inputs read by bucket: a partitioned join on a key pair both of whose sides
/// can be, or a join that collects its left side once over a right side that can be. With
/// `column`, the join's output column that must follow the buckets (a key present in every
/// output row). The rebuilt partitioned join drops its dynamic filter: DataFusion routes that
/// filter's probe rows by its own hash partitioning, which bucket partitions are not.
fn join_by_bucket(join: &HashJoinExec, column: Option<usize>, place: Place) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if place == Place::Cluster {
        return Ok(None);
    }
    let (_, sides) = build_join_schema(&join.left().schema(), &join.right().schema(), join.join_type());
    let output: Vec<ColumnIndex> = match &join.projection {
        Some(projection) => projection.iter().map(|&i| sides[i].clone()).collect(),
        None => sides,
    };
    let wanted = match column {
        Some(c) => Some(output.get(c).cloned().ok_or_else(|| internal_datafusion_err!("join has no column {c}"))?),
        None => None,
    };
    // Whether every output row holds the side's columns (outer joins fill the other with NULL).
    let (left_kept, right_kept) = match join.join_type() {
        JoinType::Inner => (true, true),
        JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => (true, false),
        JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => (false, true),
        JoinType::Full => (false, false),
    };
    match join.partition_mode() {
        PartitionMode::Partitioned => {
            for (pair, (left_key, right_key)) in join.on().iter().enumerate() {
                let (Some(l), Some(r)) = (left_key.downcast_ref::<Column>(), right_key.downcast_ref::<Column>()) else {
                    continue;
                };
                let follows = wanted.as_ref().is_none_or(|w| match w.side {
                    JoinSide::Left => left_kept && w.index == l.index(),
                    JoinSide::Right => right_kept && w.index == r.index(),
                    JoinSide::None => false,
                });
                if !follows {
                    continue;
                }
                let Some(left) = by_bucket(join.left(), l.index(), place)? else { continue };
                let Some(right) = by_bucket(join.right(), r.index(), place)? else { continue };
                if !has_bucket_partitions(&left) || !has_bucket_partitions(&right) {
                    continue;
                }
                // DataFusion builds its hash table from the left input and, without row
                // counts, keeps the order written: `events e JOIN (per-user aggregate) f`
                // built a table of every event (14 s at 20M) instead of one row per user.
                let swap = is_aggregated(&right) && !is_aggregated(&left);
                let numbered = numbered_join(join, pair, left.clone(), right.clone(), &dictionary_input)?;
                let mut builder = join.builder();
                let (left, right, on) = match numbered {
                    Some(NumberedJoin { left, right, on, projection }) => {
                        builder = builder.with_on(on.clone()).with_projection(Some(projection));
                        (left, right, on)
                    }
                    None => (left, right, join.on().to_vec()),
                };
                let (left_keys, right_keys): (Vec<_>, Vec<_>) = on.into_iter().unzip();
                let left = Arc::new(BucketPartitionsExec::new(left, left_keys));
                let right = Arc::new(BucketPartitionsExec::new(right, right_keys));
                let rebuilt = builder.with_new_children(vec![left, right])?.reset_state().build()?;
                if swap {
                    return rebuilt.swap_inputs(PartitionMode::Partitioned).map(Some);
                }
                return Ok(Some(Arc::new(rebuilt)));
            }
            Ok(None)
        }
        // The left side is whole in every partition; the output follows the right side's.
        PartitionMode::CollectLeft => {
            let Some(w) = wanted.filter(|w| w.side == JoinSide::Right && right_kept) else { return Ok(None) };
            let Some(right) = by_bucket(join.right(), w.index, place)? else { return Ok(None) };
            let left = rewrite(join.left().clone(), true, false, place)?;
            join.builder().with_new_children(vec![left, right])?.build_exec().map(Some)
        }
        PartitionMode::Auto => Ok(None),
    }
}

/// `GROUP BY person_id` (the person of each stored `user_id`, `northstar_identity::PersonOf`)
/// per user bucket: the scan reads whole buckets per partition with `user_id` as a dictionary,
/// the persons keep the dictionary's keys, [`BucketRoutingExec`] moves the rows whose person
/// hashes to another bucket (ids merged into a person of another bucket), and
/// [`BucketAggregateExec`] groups each partition's persons by dictionary, as for `user_id`.
/// `None` (the plan stays as DataFusion made it) when the plan has another shape, something
/// besides the person reads `user_id` or the person between the scan and the aggregate, or an
/// aggregate needs DataFusion's operator.
fn aggregate_by_person_bucket(
    last: &AggregateExec,
    grouped: &AggregateExec,
    key: usize,
    input: &Arc<dyn ExecutionPlan>,
    partitions: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if references(grouped_expressions(grouped), key) {
        return Ok(None);
    }
    let Some(dictionary_input) = person_input(input, key, partitions, true)? else { return Ok(None) };
    let Some(string_input) = person_input(input, key, partitions, false)? else { return Ok(None) };
    let mut routing = BucketRoutingExec::new(dictionary_input.clone(), key);
    if let Some(person) = person_under(&dictionary_input, key) {
        routing = routing.with_persons_over_buckets(person.persons().clone(), person.mapped_dictionaries().clone());
    }
    let routed: Arc<dyn ExecutionPlan> = Arc::new(routing);
    // The replaced aggregate over the routed rows, as BucketAggregateExec takes it (with the
    // input schema of the string key, which the fall-back uses; it never runs itself).
    let single = single_stage(last, grouped, Arc::new(BucketRoutingExec::new(string_input, key)))?;
    if single.schema() != last.schema() || single.properties().partitioning.partition_count() != partitions {
        return Ok(None);
    }
    Ok(BucketAggregateExec::try_new(&single, key, routed).map(|exec| Arc::new(exec) as Arc<dyn ExecutionPlan>))
}

/// `plan` (filters and projections over an events scan) where its output column `column` is
/// a person computed from the stored `user_id` and only passed through above that, rebuilt
/// over a scan of whole buckets per partition (`partitions` of them), reading `user_id` as a
/// dictionary when `dictionary`; otherwise `None`.
fn person_input(
    plan: &Arc<dyn ExecutionPlan>,
    column: usize,
    partitions: usize,
    dictionary: bool,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let rebuilt = |new_input| rebuilt_over(plan, new_input);
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let Some(expr) = projection.expr().get(column).map(|e| &e.expr) else { return Ok(None) };
        let others = projection.expr().iter().enumerate().filter(|(i, _)| *i != column).map(|(_, e)| e.expr.clone());
        if let Some(person) = expr.downcast_ref::<PersonOf>() {
            let Some(user_id) = person.user_id().downcast_ref::<Column>() else { return Ok(None) };
            if references(others, user_id.index()) {
                return Ok(None);
            }
            let by_bucket = |config: &FileScanConfig, column: usize| {
                bucket_scan(config, column, partitions, dictionary.then_some(Key::UserId))
            };
            let Some(new_input) = rewrite_scan(projection.input(), user_id.index(), Uses::PassThroughOnly, &by_bucket)?
            else {
                return Ok(None);
            };
            return rebuilt(new_input).map(Some);
        }
        let Some(source) = expr.downcast_ref::<Column>() else { return Ok(None) };
        if references(others, source.index()) {
            return Ok(None);
        }
        return person_input(projection.input(), source.index(), partitions, dictionary)?.map(rebuilt).transpose();
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let column = filter.projection().as_ref().map_or(column, |p| p[column]);
        if references([filter.predicate().clone()], column) {
            return Ok(None);
        }
        return person_input(filter.input(), column, partitions, dictionary)?.map(rebuilt).transpose();
    }
    // The person computed in the scan's own projection (DataFusion pushes projections in).
    let Some(config) = events_scan(plan) else { return Ok(None) };
    bucket_scan(config, column, partitions, dictionary.then_some(Key::PersonOfUserId))
}

/// The `PersonOf` that computes output column `column` of `plan` (a plan [`person_input`]
/// made: projections and filters over an events scan).
fn person_under(plan: &Arc<dyn ExecutionPlan>, column: usize) -> Option<&PersonOf> {
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let expr = &projection.expr().get(column)?.expr;
        if let Some(person) = expr.downcast_ref::<PersonOf>() {
            return Some(person);
        }
        return person_under(projection.input(), expr.downcast_ref::<Column>()?.index());
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        return person_under(filter.input(), filter.projection().as_ref().map_or(column, |p| p[column]));
    }
    let source = events_scan(plan)?.file_source().downcast_ref::<ParquetSource>()?;
    source.projection()?.iter().nth(column)?.expr.downcast_ref::<PersonOf>()
}

/// `config` reading whole buckets per partition (`partitions` of them), with `user_id` read as
/// a dictionary when `dictionary` names the grouped column (output column `column`).
fn bucket_scan(
    config: &FileScanConfig,
    column: usize,
    partitions: usize,
    dictionary: Option<Key>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let regrouped = scan_by_bucket_config(config, partitions);
    match dictionary {
        Some(key) => dictionary_scan_of(&regrouped, column, key),
        None => Ok(Some(DataSourceExec::from_data_source(regrouped))),
    }
}

/// `plan`, a filter or projection, over `new_input`. A projection is made anew from its
/// expressions: the new input may read `user_id` as a dictionary, and `with_new_children`
/// keeps the output schema computed for the old input (an experiment with sum and ratio
/// metrics then failed at execution, 'expected Utf8View but found Dictionary').
fn rebuilt_over(plan: &Arc<dyn ExecutionPlan>, new_input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(match plan.downcast_ref::<ProjectionExec>() {
        Some(projection) => Arc::new(ProjectionExec::try_new(projection.expr().iter().cloned(), new_input)?),
        None => plan
            .clone()
            .replace_children(vec![new_input], ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))?,
    })
}

/// The file scan configuration of `plan` when it scans the events table's layout.
fn events_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    let config = plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()?;
    let partition_cols = config.table_partition_cols();
    let is_events_layout =
        partition_cols.len() == 2 && partition_cols[0].name() == EVENT_DATE && partition_cols[1].name() == USER_BUCKET;
    is_events_layout.then_some(config)
}

/// The aggregates' arguments and FILTER clauses of `aggregate`.
fn grouped_expressions(aggregate: &AggregateExec) -> Vec<Arc<dyn PhysicalExpr>> {
    let arguments = aggregate.aggr_expr().iter().flat_map(|a| a.expressions());
    arguments.chain(aggregate.filter_expr().iter().flatten().cloned()).collect()
}

/// Whether any of `exprs` reads column `column` of its input.
fn references(exprs: impl IntoIterator<Item = Arc<dyn PhysicalExpr>>, column: usize) -> bool {
    exprs.into_iter().any(|e| collect_columns(&e).iter().any(|c| c.index() == column))
}

/// `plan` (projections and filters over an events scan) reading whole user buckets per
/// partition, `partitions` of them, when column `column` of its output is the scan's
/// `user_id`; otherwise `None`.
fn scan_by_bucket(
    plan: &Arc<dyn ExecutionPlan>,
    column: usize,
    partitions: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    rewrite_scan(plan, column, Uses::Any, &|config, column| bucket_scan(config, column, partitions, None))
}

/// `config` reading whole user buckets per partition, `partitions` of them.
fn scan_by_bucket_config(config: &FileScanConfig, partitions: usize) -> FileScanConfig {
    let mut groups: Vec<Vec<_>> = vec![Vec::new(); partitions];
    for file in config.file_groups.iter().flat_map(|g| g.files()) {
        let bucket = match file.partition_values.get(1) {
            Some(ScalarValue::Int32(Some(bucket))) => *bucket as usize,
            _ => 0,
        };
        groups[bucket % partitions].push(file.clone());
    }
    FileScanConfigBuilder::from(config.clone())
        .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
        // Declared so that DataFusion keeps each file in its group: by default idle
        // partitions steal files from busy ones, which would mix buckets.
        .with_output_partitioning(Some(Partitioning::UnknownPartitioning(partitions)))
        .build()
}

/// `config`'s scan with `user_id` (its output column `column`) read as a dictionary, when
/// nothing in the scan itself (its projection, its pushed-down predicate) computes with it.
fn dictionary_scan(config: &FileScanConfig, column: usize) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    dictionary_scan_of(config, column, Key::UserId)
}

/// What the grouped column of a dictionary scan is.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    /// The stored `user_id`.
    UserId,
    /// The person of the stored `user_id` (`PersonOf`), computed in the scan's projection.
    PersonOfUserId,
}

/// [`dictionary_scan`], for either key: whatever the key, `user_id` is read as a dictionary
/// and nothing else in the scan may read it.
fn dictionary_scan_of(config: &FileScanConfig, column: usize, key: Key) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else { return Ok(None) };
    let table_schema = source.table_schema();
    let Ok(file_column) = table_schema.file_schema().index_of(USER_ID) else { return Ok(None) };
    let user_id = table_schema.file_schema().field(file_column);
    if user_id.is_nullable() || !matches!(user_id.data_type(), DataType::Utf8 | DataType::Utf8View) {
        return Ok(None);
    }
    let Some(projection) = source.projection().cloned() else { return Ok(None) };
    let exprs: Vec<Arc<dyn PhysicalExpr>> = projection.iter().map(|p| p.expr.clone()).collect();
    let is_user_id = |e: &Arc<dyn PhysicalExpr>| e.downcast_ref::<Column>().is_some_and(|c| c.index() == file_column);
    let passes_through = exprs.get(column).is_some_and(|e| match key {
        Key::UserId => is_user_id(e),
        Key::PersonOfUserId => e.downcast_ref::<PersonOf>().is_some_and(|p| is_user_id(p.user_id())),
    });
    let others = exprs.iter().enumerate().filter(|(i, _)| *i != column).map(|(_, e)| e.clone());
    // Dynamic filters as they stand now: one on `user_id` pushed down by a hash join this rule
    // replaces is never filled in (and, typed for text, could not read the dictionary);
    // dropping a dynamic filter's later updates only reads rows it might have skipped.
    let predicate = source.filter().map(snapshot_physical_expr).transpose()?;
    if !passes_through || references(others, file_column) || references(predicate.clone(), file_column) {
        return Ok(None);
    }
    let mut fields: Vec<Field> = table_schema.file_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[file_column] = user_id.clone().with_data_type(user_id_dictionary_type());
    let file_schema = Arc::new(Schema::new_with_metadata(fields, table_schema.file_schema().metadata().clone()));
    let partition_columns: Vec<_> = table_schema.table_partition_cols().iter().cloned().collect();
    let options = source.table_parquet_options().clone();
    let mut dictionary =
        ParquetSource::new(TableSchema::builder(file_schema).with_table_partition_cols(partition_columns).build());
    if let Some(hint) = options.global.metadata_size_hint {
        dictionary = dictionary.with_metadata_size_hint(hint);
    }
    dictionary = dictionary.with_table_parquet_options(options);
    if let Some(predicate) = predicate {
        dictionary = dictionary.with_predicate(predicate);
    }
    // The reader too (DataFusion's cached one): execution wraps it to read the dictionary.
    if let Some(reader) = source.parquet_file_reader_factory() {
        dictionary = dictionary.with_parquet_file_reader_factory(reader.clone());
    }
    let Some(dictionary) = dictionary.try_pushdown_projection(&projection)? else {
        return Ok(None);
    };
    let config = FileScanConfigBuilder::from(config.clone()).with_source(dictionary).build();
    Ok(Some(DataSourceExec::from_data_source(config)))
}

/// Builds the scan that replaces one (its config, `user_id`'s column in its output), or
/// declines with `None`.
type ScanReplacement<'a> = dyn Fn(&FileScanConfig, usize) -> Result<Option<Arc<dyn ExecutionPlan>>> + 'a;

/// What the filters and projections between an aggregate and its scan may do with the
/// column being followed.
#[derive(Clone, Copy, PartialEq)]
enum Uses {
    Any,
    /// Only pass it through unchanged: its type is about to change.
    PassThroughOnly,
}

/// `plan` (projections and filters over an events scan whose output column `column` is the
/// scan's `user_id`) with the scan replaced by `replace(its config, user_id's column in
/// its output)`; `None` when the plan has another shape, uses the column otherwise than
/// `uses` allows, or `replace` declines.
fn rewrite_scan(
    plan: &Arc<dyn ExecutionPlan>,
    column: usize,
    uses: Uses,
    replace: &ScanReplacement<'_>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    // Rebuilt on the new input, which may read `user_id` as a dictionary (`rebuilt_over`).
    let below = |input: &Arc<dyn ExecutionPlan>, column: usize| -> Result<Option<Arc<dyn ExecutionPlan>>> {
        rewrite_scan(input, column, uses, replace)?.map(|new_input| rebuilt_over(plan, new_input)).transpose()
    };
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let Some(source) = projection.expr().get(column).and_then(|e| e.expr.downcast_ref::<Column>()) else {
            return Ok(None);
        };
        let others = projection.expr().iter().enumerate().filter(|(i, _)| *i != column).map(|(_, e)| e.expr.clone());
        if uses == Uses::PassThroughOnly && references(others, source.index()) {
            return Ok(None);
        }
        return below(projection.input(), source.index());
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let column = match filter.projection() {
            Some(projection) => projection[column],
            None => column,
        };
        if uses == Uses::PassThroughOnly && references([filter.predicate().clone()], column) {
            return Ok(None);
        }
        return below(filter.input(), column);
    }
    let Some(config) = events_scan(plan) else { return Ok(None) };
    if plan.schema().field(column).name() != USER_ID || !reads_user_id_as_stored(config, column) {
        return Ok(None);
    }
    replace(config, column)
}

/// Whether output column `column` of the scan `config` is the stored `user_id` itself, not an
/// expression over it that only carries the name (`lower(user_id) AS user_id`, or a person id
/// computed from it, pushed into the scan's projection): such values may be equal for two
/// users of different buckets, so grouping by bucket would split one group in two.
fn reads_user_id_as_stored(config: &FileScanConfig, column: usize) -> bool {
    let projected = config.file_source().downcast_ref::<ParquetSource>().and_then(|s| s.projection().cloned());
    match projected {
        Some(projection) => projection
            .iter()
            .nth(column)
            .and_then(|p| p.expr.downcast_ref::<Column>().map(|c| c.name() == USER_ID))
            .unwrap_or(false),
        None => true,
    }
}
