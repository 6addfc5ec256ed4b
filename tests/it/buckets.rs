//! User buckets: every file holds the users of one bucket, `GROUP BY user_id` over the events
//! table runs without a repartition (one stage per bucket group), and the answers are those
//! of DataFusion's own two-stage plan — also where a join above needs hash partitions.

use northstar_engine::{open_session, EngineOptions};
use northstar_storage::DataLocation;

use crate::support::{ok, pretty, Scratch};

/// The first five run in `BucketAggregateExec` (grouping by the Parquet dictionary of
/// `user_id`); the last two need DataFusion's `AggregateExec`: a filter on `user_id` (its
/// type must not change under it), DISTINCT, an aggregate of `user_id` itself.
const PER_USER: [&str; 7] = [
    "SELECT level, count(*) FROM (SELECT user_id, window_funnel(INTERVAL '1 day', event_time, event = 'app_open', event = 'view_item', event = 'add_to_cart', event = 'purchase') AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
    "SELECT sum(r[1]), sum(r[2]), sum(r[3]) FROM (SELECT user_id, retention(event_date = DATE '2025-01-01', event_date = DATE '2025-01-02', event_date = DATE '2025-01-08') AS r FROM events GROUP BY user_id)",
    "SELECT sum(c), count(*) FROM (SELECT user_id, sequence_count('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS c FROM events WHERE platform <> 'web' GROUP BY user_id)",
    "SELECT n, count(*) FROM (SELECT user_id, count(*) AS n FROM events GROUP BY user_id) GROUP BY n ORDER BY n",
    "SELECT count(*), sum(n), sum(p), min(f), max(l) FROM (SELECT user_id, count(*) AS n, count(*) FILTER (WHERE event = 'purchase') AS p, min(event_time) AS f, max(event) AS l FROM events WHERE event <> 'app_open' GROUP BY user_id)",
    "SELECT count(*), sum(n) FROM (SELECT user_id, count(*) AS n FROM events WHERE user_id < 'u0000300' GROUP BY user_id)",
    "SELECT count(*), sum(l) FROM (SELECT user_id, max(length(user_id)) AS l FROM events GROUP BY user_id)",
];
const DICTIONARY_GROUPED: usize = 5;

/// A join on user_id above two per-user aggregates: both sides run per bucket, and the join
/// pairs bucket with bucket.
const JOINED: &str = "SELECT count(*), sum(a.n), sum(b.days) FROM (SELECT user_id, count(*) AS n FROM events GROUP BY user_id) a JOIN (SELECT user_id, count(DISTINCT event_date) AS days FROM events GROUP BY user_id) b ON a.user_id = b.user_id";

async fn answer(data: &str, partitions: usize, two_stage: bool, sql: &str) -> (String, String) {
    let options =
        EngineOptions { target_partitions: Some(partitions), two_stage_aggregates: two_stage, ..Default::default() };
    let ctx = open_session(&DataLocation::parse(data).unwrap(), &options).await.unwrap();
    // Partitioned hash joins even for this small table (as for a large one).
    for setting in ["hash_join_single_partition_threshold", "hash_join_single_partition_threshold_rows"] {
        ctx.sql(&format!("SET datafusion.optimizer.{setting} = 0")).await.unwrap().collect().await.unwrap();
    }
    (pretty(&ctx, sql).await, pretty(&ctx, &format!("EXPLAIN {sql}")).await)
}

