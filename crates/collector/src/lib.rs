//! The HTTP collector: Segment's tracking API and PostHog's capture API, so that apps send
//! events with the SDKs they already use, pointed at Northstar's address. Events are written
//! to the same `events` table the wire endpoint reads, by group commits (`committer`); a
//! request is answered 200 only once its events are in a committed Delta version.
//!
//! axum (hyper, tower-http's CORS) serves it; request bodies are bounded before they are read
//! (413) and after they are decompressed. Every decision about limits, keys and the field
//! mapping is in docs/collector.md.

mod body;
mod committer;
mod compaction;
mod dedupe;
pub mod message;
mod metrics;
mod posthog;
mod record_batch;
mod segment;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use northstar_storage::{DataLocation, EventStore, WriterLayout};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::body::{BodyError, BodyShape};
use crate::committer::{Committer, GroupCommitOptions, Refused};
use crate::message::{EventRow, Problem, Received};
use crate::metrics::Metrics;

/// The size background compaction packs small files into.
const COMPACTED_FILE_BYTES: u64 = 64 << 20;

/// How the collector runs; the defaults are documented in docs/collector.md.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    pub listen: SocketAddr,
    /// Accepted write keys (Segment) and project keys (PostHog). Empty: any key, or none, is
    /// accepted, which only a loopback address allows.
    pub write_keys: Vec<String>,
    /// Requests arriving within this time of the first waiting one share a commit.
    pub commit_interval: Duration,
    /// A group commit closes early at this many events.
    pub max_commit_rows: usize,
    /// Events waiting for commits, past which requests are answered 503 with Retry-After.
    pub max_pending_events: usize,
    /// A request body's size as sent (413 past it).
    pub max_body_bytes: usize,
    /// A request body's size once decompressed (413 past it).
    pub max_decompressed_bytes: usize,
    pub dedupe_window: Duration,
    pub dedupe_max_ids: usize,
    /// Keep the client's IP address (`ip` column). Off by default: it is personal data.
    pub collect_ip: bool,
    /// Background compaction every this often (`None`: off).
    pub compact_interval: Option<Duration>,
    pub vacuum_retention: Duration,
    pub layout: WriterLayout,
    /// Called after each commit (the wire endpoint in the same process reloads the table).
    pub on_commit: Option<CommitHook>,
}

/// A function called after each group commit.
#[derive(Clone)]
pub struct CommitHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitHook")
    }
}

/// The collector's defaults, named once for [`CollectorOptions::new`] (the demo) and for the
/// `serve` command's flags. docs/collector.md gives the reasons for each.
pub mod defaults {
    pub const COMMIT_INTERVAL_MS: u64 = 1000;
    pub const MAX_COMMIT_EVENTS: usize = 100_000;
    pub const MAX_PENDING_EVENTS: usize = 2_000_000;
    pub const MAX_BODY_BYTES: usize = 20 << 20;
    /// [`MAX_BODY_BYTES`] as `serve --max-body` writes it.
    pub const MAX_BODY: &str = "20MiB";
    /// A body may grow this many times when decompressed.
    pub const DECOMPRESSED_PER_BODY_BYTE: usize = 5;
    pub const DEDUPE_WINDOW_SECONDS: u64 = 600;
    pub const DEDUPE_MAX_IDS: usize = 2_000_000;
    pub const COMPACT_INTERVAL_SECONDS: u64 = 60;
    pub const VACUUM_RETENTION_HOURS: u64 = 168;
}

