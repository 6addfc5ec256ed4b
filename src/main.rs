//! `northstar`: the command-line face of the Northstar crates. Parses the command line, sets
//! up logging and the runtime, and hands each command to its module in `commands`.

mod cli;
mod commands;
mod output;

// mimalloc, as DataFusion's own CLI: sequence_count on 20M events 0.57 → 0.46 s against the
// system allocator. Built without transparent huge pages (feature `no_thp`): with them, peak
// memory rose by a third to a half (docs/decisions.md, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};

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
        Command::Import(args) => commands::import::run(args).await,
        Command::Query(args) => commands::query::run(args).await,
        Command::Generate(args) => commands::generate::run(args),
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Serve(args) => commands::serve::run(*args).await,
        Command::HashPassword(args) => commands::hash_password::run(args),
        Command::Optimize(args) => commands::maintenance::optimize(args).await,
        Command::Vacuum(args) => commands::maintenance::vacuum(args).await,
        Command::RebuildPersons(args) => commands::maintenance::rebuild_persons(args).await,
        Command::Scheduler(args) => commands::cluster::scheduler(args).await,
        Command::Executor(args) => commands::cluster::executor(args).await,
    }
}
