//! Northstar's DataFusion session: bounded memory that spills to disk, one target partition
//! per core, JSON functions, and the `events` table of a data location.
//!
//! ```sql
//! SELECT event, count(*) FROM events WHERE json_get_str(properties, 'plan') = 'pro' GROUP BY event;
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::prelude::{SessionConfig, SessionContext};
use northstar_execution::{
    BucketAggregateRule, DatesFromEventDate, DurationComparisons, FastTextEquality, SessionTimeZone,
    SingleStageEventAggregates, SortKeysAfterUnnest, TimestampText, UtcDates,
};
use northstar_storage::{DataLocation, EventStore, StorageError};

mod saved;
mod tables;
pub use saved::{
    drop_saved_table, execute_sql, load_saved_tables, load_views, partitions_of, persist_catalog_change, save_table,
};
pub use tables::replace_table;

/// Resource settings of a session.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Bytes the memory pool may hand out before operators spill (or fail, for the few that
    /// cannot spill). `None`: half of the machine's memory.
    pub memory_limit: Option<usize>,
    /// Where spill files go. `None`: the OS temp directory.
    pub spill_dir: Option<PathBuf>,
    /// Parallelism of scans, joins and aggregates. `None`: the number of cores.
    pub target_partitions: Option<usize>,
    /// Plan the order-dependent functions in DataFusion's two stages (partial, final) instead
    /// of one ([`northstar_execution::SingleStageEventAggregates`]); tests use it to exercise
    /// their merge path.
    pub two_stage_aggregates: bool,
}

impl EngineOptions {
    pub fn effective_memory_limit(&self) -> usize {
        self.memory_limit.unwrap_or_else(|| default_memory_limit(total_memory_bytes()))
    }
}

/// Half of physical memory: leaves room for the OS page cache, which Parquet scans lean on,
/// and for allocations DataFusion does not track.
pub fn default_memory_limit(total: Option<u64>) -> usize {
    const FALLBACK: u64 = 4 << 30;
    (total.unwrap_or(FALLBACK * 2) / 2) as usize
}

/// Physical memory from /proc/meminfo. Read by hand: one line of one file, where a system-info
/// crate would add a dependency tree for a single number.
pub fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses sizes such as `4GiB`, `512MB`, `1073741824`. Units are powers of 1024.
pub fn parse_byte_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("invalid size '{text}': expected e.g. 4GiB or 512MiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("invalid size '{text}': unknown unit '{other}'")),
    };
    Ok((number * factor as f64) as usize)
}

/// Builds a session with Northstar's functions and resource limits; no tables yet.
pub fn new_context(options: &EngineOptions) -> Result<SessionContext> {
    let mut state = session_state(session_config(options), runtime_env(options)?)?;
    if options.two_stage_aggregates {
        let one_stage = [SingleStageEventAggregates.name(), BucketAggregateRule.name()];
        let rules = state.physical_optimizers().iter().filter(|r| !one_stage.contains(&r.name())).cloned().collect();
        state = SessionStateBuilder::new_from_existing(state).with_physical_optimizer_rules(rules).build();
    }
    Ok(context_with_reports(state))
}

/// A session over `state`, with the report table functions (`funnel(…)`, `retention(…)` …).
pub fn context_with_reports(state: SessionState) -> SessionContext {
    let ctx = SessionContext::new_with_state(state);
    // A fresh session's default schema is empty and registering cannot fail.
    let _ = tables::use_replacing_schema(&ctx);
    northstar_reports::register_all(&ctx, Arc::new(reports_count_by));
    ctx
}

/// Whom reports count when a call does not say: persons when the session's `events` has ids
/// merged into persons, users otherwise (docs/identity.md).
fn reports_count_by(session: &dyn datafusion::catalog::Session) -> northstar_reports::By {
    let linked = || {
        let state = session.as_any().downcast_ref::<SessionState>()?;
        let options = &state.config_options().catalog;
        let schema = state.catalog_list().catalog(&options.default_catalog)?.schema(&options.default_schema)?;
        let events = schema.downcast_ref::<tables::ReplacingSchema>()?.get(EVENTS_TABLE)?;
        let persons = events.downcast_ref::<northstar_identity::PersonEvents>()?.persons().clone();
        Some(!persons.is_trivial())
    };
    match linked() {
        Some(true) => northstar_reports::By::Person,
        _ => northstar_reports::By::User,
    }
}

/// Bytes read from the end of a Parquet file to find its footer in one read.
pub const PARQUET_FOOTER_READ: usize = 16 * 1024;

/// Northstar's session settings: one target partition per core (or as configured), the
/// information schema, the `northstar` catalog, UTC.
pub fn session_config(options: &EngineOptions) -> SessionConfig {
    let partitions =
        options.target_partitions.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    configure(SessionConfig::new().with_target_partitions(partitions))
}