#[tokio::test]
async fn per_user_aggregates_read_whole_buckets_and_agree_with_two_stage_plans() {
    let s = Scratch::new();
    let data = s.imported(30_000, 7);

    // Files sit in one directory per day and user bucket; the bucket is not a column.
    let bucket_dirs = std::fs::read_dir(s.path("data/events/event_date=2025-01-02")).unwrap().count();
    assert_eq!(bucket_dirs, northstar_storage::USER_BUCKETS as usize);
    let columns = ok(&["query", "--data", &data, "--format", "csv", "SELECT * FROM events LIMIT 0"]);
    assert!(!columns.contains("user_bucket"), "{columns}");

    for (query, sql) in PER_USER.iter().enumerate() {
        let reference = answer(&data, 2, true, sql).await.0;
        for partitions in [1, 2, 3, 4] {
            let (result, plan) = answer(&data, partitions, false, sql).await;
            assert_eq!(result, reference, "{partitions} partitions: {sql}");
            if partitions > 1 {
                assert!(
                    !plan.contains("RepartitionExec: partitioning=Hash([user_id"),
                    "{partitions} partitions, no repartition expected:\n{plan}"
                );
                let operator = if query < DICTIONARY_GROUPED {
                    "BucketAggregateExec: gby=[user_id]"
                } else {
                    "mode=SinglePartitioned, gby=[user_id"
                };
                assert!(plan.contains(operator), "{operator} expected:\n{plan}");
                let groups = format!("file_groups={{{} groups", northstar_storage::USER_BUCKETS);
                assert!(
                    plan.contains(&groups),
                    "{partitions} partitions, one scan partition per bucket expected:\n{plan}"
                );
            }
        }
        // More partitions than buckets: DataFusion's repartitioned plan, same answer.
        let (result, plan) = answer(&data, 8, false, sql).await;
        assert_eq!(result, reference, "8 partitions: {sql}");
        assert!(plan.contains("RepartitionExec: partitioning=Hash([user_id"), "{plan}");
    }

    let reference = answer(&data, 2, true, JOINED).await.0;
    let (result, plan) = answer(&data, 2, false, JOINED).await;
    assert_eq!(result, reference);
    assert!(plan.contains("HashJoinExec: mode=Partitioned"), "{plan}");
    assert!(!plan.contains("RepartitionExec: partitioning=Hash([user_id"), "the join's inputs by bucket:\n{plan}");
}

/// A join on `user_id` by bucket joins on user numbers, the events' numbered by dictionary.
const JOINED_BY_NUMBER: &str = "UserNumbersExec: user=user_id by dictionary";
/// Two per-user aggregates joined: each side's ids numbered as text.
const AGGREGATES_JOINED_BY_NUMBER: &str = "UserNumbersExec: user=user_id by text";

/// Joins and windows on `user_id` as analysts write them (a cohort matrix as a join with each
/// user's first week, IN a subquery, outer joins, sessions by `lag`, first events by
/// `row_number`): their inputs are read by bucket instead of hash-repartitioned, and the
/// answers are those of DataFusion's plan; joins by bucket compare user numbers instead of ids
/// (an aggregate side numbered by text, an events side by its Parquet dictionary). A grouping
/// by the column an outer join may leave NULL keeps the repartition (a NULL group would
/// otherwise appear in every bucket).
#[tokio::test]
async fn joins_and_windows_by_user_read_buckets_and_agree_with_datafusions_plans() {
    let s = Scratch::new();
    let data = s.imported(30_000, 13);
    let signed_up = "(SELECT user_id, min(event_time) AS t FROM events WHERE event = 'signup' GROUP BY user_id)";
    let bought = "(SELECT user_id, max(event_time) AS t FROM events WHERE event = 'purchase' GROUP BY user_id)";
    let queries = [
        ("WITH first_week AS (SELECT user_id, date_trunc('week', min(event_time)) AS cohort FROM events GROUP BY user_id) \
          SELECT f.cohort, date_trunc('week', e.event_time) AS w, count(DISTINCT e.user_id) FROM events e \
          JOIN first_week f ON e.user_id = f.user_id GROUP BY 1, 2 ORDER BY 1, 2".to_string(), true, JOINED_BY_NUMBER),
        ("SELECT count(DISTINCT user_id), count(*) FROM events WHERE event = 'app_open' AND user_id IN (SELECT user_id FROM events WHERE event = 'purchase')".to_string(), true, JOINED_BY_NUMBER),
        (format!("SELECT count(*), count(b.user_id), sum(CASE WHEN b.t > a.t THEN 1 ELSE 0 END) FROM {signed_up} a LEFT JOIN {bought} b ON a.user_id = b.user_id"), true, AGGREGATES_JOINED_BY_NUMBER),
        (format!("SELECT count(*), count(a.user_id), count(b.user_id) FROM {signed_up} a FULL JOIN {bought} b ON a.user_id = b.user_id"), true, AGGREGATES_JOINED_BY_NUMBER),
        (format!("SELECT n, count(*) FROM (SELECT a.user_id, count(*) AS n FROM {signed_up} a FULL JOIN {bought} b ON a.user_id = b.user_id GROUP BY a.user_id) GROUP BY n ORDER BY n"), false, ""),
        ("SELECT count(*) FROM (SELECT event_time - lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS gap FROM events) \
          WHERE gap IS NULL OR gap > INTERVAL '30 minutes'".to_string(), true, "UserNumbersExec"),
        ("SELECT event, count(*) FROM (SELECT event, row_number() OVER (PARTITION BY user_id ORDER BY event_time, event) AS n FROM events) \
          WHERE n = 1 GROUP BY event ORDER BY event".to_string(), true, ""),
    ];
    for (sql, by_bucket, numbered) in &queries {
        let reference = answer(&data, 2, true, sql).await.0;
        for partitions in [1, 2, 3, 4, 8] {
            let (result, plan) = answer(&data, partitions, false, sql).await;
            assert_eq!(&result, &reference, "{partitions} partitions: {sql}");
            let repartitioned = plan.contains("RepartitionExec: partitioning=Hash([user_id");
            if (2..=4).contains(&partitions) {
                assert_eq!(repartitioned, !by_bucket, "{partitions} partitions, by bucket: {by_bucket}:\n{plan}");
                assert!(plan.contains(numbered), "{partitions} partitions, {numbered} expected:\n{plan}");
            }
        }
    }
}

