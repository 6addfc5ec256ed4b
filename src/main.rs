//! `northstar`: the command-line face of the Northstar crates.

mod output;

// mimalloc, as DataFusion's own CLI: sequence_count on 20M events 0.57 → 0.46 s against the
// system allocator. Built without transparent huge pages (feature `no_thp`): with them, peak
// memory rose by a third to a half (docs/decisions.md, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use northstar_engine::{open_session, parse_byte_size, EngineOptions};
use northstar_generate::{generate_to_file, GeneratorConfig, OutputFormat};
use northstar_import::{FieldOverrides, Format, ImportOptions};
use northstar_storage::{DataLocation, EventStore, WriterLayout};

#[derive(Parser)]
#[command(name = "northstar", version, about = "Product analytics with SQL over a Delta Lake event table")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    Serve(ServeArgs),
    /// Print a SCRAM-SHA-256 verifier line for a users file (reads the password from stdin).
    HashPassword(HashPasswordArgs),
    /// Compact small files into large, Z-ordered ones (by user_id, event_time).
    Optimize(MaintenanceArgs),
    /// Delete data files no longer referenced by any version within the retention period.
    Vacuum(VacuumArgs),
    /// Run a Ballista scheduler with Northstar's functions (docs/distributed.md).
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor with Northstar's functions (docs/distributed.md).
    Executor(ExecutorArgs),
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Data location: a directory, s3://bucket/prefix (AWS_* variables configure access) or memory://name.
    #[arg(long, default_value = "./northstar-data", env = "NORTHSTAR_DATA")]
    data: String,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Memory the query engine may use before spilling, e.g. 4GiB (default: half of RAM).
    #[arg(long, value_parser = parse_byte_size)]
    memory_limit: Option<usize>,
    /// Directory for spill files (default: the system temp directory).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Parallelism (default: number of cores).
    #[arg(long)]
    target_partitions: Option<usize>,
    /// Plan funnels and sequences in DataFusion's two aggregation stages, as before the
    /// one-stage plan (for comparing the two; docs/benchmarks.md).
    #[arg(long, hide = true)]
    two_stage_aggregates: bool,
}

impl EngineArgs {
    fn options(&self) -> EngineOptions {
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
struct LayoutArgs {
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = WriterLayout::default().row_group_rows)]
    row_group_rows: usize,
    /// zstd compression level (1-22).
    #[arg(long, default_value_t = WriterLayout::default().zstd_level, value_parser = clap::value_parser!(i32).range(1..=22))]
    zstd_level: i32,
}

