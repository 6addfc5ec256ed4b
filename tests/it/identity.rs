//! Identity resolution (docs/identity.md) against a reference written here: random link graphs
//! written as the rows each vendor's call makes, imported in different orders and file splits,
//! must give every distinct id the person the reference gives it; reports count persons; a
//! killed import never leaves persons that disagree with the rows a reader sees.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::support::{fails, northstar, ok, run, scalar, Scratch};

const RESERVED: [&str; 10] =
    ["", "null", "anonymous", "Anonymous", "undefined", "'undefined'", "NaN", "[object Object]", "0", "guest"];

fn reserved(id: &str) -> bool {
    RESERVED.contains(&id) || id.trim().is_empty()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Identify,
    CreateAlias,
    Alias,
    Merge,
}

/// A link as the test means it: at `time`, `other` joins `user`'s person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TestLink {
    time: i64,
    user: String,
    other: Option<String>,
    kind: Kind,
}

/// The rules, applied the obvious way: links in time order (ties by ids, then kind); an
/// identified person is merged only by Segment's alias or `$merge_dangerously`; reserved ids
/// never merge; the event's own id's person stays.
fn reference(links: &[TestLink]) -> HashMap<String, String> {
    let mut ordered = links.to_vec();
    ordered.sort_by(|a, b| (a.time, &a.user, &a.other, a.kind).cmp(&(b.time, &b.user, &b.other, b.kind)));
    let mut person: HashMap<String, String> = HashMap::new();
    let mut identified: HashSet<String> = HashSet::new();
    let of = |person: &HashMap<String, String>, id: &str| person.get(id).cloned().unwrap_or_else(|| id.to_string());
    for link in ordered {
        if reserved(&link.user) {
            continue;
        }
        let mine = of(&person, &link.user);
        if let Some(other) = link.other.as_deref().filter(|o| !reserved(o)) {
            let theirs = of(&person, other);
            let refused = identified.contains(&theirs) && matches!(link.kind, Kind::Identify | Kind::CreateAlias);
            if theirs != mine && !refused {
                person.entry(theirs.clone()).or_insert_with(|| theirs.clone());
                for p in person.values_mut().filter(|p| **p == theirs) {
                    *p = mine.clone();
                }
            }
        } else if link.other.is_some() {
            continue;
        }
        identified.insert(mine);
    }
    person
}

fn time_text(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(1_767_225_600_000_000 + micros).unwrap().to_rfc3339()
}

/// The row a vendor's call makes for `link`, in one of the shapes that call takes.
fn link_row(link: &TestLink, rng: &mut ChaCha8Rng) -> serde_json::Value {
    let t = time_text(link.time);
    let (user, other) = (&link.user, link.other.as_deref());
    match (link.kind, other) {
        (Kind::Identify, None) => {
            json!({"event_time": t, "user_id": user, "event": "identify", "message_type": "identify"})
        }
        (Kind::Identify, Some(o)) => match rng.random_range(0..3) {
            0 => {
                json!({"event_time": t, "user_id": user, "event": "identify", "message_type": "identify", "anonymous_id": o})
            }
            1 => {
                json!({"event_time": t, "user_id": user, "event": "$identify", "properties": {"$anon_distinct_id": o}})
            }
            _ => json!({"event_time": t, "user_id": user, "event": "add_to_cart", "anonymous_id": o}),
        },
        (Kind::Alias, Some(o)) => {
            json!({"event_time": t, "user_id": user, "event": "alias", "message_type": "alias", "previous_id": o})
        }
        (Kind::CreateAlias, Some(o)) => {
            json!({"event_time": t, "user_id": user, "event": "$create_alias", "properties": {"alias": o}})
        }
        (Kind::Merge, Some(o)) => match rng.random_bool(0.5) {
            true => {
                json!({"event_time": t, "user_id": user, "event": "$merge_dangerously", "properties": {"alias": o}})
            }
            false => json!({"event_time": t, "user_id": user, "event": "$merge_dangerously", "previous_id": o}),
        },
        (_, None) => unreachable!("only identify links go without another id"),
    }
}

