//! Reports (`funnel`, `retention`, `trends`, `lifecycle`, `stickiness`, `paths`) against
//! independent computations: plain SQL with the behavioural functions, or small reference
//! implementations here, on the committed sample (10k events, 300 users, 90 days), plus edge
//! cases on hand-made tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::MemTable;
use datafusion::common::ScalarValue;
use datafusion::prelude::{lit, SessionContext};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use northstar_engine::{new_context, open_session, EngineOptions};
use northstar_reports::{By, Call};
use northstar_storage::{DataLocation, EventStore};

use crate::support::{batches, error};

const DAY: i64 = 86_400_000_000;

pub(crate) struct Sample {
    pub(crate) ctx: SessionContext,
    _dir: tempfile::TempDir,
}

pub(crate) async fn sample() -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let location = DataLocation::parse(dir.path().to_str().unwrap()).unwrap();
    let mut store = EventStore::open(&location).await.unwrap();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample-10k.ndjson.gz").to_string();
    northstar_import::import(&mut store, &[file], &Default::default()).await.unwrap();
    Sample { ctx: open_session(&location, &EngineOptions::default()).await.unwrap(), _dir: dir }
}

pub(crate) async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = batches(ctx, sql).await;
    let mut out = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect());
        }
    }
    out
}

#[derive(Clone, Debug)]
struct Ev {
    t: i64,
    user: String,
    event: String,
    platform: String,
}

async fn events(ctx: &SessionContext) -> Vec<Ev> {
    rows(ctx, "SELECT CAST(event_time AS BIGINT) AS t, user_id, event, coalesce(platform, '') AS p FROM events ORDER BY user_id, t, event")
        .await
        .into_iter()
        .map(|r| Ev { t: r[0].parse().unwrap(), user: r[1].clone(), event: r[2].clone(), platform: r[3].clone() })
        .collect()
}