/// Applies Northstar's fixed settings to `config` (also to configs that come from a Ballista
/// client, so that scheduler and executors plan exactly as a single node does).
pub fn configure(mut config: SessionConfig) -> SessionConfig {
    // DataFusion reads the last 512 KiB of every Parquet file to find its footer. The event
    // files are mostly smaller than that and their footers about 2 KB, so the default read
    // every file whole, before reading the columns the query needs again: retention on the
    // 20M table read 205 MB, and reads 46 MB with this setting. 16 KiB holds a footer of
    // some ten row groups; a larger footer costs one more read.
    config.options_mut().execution.parquet.metadata_size_hint = Some(PARQUET_FOOTER_READ);
    config
        .with_information_schema(true)
        // PostgreSQL clients see the catalog as the database: `current_database()` is "northstar".
        .with_default_catalog_and_schema("northstar", "public")
        .set_str("datafusion.execution.time_zone", "UTC")
}

/// A memory pool of the configured size that spills to the configured directory.
pub fn runtime_env(options: &EngineOptions) -> Result<Arc<RuntimeEnv>> {
    let disk = match &options.spill_dir {
        Some(dir) => DiskManagerMode::Directories(vec![dir.clone()]),
        None => DiskManagerMode::OsTmpDirectory,
    };
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(options.effective_memory_limit())))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(disk))
        .build_arc()
}

/// A session state with DataFusion's defaults, the JSON functions and Northstar's functions.
pub fn session_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Result<SessionState> {
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        // Delta's planner knows the extension nodes its writes, optimize and merge plan with.
        .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
        .with_analyzer_rule(Arc::new(SessionTimeZone))
        .with_analyzer_rule(Arc::new(TimestampText))
        .with_analyzer_rule(Arc::new(DurationComparisons))
        .with_optimizer_rule(Arc::new(UtcDates))
        .with_optimizer_rule(Arc::new(DatesFromEventDate))
        // Text equality first: the bucket rule may replace AggregateExec by its own operator,
        // which takes the aggregates' arguments as they are then.
        .with_physical_optimizer_rule(Arc::new(FastTextEquality::default()))
        .with_physical_optimizer_rule(Arc::new(SingleStageEventAggregates))
        .with_physical_optimizer_rule(Arc::new(BucketAggregateRule))
        .build();
    datafusion_functions_json::register_all(&mut state)?;
    northstar_functions::register_all(&mut state)?;
    Ok(without_leaf_extraction(state))
}

/// DataFusion's rules that move "cheap" expressions to the scan, passes 1 and 2.
const LEAF_EXTRACTION_RULES: [&str; 2] = ["extract_leaf_expressions", "push_down_leaf_projections"];

/// `state` without DataFusion's leaf extraction. It moves what it calls cheap expressions,
/// among them the JSON functions' `json_get_*(properties, 'key')`, into the scan's
/// projection, below filters, CASE and AND: the JSON of every row is then parsed, where the
/// plan as written parses it only on rows the filter keeps (`… WHERE event = 'purchase'`, an
/// exposure's `CASE WHEN event = '$feature_flag_called' THEN json_get_str(…) END`). Its gain,
/// reading one field of a struct column, does not apply: the events table has no struct
/// columns. Measured in docs/benchmarks.md ("JSON properties").
/// Also DataFusion's `eliminate_duplicated_expr` replaced by [`SortKeysAfterUnnest`] (it lost
/// ORDER BY keys after `unnest`).
fn without_leaf_extraction(state: SessionState) -> SessionState {
    let rules = state
        .optimizers()
        .iter()
        .filter(|r| !LEAF_EXTRACTION_RULES.contains(&r.name()))
        .map(|r| match r.name() == "eliminate_duplicated_expr" {
            true => Arc::new(SortKeysAfterUnnest::default()) as _,
            false => r.clone(),
        })
        .collect();
    SessionStateBuilder::new_from_existing(state).with_optimizer_rules(rules).build()
}

/// A session over a data location, with `events` registered.
pub async fn open_session(
    location: &DataLocation,
    options: &EngineOptions,
) -> std::result::Result<SessionContext, StorageError> {
    let ctx = new_context(options)?;
    let store = EventStore::open(location).await?;
    register_events(&ctx, &store).await?;
    load_saved_tables(&ctx, &store).await?;
    load_views(&ctx, &store).await?;
    Ok(ctx)
}

/// The name the event table is registered under.
pub const EVENTS_TABLE: &str = "events";

/// Marks a session whose `events` must stay the plain scan of the table's files, without
/// `person_id`: a Ballista client's, whose plans travel to executors as the file list
/// (docs/identity.md, "Not yet").
#[derive(Debug, Default)]
pub struct EventsWithoutPersons;