/// A window partitioned by `user_id` and ordered by one time column sorts each bucket by one
/// (user number, time) key instead of by the id's text, then partitions by the number: the
/// same answers as DataFusion's plan for `lag`, `lead` in descending order, a sliding count,
/// and NULL times placed first or last as asked. Users are numbered from the Parquet
/// dictionary of `user_id` unless something below the window reads the id, and the window
/// passes the ids on as text either way.
#[tokio::test]
async fn windows_by_user_and_time_sort_by_user_number_and_agree_with_datafusions_plans() {
    let s = Scratch::new();
    let data = s.imported(30_000, 17);
    let some_null = "(SELECT user_id, CASE WHEN event = 'signup' THEN NULL ELSE event_time END AS t FROM events)";
    let queries = [
        "SELECT CAST(event_time AS DATE) AS d, count(*) FROM (SELECT event_time, event_time - lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS gap FROM events) \
         WHERE gap IS NULL OR gap > INTERVAL '30 minutes' GROUP BY 1 ORDER BY 1".to_string(),
        "SELECT count(*), count(later) FROM (SELECT event_time, lead(event_time) OVER (PARTITION BY user_id ORDER BY event_time DESC) AS later FROM events) \
         WHERE later IS NULL OR later < event_time - INTERVAL '1 hour'".to_string(),
        // Not `GROUP BY n`: on one partition DataFusion 55 takes this count as sorted and
        // groups it in sorted mode, splitting the groups (docs/decisions.md).
        "SELECT count(*), sum(n), sum(n * n) FROM (SELECT count(*) OVER (PARTITION BY user_id ORDER BY event_time ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS n FROM events)".to_string(),
        format!("SELECT count(*), count(p), sum(CASE WHEN t IS NULL THEN 1 ELSE 0 END) FROM \
         (SELECT t, lag(t) OVER (PARTITION BY user_id ORDER BY t ASC NULLS FIRST) AS p FROM {some_null}) WHERE p IS NULL OR p < t - INTERVAL '1 day'"),
        format!("SELECT count(*), count(p) FROM \
         (SELECT t, lag(t) OVER (PARTITION BY user_id ORDER BY t DESC NULLS LAST) AS p FROM {some_null}) WHERE p IS NULL OR p > t + INTERVAL '1 day'"),
        // The ids come out of the window as text, whichever way they were numbered.
        "SELECT min(user_id), max(user_id), count(DISTINCT user_id), count(*) FROM (SELECT user_id, event_time - lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS gap FROM events) \
         WHERE gap IS NULL OR gap > INTERVAL '1 day'".to_string(),
        // A filter on the id keeps it text below the window: numbered by text.
        "SELECT min(user_id), count(*), count(p) FROM (SELECT user_id, event_time, lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS p FROM events WHERE user_id > 'u0000100') \
         WHERE p IS NULL OR p < event_time - INTERVAL '2 hours'".to_string(),
    ];
    let by_text = queries.len() - 1;
    for (query, sql) in queries.iter().enumerate() {
        let reference = answer(&data, 2, true, sql).await.0;
        for partitions in [1, 2, 3, 4, 8] {
            let (result, plan) = answer(&data, partitions, false, sql).await;
            assert_eq!(result, reference, "{partitions} partitions: {sql}");
            if (2..=4).contains(&partitions) {
                let numbered = if query == by_text { "by text" } else { "by dictionary" };
                let numbered = format!("UserNumbersExec: user=user_id {numbered}");
                assert!(plan.contains(&numbered), "{partitions} partitions, {numbered} expected:\n{plan}");
                assert!(!plan.contains("RepartitionExec: partitioning=Hash([user_id"), "{plan}");
            }
        }
    }
    // Ordered by user above the window: the window keeps DataFusion's sort by the id's text,
    // whose order the merge above relies on.
    let ordered = "SELECT user_id, event_time, lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS p \
                   FROM events ORDER BY user_id, event_time LIMIT 40";
    let reference = answer(&data, 2, true, ordered).await.0;
    for partitions in [2, 4] {
        let (result, plan) = answer(&data, partitions, false, ordered).await;
        assert_eq!(result, reference, "{partitions} partitions: {ordered}");
        assert!(!plan.contains("UserNumbersExec"), "{plan}");
    }
}

