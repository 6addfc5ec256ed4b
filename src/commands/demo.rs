//! `northstar demo`: sample data into an empty location, one query, then a server over it.

use std::time::Instant;

use anyhow::{Context, Result};
use northstar_collector::{Collector, CollectorOptions, CommitHook};
use northstar_engine::{open_session, EngineOptions};
use northstar_generate::{generate_to_file, GeneratorConfig, OutputFormat, PlantedExperiment};
use northstar_import::ImportOptions;
use northstar_storage::{DataLocation, EventStore};

use crate::cli::{DemoArgs, ServerArgs};
use crate::commands::import::import_into;
use crate::commands::serve::{bind_server, run_until_ctrl_c};
use crate::output;

/// Share of the demo's users who start anonymous (docs/identity.md).
const DEMO_IDENTITIES: f64 = 0.3;
/// Accounts (`company` groups) the demo's users belong to.
const DEMO_ACCOUNTS: u32 = 300;

pub async fn run(args: DemoArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data)?;
    let store = EventStore::open(&location).await?;
    if store.version().is_none() {
        // Removed when dropped, whether the import succeeds or not.
        let dir =
            tempfile::Builder::new().prefix("northstar-demo-").tempdir().context("creating a temporary directory")?;
        let file = dir.path().join("demo-events.parquet");
        eprintln!("generating {} sample events …", args.events);
        // The demo data carries an A/B test (README, docs/experiments.md), and 30 % of its users
        // browse anonymously before they sign in, some on two devices; users belong to accounts
        // (docs/identity.md).
        let config = GeneratorConfig {
            events: args.events,
            experiment: Some(PlantedExperiment::demo()),
            identities: DEMO_IDENTITIES,
            accounts: DEMO_ACCOUNTS,
            ..Default::default()
        };
        generate_to_file(&config, &file, OutputFormat::Parquet, |_| {}).map_err(anyhow::Error::msg)?;
        let options = ImportOptions { progress: true, ..Default::default() };
        let summary = import_into(&location, &[file.display().to_string()], &options).await?;
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
    // A funnel across the sign-up: the anonymous app open and the identified purchase are one
    // person's; counted by id, they are two.
    let started = Instant::now();
    let batches = ctx
        .sql(
            "SELECT p.step, p.step_name, p.users AS persons, u.users AS ids \
             FROM funnel(['app_open', 'signup', 'purchase'], 'window=7 days; by=person') p \
             JOIN funnel(['app_open', 'signup', 'purchase'], 'window=7 days; by=user') u ON p.step = u.step ORDER BY p.step",
        )
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
    let mut options = CollectorOptions::new(args.http);
    options.on_commit = Some(CommitHook(std::sync::Arc::new(server.table_change_notifier())));
    let collector = Collector::bind(&location, options)
        .await
        .with_context(|| format!("starting the HTTP collector on {} (choose another with --http)", args.http))?;
    let port = server.local_addr().port();
    println!("\nServing {} over the PostgreSQL protocol on {} (Ctrl-C stops). Try:", args.data, server.local_addr());
    println!("  psql -h 127.0.0.1 -p {port} -U northstar northstar");
    println!(
        "  northstar=> SELECT event_date, count(DISTINCT user_id) AS dau FROM events GROUP BY 1 ORDER BY 1 LIMIT 7;"
    );
    println!("  northstar=> SELECT * FROM funnel(['signup', 'view_item', 'add_to_cart', 'purchase'], 'window=1 day');");
    println!("  northstar=> SELECT * FROM retention('start=signup; period=week; periods=4');");
    println!(
        "\nEvents from Segment's or PostHog's SDKs are collected on http://{} (docs/collector.md), e.g.:",
        collector.local_addr()
    );
    println!("  curl -d '{{\"event\":\"signup\",\"distinct_id\":\"u1\"}}' http://{}/capture/", collector.local_addr());
    run_until_ctrl_c(server, Some(collector)).await
}