impl LayoutArgs {
    fn layout(&self) -> WriterLayout {
        WriterLayout {
            row_group_rows: self.row_group_rows.max(1),
            zstd_level: self.zstd_level,
            ..WriterLayout::default()
        }
    }
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    layout: LayoutArgs,
    /// Input format (default: from each file's extension; `.gz` is understood).
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    format: Option<Format>,
    /// Take a core column from another field: --map user_id=uid (repeatable).
    #[arg(long = "map", value_name = "TARGET=SOURCE")]
    map: Vec<String>,
    /// Write bad rows here (one JSON object per line, with the reason) and commit the good ones.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Records read ahead per text file to learn the types of new columns.
    #[arg(long, default_value_t = 10_000)]
    infer_rows: usize,
    /// Files to import; `-` reads stdin (needs --format).
    #[arg(required = true)]
    files: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[arg(long, value_enum, default_value = "table")]
    format: QueryFormat,
    /// The SQL statement.
    sql: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum GenFormat {
    Parquet,
    Ndjson,
}

#[derive(Args)]
struct GenerateArgs {
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Default: from the --out extension, else parquet.
    #[arg(long, value_enum)]
    format: Option<GenFormat>,
    /// Days over which users arrive.
    #[arg(long, default_value_t = 90)]
    days: u32,
}

#[derive(Args)]
struct DemoArgs {
    /// Where the demo data lives.
    #[arg(long, default_value = "./northstar-data")]
    data: String,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:5433")]
    listen: std::net::SocketAddr,
    /// Events to generate on an empty location.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Run queries over `events` on a Ballista cluster: its scheduler as df://HOST:PORT.
    /// Catalog queries still answer here. The data location must be shared (s3://…).
    #[arg(long, value_parser = northstar_distributed::parse_scheduler_url)]
    ballista: Option<std::net::SocketAddr>,
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Address to listen on. Anything but loopback needs users (--users or --user).
    #[arg(long, default_value = "127.0.0.1:5433", env = "NORTHSTAR_LISTEN")]
    listen: std::net::SocketAddr,
    /// Users file: one `NAME ROLE VERIFIER` per line (role writer or reader; verifier from
    /// `northstar hash-password`).
    #[arg(long, env = "NORTHSTAR_USERS_FILE")]
    users: Option<PathBuf>,
    /// A user that may read and write, as NAME:PASSWORD (only its verifier is kept).
    #[arg(long = "user", env = "NORTHSTAR_USER", value_name = "NAME:PASSWORD")]
    writers: Vec<String>,
    /// A read-only user, as NAME:PASSWORD.
    #[arg(long = "read-only-user", env = "NORTHSTAR_READ_ONLY_USER", value_name = "NAME:PASSWORD")]
    readers: Vec<String>,
    /// PEM certificate chain for TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse connections that do not use TLS.
    #[arg(long)]
    require_tls: bool,
    /// Connections served at once; more are refused with SQLSTATE 53300.
    #[arg(long, default_value_t = 100)]
    max_connections: usize,
    /// Memory one running statement may use before it spills or fails, e.g. 2GiB
    /// (default: half of --memory-limit).
    #[arg(long, value_parser = parse_byte_size)]
    query_memory: Option<usize>,
    /// Default statement_timeout of each connection, in milliseconds (0: none).
    #[arg(long, default_value_t = 0)]
    statement_timeout_ms: u64,
}

#[derive(Args)]
struct SchedulerArgs {
    /// Address of the scheduler's gRPC service (executors and `serve --ballista` connect here).
    #[arg(long, default_value = "127.0.0.1:50050")]
    listen: std::net::SocketAddr,
    /// Seconds without a heartbeat after which an executor is lost and its work rescheduled
    /// (at least 10: a busy executor reports every 5 s).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(10..))]
    executor_timeout_seconds: u64,
}

#[derive(Args)]
struct ExecutorArgs {
    /// Address of the executor's data (Arrow Flight) service; its task service takes the next port.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: std::net::SocketAddr,
    /// The scheduler, as df://HOST:PORT.
    #[arg(long, default_value = "df://127.0.0.1:50050", value_parser = northstar_distributed::parse_scheduler_url)]
    scheduler: std::net::SocketAddr,
    /// Tasks run at once (default: number of cores).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Memory the running tasks may use before spilling, e.g. 8GiB (default: Ballista's share of RAM).
    #[arg(long, value_parser = parse_byte_size)]
    memory_limit: Option<usize>,
    /// Directory for shuffle files and spills (default: a new temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[derive(Args)]
struct HashPasswordArgs {
    /// The user name to print in the line.
    user: String,
    /// Role: writer or reader.
    #[arg(long, default_value = "writer")]
    role: String,
}

#[derive(Args)]
struct MaintenanceArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    layout: LayoutArgs,
}

#[derive(Args)]
struct VacuumArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Keep files referenced by versions younger than this many hours.
    #[arg(long, default_value_t = 168)]
    retention_hours: u64,
    /// List what would be deleted without deleting.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(log_filter()).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    // Planning deep SQL (reports, and plans decoded by a Ballista scheduler) recurses deeply;
    // Ballista's own binaries give their threads 32 MiB for the same reason.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// NORTHSTAR_LOG (default `warn`), without the kernel's error line for a location that has no
/// table yet: that case is normal before the first import and reported by Northstar itself.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NORTHSTAR_LOG").unwrap_or_else(|_| "warn".into());
    filter.add_directive("buoyant_kernel::snapshot::builder=off".parse().expect("directive"))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Import(args) => import(args).await,
        Command::Query(args) => query(args).await,
        Command::Generate(args) => generate(args),
        Command::Demo(args) => demo(args).await,
        Command::Serve(args) => serve(args).await,
        Command::HashPassword(args) => hash_password(args),
        Command::Optimize(args) => optimize(args).await,
        Command::Vacuum(args) => vacuum(args).await,
        Command::Scheduler(args) => {
            let options = northstar_distributed::SchedulerOptions {
                listen: args.listen,
                executor_timeout_seconds: args.executor_timeout_seconds,
            };
            northstar_distributed::run_scheduler(options).await
        }
        Command::Executor(args) => {
            let options = northstar_distributed::ExecutorOptions {
                listen: args.listen,
                scheduler: args.scheduler,
                concurrent_tasks: args.concurrent_tasks,
                memory_limit: args.memory_limit,
                work_dir: args.work_dir,
            };
            northstar_distributed::run_executor(options).await
        }
    }
}