impl CollectorOptions {
    pub fn new(listen: SocketAddr) -> Self {
        use defaults::*;
        CollectorOptions {
            listen,
            write_keys: vec![],
            commit_interval: Duration::from_millis(COMMIT_INTERVAL_MS),
            max_commit_rows: MAX_COMMIT_EVENTS,
            max_pending_events: MAX_PENDING_EVENTS,
            max_body_bytes: MAX_BODY_BYTES,
            max_decompressed_bytes: MAX_BODY_BYTES * DECOMPRESSED_PER_BODY_BYTE,
            dedupe_window: Duration::from_secs(DEDUPE_WINDOW_SECONDS),
            dedupe_max_ids: DEDUPE_MAX_IDS,
            collect_ip: false,
            compact_interval: Some(Duration::from_secs(COMPACT_INTERVAL_SECONDS)),
            vacuum_retention: Duration::from_secs(VACUUM_RETENTION_HOURS * 3600),
            layout: WriterLayout::default(),
            on_commit: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] northstar_storage::StorageError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// A bound collector; [`Collector::run`] serves it.
pub struct Collector {
    listener: TcpListener,
    app: Router,
}

struct Shared {
    committer: Committer,
    metrics: Arc<Metrics>,
    write_keys: HashSet<String>,
    collect_ip: bool,
    max_decompressed_bytes: usize,
    table: Arc<TableState>,
}

/// The newest table version the collector committed (a group commit or a compaction pass),
/// and its data file count, for `/health`.
pub(crate) struct TableState(std::sync::Mutex<(Option<u64>, usize)>);

impl TableState {
    /// Records `version` with `files` unless a newer version was recorded already.
    pub(crate) fn saw(&self, version: u64, files: usize) {
        let mut table = self.0.lock().unwrap();
        if table.0.is_none_or(|v| v < version) {
            *table = (Some(version), files);
        }
    }

    fn get(&self) -> (Option<u64>, usize) {
        *self.0.lock().unwrap()
    }
}

impl Collector {
    /// Opens the table at `location`, restores the recent message ids, starts the committing
    /// task (and compaction) and binds the listener. Refuses to listen beyond loopback
    /// without write keys.
    pub async fn bind(location: &DataLocation, options: CollectorOptions) -> Result<Collector, CollectorError> {
        if options.write_keys.is_empty() && !options.listen.ip().is_loopback() {
            return Err(CollectorError::Config(format!(
                "refusing to collect on {} without write keys: add --write-key KEY or listen on 127.0.0.1",
                options.listen
            )));
        }
        let store = EventStore::open(location).await?;
        let table = Arc::new(TableState(std::sync::Mutex::new((store.version(), store.file_count()))));
        let metrics = Arc::new(Metrics::new());
        let committer = Committer::start(
            store,
            GroupCommitOptions {
                interval: options.commit_interval,
                max_commit_rows: options.max_commit_rows.max(1),
                max_pending_events: options.max_pending_events.max(1),
                dedupe_window: options.dedupe_window,
                dedupe_max_ids: options.dedupe_max_ids,
                layout: WriterLayout {
                    plain_columns: message::DISTINCT_COLUMNS.map(str::to_string).to_vec(),
                    ..options.layout.clone()
                },
                on_commit: options.on_commit.clone(),
            },
            metrics.clone(),
        )
        .await
        .map_err(CollectorError::Config)?;
        if let Some(interval) = options.compact_interval {
            compaction::spawn(
                location.clone(),
                compaction::CompactionOptions {
                    interval,
                    min_new_files: 64,
                    vacuum_retention: options.vacuum_retention,
                    // Files at least this large are left alone, so each row is rewritten a
                    // few times at most while the day's files grow (docs/collector.md).
                    layout: WriterLayout {
                        target_file_bytes: options.layout.target_file_bytes.min(COMPACTED_FILE_BYTES),
                        plain_columns: Vec::new(),
                        ..options.layout.clone()
                    },
                },
                metrics.clone(),
                table.clone(),
            );
        }
        let shared = Arc::new(Shared {
            committer,
            metrics,
            write_keys: options.write_keys.iter().cloned().collect(),
            collect_ip: options.collect_ip,
            max_decompressed_bytes: options.max_decompressed_bytes,
            table,
        });
        let listener =
            TcpListener::bind(options.listen).await.map_err(|e| CollectorError::Listen(options.listen, e))?;
        Ok(Collector { listener, app: router(shared, options.max_body_bytes) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until the future is dropped.
    pub async fn run(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.app.into_make_service_with_connect_info::<SocketAddr>()).await
    }
}

fn router(shared: Arc<Shared>, max_body_bytes: usize) -> Router {
    let posthog_paths = ["/batch", "/capture", "/e", "/i/v0/e", "/track", "/engage"];
    let mut app = Router::new()
        .route("/v1/{call}", post(segment_call))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text));
    for path in posthog_paths {
        app = app.route(path, post(posthog_capture)).route(&format!("{path}/"), post(posthog_capture));
    }
    app.layer(DefaultBodyLimit::max(max_body_bytes))
        // Browser SDKs post from the site's own origin.
        .layer(tower_http::cors::CorsLayer::very_permissive().max_age(Duration::from_secs(86_400)))
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let (version, files) = shared.table.get();
    Json(json!({"status": "ok", "table_version": version, "data_files": files}))
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], shared.metrics.render()).into_response()
}