/// Registers (or re-registers) the current version of `events` in `ctx`, with `person_id`
/// resolved from the identity links of that version (`northstar_identity`).
pub async fn register_events(ctx: &SessionContext, store: &EventStore) -> std::result::Result<(), StorageError> {
    let state = ctx.state();
    let mut provider = store.table_provider(&state).await?;
    if state.config().get_extension::<EventsWithoutPersons>().is_none() {
        let identity = northstar_identity::identity_at(store, &state, &provider.schema()).await?;
        provider = Arc::new(northstar_identity::PersonEvents::try_new(provider, identity.persons.clone())?);
        // `persons`, `groups` and `group_members`: SQL over `events`, planned when scanned.
        for table in northstar_identity::derived_tables(&provider.schema()) {
            let sql = northstar_reports::ReportSql { sql: table.sql, schema: table.schema, after: None };
            replace_table(ctx, table.name, Arc::new(northstar_reports::ReportTable::new(table.name, sql)))?;
        }
    }
    replace_table(ctx, EVENTS_TABLE, provider)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_with_binary_units() {
        assert_eq!(parse_byte_size("1024").unwrap(), 1024);
        assert_eq!(parse_byte_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_byte_size("512mb").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1.5G").unwrap(), 3 << 29);
        assert!(parse_byte_size("12 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_byte_size("lots").unwrap_err().contains("invalid size"));
    }

    #[test]
    fn default_memory_limit_is_half_of_ram() {
        assert_eq!(default_memory_limit(Some(24 << 30)), 12 << 30);
        assert_eq!(default_memory_limit(None), 4 << 30, "without /proc/meminfo: 4 GiB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn total_memory_is_read_from_proc_meminfo_on_linux() {
        let total = total_memory_bytes().expect("MemTotal in /proc/meminfo");
        assert!(total >= 64 << 20, "{total} bytes of RAM");
    }

    /// Every function Northstar registers carries DataFusion documentation (description,
    /// syntax, SQL example), and SQL clients see the description in
    /// `information_schema.routines`.
    #[tokio::test]
    async fn every_function_is_documented_and_visible_in_information_schema() {
        let docs = northstar_functions::aggregate_functions()
            .iter()
            .map(|f| (f.name().to_string(), f.documentation().cloned()))
            .chain(
                northstar_functions::window_functions()
                    .iter()
                    .map(|f| (f.name().to_string(), f.documentation().cloned())),
            )
            .chain(
                northstar_functions::scalar_functions()
                    .iter()
                    .map(|f| (f.name().to_string(), f.documentation().cloned())),
            )
            .collect::<Vec<_>>();
        assert_eq!(docs.len(), 18, "{docs:?}");
        for (name, doc) in &docs {
            let doc = doc.as_ref().unwrap_or_else(|| panic!("{name} has no documentation()"));
            assert!(!doc.description.is_empty(), "{name}: empty description");
            assert!(doc.syntax_example.starts_with(name.as_str()), "{name}: syntax {}", doc.syntax_example);
            let example = doc.sql_example.as_deref().unwrap_or_else(|| panic!("{name} has no SQL example"));
            assert!(example.contains(name.as_str()), "{name}: example does not call it: {example}");
        }
        for (name, doc) in northstar_reports::documentation::report_documentation() {
            assert!(!doc.description.is_empty() && doc.sql_example.is_some(), "report {name}");
        }

        let ctx = new_context(&EngineOptions::default()).unwrap();
        let batches = ctx
            .sql("SELECT routine_name, description FROM information_schema.routines WHERE routine_name = 'window_funnel'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let expected = &docs.iter().find(|(n, _)| n == "window_funnel").unwrap().1.as_ref().unwrap().description;
        assert!(text.contains(&expected[..40]), "{text}");
    }

    /// JSON properties are parsed only on the rows a filter keeps: DataFusion's leaf
    /// extraction would move `json_get_*` into the scan's projection, below the filter.
    #[tokio::test]
    async fn json_functions_run_above_the_filter_not_in_the_scan() {
        let ctx = new_context(&EngineOptions::default()).unwrap();
        let create =
            r#"CREATE TABLE t (event TEXT, properties TEXT) AS VALUES ('purchase', '{"price": 3}'), ('view', '{}')"#;
        ctx.sql(create).await.unwrap().collect().await.unwrap();
        let sql = "EXPLAIN SELECT sum(json_get_float(properties, 'price')) FROM t WHERE event = 'purchase'";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let physical = &text[text.find("physical_plan").expect("a physical plan")..];
        let (filter, json) =
            (physical.find("FilterExec").expect("a filter"), physical.rfind("json_get_float").unwrap());
        assert!(json < filter, "json_get_float is computed below the filter:\n{physical}");
    }
}
