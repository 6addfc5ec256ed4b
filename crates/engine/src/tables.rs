//! The default schema's tables, where registering a table under a taken name replaces it in
//! one step.
//!
//! Each commit re-registers `events` at its new version. DataFusion's `MemorySchemaProvider`
//! refuses a taken name, so that took a deregister then a register, and a statement planned
//! between the two failed with "table 'northstar.public.events' not found" (seen under the
//! wire soak test: a reader beside a stream of INSERTs). Here the swap is one map insert.
//! `CREATE TABLE` / `CREATE VIEW` check for an existing name themselves before they register, so
//! their "already exists" errors are unchanged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

#[derive(Debug, Default)]
pub struct ReplacingSchema {
    tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl ReplacingSchema {
    /// The table under `name`, without the async lookup.
    pub fn get(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.tables.read().unwrap().get(name).cloned()
    }
}

#[async_trait]
impl SchemaProvider for ReplacingSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.read().unwrap().keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.read().unwrap().get(name).cloned())
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.write().unwrap().insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.write().unwrap().remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.read().unwrap().contains_key(name)
    }
}

/// Makes `ctx`'s default schema a [`ReplacingSchema`], while it holds no table yet.
pub fn use_replacing_schema(ctx: &SessionContext) -> Result<()> {
    let options = ctx.state().config().options().catalog.clone();
    let Some(catalog) = ctx.catalog(&options.default_catalog) else { return Ok(()) };
    let empty = catalog.schema(&options.default_schema).is_none_or(|s| s.table_names().is_empty());
    if empty {
        catalog.register_schema(&options.default_schema, Arc::new(ReplacingSchema::default()))?;
    }
    Ok(())
}

/// Puts `provider` under `name` (resolved as DataFusion resolves it): a replacement in one step
/// where its schema is a [`ReplacingSchema`], deregister and register otherwise.
pub fn replace_table(ctx: &SessionContext, name: &str, provider: Arc<dyn TableProvider>) -> Result<()> {
    let options = ctx.state().config().options().catalog.clone();
    let reference = TableReference::from(name).resolve(&options.default_catalog, &options.default_schema);
    let schema = ctx.catalog(&reference.catalog).and_then(|c| c.schema(&reference.schema));
    if schema.is_none_or(|s| s.downcast_ref::<ReplacingSchema>().is_none()) {
        ctx.deregister_table(name)?;
    }
    ctx.register_table(name, provider)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::catalog::MemTable;
    use datafusion::prelude::SessionConfig;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_table_is_never_missing_for_a_reader() {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
        use_replacing_schema(&ctx).unwrap();
        let table = || -> Arc<dyn TableProvider> {
            Arc::new(MemTable::try_new(Arc::new(datafusion::arrow::datatypes::Schema::empty()), vec![vec![]]).unwrap())
        };
        replace_table(&ctx, "events", table()).unwrap();
        let writer = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for _ in 0..20_000 {
                    replace_table(&ctx, "events", table()).unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut looked = 0;
        while !writer.is_finished() {
            assert!(ctx.table_exist("events").unwrap(), "events missing after {looked} looks");
            looked += 1;
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        // CREATE TABLE still refuses a taken name.
        let e = ctx.sql("CREATE TABLE events AS SELECT 1").await.unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }
}
