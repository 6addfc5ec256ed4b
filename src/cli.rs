//! The command line: clap's definitions of every command and its options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use northstar_collector::defaults;
use northstar_engine::{parse_byte_size, EngineOptions};
use northstar_import::Format;
use northstar_storage::WriterLayout;

#[derive(Parser)]
#[command(name = "northstar", version, about = "Product analytics with SQL over a Delta Lake event table")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Import NDJSON, CSV or Parquet files (or stdin) into the events table, in one commit.
    Import(ImportArgs),
    /// Run SQL against the events table.
    Query(QueryArgs),
    /// Write deterministic synthetic product events to a file.
    Generate(GenerateArgs),
    /// Generate and import sample data into an empty location, then serve it over the
    /// PostgreSQL protocol.
    Demo(DemoArgs),
    /// Serve the events table over the PostgreSQL wire protocol (psql, BI tools, drivers).
    Serve(Box<ServeArgs>),
    /// Print a SCRAM-SHA-256 verifier line for a users file (reads the password from stdin).
    HashPassword(HashPasswordArgs),
    /// Compact small files into large, Z-ordered ones (by user_id, event_time).
    Optimize(MaintenanceArgs),
    /// Delete data files no longer referenced by any version within the retention period.
    Vacuum(VacuumArgs),
    /// Derive the person of every distinct id again from the identity links in the events,
    /// ignoring the saved state (docs/identity.md).
    RebuildPersons(MaintenanceArgs),
    /// Run a Ballista scheduler with Northstar's functions (docs/distributed.md).
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor with Northstar's functions (docs/distributed.md).
    Executor(ExecutorArgs),
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Data location: a directory, s3://bucket/prefix (AWS_* variables configure access) or memory://name.
    #[arg(long, default_value = "./northstar-data", env = "NORTHSTAR_DATA")]
    pub data: String,
}

#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Memory the query engine may use before spilling, e.g. 4GiB (default: half of RAM).
    #[arg(long, value_parser = parse_byte_size)]
    pub memory_limit: Option<usize>,
    /// Directory for spill files (default: the system temp directory).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Parallelism (default: number of cores).
    #[arg(long)]
    pub target_partitions: Option<usize>,
    /// Plan funnels and sequences in DataFusion's two aggregation stages, as before the
    /// one-stage plan (for comparing the two; docs/benchmarks.md).
    #[arg(long, hide = true)]
    pub two_stage_aggregates: bool,
}

impl EngineArgs {
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            memory_limit: self.memory_limit,
            spill_dir: self.spill_dir.clone(),
            target_partitions: self.target_partitions,
            two_stage_aggregates: self.two_stage_aggregates,
        }
    }
}

/// Parquet layout of written files (defaults chosen by measurement: docs/storage.md).
#[derive(Args, Clone)]
pub struct LayoutArgs {
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = WriterLayout::default().row_group_rows)]
    pub row_group_rows: usize,
    /// zstd compression level (1-22).
    #[arg(long, default_value_t = WriterLayout::default().zstd_level, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,
}