/// A random world: anonymous and identified ids, page views by all of them (before and after
/// the links), and links of every kind among them, reserved ids included.
fn world(seed: u64, ids: usize, links: usize) -> (Vec<serde_json::Value>, Vec<TestLink>, BTreeSet<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pool: Vec<String> = (0..ids).map(|i| format!("anon-{i}")).collect();
    pool.extend((0..ids / 2).map(|i| format!("user-{i}")));
    let pick = |rng: &mut ChaCha8Rng| match rng.random_range(0..20) {
        0 => RESERVED[rng.random_range(0..RESERVED.len())].to_string(),
        _ => pool[rng.random_range(0..pool.len())].clone(),
    };
    let mut made = vec![];
    for _ in 0..links {
        let kind =
            [Kind::Identify, Kind::Identify, Kind::CreateAlias, Kind::Alias, Kind::Merge][rng.random_range(0..5)];
        let other = match (kind, rng.random_range(0..10)) {
            (Kind::Identify, 0) => None,
            _ => Some(pick(&mut rng)),
        };
        let user = pick(&mut rng);
        if user.is_empty() || other.as_deref() == Some(user.as_str()) {
            continue; // an empty user id is refused by the import; an id linked to itself is no link
        }
        // Times repeat now and then, so ties are ordered by ids.
        made.push(TestLink { time: rng.random_range(0..200) * 1_000_000, user, other, kind });
    }
    let mut rows: Vec<serde_json::Value> = made.iter().map(|l| link_row(l, &mut rng)).collect();
    let mut seen = BTreeSet::new();
    for id in
        pool.iter().chain(RESERVED.iter().filter(|r| !r.is_empty()).map(|r| r.to_string()).collect::<Vec<_>>().iter())
    {
        for _ in 0..2 {
            let t = time_text(rng.random_range(-50..250) * 1_000_000);
            rows.push(json!({"event_time": t, "user_id": id, "event": "page_view"}));
        }
        seen.insert(id.clone());
    }
    for link in &made {
        seen.insert(link.user.clone());
        seen.extend(link.other.clone().filter(|o| !o.is_empty()));
    }
    (rows, made, seen)
}

/// `rows` split into `files` NDJSON files in a shuffled order, imported one after another.
fn import_split(s: &Scratch, data: &str, rows: &[serde_json::Value], files: usize, seed: u64) {
    let mut order: Vec<&serde_json::Value> = rows.iter().collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    for (i, chunk) in order.chunks(order.len().div_ceil(files)).enumerate() {
        let text: String = chunk.iter().map(|r| format!("{r}\n")).collect();
        let file = s.write(&format!("part-{seed}-{i}.ndjson"), &text);
        ok(&["import", "--data", data, &file]);
    }
}

/// Every distinct id of the table with its person, as SQL sees them.
fn persons_in(data: &str) -> BTreeMap<String, String> {
    let out = ok(&["query", "--data", data, "--format", "csv", "SELECT DISTINCT user_id, person_id FROM events"]);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    reader.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[1].to_string())).collect()
}

fn expected_persons(links: &[TestLink], ids: &BTreeSet<String>) -> BTreeMap<String, String> {
    let person = reference(links);
    ids.iter().map(|id| (id.clone(), person.get(id).cloned().unwrap_or_else(|| id.clone()))).collect()
}

#[test]
fn persons_match_the_reference_whatever_the_import_order_and_file_split() {
    for seed in [1u64, 2, 3] {
        let (rows, links, _) = world(seed, 24, 60);
        let s = Scratch::new();
        let (one, other) = (s.path("one").display().to_string(), s.path("other").display().to_string());
        import_split(&s, &one, &rows, 1, seed);
        import_split(&s, &other, &rows, 4, seed + 100);
        let got = persons_in(&one);
        // Only the ids that appear as user_id are rows; the reference covers them all.
        let ids: BTreeSet<String> = got.keys().cloned().collect();
        assert_eq!(got, expected_persons(&links, &ids), "seed {seed}, one file");
        assert_eq!(persons_in(&other), got, "seed {seed}: four files in another order");
        let merged = got.iter().filter(|(id, p)| id != p).count();
        assert!(merged >= 5, "seed {seed}: only {merged} ids merged; the world tests little");
    }
}

