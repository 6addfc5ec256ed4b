//! Saved view definitions (`CREATE VIEW`), kept next to the events table so they travel with
//! the data: one `_northstar_views/<name>.sql` object per view, holding its CREATE statement.
//! Delta ignores paths that start with `_`, so the table and its tools never see them.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::table::EventStore;
use crate::{Result, StorageError};

const DIR: &str = "_northstar_views";

fn path(name: &str) -> Path {
    Path::from(format!("{DIR}/{}.sql", name.to_ascii_lowercase()))
}

impl EventStore {
    /// Saves (or replaces) a view's CREATE statement.
    pub async fn save_view(&self, name: &str, create_sql: &str) -> Result<()> {
        let store = self.delta_table().object_store();
        store.put(&path(name), PutPayload::from(create_sql.to_string())).await.map_err(|e| self.view_error(name, e))?;
        Ok(())
    }

    pub async fn drop_view(&self, name: &str) -> Result<()> {
        let store = self.delta_table().object_store();
        match store.delete(&path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.view_error(name, e)),
        }
    }

    /// Every saved view as (name, CREATE statement), by name.
    pub async fn views(&self) -> Result<Vec<(String, String)>> {
        let store = self.delta_table().object_store();
        let listed: Vec<_> =
            store.list(Some(&Path::from(DIR))).try_collect().await.map_err(|e| self.view_error("*", e))?;
        let mut views = Vec::new();
        for meta in listed {
            let Some(name) = meta.location.filename().and_then(|f| f.strip_suffix(".sql")).map(str::to_string) else {
                continue;
            };
            let bytes = store
                .get(&meta.location)
                .await
                .map_err(|e| self.view_error(&name, e))?
                .bytes()
                .await
                .map_err(|e| self.view_error(&name, e))?;
            views.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
        views.sort();
        Ok(views)
    }

    fn view_error(&self, name: &str, e: object_store::Error) -> StorageError {
        StorageError::InvalidLocation(self.location().to_string(), format!("view {name}: {e}"))
    }
}
