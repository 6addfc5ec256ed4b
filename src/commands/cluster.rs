//! `northstar scheduler` and `northstar executor`: Ballista's processes with Northstar's
//! functions (docs/distributed.md).

use anyhow::Result;
use northstar_distributed::{ExecutorOptions, SchedulerOptions};

use crate::cli::{ExecutorArgs, SchedulerArgs};

pub async fn scheduler(args: SchedulerArgs) -> Result<()> {
    let options = SchedulerOptions { listen: args.listen, executor_timeout_seconds: args.executor_timeout_seconds };
    northstar_distributed::run_scheduler(options).await
}

pub async fn executor(args: ExecutorArgs) -> Result<()> {
    let options = ExecutorOptions {
        listen: args.listen,
        scheduler: args.scheduler,
        concurrent_tasks: args.concurrent_tasks,
        memory_limit: args.memory_limit,
        work_dir: args.work_dir,
    };
    northstar_distributed::run_executor(options).await
}