impl LayoutArgs {
    pub fn layout(&self) -> WriterLayout {
        WriterLayout {
            row_group_rows: self.row_group_rows.max(1),
            zstd_level: self.zstd_level,
            ..WriterLayout::default()
        }
    }
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Input format (default: from each file's extension; `.gz` is understood).
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    pub format: Option<Format>,
    /// Take a core column from another field: --map user_id=uid (repeatable).
    #[arg(long = "map", value_name = "TARGET=SOURCE")]
    pub map: Vec<String>,
    /// Write bad rows here (one JSON object per line, with the reason) and commit the good ones.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Records read ahead per text file to learn the types of new columns.
    #[arg(long, default_value_t = 10_000)]
    pub infer_rows: usize,
    /// Files to import; `-` reads stdin (needs --format).
    #[arg(required = true)]
    pub files: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: QueryFormat,
    /// The SQL statement.
    pub sql: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GenFormat {
    Parquet,
    Ndjson,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Default: from the --out extension, else parquet.
    #[arg(long, value_enum)]
    pub format: Option<GenFormat>,
    /// Days over which users arrive.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// Plant an A/B test on checkout from the middle day on: `flag:variant=lift,…`, the first
    /// variant the control, e.g. checkout-redesign:control=0,test=0.15,test_b=0; `;start=day`
    /// moves its first day, `;at=app_open` calls the flag as the app opens instead of on
    /// checkout (docs/experiments.md).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Share of users (0 to 1) who browse anonymously on a device before they sign up or log
    /// in; half of them also use a second device (docs/identity.md). Their rows carry the
    /// device's anonymous id until the sign-in, whose row has both ids (`anonymous_id`).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub identities: f64,
    /// Accounts (PostHog `company` groups) users belong to, each to one: every row's
    /// properties name it in `$groups`, and sign-ups set person properties (`$set`,
    /// `$set_once`); reports count accounts with `by=company` (docs/identity.md). 0: none.
    #[arg(long, default_value_t = 0)]
    pub accounts: u32,
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("'{text}' is not a share between 0 and 1")),
    }
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where the demo data lives.
    #[arg(long, default_value = "./northstar-data")]
    pub data: String,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:5433")]
    pub listen: SocketAddr,
    /// Events to generate on an empty location.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Address of the HTTP collector (Segment's and PostHog's APIs).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub collector: CollectorArgs,
    /// Run queries over `events` on a Ballista cluster: its scheduler as df://HOST:PORT.
    /// Catalog queries still answer here. The data location must be shared (s3://…).
    #[arg(long, value_parser = northstar_distributed::parse_scheduler_url)]
    pub ballista: Option<SocketAddr>,
}

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// Address to listen on. Anything but loopback needs users (--users or --user).
    #[arg(long, default_value = "127.0.0.1:5433", env = "NORTHSTAR_LISTEN")]
    pub listen: SocketAddr,
    /// Users file: one `NAME ROLE VERIFIER` per line (role writer or reader; verifier from
    /// `northstar hash-password`).
    #[arg(long, env = "NORTHSTAR_USERS_FILE")]
    pub users: Option<PathBuf>,
    /// A user that may read and write, as NAME:PASSWORD (only its verifier is kept).
    #[arg(long = "user", env = "NORTHSTAR_USER", value_name = "NAME:PASSWORD")]
    pub writers: Vec<String>,
    /// A read-only user, as NAME:PASSWORD.
    #[arg(long = "read-only-user", env = "NORTHSTAR_READ_ONLY_USER", value_name = "NAME:PASSWORD")]
    pub readers: Vec<String>,
    /// PEM certificate chain for TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse connections that do not use TLS.
    #[arg(long)]
    pub require_tls: bool,
    /// Connections served at once; more are refused with SQLSTATE 53300.
    #[arg(long, default_value_t = 100)]
    pub max_connections: usize,
    /// Memory one running statement may use before it spills or fails, e.g. 2GiB
    /// (default: half of --memory-limit).
    #[arg(long, value_parser = parse_byte_size)]
    pub query_memory: Option<usize>,
    /// Default statement_timeout of each connection, in milliseconds (0: none).
    #[arg(long, default_value_t = 0)]
    pub statement_timeout_ms: u64,
}

