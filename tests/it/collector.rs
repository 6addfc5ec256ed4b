//! The HTTP collector from the outside: `northstar serve --http` as a process, the real
//! Segment and PostHog SDKs (tests/sdks, installed by scripts/setup-test-env.sh), raw HTTP
//! for bad input and limits, and `kill -9` during a stream. Every server listens on
//! 127.0.0.1 at ports the OS picks and is killed when its test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{free_port, log_entries, northstar, ok, Process, Scratch};

const SDKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdks");
const KEY: &str = "test-write-key";

/// `northstar serve --http` over `data`, killed on drop.
struct Collecting {
    _process: Process,
    http: u16,
    /// The wire endpoint's port.
    pg: u16,
}

fn collect(data: &str, extra: &[&str]) -> Collecting {
    let mut child = northstar()
        .args(["serve", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(extra)
        .env("NORTHSTAR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    std::thread::spawn({
        let log = log.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        }
    });
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let port = |address: &str| address.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        let mut pg = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening on ") {
                pg = Some(port(address));
            }
            if let Some(address) = line.strip_prefix("collecting on http://") {
                let _ = sender.send((port(address), pg.expect("the wire endpoint's line comes first")));
            }
        }
    });
    let (http, pg) = receiver
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the collector did not start:\n{}", log.lock().unwrap()));
    Collecting { _process: process, http, pg }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // A server that refuses a body early may close before reading all of it.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Answer { status, head: head.to_ascii_lowercase(), body: body.to_string() })
}