/// `count(DISTINCT user_id)` by period (and any grouping with `user_id` among its keys):
/// each group's rows share a user, so the grouping of user and period runs in one stage per
/// bucket, with the answers of DataFusion's two-stage plan.
#[tokio::test]
async fn groupings_with_user_id_among_their_keys_run_bucket_by_bucket() {
    let s = Scratch::new();
    let data = s.imported(30_000, 11);
    let queries = [
        "SELECT event_date, count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(event_time AS DATE) AS d, count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('week', event_time) AS w, platform, count(DISTINCT user_id) FROM events WHERE event <> 'app_open' GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT n, count(*) FROM (SELECT user_id, event, count(*) AS n FROM events GROUP BY user_id, event) GROUP BY n ORDER BY n",
    ];
    for sql in queries {
        let reference = answer(&data, 2, true, sql).await.0;
        for partitions in [2, 3] {
            let (result, plan) = answer(&data, partitions, false, sql).await;
            assert_eq!(result, reference, "{partitions} partitions: {sql}");
            let repartitioned_by_user = plan.lines().any(|l| {
                l.contains("RepartitionExec: partitioning=Hash(") && (l.contains("user_id@") || l.contains("alias1@"))
            });
            assert!(!repartitioned_by_user, "{partitions} partitions, no repartition by user expected:\n{plan}");
            assert!(plan.contains("mode=SinglePartitioned"), "{plan}");
        }
    }
    // A join on the grouping's output keeps DataFusion's hash partitions.
    let joined = "SELECT count(*), sum(a.n) FROM (SELECT user_id, event, count(*) AS n FROM events GROUP BY 1, 2) a \
                  JOIN (SELECT user_id, event, max(event_time) AS t FROM events GROUP BY 1, 2) b ON a.user_id = b.user_id AND a.event = b.event";
    let reference = answer(&data, 2, true, joined).await.0;
    let (result, plan) = answer(&data, 2, false, joined).await;
    assert_eq!(result, reference);
    assert!(plan.contains("HashJoinExec: mode=Partitioned"), "{plan}");
}