fn by_user(evs: &[Ev]) -> BTreeMap<String, Vec<Ev>> {
    let mut m: BTreeMap<String, Vec<Ev>> = BTreeMap::new();
    for e in evs {
        m.entry(e.user.clone()).or_default().push(e.clone());
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnel_matches_window_funnel_sql_with_breakdown_and_times() {
    let s = sample().await;
    let steps = ["signup", "view_item", "add_to_cart", "purchase"];
    for (order, mode) in [("ordered", ""), ("strict", "'strict_order', ")] {
        let report = rows(&s.ctx, &format!("SELECT step, users, drop_off FROM funnel(['signup', 'view_item', 'add_to_cart', 'purchase'], 'window=1 day; order={order}')")).await;
        let levels = rows(
            &s.ctx,
            &format!("SELECT window_funnel(INTERVAL '1 day', {mode}event_time, event = 'signup', event = 'view_item', event = 'add_to_cart', event = 'purchase') FROM events GROUP BY user_id"),
        )
        .await;
        let levels: Vec<i64> = levels.iter().map(|r| r[0].parse().unwrap()).collect();
        let mut previous = None;
        for k in 1..=steps.len() {
            let reached = levels.iter().filter(|&&l| l >= k as i64).count() as i64;
            assert_eq!(report[k - 1][1], reached.to_string(), "{order} step {k}");
            assert_eq!(
                report[k - 1][2],
                previous.map(|p: i64| p - reached).unwrap_or(0).to_string(),
                "{order} drop-off {k}"
            );
            previous = Some(reached);
        }
    }

    // Breakdown by the platform of the user's first signup (first touch).
    let report = rows(&s.ctx, "SELECT breakdown, users FROM funnel(['signup', 'purchase'], 'window=7 days; breakdown=platform') WHERE step = 1").await;
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (_, evs) in by_user(&events(&s.ctx).await) {
        if let Some(first) = evs.iter().filter(|e| e.event == "signup").min_by_key(|e| e.t) {
            *expected.entry(first.platform.clone()).or_default() += 1;
        }
    }
    let got: BTreeMap<String, i64> = report.iter().map(|r| (r[0].clone(), r[1].parse().unwrap())).collect();
    assert_eq!(got, expected);

    // Median and p90 time from the previous step, from the chains' own timestamps.
    let report = rows(&s.ctx, "SELECT median_seconds_from_previous, p90_seconds_from_previous FROM funnel(['view_item', 'add_to_cart'], 'window=1 day') WHERE step = 2").await;
    let chains = rows(&s.ctx, "SELECT CAST(t[2] AS BIGINT) - CAST(t[1] AS BIGINT) FROM (SELECT funnel_step_times(INTERVAL '1 day', event_time, event = 'view_item', event = 'add_to_cart') AS t FROM events GROUP BY user_id) WHERE cardinality(t) = 2").await;
    let mut seconds: Vec<f64> = chains.iter().map(|r| r[0].parse::<f64>().unwrap() / 1e6).collect();
    seconds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let quantile = |q: f64| {
        let pos = q * (seconds.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        seconds[lo] + (seconds[hi] - seconds[lo]) * (pos - lo as f64)
    };
    assert!((report[0][0].parse::<f64>().unwrap() - quantile(0.5)).abs() < 1e-3, "{report:?}");
    assert!((report[0][1].parse::<f64>().unwrap() - quantile(0.9)).abs() < 1e-3, "{report:?}");
}

/// The funnel's per-step figures and retention's calendar matrix are computed in Rust from
/// per-user rows (so the per-user work runs once); they must equal, column by column, the one
/// SQL statement each report stands for (`NORTHSTAR_REPORT_SQL=1` prints it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnel_and_retention_answers_equal_the_sql_they_stand_for() {
    let s = sample().await;
    let report = |name: &str| northstar_reports::reports().into_iter().find(|r| r.name() == name).unwrap();
    let steps = ScalarValue::List(ScalarValue::new_list_nullable(
        &["signup", "view_item", "add_to_cart", "purchase"].map(ScalarValue::from),
        &DataType::Utf8,
    ));
    let funnels = [
        "window=1 day",
        "window=1 day; breakdown=platform",
        "window=2 days; order=strict; breakdown=country",
        "window=1 day; order=unordered; breakdown=platform",
        "window=3 days; hold=platform; exclude=refund",
        "window=1 day; breakdown=platform; from=2030-01-01",
        "window=1 hour; breakdown=CASE WHEN user_id < 'u1' THEN NULL ELSE platform END",
    ]
    .map(|o| ("funnel", o));
    let retentions = [
        "start=signup; period=week; periods=8",
        "start=signup; return=purchase; period=day; periods=30",
        "start=view_item; return=purchase; period=month; periods=3; criterion=on_or_after",
        "return=purchase; period=week; periods=12; criterion=on_or_after; where=platform = 'ios'",
        "start=signup; period=week; from=2025-02-01; to=2025-02-20",
        "start=no_such_event; period=day",
    ]
    .map(|o| ("retention", o));
    let call_in_generic_sql = Call { dialect: &GenericDialect {}, default_by: By::User };
    for (name, options) in funnels.into_iter().chain(retentions) {
        let mut args = if name == "funnel" { vec![lit(steps.clone())] } else { vec![] };
        args.push(lit(options));
        let built = report(name).build(&args, &call_in_generic_sql).unwrap();
        let sql = built.stands_for().to_string();
        assert_ne!(sql, built.sql, "{name} runs its per-user rows, not the statement");
        let call = format!(
            "{name}({}'{}')",
            if name == "funnel" { "['signup', 'view_item', 'add_to_cart', 'purchase'], " } else { "" },
            options.replace('\'', "''")
        );
        let answer = rows(&s.ctx, &format!("SELECT * FROM {call}")).await;
        let stands_for = rows(&s.ctx, &sql).await;
        assert!(!answer.is_empty() || options.contains("no_such_event"), "{call}");
        assert_eq!(answer, stands_for, "{call}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_funnel_matches_a_sliding_window_reference() {
    let s = sample().await;
    let steps = ["purchase", "search", "signup"];
    let report = rows(
        &s.ctx,
        "SELECT users FROM funnel(['purchase', 'search', 'signup'], 'window=2 days; order=unordered') ORDER BY step",
    )
    .await;
    let mut reached = [0i64; 3];
    for (_, evs) in by_user(&events(&s.ctx).await) {
        let hits: Vec<&Ev> = evs.iter().filter(|e| steps.contains(&e.event.as_str())).collect();
        let best = hits
            .iter()
            .map(|start| {
                steps
                    .iter()
                    .filter(|s| hits.iter().any(|e| e.event == **s && e.t >= start.t && e.t <= start.t + 2 * DAY))
                    .count()
            })
            .max()
            .unwrap_or(0);
        for reached_step in reached.iter_mut().take(best) {
            *reached_step += 1;
        }
    }
    let got: Vec<i64> = report.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(got, reached);
}

/// A hand-made events table; times in hours from 2025-01-01.
/// A table `events(user_id, event_time, event)`; times in hours from 2025-01-01 00:00 UTC.
pub(crate) async fn tiny(rows_: &[(&str, i64, &str)]) -> SessionContext {
    let ctx = new_context(&EngineOptions::default()).unwrap();
    let base = 1_735_689_600_000_000i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("event", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rows_.iter().map(|r| r.0).collect::<Vec<_>>())),
        Arc::new(
            TimestampMicrosecondArray::from(rows_.iter().map(|r| base + r.1 * 3_600_000_000).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(rows_.iter().map(|r| r.2).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    ctx.register_table("events", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnel_edge_cases() {
    let ctx = tiny(&[
        ("one_event", 0, "signup"),
        ("boundary", 0, "signup"),
        ("boundary", 24, "purchase"), // exactly one window later: inside (windowFunnel's <=)
        ("late", 0, "signup"),
        ("late", 25, "purchase"),
        ("excluded", 0, "signup"),
        ("excluded", 1, "refund"),
        ("excluded", 2, "purchase"),
        ("after", 0, "signup"),
        ("after", 1, "purchase"),
        ("after", 2, "refund"), // after the chain: not excluded
    ])
    .await;
    let users = |r: Vec<Vec<String>>| r.iter().map(|r| r[0].parse::<i64>().unwrap()).collect::<Vec<_>>();
    assert_eq!(users(rows(&ctx, "SELECT users FROM funnel(['signup', 'purchase'], 'window=1 day')").await), vec![5, 3]);
    assert_eq!(
        users(rows(&ctx, "SELECT users FROM funnel(['signup', 'purchase'], 'window=1 day; exclude=refund')").await),
        vec![4, 2]
    );
    // Unknown events: zeros, not errors; an empty date range likewise.
    assert_eq!(users(rows(&ctx, "SELECT users FROM funnel(['signup', 'no_such_event'])").await), vec![5, 0]);
    assert_eq!(
        users(rows(&ctx, "SELECT users FROM funnel(['signup', 'purchase'], 'from=2030-01-01; to=2030-01-31')").await),
        vec![0, 0]
    );
    // Bad arguments: clear errors.
    assert!(error(&ctx, "SELECT * FROM funnel('signup')").await.contains("steps must be a list"));
    assert!(error(&ctx, "SELECT * FROM funnel(['a'], 'window=forever')").await.contains("window must be an interval"));
    assert!(error(&ctx, "SELECT * FROM funnel(['a'], 'order=sideways')").await.contains("order must be one of"));
    assert!(error(&ctx, "SELECT * FROM funnel(['a'], 'from=2025-13-01')").await.contains("from must be a date"));
    assert!(error(&ctx, "SELECT * FROM retention('periods=0')").await.contains("periods must be a whole number"));
}

/// Option values are SQL fragments, each checked to be exactly one expression: a `where` that
/// would close the report's parenthesis (and so escape its date filter) is refused; quotes keep
/// `;`, `''` and `\'` inside their strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_options_are_checked_sql_fragments() {
    let ctx = tiny(&[("a", 0, "a;b"), ("b", 48, "open"), ("c", 1, "it's"), ("d", 2, r"x\")]).await;
    let first = |r: Vec<Vec<String>>| r[0][0].clone();
    let events_on_day_one = "SELECT CAST(sum(events) AS BIGINT) FROM trends('to=2025-01-01; where=TRUE')";
    assert_eq!(first(rows(&ctx, events_on_day_one).await), "3");
    let e = error(&ctx, "SELECT * FROM trends('to=2025-01-01; where=1=1) OR (1=1')").await;
    assert!(e.contains("trends: where must be one SQL expression, got '1=1) OR (1=1'"), "{e}");
    assert!(e.contains("Expected: end of expression, found: )"), "{e}");

    let events =
        |options: &str| format!("SELECT count(*) FROM trends('{}') WHERE events > 0", options.replace('\'', "''"));
    assert_eq!(first(rows(&ctx, &events("where=event = 'a;b'")).await), "1");
    assert_eq!(first(rows(&ctx, &events("where=event = 'it''s'; to=2025-01-01")).await), "1");
    assert_eq!(first(rows(&ctx, &events(r"where=event IN ('x\', 'open')")).await), "2");
    // The string is `x\' OR TRUE --`: no such event, so no rows (not every row, as when the
    // fragment's AST is printed back: `'x\' OR TRUE --'`).
    assert_eq!(first(rows(&ctx, &events(r"where=event = 'x\'' OR TRUE --'")).await), "0");

    for (options, message) in [
        ("where=SELECT 1", "trends: where must be an SQL expression, not a statement"),
        ("where=TRUE -- the rest", "trends: where may not contain SQL comments"),
        ("breakdown=platform, event", "trends: breakdown must be one SQL expression, got 'platform, event'"),
        ("where=event = 'a", "trends: options: Unterminated string literal"),
        ("where=TRUE; where=FALSE", "trends: option 'where' is given more than once"),
        ("colour=red", "trends: unknown option 'colour'; options: interval, event, breakdown, table, from, to, where"),
        ("table=events, other", "trends: table must be a table or view name"),
    ] {
        let e = error(&ctx, &events(options)).await;
        assert!(e.contains(message), "{options}: {e}");
    }
    let e = error(&ctx, "SELECT * FROM funnel(['open', 'event = ''a'') OR (TRUE'])").await;
    assert!(e.contains("funnel: step 2 must be one SQL expression"), "{e}");
    let users = rows(&ctx, r"SELECT users FROM funnel(['a;b', 'x\'])").await;
    assert_eq!(users, [["1"], ["0"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_matrix_matches_a_reference() {
    let s = sample().await;
    let evs = events(&s.ctx).await;
    let users = by_user(&evs);
    let last_day = evs.iter().map(|e| e.t.div_euclid(DAY)).max().unwrap();
    // Weekly, first-time cohorts on signup, any return event, "on week k".
    let week_of = |t: i64| (t.div_euclid(DAY) + 3).div_euclid(7); // ISO weeks start on Monday (1970-01-05 is one)
    let mut sizes: BTreeMap<i64, i64> = BTreeMap::new();
    let mut retained: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for evs in users.values() {
        let Some(start) = evs.iter().filter(|e| e.event == "signup").map(|e| e.t).min() else { continue };
        let cohort = week_of(start);
        *sizes.entry(cohort).or_default() += 1;
        let weeks: BTreeSet<i64> = evs
            .iter()
            .filter(|e| week_of(e.t) >= cohort)
            .map(|e| week_of(e.t) - cohort)
            .filter(|k| (1..=4).contains(k))
            .collect();
        for k in weeks {
            *retained.entry((cohort, k)).or_default() += 1;
        }
    }
    let report = rows(&s.ctx, "SELECT CAST(cohort_start AS INT), cohort_size, period, retained FROM retention('start=signup; period=week; periods=4')").await;
    let mut expected = vec![];
    for (&cohort, &size) in &sizes {
        for k in 0..=4 {
            if cohort + k <= week_of(last_day * DAY) {
                let n = if k == 0 { size } else { retained.get(&(cohort, k)).copied().unwrap_or(0) };
                expected.push(vec![(cohort * 7 - 3).to_string(), size.to_string(), k.to_string(), n.to_string()]);
            }
        }
    }
    assert_eq!(report, expected);

    // Daily, recurring cohorts, rolling 24-hour windows, purchase returns, "on or after".
    let report = rows(&s.ctx, "SELECT CAST(cohort_start AS INT), cohort_size, period, retained FROM retention('start=app_open; return=purchase; periods=3; cohort=recurring; windows=rolling; criterion=on_or_after')").await;
    let last_t = evs.iter().map(|e| e.t).max().unwrap();
    let mut sizes: BTreeMap<i64, i64> = BTreeMap::new();
    let mut reached: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for evs in users.values() {
        let mut starts: BTreeMap<i64, i64> = BTreeMap::new();
        for e in evs.iter().filter(|e| e.event == "app_open") {
            let v = starts.entry(e.t.div_euclid(DAY)).or_insert(e.t);
            *v = (*v).min(e.t);
        }
        for (&day, &start) in &starts {
            *sizes.entry(day).or_default() += 1;
            let max_k = evs
                .iter()
                .filter(|e| e.event == "purchase" && e.t >= start)
                .map(|e| (e.t - start).div_euclid(DAY))
                .max();
            for k in 1..=max_k.unwrap_or(0).min(3) {
                *reached.entry((day, k)).or_default() += 1;
            }
        }
    }
    let mut expected = vec![];
    for (&day, &size) in &sizes {
        for k in 0..=3i64 {
            if (day + k) * DAY <= last_t {
                let n = if k == 0 { size } else { reached.get(&(day, k)).copied().unwrap_or(0) };
                expected.push(vec![day.to_string(), size.to_string(), k.to_string(), n.to_string()]);
            }
        }
    }
    assert_eq!(report, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trends_lifecycle_and_stickiness_match_references() {
    let s = sample().await;
    let evs = events(&s.ctx).await;
    // Daily events, DAU, rolling WAU and MAU.
    let mut day_users: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    let mut day_events: BTreeMap<i64, i64> = BTreeMap::new();
    for e in &evs {
        day_users.entry(e.t.div_euclid(DAY)).or_default().insert(&e.user);
        *day_events.entry(e.t.div_euclid(DAY)).or_default() += 1;
    }
    let rolling = |day: i64, n: i64| {
        day_users.range(day - n + 1..=day).flat_map(|(_, u)| u.iter()).collect::<BTreeSet<_>>().len()
    };
    let expected: Vec<Vec<String>> = day_users
        .iter()
        .map(|(&d, u)| {
            vec![
                d.to_string(),
                day_events[&d].to_string(),
                u.len().to_string(),
                rolling(d, 7).to_string(),
                rolling(d, 30).to_string(),
            ]
        })
        .collect();
    assert_eq!(
        rows(&s.ctx, "SELECT CAST(period AS INT), events, active_users, wau, mau FROM trends()").await,
        expected
    );

    // Weekly lifecycle.
    let week_of = |t: i64| (t.div_euclid(DAY) + 3).div_euclid(7);
    let mut active: HashMap<&str, BTreeSet<i64>> = HashMap::new();
    for e in &evs {
        active.entry(&e.user).or_default().insert(week_of(e.t));
    }
    let last = evs.iter().map(|e| week_of(e.t)).max().unwrap();
    let mut counts: BTreeMap<(i64, usize), i64> = BTreeMap::new();
    for weeks in active.values() {
        let first = *weeks.iter().next().unwrap();
        for &w in weeks {
            let status = if w == first {
                0
            } else if weeks.contains(&(w - 1)) {
                1
            } else {
                2
            };
            *counts.entry((w, status)).or_default() += 1;
            if !weeks.contains(&(w + 1)) && w < last {
                *counts.entry((w + 1, 3)).or_default() -= 1;
            }
        }
    }
    let names = ["new", "returning", "resurrecting", "dormant"];
    let expected: Vec<Vec<String>> =
        counts.iter().map(|(&(w, s), &n)| vec![(w * 7 - 3).to_string(), names[s].to_string(), n.to_string()]).collect();
    assert_eq!(rows(&s.ctx, "SELECT CAST(period AS INT), status, users FROM lifecycle('period=week')").await, expected);

    // Monthly stickiness of purchases.
    let month = |t: i64| {
        let d = chrono::DateTime::from_timestamp_micros(t).unwrap().date_naive();
        d.format("%Y-%m-01").to_string()
    };
    let mut days: BTreeMap<(String, &str), BTreeSet<i64>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.event == "purchase") {
        days.entry((month(e.t), &e.user)).or_default().insert(e.t.div_euclid(DAY));
    }
    let mut hist: BTreeMap<(String, usize), i64> = BTreeMap::new();
    for ((m, _), d) in &days {
        *hist.entry((m.clone(), d.len())).or_default() += 1;
    }
    let expected: Vec<Vec<String>> =
        hist.iter().map(|((m, d), n)| vec![m.clone(), d.to_string(), n.to_string()]).collect();
    assert_eq!(
        rows(&s.ctx, "SELECT period, days_active, users FROM stickiness('period=month; event=purchase')").await,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_match_a_sessionizing_reference() {
    let s = sample().await;
    let evs = events(&s.ctx).await;
    let gap = 30 * 60 * 1_000_000i64;
    let mut transitions: HashMap<(String, String), (i64, BTreeSet<String>)> = HashMap::new();
    for (user, evs) in by_user(&evs) {
        let mut sessions: Vec<Vec<&Ev>> = vec![];
        for e in &evs {
            match sessions.last_mut() {
                Some(s) if e.t - s.last().unwrap().t <= gap => s.push(e),
                _ => sessions.push(vec![e]),
            }
        }
        for session in sessions {
            let mut collapsed: Vec<&str> = vec![];
            for e in session {
                if collapsed.last() != Some(&e.event.as_str()) {
                    collapsed.push(&e.event);
                }
            }
            for w in collapsed.windows(2) {
                let entry = transitions.entry((w[0].to_string(), w[1].to_string())).or_default();
                entry.0 += 1;
                entry.1.insert(user.clone());
            }
        }
    }
    let mut expected: Vec<(i64, String, String, usize)> =
        transitions.into_iter().map(|((f, t), (n, u))| (n, f, t, u.len())).collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let expected: Vec<Vec<String>> =
        expected.into_iter().take(15).map(|(n, f, t, u)| vec![f, t, n.to_string(), u.to_string()]).collect();
    assert_eq!(rows(&s.ctx, "SELECT * FROM paths('top=15')").await, expected);
}

#[test]
fn views_made_with_the_cli_persist_and_feed_reports() {
    use crate::support::{ok, scalar, Scratch};
    let scratch = Scratch::new();
    let data = scratch.path("data");
    let data = data.to_str().unwrap();
    ok(&["import", "--data", data, concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample-10k.ndjson.gz")]);
    ok(&[
        "query",
        "--data",
        data,
        "CREATE VIEW ios_users AS SELECT DISTINCT user_id FROM events WHERE platform = 'ios'",
    ]);
    let users = scalar(data, "SELECT count(*) FROM ios_users");
    assert_eq!(users, scalar(data, "SELECT count(DISTINCT user_id) FROM events WHERE platform = 'ios'"));
    let in_report = scalar(data, "SELECT sum(events) FROM trends('where=user_id IN (SELECT user_id FROM ios_users)')");
    assert_eq!(
        in_report,
        scalar(
            data,
            "SELECT count(*) FROM events WHERE user_id IN (SELECT user_id FROM events WHERE platform = 'ios')"
        )
    );
    ok(&["query", "--data", data, "DROP VIEW ios_users"]);
    let err = crate::support::fails(&["query", "--data", data, "SELECT * FROM ios_users"]);
    assert!(err.contains("ios_users"), "{err}");
}

/// `paths` with start and end bounds and a short gap gives what the same report written with
/// window functions gives (the form it had before `session_transitions`, kept here as the
/// reference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_with_bounds_match_the_window_function_form() {
    let s = sample().await;
    let window_form = |start: &str, end: &str| {
        format!(
            "WITH base AS (SELECT * FROM events), \
             sessions AS (SELECT arrow_cast(user_id, 'Utf8') AS user_id, arrow_cast(event, 'Utf8') AS event, event_time, \
               session_number(event_time, INTERVAL '5 minutes') OVER (PARTITION BY user_id ORDER BY event_time, event) AS session FROM base), \
             collapsed AS (SELECT user_id, session, event, event_time FROM (SELECT *, lag(event) OVER (PARTITION BY user_id, session ORDER BY event_time, event) AS previous FROM sessions) \
               WHERE previous IS NULL OR previous <> event), \
             after_start AS (SELECT c.* FROM collapsed c JOIN (SELECT user_id, session, min(event_time) AS t FROM collapsed WHERE {start} GROUP BY 1, 2) s \
               ON c.user_id = s.user_id AND c.session = s.session AND c.event_time >= s.t), \
             before_end AS (SELECT c.* FROM after_start c JOIN (SELECT user_id, session, max(event_time) AS t FROM after_start WHERE {end} GROUP BY 1, 2) e \
               ON c.user_id = e.user_id AND c.session = e.session AND c.event_time <= e.t), \
             pairs AS (SELECT user_id, event AS from_event, lead(event) OVER (PARTITION BY user_id, session ORDER BY event_time, event) AS to_event FROM before_end) \
             SELECT from_event, to_event, count(*) AS transitions, count(DISTINCT user_id) AS users FROM pairs WHERE to_event IS NOT NULL \
             GROUP BY 1, 2 ORDER BY transitions DESC, from_event, to_event LIMIT 25"
        )
    };
    for (options, start, end) in [
        ("gap=5 minutes; top=25", "TRUE", "TRUE"),
        ("gap=5 minutes; start=view_item; top=25", "(event = 'view_item')", "TRUE"),
        ("gap=5 minutes; start=view_item; end=purchase; top=25", "(event = 'view_item')", "(event = 'purchase')"),
        ("gap=5 minutes; end=add_to_cart; top=25", "TRUE", "(event = 'add_to_cart')"),
    ] {
        let report = rows(&s.ctx, &format!("SELECT * FROM paths('{options}')")).await;
        assert!(!report.is_empty(), "{options}");
        assert_eq!(report, rows(&s.ctx, &window_form(start, end)).await, "{options}");
    }
}

/// DataFusion 55 kept `user_id` as a key of the rows after `unnest` of a per-user list, and
/// `ORDER BY user_id, item` then dropped `item`: rows came back in the wrong order
/// (`SortKeysAfterUnnest` mends it). Checked against the order Rust gives the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_after_unnest_of_a_grouped_list_sorts_by_every_key() {
    let s = sample().await;
    for sql in [
        "SELECT user_id, e FROM (SELECT user_id, unnest(array_agg(DISTINCT event)) AS e FROM events GROUP BY user_id) ORDER BY 1, 2",
        "SELECT u, e FROM (SELECT user_id AS u, unnest(array_agg(DISTINCT event)) AS e FROM events WHERE platform IS NOT NULL GROUP BY user_id) AS t ORDER BY u, e DESC",
    ] {
        let got = rows(&s.ctx, sql).await;
        let mut sorted = got.clone();
        sorted.sort_by(|a, b| a[0].cmp(&b[0]).then(if sql.ends_with("DESC") { b[1].cmp(&a[1]) } else { a[1].cmp(&b[1]) }));
        assert!(got.len() > 300, "{sql}");
        assert_eq!(got, sorted, "{sql}");
    }
}

/// `session_transition_counts` (what `paths` runs) is `session_transitions` counted: per user,
/// each distinct pair once with how many times it occurs, with and without bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_transition_counts_count_the_pairs_of_session_transitions() {
    let s = sample().await;
    for arguments in ["INTERVAL '30 minutes'", "INTERVAL '5 minutes', event = 'view_item', event = 'purchase'"] {
        let pairs = rows(&s.ctx, &format!(
            "SELECT user_id, t['from'], t['to'], count(*) FROM (SELECT user_id, unnest(session_transitions(event_time, event, {arguments})) AS t \
             FROM events GROUP BY user_id) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ))
        .await;
        let counted = rows(&s.ctx, &format!(
            "SELECT user_id, t['from'], t['to'], t['transitions'] FROM (SELECT user_id, unnest(session_transition_counts(event_time, event, {arguments})) AS t \
             FROM events GROUP BY user_id) ORDER BY 1, 2, 3"
        ))
        .await;
        assert!(pairs.len() > 100, "{arguments}: {}", pairs.len());
        assert_eq!(counted, pairs, "{arguments}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_keeps_its_declared_types_under_distinct() {
    // The SQL fuzz found `SELECT DISTINCT * FROM lifecycle(…)` failing with XX000: the planner
    // typed `status` Utf8View where the report declares Utf8.
    let s = sample().await;
    let all = rows(&s.ctx, "SELECT * FROM lifecycle('period=week')").await;
    let distinct = rows(&s.ctx, "SELECT DISTINCT * FROM lifecycle('period=week')").await;
    assert!(!distinct.is_empty() && distinct.len() <= all.len());
}

/// `lifecycle` and `stickiness` run on per-user functions (`lifecycle_statuses`,
/// `days_active`); their answers equal the reports' earlier plain-SQL form (DISTINCT user
/// periods joined to themselves; count(DISTINCT day) per user and period) for every period,
/// with and without a range and an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_stickiness_equal_their_plain_sql_form() {
    let s = sample().await;
    let ranges = [
        ("TRUE", "TRUE", ""),
        ("event_date BETWEEN DATE '2025-01-15' AND DATE '2025-02-20'", "TRUE", "; from=2025-01-15; to=2025-02-20"),
        ("event = 'purchase'", "event = 'purchase'", "; event=purchase"),
    ];
    for period in ["day", "week", "month"] {
        for (filter, event, options) in ranges {
            let plain = format!(
                "WITH active AS (SELECT DISTINCT user_id, date_trunc('{period}', event_time) AS period FROM events WHERE {event}), \
                 shown AS (SELECT DISTINCT date_trunc('{period}', event_time) AS period FROM events WHERE {filter} AND {event}), \
                 firsts AS (SELECT user_id, min(period) AS first FROM active GROUP BY user_id), \
                 statuses AS (SELECT a.period, CASE WHEN a.period = f.first THEN 'new' WHEN prev.user_id IS NOT NULL THEN 'returning' ELSE 'resurrecting' END AS status \
                              FROM active a JOIN firsts f ON a.user_id = f.user_id \
                              LEFT JOIN active prev ON prev.user_id = a.user_id AND prev.period = a.period - INTERVAL '1 {period}'), \
                 dormant AS (SELECT a.period + INTERVAL '1 {period}' AS period, 'dormant' AS status FROM active a \
                             LEFT JOIN active nxt ON nxt.user_id = a.user_id AND nxt.period = a.period + INTERVAL '1 {period}' WHERE nxt.user_id IS NULL), \
                 counted AS (SELECT period, status, count(*) AS users FROM statuses GROUP BY 1, 2 \
                             UNION ALL SELECT period, status, -count(*) FROM dormant GROUP BY 1, 2), \
                 ranked AS (SELECT c.period AS p, c.status AS s, c.users AS n, CASE c.status WHEN 'new' THEN 1 WHEN 'returning' THEN 2 WHEN 'resurrecting' THEN 3 ELSE 4 END AS r \
                            FROM counted c JOIN shown ON shown.period = c.period) \
                 SELECT CAST(p AS DATE) AS period, s, n FROM ranked ORDER BY p, r"
            );
            let report = format!("SELECT * FROM lifecycle('period={period}{options}')");
            let (want, got) = (rows(&s.ctx, &plain).await, rows(&s.ctx, &report).await);
            assert!(want.len() > 3, "{plain}");
            assert_eq!(got, want, "{report}");
            if period == "day" {
                continue;
            }
            let plain = format!(
                "SELECT CAST(period AS DATE) AS day, CAST(days AS INT), count(*) FROM (SELECT user_id, date_trunc('{period}', event_time) AS period, \
                 count(DISTINCT date_trunc('day', event_time)) AS days FROM events WHERE {filter} AND {event} GROUP BY 1, 2) GROUP BY 1, 2 ORDER BY 1, 2"
            );
            let report = format!("SELECT * FROM stickiness('period={period}{options}')");
            let (want, got) = (rows(&s.ctx, &plain).await, rows(&s.ctx, &report).await);
            assert!(want.len() > 3, "{plain}");
            assert_eq!(got, want, "{report}");
        }
    }
}

/// `trends` runs on per-user functions (`rolling_activity`, `days_active`); its answers equal
/// its earlier plain-SQL form (count(DISTINCT user_id) per period; the rolling windows as each
/// (user, window day) counted once) for every interval, with a range, an event and a breakdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trends_equal_their_plain_sql_form() {
    let s = sample().await;
    let cases = [
        ("TRUE", "TRUE", "CAST(NULL AS TEXT)", ""),
        (
            "event_date BETWEEN DATE '2025-01-15' AND DATE '2025-02-20'",
            "TRUE",
            "CAST(NULL AS TEXT)",
            "; from=2025-01-15; to=2025-02-20",
        ),
        ("TRUE", "event = 'purchase'", "CAST(platform AS TEXT)", "; event=purchase; breakdown=platform"),
    ];
    for interval in ["day", "week", "month"] {
        for (filter, event, breakdown, options) in cases {
            let mut ctes = vec![
                format!("picked AS (SELECT user_id, event_time, {breakdown} AS breakdown FROM events WHERE {filter} AND {event})"),
                format!("per AS (SELECT date_trunc('{interval}', event_time) AS period, breakdown, count(*) AS events, count(DISTINCT user_id) AS users FROM picked GROUP BY 1, 2)"),
            ];
            let (wau, mau, rolling) = if interval == "day" {
                ctes.push("user_days AS (SELECT DISTINCT user_id, breakdown, CAST(CAST(date_trunc('day', event_time) AS DATE) AS BIGINT) AS day FROM picked)".into());
                for (name, days) in [("wau", 7), ("mau", 30)] {
                    ctes.push(format!(
                        "{name} AS (SELECT d AS day, breakdown, count(DISTINCT user_id) AS users FROM (SELECT user_id, breakdown, unnest(range(day, day + {days})) AS d FROM user_days) GROUP BY 1, 2)"
                    ));
                }
                ("wau.users", "mau.users", "LEFT JOIN wau ON wau.day = CAST(CAST(per.period AS DATE) AS BIGINT) AND (wau.breakdown IS NOT DISTINCT FROM per.breakdown) \
                  LEFT JOIN mau ON mau.day = CAST(CAST(per.period AS DATE) AS BIGINT) AND (mau.breakdown IS NOT DISTINCT FROM per.breakdown)")
            } else {
                ("NULL", "NULL", "")
            };
            let plain = format!(
                "WITH {} SELECT CAST(per.period AS DATE) AS period, per.breakdown, per.events, per.users, CAST({wau} AS BIGINT) AS wau, CAST({mau} AS BIGINT) AS mau \
                 FROM per {rolling} ORDER BY period, per.breakdown NULLS FIRST",
                ctes.join(", ")
            );
            let report = format!("SELECT * FROM trends('interval={interval}{options}')");
            let (want, got) = (rows(&s.ctx, &plain).await, rows(&s.ctx, &report).await);
            assert!(!want.is_empty(), "{plain}");
            assert_eq!(got, want, "{report}");
        }
    }
}
