//! Property tests (proptest): on random small event sets, the engine (SQL, GROUP BY, partial
//! and final aggregation over 1, 2 and 8 partitions, and with spilling forced) agrees with
//! naive reference implementations written from the rules in docs/functions.md. A failure is
//! shrunk to a minimal case: fewest users and events, simplest modes.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use northstar_engine::{new_context, EngineOptions};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::support::{batches, pretty};

const LETTERS: [&str; 5] = ["A", "B", "C", "D", "X"];
const MODES: [&str; 4] = ["strict_order", "strict_deduplication", "strict_increase", "strict_once"];

/// user → events (seconds, letter)
type Users = BTreeMap<String, Vec<(i64, &'static str)>>;

/// Users `u0000`… with up to 8 events each over 30 seconds; with `distinct_times`, no two
/// events of a user share a time (ClickHouse leaves the order of equal times unspecified for
/// the sequence functions).
fn random_users(count: usize, distinct_times: bool) -> impl Strategy<Value = Users> {
    let letter = (0..LETTERS.len()).prop_map(|l| LETTERS[l]);
    let events = if distinct_times {
        btree_map(0..30i64, letter, 0..9).prop_map(|m| m.into_iter().collect::<Vec<_>>()).boxed()
    } else {
        vec((0..30i64, letter), 0..9).boxed()
    };
    vec(events, count).prop_map(|all| all.into_iter().enumerate().map(|(u, e)| (format!("u{u:04}"), e)).collect())
}

/// Users with an order of all their rows, in which `table` deals them out.
fn with_row_order(users: impl Strategy<Value = Users>) -> impl Strategy<Value = (Users, Vec<usize>)> {
    users.prop_flat_map(|users| {
        let rows = users.values().map(Vec::len).sum::<usize>();
        (Just(users), Just((0..rows).collect::<Vec<_>>()).prop_shuffle())
    })
}

/// One value of `strategy`, the same on every run (for tests that need data, not a property).
fn fixed<S: Strategy>(strategy: S) -> S::Value {
    strategy.new_tree(&mut TestRunner::deterministic()).expect("a value").current()
}

/// Runs one case's queries (proptest's cases are synchronous).
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
}