/// When the memory pool refuses the per-bucket groups more memory, `BucketAggregateExec`
/// hands its groups and the rest of its input to DataFusion's aggregates, which spill; the
/// answers stay those of an unlimited run.
#[tokio::test]
async fn bucket_aggregates_fall_back_to_spilling_aggregates_when_memory_runs_out() {
    let s = Scratch::new();
    let data = s.imported(120_000, 11);
    let fell_back = regex::Regex::new(r"fell_back=(\d+)").unwrap();
    for sql in &PER_USER[..DICTIONARY_GROUPED] {
        let reference = answer(&data, 2, false, sql).await.0;
        let options = EngineOptions { target_partitions: Some(2), memory_limit: Some(2 << 20), ..Default::default() };
        let ctx = open_session(&DataLocation::parse(&data).unwrap(), &options).await.unwrap();
        // Scaled to this tiny pool: DataFusion sets 10 MB aside to merge sorted spill files,
        // and a fallen-back partition's final aggregate must fit its first batch in its fair
        // share of the pool (shared by every partition's consumers, ~150 KB here; at 1 MiB
        // the share was ~73 KB and a first batch of 80 KB was refused).
        for setting in ["sort_spill_reservation_bytes = 32768", "batch_size = 256"] {
            ctx.sql(&format!("SET datafusion.execution.{setting}")).await.unwrap().collect().await.unwrap();
        }
        let plan = pretty(&ctx, &format!("EXPLAIN ANALYZE {sql}")).await;
        let fallbacks: usize = fell_back.captures_iter(&plan).map(|c| c[1].parse::<usize>().unwrap()).sum();
        // The funnel keeps every event of its four steps and must outgrow the pool; the
        // others' smaller states may fit (their answers are checked all the same).
        if sql.contains("window_funnel") {
            assert!(fallbacks > 0, "a 2 MiB pool must make the bucket aggregate fall back: {sql}\n{plan}");
        }
        assert_eq!(pretty(&ctx, sql).await, reference, "{sql}");
    }
}

/// When the memory pool refuses `UserSortExec` its partition's rows, the partition goes to
/// DataFusion's sort, which spills; the answers stay those of DataFusion's own plan.
#[tokio::test]
async fn user_sorts_fall_back_to_spilling_sorts_when_memory_runs_out() {
    let s = Scratch::new();
    let data = s.imported(120_000, 19);
    let sql = "SELECT CAST(event_time AS DATE) AS d, count(*) FROM (SELECT event_time, event_time - lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS gap FROM events) \
               WHERE gap IS NULL OR gap > INTERVAL '30 minutes' GROUP BY 1 ORDER BY 1";
    let reference = answer(&data, 2, true, sql).await.0;
    let options = EngineOptions { target_partitions: Some(2), memory_limit: Some(4 << 20), ..Default::default() };
    let ctx = open_session(&DataLocation::parse(&data).unwrap(), &options).await.unwrap();
    // Scaled to this tiny pool, as for the bucket aggregates above.
    for setting in ["sort_spill_reservation_bytes = 32768", "batch_size = 256"] {
        ctx.sql(&format!("SET datafusion.execution.{setting}")).await.unwrap().collect().await.unwrap();
    }
    let plan = pretty(&ctx, &format!("EXPLAIN ANALYZE {sql}")).await;
    let fell_back = regex::Regex::new(r"UserSortExec.*fell_back=(\d+)").unwrap();
    let fallbacks: usize = fell_back.captures_iter(&plan).map(|c| c[1].parse::<usize>().unwrap()).sum();
    assert!(fallbacks > 0, "a 4 MiB pool must make the user sort fall back:\n{plan}");
    assert_eq!(pretty(&ctx, sql).await, reference);
}

