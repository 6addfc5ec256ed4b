//! `northstar executor`: Ballista's executor, running plan fragments with Northstar's
//! functions and reading the table's files from the shared location.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};

use crate::codec::{NorthstarLogicalCodec, NorthstarPhysicalCodec};
use crate::{cluster_config, cluster_runtime, cluster_session_state};

#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Address of the executor's Arrow Flight service (shuffle data); its task service
    /// listens on the next port.
    pub listen: SocketAddr,
    pub scheduler: SocketAddr,
    /// Tasks run at once (default: the core count).
    pub concurrent_tasks: Option<usize>,
    /// Memory all running tasks may use before spilling (default: Ballista's share of RAM).
    pub memory_limit: Option<usize>,
    /// Shuffle files and spills (default: a new temporary directory).
    pub work_dir: Option<PathBuf>,
}

/// Runs the executor until the process ends or the scheduler tells it to stop.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let registry = BallistaFunctionRegistry::from(&cluster_session_state(cluster_config())?);
    let grpc_port =
        options.listen.port().checked_add(1).ok_or_else(|| {
            anyhow!("--listen port {} leaves no room for the task port after it", options.listen.port())
        })?;
    let config = ExecutorProcessConfig {
        bind_host: options.listen.ip().to_string(),
        external_host: Some(options.listen.ip().to_string()),
        port: options.listen.port(),
        grpc_port,
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        vcores: options
            .concurrent_tasks
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        work_dir: options.work_dir.map(|d| d.display().to_string()),
        memory_pool_size: options.memory_limit.map(|b| b as u64),
        print_thread_info: false,
        // Asks the scheduler for work, which is also its heartbeat (every 5 s when busy).
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        override_function_registry: Some(Arc::new(registry)),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_runtime_producer: Some(Arc::new(|_| cluster_runtime())),
        override_logical_codec: Some(Arc::new(NorthstarLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(NorthstarPhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!("Northstar executor on {} (tasks on {grpc_port}), scheduler {}", options.listen, options.scheduler);
    start_executor_process(Arc::new(config)).await.map_err(|e| anyhow!("executor on {}: {e}", options.listen))
}
