//! `northstar serve`: the events table over the PostgreSQL wire protocol.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use northstar_collector::{Collector, CommitHook};
use northstar_engine::EngineOptions;
use northstar_server::{Role, Server, ServerOptions, SessionUpgrade, TlsFiles, Users};
use northstar_storage::DataLocation;

use crate::cli::{ServeArgs, ServerArgs};

pub async fn run(args: ServeArgs) -> Result<()> {
    let location = DataLocation::parse(&args.data.data)?;
    let server = bind_server(&location, &args.engine.options(), &args.server, args.ballista).await?;
    let collector = match args.collector.http {
        Some(listen) => {
            let mut options = args.collector.options(listen);
            options.on_commit = Some(CommitHook(Arc::new(server.table_change_notifier())));
            Some(Collector::bind(&location, options).await?)
        }
        None => None,
    };
    // The address lines are what scripts and tests wait for.
    println!("listening on {}", server.local_addr());
    if let Some(collector) = &collector {
        println!("collecting on http://{}", collector.local_addr());
    }
    std::io::stdout().flush().ok();
    run_until_ctrl_c(server, collector).await
}

/// A server over `location` with the users, TLS and limits of `args`; with `ballista`, its
/// queries over `events` are planned on that cluster's scheduler.
pub async fn bind_server(
    location: &DataLocation,
    engine: &EngineOptions,
    args: &ServerArgs,
    ballista: Option<SocketAddr>,
) -> Result<Server> {
    let mut users = Users::default();
    if let Some(path) = &args.users {
        users.load_file(path).map_err(anyhow::Error::msg)?;
    }
    for spec in &args.writers {
        users.add_from_spec(spec, Role::Writer).map_err(anyhow::Error::msg)?;
    }
    for spec in &args.readers {
        users.add_from_spec(spec, Role::Reader).map_err(anyhow::Error::msg)?;
    }
    let mut options = ServerOptions::new(args.listen, engine.clone());
    options.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
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
        options.session_upgrade =
            Some(SessionUpgrade(Arc::new(move |state| northstar_distributed::cluster_state(state, &url))));
    }
    Ok(Server::bind(location, users, options).await?)
}

/// Serves the wire endpoint (and the collector, when there is one) until Ctrl-C.
pub async fn run_until_ctrl_c(server: Server, collector: Option<Collector>) -> Result<()> {
    let collector = async {
        match collector {
            Some(collector) => collector.run().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = server.run() => Ok(()),
        served = collector => Ok(served?),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping");
            Ok(())
        }
    }
}