/// Which vendor's answer a request gets.
#[derive(Clone, Copy)]
enum Vendor {
    Segment,
    PostHog,
}

async fn segment_call(
    State(shared): State<Arc<Shared>>,
    Path(call): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let rows = segment_rows(&shared, &call, peer, &headers, &bytes);
    // The body is not kept while the events wait for their commit (about a second).
    drop(bytes);
    commit_or_refuse(&shared, rows, Vendor::Segment).await
}

async fn commit_or_refuse(shared: &Shared, rows: Result<Vec<EventRow>, Refusal>, vendor: Vendor) -> Response {
    match rows {
        Ok(rows) => commit(shared, rows, vendor).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The rows of a tracking-API request, or the answer refusing it. The decoded body and the
/// tree borrowed from it live only here.
fn segment_rows(
    shared: &Shared,
    call: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Vec<EventRow>, Refusal> {
    if call != "batch" && !segment::CALLS.contains(&call) {
        return Err(Refusal::Problems(
            StatusCode::NOT_FOUND,
            vec![Problem::request("path", format!("/v1/{call} is not a call of the tracking API"))],
        ));
    }
    let received = received(shared, headers, peer);
    let text = decode(shared, headers, None, bytes)?;
    let body = parse_json(shared, &text)?;
    let body_key =
        body.as_object().and_then(|o| message::get(o, "writeKey")).and_then(|k| k.as_str()).map(str::to_string);
    let keys: Vec<String> = basic_user(headers).into_iter().chain(body_key).collect();
    authorize(shared, &keys)?;
    segment::parse(call, &body, &received).map_err(|found| refuse(shared, found))
}

async fn posthog_capture(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let rows = posthog_rows(&shared, &query, peer, &headers, &bytes);
    drop(bytes);
    commit_or_refuse(&shared, rows, Vendor::PostHog).await
}

/// The rows of a capture request, or the answer refusing it (as `segment_rows`).
fn posthog_rows(
    shared: &Shared,
    query: &HashMap<String, String>,
    peer: SocketAddr,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Vec<EventRow>, Refusal> {
    let received = received(shared, headers, peer);
    let text = decode(shared, headers, query.get("compression").map(String::as_str), bytes)?;
    let body = parse_json(shared, &text)?;
    let mut keys = posthog::api_keys(&body);
    keys.extend(query.get("token").or(query.get("api_key")).cloned());
    keys.extend(bearer(headers));
    authorize(shared, &keys)?;
    posthog::parse(&body, &received).map_err(|found| refuse(shared, found))
}

fn received(shared: &Shared, headers: &HeaderMap, peer: SocketAddr) -> Received {
    Received {
        at: chrono::Utc::now(),
        peer_ip: Some(peer.ip().to_string()),
        keep_ip: shared.collect_ip,
        user_agent: header_text(headers, header::USER_AGENT).map(str::to_string),
    }
}

/// A request refused before its events were queued; its answer names why.
enum Refusal {
    Problems(StatusCode, Vec<Problem>),
    Unauthorized(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Problems(status, found) => problems(status, found),
            Refusal::Unauthorized(message) => {
                (StatusCode::UNAUTHORIZED, Json(json!({"error": message}))).into_response()
            }
        }
    }
}

fn decode<'b>(
    shared: &Shared,
    headers: &HeaderMap,
    compression: Option<&str>,
    bytes: &'b [u8],
) -> Result<Cow<'b, [u8]>, Refusal> {
    let shape = BodyShape {
        content_encoding: header_text(headers, header::CONTENT_ENCODING),
        content_type: header_text(headers, header::CONTENT_TYPE),
        compression,
    };
    body::decode(bytes, &shape, shared.max_decompressed_bytes).map_err(|e| body_refusal(shared, e))
}

fn parse_json<'t>(shared: &Shared, text: &'t [u8]) -> Result<message::Json<'t>, Refusal> {
    body::json(text).map_err(|e| body_refusal(shared, e))
}

