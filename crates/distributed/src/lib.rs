//! Northstar on Apache DataFusion Ballista: the same SQL, functions and Delta table on a
//! cluster (docs/distributed.md).
//!
//! - [`run_scheduler`] and [`run_executor`] start Ballista's own scheduler and executor with
//!   Northstar's functions registered and its `events` provider decodable
//!   ([`codec::NorthstarLogicalCodec`]), reading files through [`ClusterObjectStores`].
//! - [`cluster_state`] makes a client session (the wire endpoint's) send every query over
//!   `events` to the scheduler, while catalog queries answer locally.
//!
//! ```text
//! northstar scheduler --listen 127.0.0.1:50050
//! northstar executor --listen 127.0.0.1:50051 --scheduler 127.0.0.1:50050
//! northstar serve --data s3://bucket/analytics --ballista df://127.0.0.1:50050
//! ```

mod client;
pub mod codec;
mod executor;
mod object_stores;
mod scheduler;

use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use datafusion::common::Result;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionState;
use datafusion::prelude::SessionConfig;

pub use client::{cluster_state, placement, ClusterPlanner, Placement};
pub use executor::{run_executor, ExecutorOptions};
pub use object_stores::ClusterObjectStores;
pub use scheduler::{run_scheduler, SchedulerOptions};

/// The settings every cluster process starts from: Ballista's, then Northstar's fixed ones.
pub fn cluster_config() -> SessionConfig {
    northstar_engine::configure(SessionConfig::new_with_ballista())
}

/// A runtime that opens the table's object stores on demand.
pub fn cluster_runtime() -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(ClusterObjectStores::default())).build_arc()
}

/// A scheduler session: Northstar's functions, with the client's settings.
pub fn cluster_session_state(config: SessionConfig) -> Result<SessionState> {
    northstar_engine::session_state(northstar_engine::configure(config), cluster_runtime()?)
}

/// Parses `df://host:port` (the form Ballista's clients use) into the scheduler's address.
pub fn parse_scheduler_url(text: &str) -> std::result::Result<std::net::SocketAddr, String> {
    let rest = text.strip_prefix("df://").ok_or_else(|| format!("'{text}': expected df://HOST:PORT"))?;
    use std::net::ToSocketAddrs;
    rest.to_socket_addrs()
        .map_err(|e| format!("'{text}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{text}': the host has no address"))
}