async fn import(args: ImportArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let options = ImportOptions {
        format: args.format,
        overrides: FieldOverrides::parse(&args.map)?,
        rejects: args.rejects.clone(),
        infer_rows: args.infer_rows,
        progress: true,
        layout: args.layout.layout(),
    };
    let summary = import_into(&location, &args.files, &options).await?;
    eprintln!(
        "imported {} rows ({} rejected) from {} in {:.2} s: {:.0} rows/s; table version {}",
        summary.rows,
        summary.rejected,
        output::human_bytes(summary.input_bytes),
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second(),
        summary.version
    );
    if summary.rejected > 0 {
        if let Some(path) = &args.rejects {
            eprintln!("rejected rows and reasons: {}", path.display());
        }
    }
    Ok(())
}

async fn import_into(
    location: &DataLocation,
    files: &[String],
    options: &ImportOptions,
) -> Result<northstar_import::ImportSummary> {
    let mut store = EventStore::open(location).await?;
    Ok(northstar_import::import(&mut store, files, options).await?)
}

async fn query(args: QueryArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let ctx = open_session(&location, &args.engine.options()).await?;
    let store = EventStore::open(&location).await?;
    let frame = northstar_engine::execute_sql(&ctx, &store, &args.sql).await?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame.collect().await?;
    if batches.is_empty() {
        // so that CSV output still has its header line
        batches.push(datafusion::arrow::record_batch::RecordBatch::new_empty(schema));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        QueryFormat::Table => output::write_table(&mut out, &batches)?,
        QueryFormat::Csv => output::write_csv(&mut out, &batches)?,
        QueryFormat::Json => output::write_json(&mut out, &batches)?,
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<()> {
    let format = match args.format {
        Some(GenFormat::Parquet) => OutputFormat::Parquet,
        Some(GenFormat::Ndjson) => OutputFormat::Ndjson,
        None => match args.out.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => OutputFormat::Ndjson,
            _ => OutputFormat::Parquet,
        },
    };
    let config = GeneratorConfig { events: args.events, seed: args.seed, days: args.days, ..Default::default() };
    let bar = indicatif::ProgressBar::with_draw_target(Some(args.events), indicatif::ProgressDrawTarget::stderr());
    let summary = generate_to_file(&config, &args.out, format, |n| bar.set_position(n)).map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    eprintln!(
        "generated {} events of {} users into {} ({}) in {:.2} s",
        summary.events,
        summary.users,
        args.out.display(),
        output::human_bytes(summary.bytes),
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn demo(args: DemoArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data)?;
    let store = EventStore::open(&location).await?;
    if store.version().is_none() {
        let dir = tempfile_dir()?;
        let file = dir.join("demo-events.parquet");
        eprintln!("generating {} sample events …", args.events);
        let config = GeneratorConfig { events: args.events, ..Default::default() };
        generate_to_file(&config, &file, OutputFormat::Parquet, |_| {}).map_err(anyhow::Error::msg)?;
        let options = ImportOptions { progress: true, ..Default::default() };
        let summary = import_into(&location, &[file.display().to_string()], &options).await?;
        std::fs::remove_dir_all(&dir).ok();
        eprintln!("imported {} events in {:.1} s into {}", summary.rows, summary.elapsed.as_secs_f64(), args.data);
    } else {
        eprintln!("{} already holds events; using them", args.data);
    }
    let ctx = open_session(&location, &EngineOptions::default()).await?;
    let started = Instant::now();
    let batches = ctx
        .sql("SELECT event, count(*) AS events, count(DISTINCT user_id) AS users FROM events GROUP BY event ORDER BY events DESC")
        .await?
        .collect()
        .await?;
    output::write_table(&mut std::io::stdout().lock(), &batches)?;
    eprintln!("({:.2} s)", started.elapsed().as_secs_f64());
    let server = ServerArgs {
        listen: args.listen,
        users: None,
        writers: vec![],
        readers: vec![],
        tls_cert: None,
        tls_key: None,
        require_tls: false,
        max_connections: 100,
        query_memory: None,
        statement_timeout_ms: 0,
    };
    let server = bind_server(&location, &EngineOptions::default(), &server, None).await?;
    let port = server.local_addr().port();
    println!("\nServing {} over the PostgreSQL protocol on {} (Ctrl-C stops). Try:", args.data, server.local_addr());
    println!("  psql -h 127.0.0.1 -p {port} -U northstar northstar");
    println!(
        "  northstar=> SELECT event_date, count(DISTINCT user_id) AS dau FROM events GROUP BY 1 ORDER BY 1 LIMIT 7;"
    );
    println!("  northstar=> SELECT * FROM funnel(['signup', 'view_item', 'add_to_cart', 'purchase'], 'window=1 day');");
    println!("  northstar=> SELECT * FROM retention('start=signup; period=week; periods=4');");
    run_until_ctrl_c(server).await
}

async fn bind_server(
    location: &DataLocation,
    engine: &EngineOptions,
    args: &ServerArgs,
    ballista: Option<std::net::SocketAddr>,
) -> Result<northstar_server::Server> {
    let mut users = northstar_server::Users::default();
    if let Some(path) = &args.users {
        users.load_file(path).map_err(anyhow::Error::msg)?;
    }
    for spec in &args.writers {
        users.add_from_spec(spec, northstar_server::Role::Writer).map_err(anyhow::Error::msg)?;
    }
    for spec in &args.readers {
        users.add_from_spec(spec, northstar_server::Role::Reader).map_err(anyhow::Error::msg)?;
    }
    let mut options = northstar_server::ServerOptions::new(args.listen, engine.clone());
    options.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(northstar_server::TlsFiles { cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    options.require_tls = args.require_tls;
    options.max_connections = args.max_connections;
    if let Some(bytes) = args.query_memory {
        options.query_memory = bytes;
    }
    options.statement_timeout =
        (args.statement_timeout_ms > 0).then(|| Duration::from_millis(args.statement_timeout_ms));
    if let Some(scheduler) = ballista {
        if location.is_memory() {
            bail!(
                "--ballista needs a data location the cluster can read (s3://… or a shared directory), not {location}"
            );
        }
        let url = format!("http://{scheduler}");
        options.session_upgrade = Some(northstar_server::SessionUpgrade(std::sync::Arc::new(move |state| {
            northstar_distributed::cluster_state(state, &url)
        })));
    }
    Ok(northstar_server::Server::bind(location, users, options).await?)
}

async fn run_until_ctrl_c(server: northstar_server::Server) -> Result<()> {
    tokio::select! {
        _ = server.run() => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let server = bind_server(&location, &args.engine.options(), &args.server, args.ballista).await?;
    // The address line is what scripts and tests wait for.
    println!("listening on {}", server.local_addr());
    use std::io::Write as _;
    std::io::stdout().flush().ok();
    run_until_ctrl_c(server).await
}

fn hash_password(args: HashPasswordArgs) -> Result<()> {
    let role = northstar_server::Role::parse(&args.role).map_err(anyhow::Error::msg)?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("empty password on stdin");
    }
    let role = match role {
        northstar_server::Role::Writer => "writer",
        northstar_server::Role::Reader => "reader",
    };
    println!("{} {role} {}", args.user, northstar_server::Verifier::generate(password));
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("northstar-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn optimize(args: MaintenanceArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let ctx = northstar_engine::new_context(&args.engine.options())?;
    let mut store = EventStore::open(&location).await?;
    let before = store.file_count();
    let started = Instant::now();
    let summary = store.optimize(ctx.state(), &args.layout.layout()).await?;
    eprintln!(
        "optimized {} partitions: {} files → {} files ({} removed, {} added) in {:.2} s; table version {}",
        summary.partitions_optimized,
        before,
        store.file_count(),
        summary.files_removed,
        summary.files_added,
        started.elapsed().as_secs_f64(),
        summary.version
    );
    Ok(())
}

async fn vacuum(args: VacuumArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let mut store = EventStore::open(&location).await?;
    if store.version().is_none() {
        bail!("no events table at {}", args.data.data);
    }
    let summary = store.vacuum(Duration::from_secs(args.retention_hours * 3600), args.dry_run).await?;
    let verb = if summary.dry_run { "would delete" } else { "deleted" };
    eprintln!("{verb} {} unreferenced files older than {} h", summary.files_deleted, args.retention_hours);
    Ok(())
}