fn post_json(port: u16, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Answer {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request(port, "POST", path, &all, body.to_string().as_bytes()).unwrap()
}

fn basic(key: &str) -> String {
    format!("Basic {}", base64_encode(&format!("{key}:")))
}

/// Standard base64 (the tests' only use: a Basic auth header).
fn base64_encode(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn query(data: &str, sql: &str) -> String {
    ok(&["query", "--data", data, "--format", "csv", sql])
}

fn venv_python() -> &'static Path {
    let python = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    assert!(python.exists(), "no .venv: run scripts/setup-test-env.sh");
    python
}

fn run_sdk_script(program: &Path, script: &str, port: u16) {
    let out = Command::new(program)
        .arg(format!("{SDKS}/{script}"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(KEY)
        .current_dir(SDKS)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_real_segment_and_posthog_sdks_deliver_every_event_with_its_fields() {
    let s = Scratch::new();
    let data = s.data();
    let collector = collect(&data, &["--write-key", KEY]);
    run_sdk_script(venv_python(), "python_sdks.py", collector.http);
    run_sdk_script(Path::new("node"), "node_sdks.mjs", collector.http);

    let rows = query(
        &data,
        "SELECT message_id, message_type, event, user_id, anonymous_id, previous_id, group_type, group_id, \
         session_id, utm_source, utm_campaign, referrer, url, json_get_str(traits, 'email') AS email \
         FROM events WHERE message_id LIKE 'seg-%' OR message_id LIKE 'node-%' OR message_id LIKE 'rs-%' \
         ORDER BY message_id",
    );
    let expected = "\
message_id,message_type,event,user_id,anonymous_id,previous_id,group_type,group_id,session_id,utm_source,utm_campaign,referrer,url,email
node-alias,alias,alias,node-user,,node-anon,,,,,,,,
node-group,group,group,node-user,,,,globex,,,,,,
node-identify,identify,identify,node-user,node-anon,,,,,,,,,n@example.com
node-page,page,page,node-anon,node-anon,,,,,,,,,
node-track,track,Checkout Started,node-user,,,,,,,,,,
rs-alias,alias,alias,rs-user,,rs-anon,,,,,,,,
rs-group,group,group,rs-user,,,,initech,,,,,,
rs-identify,identify,identify,rs-user,rs-anon,,,,,,,,,rs@example.com
rs-page,page,page,rs-user,,,,,,,,,,
rs-track,track,Plan Upgraded,rs-user,,,,,,newsletter,june,https://news.example/,https://shop.example/pricing,
seg-alias,alias,alias,py-user,,py-anon,,,,,,,,
seg-group,group,group,py-user,,,,acme,,,,,,
seg-identify,identify,identify,py-user,py-anon,,,,,,,,,py@example.com
seg-page,page,page,py-user,,,,,,,,,,
seg-screen,screen,screen,py-user,,,,,,,,,,
seg-track,track,Order Completed,py-user,,,,,,newsletter,june,https://news.example/,https://shop.example/pricing,
";
    assert_eq!(rows, expected);
    // Properties, page names and the SDK's own timestamp (moved only by the send delay).
    let details = query(
        &data,
        "SELECT message_id, json_get_float(properties, 'revenue') AS revenue, json_get_str(properties, 'name') AS name, \
         library LIKE 'analytics-python/%' AS python_library \
         FROM events WHERE message_id IN ('seg-track', 'seg-page') ORDER BY 1",
    );
    assert_eq!(details, "message_id,revenue,name,python_library\nseg-page,,Pricing,true\nseg-track,9.5,,true\n");
    let day = query(
        &data,
        "SELECT message_id, CAST(event_time AS DATE) AS day FROM events WHERE message_id IN ('seg-track', 'rs-track') \
         ORDER BY 1",
    );
    assert_eq!(day, "message_id,day\nrs-track,2026-06-02\nseg-track,2026-06-01\n");

    let posthog = query(
        &data,
        "SELECT event, user_id, CASE WHEN previous_id IS NOT NULL THEN least(user_id, previous_id) END AS link_a, \
         CASE WHEN previous_id IS NOT NULL THEN greatest(user_id, previous_id) END AS link_b, \
         group_type, group_id, session_id, utm_source, url, json_get_str(traits, 'name') AS name, \
         coalesce(json_get_int(traits, 'employees'), json_get_int(traits, 'seats')) AS size \
         FROM events WHERE message_type = 'capture' ORDER BY event, user_id",
    );
    let expected = "\
event,user_id,link_a,link_b,group_type,group_id,session_id,utm_source,url,name,size
$create_alias,ph-anon,ph-anon,ph-user,,,,,,,
$create_alias,pn-user,pn-anon,pn-user,,,,,,,
$groupidentify,ph-user,,,company,acme,,,,,12
$groupidentify,pn-user,,,company,initech,,,,,5
$set,ph-user,,,,,,,,Max,
report_viewed,pn-user,,,,,pn-session,,,,
signed_up,ph-user,,,,,ph-session,ads,https://app.example/signup,,
";
    assert_eq!(posthog, expected);
    let counts = query(&data, "SELECT count(*) AS events, count(DISTINCT message_id) AS ids FROM events");
    assert_eq!(counts, "events,ids\n23,23\n", "each event exactly once");
    // The identify and alias calls link ids into persons (docs/identity.md): each SDK's
    // anonymous id and its user are one person.
    let persons = query(
        &data,
        "SELECT DISTINCT person_id FROM events WHERE user_id IN ('node-anon', 'node-user') \
         UNION ALL SELECT DISTINCT person_id FROM events WHERE user_id IN ('ph-anon', 'ph-user') \
         UNION ALL SELECT DISTINCT person_id FROM events WHERE user_id IN ('pn-anon', 'pn-user')",
    );
    assert_eq!(persons.lines().count(), 4, "one person per SDK's pair of ids: {persons}");
}

#[test]
fn bad_requests_are_refused_whole_naming_each_problem() {
    let s = Scratch::new();
    let data = s.data();
    let collector = collect(&data, &["--write-key", KEY, "--max-body", "4KiB"]);
    let port = collector.http;
    let auth = basic(KEY);
    let good = serde_json::json!({"type": "track", "event": "ok", "userId": "u1", "messageId": "good-1"});

    let answer = post_json(
        port,
        "/v1/batch",
        &[("Authorization", &auth)],
        &serde_json::json!({"batch": [good, {"type": "track", "userId": "u2"}, {"type": "track", "event": "x"}]}),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    let problems: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let named: Vec<(u64, &str)> = problems["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["index"].as_u64().unwrap(), p["field"].as_str().unwrap()))
        .collect();
    assert_eq!(named, [(1, "event"), (2, "userId")]);
    assert_eq!(log_entries(&s.path("data")), 0, "nothing of the request was committed");

    let answer = request(port, "POST", "/v1/track", &[("Authorization", &auth)], b"{\"event\": \"x\",").unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("not valid JSON") && answer.body.contains("line 1"), "{}", answer.body);

    assert_eq!(post_json(port, "/v1/track", &[], &good).status, 401, "no key");
    assert_eq!(post_json(port, "/v1/track", &[("Authorization", &basic("other"))], &good).status, 401);
    let posthog = serde_json::json!({"api_key": "other", "event": "e", "distinct_id": "u"});
    assert_eq!(post_json(port, "/capture/", &[], &posthog).status, 401, "wrong project key");

    let large =
        serde_json::json!({"type": "track", "event": "e", "userId": "u", "properties": {"pad": "x".repeat(8000)}});
    assert_eq!(post_json(port, "/v1/track", &[("Authorization", &auth)], &large).status, 413);
    let bomb = gzip(&[b' '; 200_000]);
    let answer =
        request(port, "POST", "/v1/track", &[("Authorization", &auth), ("Content-Encoding", "gzip")], &bomb).unwrap();
    assert_eq!(answer.status, 413, "decompressed past 5 × the body limit: {}", answer.body);
    assert_eq!(post_json(port, "/v1/shout", &[("Authorization", &auth)], &good).status, 404);
    assert_eq!(log_entries(&s.path("data")), 0);

    // The same collector takes good requests, gzip-compressed as the SDKs send them.
    let body = serde_json::json!({"api_key": KEY, "batch": [{"event": "signup", "distinct_id": "u9", "uuid": "ph-1"}]});
    let answer = request(
        port,
        "POST",
        "/batch/",
        &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        &gzip(body.to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, r#"{"status":1}"#));
    assert_eq!(query(&data, "SELECT event, user_id FROM events"), "event,user_id\nsignup,u9\n");
}

/// The value of a counter or gauge at `/metrics`.
fn metric(port: u16, name: &str) -> f64 {
    let text = request(port, "GET", "/metrics", &[], b"").unwrap().body;
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// psql's one-line answer to `sql` on the collector's wire endpoint.
fn psql(port: u16, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "northstar", "-d", "northstar", "-Atc", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The collector tells the wire endpoint of its commits: an acknowledged event is in the very
/// next statement's answer, without waiting for the endpoint's one-second refresh.
#[test]
fn an_acknowledged_event_is_in_the_next_statement_over_the_wire() {
    let s = Scratch::new();
    // A short interval: each answer comes well within the endpoint's one-second refresh.
    let collector = collect(&s.data(), &["--commit-interval-ms", "20"]);
    assert_eq!(psql(collector.pg, "SELECT count(*) FROM events"), "0");
    for n in 1..=3 {
        let event = serde_json::json!({"event": "e", "distinct_id": "u", "uuid": format!("visible-{n}")});
        assert_eq!(post_json(collector.http, "/capture/", &[], &event).status, 200);
        assert_eq!(psql(collector.pg, "SELECT count(*) FROM events"), n.to_string(), "right after ack {n}");
    }
}

#[test]
fn retries_are_counted_once_even_across_a_restart() {
    let s = Scratch::new();
    let data = s.data();
    let batch = serde_json::json!({"batch": [
        {"type": "track", "event": "a", "userId": "u", "messageId": "r1"},
        {"type": "track", "event": "b", "userId": "u", "messageId": "r2"},
        {"type": "track", "event": "b", "userId": "u", "messageId": "r2"}
    ]});
    {
        let collector = collect(&data, &[]);
        assert_eq!(post_json(collector.http, "/v1/batch", &[], &batch).status, 200);
        assert_eq!(post_json(collector.http, "/v1/batch", &[], &batch).status, 200);
        let metrics = request(collector.http, "GET", "/metrics", &[], b"").unwrap().body;
        assert!(metrics.contains("northstar_collector_events_duplicate_total 4"), "{metrics}");
    }
    let collector = collect(&data, &[]);
    assert_eq!(post_json(collector.http, "/v1/batch", &[], &batch).status, 200, "a retry after the restart");
    let another = serde_json::json!({"type": "track", "event": "c", "userId": "u", "messageId": "r3"});
    assert_eq!(post_json(collector.http, "/v1/track", &[], &another).status, 200);
    assert_eq!(
        query(&data, "SELECT message_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"),
        "message_id,n\nr1,1\nr2,1\nr3,1\n"
    );
    drop(collector);

    // With room for one id, a restart remembers the one received last (r3), not r1 or r2.
    let collector = collect(&data, &["--dedupe-max-ids", "1"]);
    for id in ["r3", "r2"] {
        let again = serde_json::json!({"type": "track", "event": "d", "userId": "u", "messageId": id});
        assert_eq!(post_json(collector.http, "/v1/track", &[], &again).status, 200);
    }
    assert_eq!(
        query(&data, "SELECT message_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"),
        "message_id,n\nr1,1\nr2,2\nr3,1\n"
    );
}

#[test]
fn a_full_queue_is_refused_with_retry_after_and_cors_health_and_metrics_answer() {
    let s = Scratch::new();
    let data = s.data();
    let collector = collect(&data, &["--max-pending-events", "5", "--commit-interval-ms", "2000"]);
    let port = collector.http;
    let events = |prefix: &str| {
        serde_json::json!({"batch": (0..4).map(|i| serde_json::json!(
            {"type": "track", "event": "e", "userId": "u", "messageId": format!("{prefix}{i}")})).collect::<Vec<_>>()})
    };
    let first = std::thread::spawn({
        let body = events("a");
        move || post_json(port, "/v1/batch", &[], &body).status
    });
    std::thread::sleep(Duration::from_millis(500));
    let refused = post_json(port, "/v1/batch", &[], &events("b"));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.head.contains("retry-after: 1"), "{}", refused.head);
    assert_eq!(first.join().unwrap(), 200);
    assert_eq!(post_json(port, "/v1/batch", &[], &events("b")).status, 200, "taken once the queue drained");

    let preflight = request(
        port,
        "OPTIONS",
        "/e/",
        &[("Origin", "https://site.example"), ("Access-Control-Request-Method", "POST")],
        b"",
    )
    .unwrap();
    assert!(preflight.status < 300, "{}", preflight.head);
    assert!(preflight.head.contains("access-control-allow-origin: https://site.example"), "{}", preflight.head);
    let health = request(port, "GET", "/health", &[], b"").unwrap();
    assert_eq!(health.status, 200);
    assert!(health.body.contains(r#""status":"ok""#), "{}", health.body);
    let metrics = request(port, "GET", "/metrics", &[], b"").unwrap().body;
    for line in [
        "northstar_collector_events_committed_total 8",
        "northstar_collector_events_rejected_total 4",
        "northstar_collector_commits_total 2",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(metrics.contains("northstar_collector_commit_seconds_bucket"), "{metrics}");
}

/// Senders post batches of 20 events (ids `s<sender>-<n>-<i>`) and retry each batch until it
/// is acknowledged, as SDKs do; the server is killed with SIGKILL and restarted 10 times.
/// After each kill, every batch is in the table whole or not at all; at the end every
/// acknowledged id is there exactly once.
#[test]
fn acknowledged_events_survive_kill_9_exactly_once() {
    const SENDERS: usize = 4;
    const BATCH: usize = 20;
    let s = Scratch::new();
    let data = s.data();
    let options = ["--commit-interval-ms", "200", "--compact-interval-seconds", "1"];
    let mut collector = collect(&data, &options);
    let port = Arc::new(AtomicU16::new(collector.http));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (port, stop, acknowledged) = (port.clone(), stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let ids: Vec<String> = (0..BATCH).map(|i| format!("s{sender}-{n}-{i}")).collect();
                    let body = serde_json::json!({"batch": ids.iter().map(|id| serde_json::json!(
                        {"event": "tick", "distinct_id": format!("user{sender}"), "uuid": id})).collect::<Vec<_>>()});
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        match request(port.load(Ordering::SeqCst), "POST", "/batch/", &[], body.to_string().as_bytes())
                        {
                            Ok(answer) if answer.status == 200 => break,
                            _ => {
                                assert!(Instant::now() < deadline, "batch {sender}-{n} never acknowledged");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    acknowledged.lock().unwrap().extend(ids);
                    n += 1;
                }
            })
        })
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(20261205);
    let whole = format!(
        "SELECT split_part(message_id, '-', 1) || '-' || split_part(message_id, '-', 2) AS batch, count(*) AS n \
         FROM events GROUP BY 1 HAVING count(*) <> {BATCH}"
    );
    for kill in 0..10 {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        let acknowledged_before = acknowledged.lock().unwrap().len();
        drop(collector); // SIGKILL
        if log_entries(&s.path("data")) > 0 {
            assert_eq!(query(&data, &whole), "batch,n\n", "a batch partly visible after kill {kill}");
            let present: usize = query(&data, "SELECT count(*) FROM events").lines().nth(1).unwrap().parse().unwrap();
            assert!(present >= acknowledged_before, "kill {kill}: {present} rows, {acknowledged_before} acknowledged");
        }
        collector = collect(&data, &options);
        port.store(collector.http, Ordering::SeqCst);
    }
    // The last collector lives long enough to compact while the senders go on: compaction's
    // commits and the group commits interleave, and the counts below still hold.
    let started = Instant::now();
    while metric(collector.http, "northstar_collector_compactions_total") < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no background compaction ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.join().unwrap();
    }
    // /health names the newest version, whether a group commit or a compaction pass made it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let newest = log_entries(&s.path("data")) - 1;
        let health = request(collector.http, "GET", "/health", &[], b"").unwrap().body;
        if health.contains(&format!(r#""table_version":{newest},"#)) {
            break;
        }
        assert!(Instant::now() < deadline, "/health is behind version {newest}: {health}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let acknowledged = acknowledged.lock().unwrap().len();
    eprintln!("{acknowledged} events acknowledged across 10 kills");
    assert!(acknowledged > 10 * BATCH, "too little traffic to test anything: {acknowledged}");
    let counts = query(&data, "SELECT count(*) AS events, count(DISTINCT message_id) AS ids FROM events");
    assert_eq!(counts, format!("events,ids\n{acknowledged},{acknowledged}\n"), "every acknowledged event exactly once");
    assert_eq!(query(&data, &whole), "batch,n\n");
}

/// posthog-js on a web page in Debian's headless Chromium, the page served from another
/// origin than the collector (so every request is cross-origin, with CORS), as on a real site.
#[test]
fn posthog_js_in_headless_chromium_sends_page_views_identify_and_custom_events() {
    let s = Scratch::new();
    let data = s.data();
    let collector = collect(&data, &["--write-key", KEY]);
    let web = free_port();
    let _site = Process(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &web.to_string(), "--directory", SDKS])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", web)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the test site did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let page =
        format!("http://127.0.0.1:{web}/posthog_page.html?api_host=http://127.0.0.1:{}&key={KEY}", collector.http);
    let out = Command::new("node").arg(format!("{SDKS}/browser_posthog.mjs")).arg(&page).output().unwrap();
    assert!(
        out.status.success(),
        "browser_posthog.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = query(
        &data,
        "SELECT event, user_id, anonymous_id <> user_id AS links_anonymous_id, library LIKE 'web/%' AS web_library, \
         url LIKE '%/posthog_page.html%' AS on_page, json_get_int(properties, 'price') AS price, \
         json_get_str(traits, 'plan') AS plan FROM events ORDER BY event",
    );
    let expected = "\
event,user_id,links_anonymous_id,web_library,on_page,price,plan
$identify,web-user,true,true,true,,pro
$pageview,web-user,,true,true,,
button_clicked,web-user,,true,true,42,
";
    assert_eq!(rows, expected);
}