/// A repeated per-user query finds the files' footers in the session's metadata cache, as
/// DataFusion's own scans do: `BucketAggregateExec` wraps the scan's cached Parquet reader
/// rather than opening files with a reader of its own (which loaded every footer again, a
/// quarter of a 20M-event retention query's time on a server).
#[tokio::test]
async fn bucket_aggregates_reuse_the_sessions_footer_cache() {
    let s = Scratch::new();
    let data = s.imported(5_000, 3);
    let options = EngineOptions { target_partitions: Some(2), two_stage_aggregates: false, ..Default::default() };
    let ctx = open_session(&DataLocation::parse(&data).unwrap(), &options).await.unwrap();
    let sql = PER_USER[1];
    let plan = pretty(&ctx, &format!("EXPLAIN {sql}")).await;
    assert!(plan.contains("BucketAggregateExec"), "{plan}");

    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    let hits = || cache.list_entries().values().map(|entry| entry.hits).sum::<usize>();
    let first = pretty(&ctx, sql).await;
    let (footers, hits_before) = (cache.len(), hits());
    assert!(footers > 0, "the first run leaves the files' footers in the cache");
    let second = pretty(&ctx, sql).await;
    assert_eq!(second, first);
    assert!(
        hits() >= hits_before + footers,
        "the second run reads every footer from the cache: {} hits before, {} after, {footers} files",
        hits_before,
        hits()
    );
}

/// A key computed from `user_id` that keeps its name (`substr(user_id, 1, 2) AS user_id`, or
/// a person id) is equal for users of different buckets: grouping it by bucket would count one
/// group once per bucket, so it keeps DataFusion's repartition.
#[tokio::test]
async fn a_key_computed_from_user_id_under_its_name_is_not_grouped_by_bucket() {
    let s = Scratch::new();
    let data = s.imported(5_000, 3);
    let sql = "SELECT count(*) AS groups FROM (SELECT user_id, count(*) FROM (SELECT substr(user_id, 1, 2) AS user_id FROM events) GROUP BY user_id)";
    for partitions in [2, 4] {
        let (result, _) = answer(&data, partitions, false, sql).await;
        assert!(result.contains("| 1      |"), "{partitions} partitions: one prefix, one group:\n{result}");
    }
}

/// Grouped by person: the rows of ids merged into a person of another bucket move to that
/// bucket (`BucketRoutingExec`), the others stay where they were read, and each bucket's
/// persons are grouped by the dictionary; the answers are DataFusion's two-stage plan's.
#[tokio::test]
async fn per_person_aggregates_route_only_the_rows_of_persons_spanning_buckets() {
    let s = Scratch::new();
    let file = s.path("identities.parquet").display().to_string();
    ok(&["generate", "--events", "30000", "--seed", "5", "--identities", "0.4", "--out", &file]);
    let data = s.data();
    ok(&["import", "--data", &data, &file]);
    let spanning = ok(&[
        "query",
        "--data",
        &data,
        "--format",
        "csv",
        "SELECT count(*) FROM (SELECT person_id FROM events GROUP BY person_id HAVING count(DISTINCT user_id) > 1)",
    ]);
    let merged: u64 = spanning.lines().nth(1).unwrap().parse().unwrap();
    assert!(merged > 50, "persons with two or more ids: {merged}");
    let per_person = [
        "SELECT level, count(*) FROM (SELECT person_id, window_funnel(INTERVAL '1 day', event_time, event = 'app_open', event = 'signup', event = 'purchase') AS level FROM events GROUP BY person_id) GROUP BY level ORDER BY level",
        "SELECT n, count(*) FROM (SELECT person_id, count(*) AS n FROM events WHERE event <> 'app_open' GROUP BY person_id) GROUP BY n ORDER BY n",
        "SELECT step, users FROM funnel(['app_open', 'signup', 'purchase'], 'window=7 days; by=person') ORDER BY step",
        "SELECT cohort_start, period, retained FROM retention('start=signup; return=purchase; period=week; periods=3; by=person') ORDER BY 1, 2",
    ];
    for sql in per_person {
        let reference = answer(&data, 2, true, sql).await.0;
        for partitions in [2, 4] {
            let (result, plan) = answer(&data, partitions, false, sql).await;
            assert_eq!(result, reference, "{partitions} partitions: {sql}");
            assert!(plan.contains("BucketRoutingExec"), "{partitions} partitions, routing expected:\n{plan}");
            assert!(!plan.contains("RepartitionExec: partitioning=Hash([person_id"), "{plan}");
        }
    }
}