#[test]
fn links_that_arrive_after_the_events_they_affect_merge_those_events_too() {
    let s = Scratch::new();
    let data = s.data();
    let visits = s.write(
        "visits.ndjson",
        concat!(
            r#"{"event_time":"2026-01-01T10:00:00Z","user_id":"laptop-1","event":"page_view"}"#,
            "\n",
            r#"{"event_time":"2026-01-02T10:00:00Z","user_id":"phone-1","event":"page_view"}"#,
            "\n",
            r#"{"event_time":"2026-01-03T10:00:00Z","user_id":"ana","event":"purchase"}"#,
            "\n",
        ),
    );
    ok(&["import", "--data", &data, &visits]);
    let before = persons_in(&data);
    assert_eq!(before.values().collect::<BTreeSet<_>>().len(), 3, "no links yet: {before:?}");
    let logins = s.write(
        "logins.ndjson",
        concat!(
            r#"{"event_time":"2026-01-01T10:05:00Z","user_id":"ana","event":"identify","message_type":"identify","anonymous_id":"laptop-1"}"#,
            "\n",
            r#"{"event_time":"2026-01-02T10:05:00Z","user_id":"ana","event":"$identify","properties":{"$anon_distinct_id":"phone-1"}}"#,
            "\n",
        ),
    );
    ok(&["import", "--data", &data, &logins]);
    let after = persons_in(&data);
    assert_eq!(after.get("laptop-1").map(String::as_str), Some("ana"), "{after:?}");
    assert_eq!(after.get("phone-1").map(String::as_str), Some("ana"), "{after:?}");

    // A funnel from the anonymous visit to the identified purchase: one person converts;
    // counted by user, the visit and the purchase are different users.
    let funnel = |options: &str| {
        let sql = format!("SELECT step, users FROM funnel(['page_view', 'purchase'], '{options}') ORDER BY step");
        ok(&["query", "--data", &data, "--format", "csv", &sql])
    };
    assert_eq!(funnel("window=7 days"), "step,users\n1,1\n2,1\n");
    assert_eq!(funnel("window=7 days; by=person"), "step,users\n1,1\n2,1\n");
    assert_eq!(funnel("window=7 days; by=user"), "step,users\n1,2\n2,0\n");
    let people = ok(&[
        "query",
        "--data",
        &data,
        "--format",
        "csv",
        "SELECT count(DISTINCT person_id) AS people, count(DISTINCT user_id) AS ids FROM events",
    ]);
    assert_eq!(people, "people,ids\n1,3\n");
}

#[test]
fn persons_are_brought_up_to_date_by_a_reader_when_the_writer_did_not() {
    // A writer that commits rows and dies before updating the saved persons is the same, to a
    // reader, as one that never updates them: the library import below does not.
    let s = Scratch::new();
    let data = s.data();
    let first = s.write(
        "first.ndjson",
        "{\"event_time\":\"2026-01-01T10:00:00Z\",\"user_id\":\"a1\",\"event\":\"page_view\"}\n",
    );
    ok(&["import", "--data", &data, &first]);
    let link = s.write(
        "link.ndjson",
        "{\"event_time\":\"2026-01-01T11:00:00Z\",\"user_id\":\"u1\",\"event\":\"identify\",\"message_type\":\"identify\",\"anonymous_id\":\"a1\"}\n",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let location = northstar_storage::DataLocation::parse(&data).unwrap();
        let mut store = northstar_storage::EventStore::open(&location).await.unwrap();
        northstar_import::import(&mut store, &[link], &Default::default()).await.unwrap();
    });
    assert_eq!(persons_in(&data).get("a1").map(String::as_str), Some("u1"));
    // A damaged saved state is only a cache: the reader derives the persons again.
    let saved = std::path::Path::new(&data).join("events/_northstar_identity/links.parquet");
    assert!(saved.exists(), "the reader saved the state it brought up to date");
    std::fs::write(&saved, b"not parquet").unwrap();
    assert_eq!(persons_in(&data).get("a1").map(String::as_str), Some("u1"));
    // And `rebuild-persons` derives the same from nothing.
    let rebuilt = run(&["rebuild-persons", "--data", &data]);
    let summary = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(rebuilt.status.success() && summary.contains("1 ids merged"), "{summary}");
    assert_eq!(persons_in(&data).get("a1").map(String::as_str), Some("u1"));
}