/// The HTTP collector (Segment's and PostHog's APIs; docs/collector.md).
#[derive(Args, Clone)]
pub struct CollectorArgs {
    /// Also accept events over HTTP, as Segment's and PostHog's SDKs send them, on this
    /// address (e.g. 127.0.0.1:8080). Anything but loopback needs --write-key.
    #[arg(long, env = "NORTHSTAR_HTTP")]
    pub http: Option<SocketAddr>,
    /// A write key (Segment) or project key (PostHog) the collector accepts (repeatable, or
    /// comma-separated in NORTHSTAR_WRITE_KEYS). Without any, every request is accepted.
    #[arg(long = "write-key", env = "NORTHSTAR_WRITE_KEYS", value_delimiter = ',')]
    pub write_keys: Vec<String>,
    /// Requests arriving within this many milliseconds of the first waiting one share a commit.
    #[arg(long, default_value_t = defaults::COMMIT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub commit_interval_ms: u64,
    /// A group commit closes early at this many events.
    #[arg(long, default_value_t = defaults::MAX_COMMIT_EVENTS)]
    pub max_commit_events: usize,
    /// Events waiting for their commit past which requests get 503 with Retry-After.
    #[arg(long, default_value_t = defaults::MAX_PENDING_EVENTS)]
    pub max_pending_events: usize,
    /// Largest request body, as sent, e.g. 20MiB (413 past it; 5 times that once decompressed).
    #[arg(long, default_value = defaults::MAX_BODY, value_parser = parse_byte_size)]
    pub max_body: usize,
    /// Seconds for which committed message ids are remembered, so that retries are not counted twice.
    #[arg(long, default_value_t = defaults::DEDUPE_WINDOW_SECONDS)]
    pub dedupe_window_seconds: u64,
    /// At most this many message ids are remembered (about 64 bytes each).
    #[arg(long, default_value_t = defaults::DEDUPE_MAX_IDS)]
    pub dedupe_max_ids: usize,
    /// Store the client's IP address in the `ip` column.
    #[arg(long)]
    pub collect_ip: bool,
    /// Compact small files in the background every this many seconds (0: never).
    #[arg(long, default_value_t = defaults::COMPACT_INTERVAL_SECONDS)]
    pub compact_interval_seconds: u64,
    /// Background vacuum keeps files referenced by versions younger than this many hours.
    #[arg(long, default_value_t = defaults::VACUUM_RETENTION_HOURS)]
    pub vacuum_retention_hours: u64,
}

impl CollectorArgs {
    pub fn options(&self, listen: SocketAddr) -> northstar_collector::CollectorOptions {
        use std::time::Duration;
        let mut options = northstar_collector::CollectorOptions::new(listen);
        options.write_keys = self.write_keys.iter().filter(|k| !k.is_empty()).cloned().collect();
        options.commit_interval = Duration::from_millis(self.commit_interval_ms);
        options.max_commit_rows = self.max_commit_events;
        options.max_pending_events = self.max_pending_events;
        options.max_body_bytes = self.max_body;
        options.max_decompressed_bytes = self.max_body.saturating_mul(defaults::DECOMPRESSED_PER_BODY_BYTE);
        options.dedupe_window = Duration::from_secs(self.dedupe_window_seconds);
        options.dedupe_max_ids = self.dedupe_max_ids;
        options.collect_ip = self.collect_ip;
        options.compact_interval =
            (self.compact_interval_seconds > 0).then(|| Duration::from_secs(self.compact_interval_seconds));
        options.vacuum_retention = Duration::from_secs(self.vacuum_retention_hours * 3600);
        options
    }
}

#[derive(Args)]
pub struct SchedulerArgs {
    /// Address of the scheduler's gRPC service (executors and `serve --ballista` connect here).
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub listen: SocketAddr,
    /// Seconds without a heartbeat after which an executor is lost and its work rescheduled
    /// (at least 10: a busy executor reports every 5 s).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(10..))]
    pub executor_timeout_seconds: u64,
}

#[derive(Args)]
pub struct ExecutorArgs {
    /// Address of the executor's data (Arrow Flight) service; its task service takes the next port.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The scheduler, as df://HOST:PORT.
    #[arg(long, default_value = "df://127.0.0.1:50050", value_parser = northstar_distributed::parse_scheduler_url)]
    pub scheduler: SocketAddr,
    /// Tasks run at once (default: number of cores).
    #[arg(long)]
    pub concurrent_tasks: Option<usize>,
    /// Memory the running tasks may use before spilling, e.g. 8GiB (default: Ballista's share of RAM).
    #[arg(long, value_parser = parse_byte_size)]
    pub memory_limit: Option<usize>,
    /// Directory for shuffle files and spills (default: a new temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct HashPasswordArgs {
    /// The user name to print in the line.
    pub user: String,
    /// Role: writer or reader.
    #[arg(long, default_value = "writer")]
    pub role: String,
}

#[derive(Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

#[derive(Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Keep files referenced by versions younger than this many hours.
    #[arg(long, default_value_t = 168)]
    pub retention_hours: u64,
    /// List what would be deleted without deleting.
    #[arg(long)]
    pub dry_run: bool,
}
