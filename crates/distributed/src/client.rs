//! The client side: a session whose queries over `events` are planned and run by a Ballista
//! cluster, while everything that reads no table data of the cluster's — the catalog
//! (`pg_catalog`, `information_schema`), `SHOW`, constant queries — is planned here, as on a
//! single node. So BI tools introspect the server as before while their reports run on the
//! cluster.

use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::extension::SessionConfigExt;
use ballista_core::planner::BallistaQueryPlanner;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{not_impl_err, Result};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use northstar_storage::EventSnapshot;

use crate::codec::{NorthstarLogicalCodec, NorthstarPhysicalCodec};

/// Plans reading `events` go to the cluster; the rest is planned locally.
#[derive(Debug)]
pub struct ClusterPlanner {
    cluster: BallistaQueryPlanner<LogicalPlanNode>,
    local: Arc<DeltaPlanner>,
}

/// Where a plan runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    Cluster,
    Local,
}

/// Decides where `plan` runs: on the cluster when it reads `events`. A plan that reads
/// `events` together with another table (the catalog's tables exist only in this process)
/// is refused with an error naming that table.
pub fn placement(plan: &LogicalPlan) -> Result<Placement> {
    let (mut events, mut other) = (false, None);
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(TableScan { table_name, source, .. }) = node {
            if source_as_provider(source)?.downcast_ref::<EventSnapshot>().is_some() {
                events = true;
            } else {
                other.get_or_insert_with(|| table_name.to_string());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match (events, other) {
        (false, _) => Ok(Placement::Local),
        (true, None) => Ok(Placement::Cluster),
        (true, Some(table)) => not_impl_err!(
            "this query reads events together with {table}, which exists only on this server, not on the cluster; query them separately"
        ),
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        match placement(plan)? {
            Placement::Cluster => self.cluster.create_physical_plan(plan, session).await,
            Placement::Local => self.local.create_physical_plan(plan, session).await,
        }
    }
}

/// Turns a Northstar session state into one whose `events` queries run on the Ballista
/// scheduler at `scheduler_url` (`http://host:port`). Northstar's functions stay registered
/// (Ballista's own upgrade would replace them with DataFusion's defaults), and Ballista's
/// settings apply (among them: text read as Utf8, not Utf8View, for Arrow Flight).
pub fn cluster_state(state: SessionState, scheduler_url: &str) -> SessionState {
    let codec = Arc::new(NorthstarLogicalCodec::default());
    let config = state
        .config()
        .clone()
        .with_ballista_logical_extension_codec(codec.clone())
        .with_ballista_physical_extension_codec(Arc::new(NorthstarPhysicalCodec::default()))
        .upgrade_for_ballista()
        // Ballista 55's adaptive planner hangs a job that loses an executor mid-stage ("Can't
        // find active stage to update stage outputs"); its static planner reruns the lost work.
        .with_ballista_adaptive_query_planner(false)
        // `person_id` is resolved in this process's scan; executors read the files only.
        .with_extension(Arc::new(northstar_engine::EventsWithoutPersons));
    let planner = ClusterPlanner {
        cluster: BallistaQueryPlanner::with_extension(scheduler_url.to_string(), config.ballista_config(), codec),
        local: DeltaPlanner::new(),
    };
    let rules = ballista_core::optimizer::with_ballista_optimizer_rules(state.optimizers());
    SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_optimizer_rules(rules)
        .with_query_planner(Arc::new(planner))
        .build()
}