/// Every entry of `from` but `keep` copied into `to` after every entry of `to` but `keep` is
/// removed: the table at `to` replaced by the one at `from`, `keep` left as it was.
fn replace_table_but(from: &std::path::Path, to: &std::path::Path, keep: &str) {
    for entry in std::fs::read_dir(to).unwrap().map(Result::unwrap).filter(|e| e.file_name() != keep) {
        let path = entry.path();
        if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }.unwrap();
    }
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && tar cf - --exclude='./{keep}' . | (cd '{}' && tar xf -)",
            from.display(),
            to.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_saved_state_of_another_table_at_the_same_version_number_is_not_trusted() {
    // Two tables made the same way reach the same version numbers with other files and links;
    // the saved persons of one must not answer for the other if it replaces it in place.
    let s = Scratch::new();
    let (first, second) = (s.path("first").display().to_string(), s.path("second").display().to_string());
    let (rows_a, _, _) = world(11, 24, 60);
    let (rows_b, links_b, _) = world(12, 24, 60);
    import_split(&s, &first, &rows_a, 1, 11);
    import_split(&s, &second, &rows_b, 1, 12);
    let persons_a = persons_in(&first);
    let persons_b = persons_in(&second);
    assert_ne!(persons_a, persons_b, "the two worlds must differ for this test to tell them apart");
    let table = |data: &str| std::path::Path::new(data).join("events");
    assert!(table(&first).join("_northstar_identity/links.parquet").exists(), "the first table's state was saved");
    replace_table_but(&table(&second), &table(&first), "_northstar_identity");
    let got = persons_in(&first);
    let ids: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(got, expected_persons(&links_b, &ids));
    assert_eq!(got, persons_b);
}

#[test]
fn a_killed_import_never_leaves_persons_that_disagree_with_the_rows() {
    let s = Scratch::new();
    let data = s.data();
    // Each trial imports another world over the same ids, so a trial that commits changes the
    // persons: a mapping left from an earlier version would disagree. Many copies of each
    // world's rows, so that an import lasts long enough to be killed in the middle.
    let world_file = |seed: u64| {
        let (rows, _, _) = world(seed, 4_000, 6_000);
        let mut text = String::new();
        for copy in 0..8 {
            for row in &rows {
                let mut row = row.clone();
                row["session_id"] = json!(format!("copy-{copy}"));
                text.push_str(&format!("{row}\n"));
            }
        }
        s.write(&format!("links-{seed}.ndjson"), &text)
    };
    // The table exists, with the link columns, before the first kill.
    let base = json!({"event_time": "2026-01-01T00:00:00Z", "user_id": "anon-1", "event": "page_view",
        "message_type": "track", "anonymous_id": "anon-1", "previous_id": "", "properties": {"alias": ""}});
    let base = s.write("base.ndjson", &format!("{base}\n"));
    ok(&["import", "--data", &data, &base]);
    let probe = s.path("probe").display().to_string();
    let first = world_file(100);
    let started = Instant::now();
    ok(&["import", "--data", &probe, &first]);
    let full = started.elapsed();
    // Kills at these shares of a whole import's time: early, late, about at the commit, and
    // after it had finished (so at least one trial surely commits).
    let shares = [0.4, 0.8, 1.0, 3.0];
    let mut counts = vec![];
    let mut persons_seen = HashSet::new();
    for (trial, share) in shares.into_iter().enumerate() {
        let file = if trial == 0 { first.clone() } else { world_file(100 + trial as u64) };
        let delay = full.mul_f64(share);
        let mut child = northstar().args(["import", "--data", &data, &file]).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // it may have finished
        child.wait().unwrap();
        // The persons a reader sees are exactly those of the link rows it sees.
        let seen = scalar(&data, "SELECT count(*) FROM events");
        let visible = visible_links(&data);
        let got = persons_in(&data);
        let ids: BTreeSet<String> = got.keys().cloned().collect();
        assert_eq!(got, expected_persons(&visible, &ids), "trial {trial}, killed after {delay:?}, {seen} rows");
        counts.push(seen);
        persons_seen.insert(format!("{got:?}"));
    }
    eprintln!("kill trials saw row counts {counts:?}");
    assert!(counts.first() != counts.last(), "no trial committed: {counts:?}");
    assert!(persons_seen.len() >= 2, "the committed trials did not change the persons; the test tells nothing");
}

/// The links in the rows a reader sees, read back with plain SQL.
fn visible_links(data: &str) -> Vec<TestLink> {
    // Text columns with a `v` before each value, so an empty id and NULL stay apart in CSV.
    let sql = "SELECT CAST(event_time AS BIGINT) - 1767225600000000 AS t, user_id, event, message_type, \
               'v' || anonymous_id, 'v' || previous_id, \
               'v' || json_get_str(properties, '$anon_distinct_id'), 'v' || json_get_str(properties, 'alias') \
               FROM events WHERE event <> 'page_view'";
    let out = ok(&["query", "--data", data, "--format", "csv", sql]);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let text = |r: &csv::StringRecord, i: usize| r[i].strip_prefix('v').map(str::to_string);
    reader
        .records()
        .map(|r| r.unwrap())
        .map(|r| {
            let (time, user) = (r[0].parse().unwrap(), r[1].to_string());
            let (kind, other) = match (&r[2], &r[3]) {
                ("$create_alias", _) => (Kind::CreateAlias, text(&r, 7)),
                ("$merge_dangerously", _) => (Kind::Merge, text(&r, 5).or(text(&r, 7))),
                (_, "alias") => (Kind::Alias, text(&r, 5)),
                _ => (Kind::Identify, text(&r, 4).or(text(&r, 6))),
            };
            TestLink { time, user, other, kind }
        })
        .collect()
}