/// The table, its rows taken in `order` and dealt out over `partitions` partitions.
fn table(users: &Users, order: &[usize], partitions: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("u", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("e", DataType::Utf8, false),
    ]));
    let all: Vec<(&str, i64, &str)> =
        users.iter().flat_map(|(u, es)| es.iter().map(move |(t, e)| (u.as_str(), *t, *e))).collect();
    let rows: Vec<(&str, i64, &str)> = order.iter().map(|&i| all[i]).collect();
    let mut parts = vec![Vec::new(); partitions];
    for (p, chunk) in rows.chunks(rows.len().div_ceil(partitions).max(1)).enumerate() {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(chunk.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(
                    TimestampMicrosecondArray::from(chunk.iter().map(|r| r.1 * 1_000_000).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(chunk.iter().map(|r| r.2).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        parts[p].push(batch);
    }
    MemTable::try_new(schema, parts).unwrap()
}

/// `two_stage`: DataFusion's partial and final aggregates (the functions' merge path) instead
/// of Northstar's one stage.
fn context(partitions: usize, memory: Option<usize>, two_stage: bool) -> SessionContext {
    let options = EngineOptions {
        target_partitions: Some(partitions),
        memory_limit: memory,
        two_stage_aggregates: two_stage,
        ..Default::default()
    };
    new_context(&options).unwrap()
}

/// user → first column as i64 (booleans as 0/1).
async fn per_user(ctx: &SessionContext, sql: &str) -> BTreeMap<String, i64> {
    let batches = batches(ctx, sql).await;
    let mut out = BTreeMap::new();
    for b in batches {
        let users = b.column(0).as_string::<i32>();
        let values = b.column(1);
        for row in 0..b.num_rows() {
            let v = match values.data_type() {
                DataType::Int32 => values.as_primitive::<Int32Type>().value(row) as i64,
                DataType::Int64 => values.as_primitive::<Int64Type>().value(row),
                DataType::Boolean => values.as_boolean().value(row) as i64,
                t => panic!("{t}"),
            };
            out.insert(users.value(row).to_string(), v);
        }
    }
    out
}

// ---- naive references, written from the rules (not from the engine's code) ----

/// windowFunnel: entries (time, step) per matching condition (step 0 for a non-matching row
/// under strict_order), stably sorted by (time, step), scanned once.
fn reference_funnel(events: &[(i64, &str)], steps: usize, window: i64, modes: &[&str]) -> i64 {
    let has = |m: &str| modes.contains(&m);
    let mut entries: Vec<(i64, usize, usize)> = Vec::new();
    for (row, (t, e)) in events.iter().enumerate() {
        let step = LETTERS[..steps].iter().position(|l| l == e).map(|p| p + 1);
        match step {
            Some(s) => entries.push((*t, s, row)),
            None if has("strict_order") => entries.push((*t, 0, row)),
            None => {}
        }
    }
    entries.sort_by_key(|&(t, s, _)| (t, s));
    if entries.is_empty() {
        return 0;
    }
    if !has("strict_order") && steps == 1 {
        return 1;
    }
    let highest = |set: &dyn Fn(usize) -> bool| (0..steps).rev().find(|&k| set(k)).map_or(0, |k| k as i64 + 1);
    if has("strict_once") {
        // all chains, each a list of rows; a row serves one step of a chain
        let mut chains: Vec<Vec<(i64, i64, Vec<usize>)>> = vec![Vec::new(); steps];
        let mut started = false;
        for (t, s, row) in entries {
            if s == 0 {
                if started {
                    break;
                } else {
                    continue;
                }
            }
            let i = s - 1;
            if i == 0 {
                chains[0].push((t, t, vec![row]));
                started = true;
            } else if has("strict_deduplication") && !chains[i].is_empty() {
                return highest(&|k| !chains[k].is_empty());
            } else if has("strict_order") && started && chains[i - 1].is_empty() {
                if has("allow_reentry") {
                    continue;
                }
                return (0..steps).find(|&k| chains[k].is_empty()).unwrap_or(steps) as i64;
            } else if !chains[i - 1].is_empty() {
                // chains whose start is out of the window are dropped, but one always stays
                let mut k = 0;
                let mut new = Vec::new();
                while k < chains[i - 1].len() {
                    let (first, last, rows) = chains[i - 1][k].clone();
                    let in_window = t <= first + window;
                    if !in_window && chains[i - 1].len() > 1 {
                        chains[i - 1].remove(k);
                        continue;
                    }
                    if in_window && !rows.contains(&row) && (!has("strict_increase") || last < t) {
                        let mut r = rows;
                        r.push(row);
                        new.push((first, t, r));
                    }
                    k += 1;
                }
                let reached = !new.is_empty();
                chains[i].extend(new);
                if reached && i + 1 == steps {
                    return steps as i64;
                }
            }
        }
        return highest(&|k| !chains[k].is_empty());
    }
    let mut level: Vec<Option<(i64, i64)>> = vec![None; steps];
    let mut started = false;
    for (t, s, _) in entries {
        if s == 0 {
            if started {
                break;
            } else {
                continue;
            }
        }
        let i = s - 1;
        if i == 0 {
            level[0] = Some((t, t));
            started = true;
        } else if has("strict_deduplication") && level[i].is_some() {
            return highest(&|k| level[k].is_some());
        } else if has("strict_order") && started && level[i - 1].is_none() {
            if has("allow_reentry") {
                continue;
            }
            return (0..steps).find(|&k| level[k].is_none()).unwrap_or(steps) as i64;
        } else if let Some((first, last)) = level[i - 1] {
            if t <= first + window && (!has("strict_increase") || last < t) {
                level[i] = Some((first, t));
                if i + 1 == steps {
                    return steps as i64;
                }
            }
        }
    }
    highest(&|k| level[k].is_some())
}

/// retention: [c1, c1 AND c2, …] as a number with bit i set for element i.
fn reference_retention(events: &[(i64, &str)], conditions: usize) -> i64 {
    let seen = |l: &str| events.iter().any(|(_, e)| *e == l);
    (0..conditions).filter(|&i| seen(LETTERS[0]) && seen(LETTERS[i])).map(|i| 1 << i).sum()
}

/// sequence_count / sequence_match without time gates, as a regular expression over the
/// letters of the events in time order (every event here matches exactly one condition; events
/// matching none are not events). Stars are lazy: ClickHouse tries the shortest first.
fn reference_sequence(events: &[(i64, &str)], pattern: &str, conditions: usize, count: bool) -> i64 {
    let mut sorted: Vec<_> = events.iter().filter(|(_, e)| LETTERS[..conditions].contains(e)).collect();
    sorted.sort_by_key(|(t, _)| *t);
    let text: String = sorted.iter().map(|(_, e)| *e).collect();
    let regex = pattern.replace(".*", "_").replace('.', "[A-Z]").replace('_', "[A-Z]*?");
    let regex =
        regex::Regex::new(&(1..=conditions).fold(regex, |r, i| r.replace(&format!("(?{i})"), LETTERS[i - 1]))).unwrap();
    if count {
        regex.find_iter(&text).count() as i64
    } else {
        regex.is_match(&text) as i64
    }
}

/// Any combination of the four modes, with `allow_reentry` only beside `strict_order`.
fn modes() -> impl Strategy<Value = Vec<&'static str>> {
    (subsequence(MODES.to_vec(), 0..=MODES.len()), any::<bool>()).prop_map(|(mut modes, reentry)| {
        if reentry && modes.contains(&"strict_order") {
            modes.push("allow_reentry");
        }
        modes
    })
}

proptest! {
    // 24 mode sets; every case runs all five partitionings (the loop this replaced ran each
    // mode set once).
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn window_funnel_matches_reference_for_any_modes_and_partitioning(
        (users, order) in with_row_order(random_users(60, false)),
        modes in modes(),
        steps in 1..=4usize,
        window in select(vec![0i64, 2, 5, 10, 40]),
    ) {
        let conds: Vec<String> = LETTERS[..steps].iter().map(|l| format!("e = '{l}'")).collect();
        let sql = format!(
            "SELECT u, window_funnel({window}, '{}', ts, {}) FROM t GROUP BY u",
            modes.join(","),
            conds.join(", ")
        );
        let expected: BTreeMap<String, i64> = users
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(u, e)| (u.clone(), reference_funnel(e, steps, window, &modes)))
            .collect();
        for (partitions, two_stage) in [(1, false), (2, false), (8, false), (2, true), (8, true)] {
            let ctx = context(partitions, None, two_stage);
            ctx.register_table("t", Arc::new(table(&users, &order, partitions))).unwrap();
            let got = block_on(per_user(&ctx, &sql));
            let differing: Vec<String> = got
                .iter()
                .filter(|(u, v)| expected.get(*u) != Some(v))
                .map(|(u, v)| format!("{u}: engine {v}, reference {:?}, events {:?}", expected.get(u), users[u]))
                .collect();
            prop_assert!(
                differing.is_empty(),
                "{} with {} partitions (two stages: {}):\n{}",
                sql, partitions, two_stage, differing.join("\n")
            );
            prop_assert_eq!(got.len(), expected.len());
        }
    }
}

const PATTERNS: [&str; 9] =
    ["(?1)(?2)", "(?1).*(?2)", "(?1).(?2)", "(?2)(?1)", "(?1).*(?2).*(?3)", "(?1)(?1)", "(?3)", ".(?2)", "(?1).*.(?3)"];

proptest! {
    // nine patterns (the loop this replaced ran each once)
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn retention_and_sequences_match_reference(
        (users, order) in with_row_order(random_users(80, true)),
        pattern in select(PATTERNS.to_vec()),
        conditions in 3..=4usize,
        partitions in select(vec![1usize, 2, 8]),
        two_stage in any::<bool>(),
    ) {
        let conds: Vec<String> = LETTERS[..conditions].iter().map(|l| format!("e = '{l}'")).collect();
        let ctx = context(partitions, None, two_stage);
        ctx.register_table("t", Arc::new(table(&users, &order, partitions))).unwrap();
        for (function, count) in [("sequence_match", false), ("sequence_count", true)] {
            let sql = format!("SELECT u, {function}('{pattern}', ts, {}) FROM t GROUP BY u", conds.join(", "));
            let expected: BTreeMap<String, i64> = users
                .iter()
                .filter(|(_, e)| !e.is_empty())
                .map(|(u, e)| (u.clone(), reference_sequence(e, pattern, conditions, count)))
                .collect();
            prop_assert_eq!(block_on(per_user(&ctx, &sql)), expected, "{} with {} partitions", sql, partitions);
        }
        let sql = format!("SELECT u, retention({}) AS r FROM t GROUP BY u", conds.join(", "));
        let batches = block_on(async { ctx.sql(&sql).await.unwrap().collect().await.unwrap() });
        for b in batches {
            let users_col = b.column(0).as_string::<i32>();
            let lists = b.column(1).as_list::<i32>();
            for row in 0..b.num_rows() {
                let value = lists.value(row);
                let bits: i64 =
                    value.as_primitive::<Int32Type>().iter().enumerate().map(|(k, v)| (v.unwrap() as i64) << k).sum();
                let u = users_col.value(row);
                prop_assert_eq!(bits, reference_retention(&users[u], conditions), "{}: user {}", sql, u);
            }
        }
    }
}

/// Distinct days a user was active, as offsets from the first (`cohort_periods(ts, 'day')`
/// on second-based times: one "day" = 86 400 s).
fn reference_cohort_days(events: &[(i64, &str)]) -> Vec<i64> {
    let days: std::collections::BTreeSet<i64> = events.iter().map(|(t, _)| t.div_euclid(86_400)).collect();
    let first = days.first().copied().unwrap_or(0);
    days.into_iter().map(|d| d - first).collect()
}

/// Users with 1 to 8 events each spread over 30 days (times in seconds).
fn active_users(count: usize) -> impl Strategy<Value = Users> {
    let events = vec((0..30 * 86_400i64, Just("A")), 1..9);
    vec(events, count).prop_map(|all| all.into_iter().enumerate().map(|(u, e)| (format!("u{u:05}"), e)).collect())
}

proptest! {
    // each case is a large table, run four ways (the test this replaced had one of 3 000 users)
    #![proptest_config(ProptestConfig { cases: 2, ..ProptestConfig::default() })]
    #[test]
    fn cohort_periods_matches_reference_across_partitions_and_a_small_memory_pool(
        (users, order) in with_row_order(active_users(1_500)),
    ) {
        let sql = "SELECT u, cohort_periods(ts, 'day') FROM t GROUP BY u";
        for (partitions, memory) in [(1, None), (2, None), (8, None), (2, Some(1 << 20))] {
            let ctx = context(partitions, memory, false);
            ctx.register_table("t", Arc::new(table(&users, &order, partitions))).unwrap();
            let batches = block_on(async { ctx.sql(sql).await.unwrap().collect().await })
                .unwrap_or_else(|e| panic!("{sql} with {partitions} partitions, memory {memory:?}: {e}"));
            for b in batches {
                let (names, lists) = (b.column(0).as_string::<i32>(), b.column(1).as_list::<i32>());
                for row in 0..b.num_rows() {
                    let got: Vec<i64> =
                        lists.value(row).as_primitive::<Int32Type>().values().iter().map(|&v| v as i64).collect();
                    let u = names.value(row);
                    prop_assert_eq!(
                        got,
                        reference_cohort_days(&users[u]),
                        "{} with {} partitions, memory {:?}", u, partitions, memory
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn funnel_with_spilling_forced_matches_unlimited_run() {
    let (users, order) = fixed(with_row_order(random_users(20_000, false)));
    let sql = "SELECT u, window_funnel(10, 'strict_order', ts, e = 'A', e = 'B', e = 'C') FROM t GROUP BY u";
    let expected: BTreeMap<String, i64> = users
        .iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(u, e)| (u.clone(), reference_funnel(e, 3, 10, &["strict_order"])))
        .collect();
    let spill_count = regex::Regex::new(r"spill_count=(\d+)").unwrap();
    for two_stage in [false, true] {
        let ctx = context(2, Some(2 << 20), two_stage);
        ctx.register_table("t", Arc::new(table(&users, &order, 4))).unwrap();
        let plan = pretty(&ctx, &format!("EXPLAIN ANALYZE {sql}")).await;
        let spills: usize = spill_count.captures_iter(&plan).map(|c| c[1].parse::<usize>().unwrap()).sum();
        assert!(spills > 0, "a 2 MiB pool must make the aggregation spill (two stages: {two_stage}):\n{plan}");
        assert_eq!(per_user(&ctx, sql).await, expected, "two stages: {two_stage}");
    }
}

#[tokio::test]
async fn order_dependent_aggregates_run_in_one_stage_unless_asked_for_two() {
    let (users, order) = fixed(with_row_order(random_users(50, false)));
    let sql = "EXPLAIN SELECT u, window_funnel(10, ts, e = 'A', e = 'B'), count(*) FROM t GROUP BY u";
    let aggregate_mode = regex::Regex::new(r"AggregateExec: mode=(\w+)").unwrap();
    for (two_stage, expected_modes) in [(false, vec!["SinglePartitioned"]), (true, vec!["FinalPartitioned", "Partial"])]
    {
        let ctx = context(2, None, two_stage);
        ctx.register_table("t", Arc::new(table(&users, &order, 2))).unwrap();
        let plan = pretty(&ctx, sql).await;
        let modes: Vec<String> = aggregate_mode.captures_iter(&plan).map(|c| c[1].to_string()).collect();
        assert_eq!(modes, expected_modes, "{plan}");
    }
}
