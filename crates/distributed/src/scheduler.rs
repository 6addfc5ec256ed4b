//! `northstar scheduler`: Ballista's scheduler, planning with Northstar's functions.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

use crate::codec::{NorthstarLogicalCodec, NorthstarPhysicalCodec};
use crate::{cluster_config, cluster_session_state};

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub listen: SocketAddr,
    /// Seconds without a heartbeat after which an executor counts as lost and its tasks are
    /// scheduled elsewhere.
    pub executor_timeout_seconds: u64,
}

/// Runs the scheduler until the process ends.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<()> {
    let mut config = SchedulerConfig::default();
    config.bind_host = options.listen.ip().to_string();
    config.bind_port = options.listen.port();
    config.external_host = options.listen.ip().to_string();
    config.executor_timeout_seconds = options.executor_timeout_seconds;
    config.expire_dead_executor_interval_seconds = (options.executor_timeout_seconds / 3).clamp(1, 15);
    config.no_executors_grace_period_seconds = options.executor_timeout_seconds;
    // Executors ask for work: after an executor is lost, the others pick up its reset tasks
    // (with pushed tasks, Ballista 55 left such a job waiting; docs/distributed.md).
    config.scheduling_policy = TaskSchedulingPolicy::PullStaged;
    // Spread each stage's tasks over the executors (Ballista's default fills one first).
    config.task_distribution = ballista_scheduler::config::TaskDistributionPolicy::RoundRobin;
    config.override_logical_codec = Some(Arc::new(NorthstarLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(NorthstarPhysicalCodec::default()));
    config.override_config_producer = Some(Arc::new(cluster_config));
    config.override_session_builder = Some(Arc::new(cluster_session_state));
    let cluster = BallistaCluster::new_from_config(&config).await.context("creating the Ballista cluster state")?;
    tracing::info!("Northstar scheduler listening on {}", options.listen);
    start_server(cluster, options.listen, Arc::new(config))
        .await
        .with_context(|| format!("running the scheduler on {}", options.listen))
}