/// One person (`ana`) on a laptop and a phone, identified by a Segment identify and a PostHog
/// `$identify`, who joins account `acme` by a Segment group call; `bob` on account `globex`
/// named by PostHog's `$groups` and described by a `$groupidentify`. Both are exposed to a flag.
const TWO_PEOPLE_TWO_ACCOUNTS: &str = r#"{"event_time":"2026-01-01T10:00:00Z","user_id":"laptop-1","event":"page_view","properties":{"utm_source":"ads","$set_once":{"landing":"/a"}}}
{"event_time":"2026-01-01T10:01:00Z","user_id":"laptop-1","event":"$feature_flag_called","properties":{"$feature_flag":"new-checkout","$feature_flag_response":"test"}}
{"event_time":"2026-01-01T10:05:00Z","user_id":"ana","event":"identify","message_type":"identify","anonymous_id":"laptop-1","traits":{"plan":"free","email":"ana@x"}}
{"event_time":"2026-01-01T10:06:00Z","user_id":"ana","event":"group","message_type":"group","group_id":"acme","traits":{"employees":50}}
{"event_time":"2026-01-03T10:00:00Z","user_id":"ana","event":"purchase","properties":{"$set":{"plan":"pro"}}}
{"event_time":"2026-01-04T09:00:00Z","user_id":"phone-1","event":"page_view","properties":{"utm_source":"mail","$set_once":{"landing":"/b"}}}
{"event_time":"2026-01-04T10:05:00Z","user_id":"ana","event":"$identify","properties":{"$anon_distinct_id":"phone-1"}}
{"event_time":"2026-01-01T11:00:00Z","user_id":"bob","event":"page_view","properties":{"$groups":{"company":"globex"}}}
{"event_time":"2026-01-01T11:01:00Z","user_id":"bob","event":"$feature_flag_called","properties":{"$feature_flag":"new-checkout","$feature_flag_response":"control"}}
{"event_time":"2026-01-01T11:02:00Z","user_id":"bob","event":"$groupidentify","properties":{"$group_type":"company","$group_key":"globex","$group_set":{"employees":900}}}"#;