fn body_refusal(shared: &Shared, error: BodyError) -> Refusal {
    match error {
        BodyError::TooLarge(limit) => Refusal::Problems(
            StatusCode::PAYLOAD_TOO_LARGE,
            vec![Problem::request("body", format!("is larger than {limit} bytes once decompressed"))],
        ),
        BodyError::Invalid(problem) => refuse(shared, vec![problem]),
    }
}

/// Every key the request carries must be one of the configured keys, and there must be one
/// (unless none are configured).
fn authorize(shared: &Shared, keys: &[String]) -> Result<(), Refusal> {
    if shared.write_keys.is_empty() {
        return Ok(());
    }
    if keys.is_empty() {
        Err(Refusal::Unauthorized("the request carries no write key (Basic auth user, writeKey or api_key)"))
    } else if keys.iter().all(|k| shared.write_keys.contains(k)) {
        Ok(())
    } else {
        Err(Refusal::Unauthorized("the write key is not one of this collector's"))
    }
}

async fn commit(shared: &Shared, rows: Vec<EventRow>, vendor: Vendor) -> Response {
    let count = rows.len() as u64;
    if count == 0 {
        return accepted(vendor);
    }
    let answer = match shared.committer.submit(rows) {
        Ok(answer) => answer,
        Err(refused) => {
            shared.metrics.rejected.inc_by(count);
            let why = match refused {
                Refused::Full => "too many events are waiting to be committed; retry shortly",
                Refused::Stopped => "the collector is stopping",
            };
            return unavailable(why);
        }
    };
    shared.metrics.received.inc_by(count);
    match answer.await {
        Ok(Ok(committed)) => {
            if let Some(version) = committed.version {
                shared.table.saw(version, committed.files);
            }
            accepted(vendor)
        }
        Ok(Err(e)) => unavailable(&format!("the events could not be committed ({e}); nothing of them was stored")),
        Err(_) => unavailable("the collector stopped before committing"),
    }
}

fn accepted(vendor: Vendor) -> Response {
    match vendor {
        Vendor::Segment => Json(json!({"success": true})).into_response(),
        Vendor::PostHog => Json(json!({"status": 1})).into_response(),
    }
}

fn unavailable(message: &str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], Json(json!({"error": message}))).into_response()
}

/// A bad request (400), counted as rejected.
fn refuse(shared: &Shared, found: Vec<Problem>) -> Refusal {
    shared.metrics.rejected.inc();
    Refusal::Problems(StatusCode::BAD_REQUEST, found)
}

fn problems(status: StatusCode, found: Vec<Problem>) -> Response {
    let error = match found.as_slice() {
        [one] => describe(one),
        many => format!("{} problems; nothing of this request was stored", many.len()),
    };
    (status, Json(json!({"error": error, "problems": found}))).into_response()
}

fn describe(problem: &Problem) -> String {
    match problem.index {
        Some(index) => format!("message {index}, field {}: {}", problem.field, problem.message),
        None => format!("{} {}", problem.field, problem.message),
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name)?.to_str().ok()
}

/// The user of `Authorization: Basic …` (Segment's write key).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let encoded = header_text(headers, header::AUTHORIZATION)?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    header_text(headers, header::AUTHORIZATION)?.strip_prefix("Bearer ").map(|k| k.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::defaults::*;

    #[test]
    fn the_body_limit_flag_default_is_the_byte_default() {
        assert_eq!(MAX_BODY, format!("{}MiB", MAX_BODY_BYTES >> 20));
        assert_eq!(MAX_BODY_BYTES % (1 << 20), 0);
    }
}