#[test]
fn person_properties_accounts_and_every_report_count_persons_or_accounts() {
    let s = Scratch::new();
    let data = s.data();
    ok(&["import", "--data", &data, &s.write("world.ndjson", TWO_PEOPLE_TWO_ACCOUNTS)]);
    let q = |sql: &str| ok(&["query", "--data", &data, "--format", "csv", sql]);

    // Latest $set or trait, else the first $set_once, whichever id of the person sent it; the
    // first UTM source from the properties (the table has no utm_source column).
    assert_eq!(
        q("SELECT person_id, properties, initial_utm_source FROM persons ORDER BY 1"),
        "person_id,properties,initial_utm_source\n\
         ana,\"{\"\"email\"\":\"\"ana@x\"\",\"\"landing\"\":\"\"/a\"\",\"\"plan\"\":\"\"pro\"\"}\",ads\n\
         bob,,\n"
    );
    // A group call's traits describe the account, not the person.
    assert_eq!(
        q("SELECT group_type, group_key, properties FROM groups ORDER BY 2"),
        "group_type,group_key,properties\ncompany,acme,\"{\"\"employees\"\":50}\"\ncompany,globex,\"{\"\"employees\"\":900}\"\n"
    );
    assert_eq!(
        q("SELECT person_id, group_type, group_key FROM group_members"),
        "person_id,group_type,group_key\nana,company,acme\n"
    );

    let funnel = |options: &str| {
        q(&format!("SELECT breakdown, step, users FROM funnel(['page_view', 'purchase'], 'window=7 days; {options}') ORDER BY 1 NULLS FIRST, 2"))
    };
    assert_eq!(funnel("by=person"), "breakdown,step,users\n,1,2\n,2,1\n");
    assert_eq!(funnel("by=user"), "breakdown,step,users\n,1,3\n,2,0\n");
    // Accounts: acme through ana's group call (her anonymous laptop visit included), globex
    // through bob's `$groups`.
    assert_eq!(funnel("by=company"), "breakdown,step,users\n,1,2\n,2,1\n");
    assert_eq!(funnel("by=company; where=user_id = ''acme''"), "breakdown,step,users\n,1,1\n,2,1\n");
    // Person columns in breakdown= and where=.
    assert_eq!(
        funnel("breakdown=json_get_str(person_properties, ''plan'')"),
        "breakdown,step,users\n,1,1\n,2,0\npro,1,1\npro,2,1\n"
    );
    assert_eq!(funnel("where=person_initial_utm_source = ''ads''"), "breakdown,step,users\n,1,1\n,2,1\n");
    assert!(fails(&["query", "--data", &data, "SELECT * FROM funnel(['a'], 'by=company;x')"]).contains("option"));
    assert!(fails(&["query", "--data", &data, "SELECT * FROM funnel(['a'], 'by=big company')"]).contains("group type"));

    // Retention: ana's anonymous first visit returns with her identified purchase on day 2;
    // by id, nobody who visited ever purchased.
    let retained = |by: &str| {
        q(&format!("SELECT period, retained FROM retention('start=page_view; return=purchase; period=day; periods=4; by={by}') WHERE cohort_start = DATE '2026-01-01' ORDER BY 1"))
    };
    assert_eq!(retained("person"), "period,retained\n0,2\n1,0\n2,1\n3,0\n");
    assert_eq!(retained("user"), "period,retained\n0,2\n1,0\n2,0\n3,0\n");

    // An experiment: ana was exposed anonymously and bought identified.
    let arms = |by: &str| {
        q(&format!("SELECT variant, users, value FROM experiment(['conversion: purchase'], 'flag=new-checkout; window=7 days; by={by}') WHERE variant <> '$multiple' ORDER BY 1"))
    };
    assert_eq!(arms("person"), "variant,users,value\ncontrol,1,0.0\ntest,1,1.0\n");
    assert_eq!(arms("user"), "variant,users,value\ncontrol,1,0.0\ntest,1,0.0\n");

    // The other reports: ana's three ids are one person, the two people are two accounts.
    let by = |report: &str, by: &str| {
        q(&format!("{} FROM {report}('{}by={by}')", report_select(report), report_options(report)))
    };
    for (report, person, user, company) in [
        ("trends", "2", "4", "2"),
        ("stickiness", "1:1 3:1", "1:3 3:1", "1:1 3:1"),
        ("lifecycle", "2", "4", "2"),
        ("paths", "1", "0", "1"),
    ] {
        for (counted, expected) in [("person", person), ("user", user), ("company", company)] {
            let got = by(report, counted);
            assert_eq!(got.lines().nth(1).unwrap_or(""), expected, "{report} by={counted}: {got}");
        }
    }
    // An account's own properties (`groups`) where the report counts accounts.
    assert_eq!(
        funnel("by=company; breakdown=json_get_int(group_properties, ''employees'')"),
        "breakdown,step,users\n50,1,1\n50,2,1\n900,1,1\n900,2,0\n"
    );
    let refused = fails(&["query", "--data", &data, "SELECT * FROM funnel(['a'], 'breakdown=group_properties')"]);
    assert!(refused.contains("by=<group type>"), "{refused}");
}

/// A one-row summary of each report over TWO_PEOPLE_TWO_ACCOUNTS, to compare how it counts.
fn report_select(report: &str) -> &'static str {
    match report {
        // Active in January (all the events).
        "trends" => "SELECT max(active_users) AS active",
        // How many were active on how many days of the month, as `days:users …`.
        "stickiness" => "SELECT string_agg(CAST(days_active AS TEXT) || ':' || CAST(users AS TEXT), ' ' ORDER BY days_active) \
             FILTER (WHERE users > 0) AS days_users",
        // Who was new on some day.
        "lifecycle" => "SELECT sum(users) FILTER (WHERE status = 'new') AS new",
        // Who went from the flag's call to an identify in one session (only ana's person did).
        _ => "SELECT coalesce(sum(users) FILTER (WHERE from_event = '$feature_flag_called' AND to_event = 'identify'), 0) AS users",
    }
}

fn report_options(report: &str) -> &'static str {
    match report {
        "trends" => "interval=month; ",
        "stickiness" => "period=month; ",
        "lifecycle" => "period=day; ",
        _ => "",
    }
}
