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
        let objects = self.objects_under(DIR).await.map_err(|(file, e)| self.view_error(&file, e))?;
        let mut views: Vec<_> = objects
            .into_iter()
            .filter_map(|(file, bytes)| {
                let name = file.strip_suffix(".sql")?.to_string();
                Some((name, String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect();
        views.sort();
        Ok(views)
    }

    /// The file name and contents of every object under `dir` of the location (saved views
    /// and tables); an error names the file it met.
    pub(crate) async fn objects_under(
        &self,
        dir: &str,
    ) -> std::result::Result<Vec<(String, bytes::Bytes)>, (String, object_store::Error)> {
        let store = self.delta_table().object_store();
        let listed: Vec<_> =
            store.list(Some(&Path::from(dir))).try_collect().await.map_err(|e| ("*".to_string(), e))?;
        let mut objects = Vec::with_capacity(listed.len());
        for meta in listed {
            let file = meta.location.filename().unwrap_or_default().to_string();
            let read = async { store.get(&meta.location).await?.bytes().await };
            match read.await {
                Ok(bytes) => objects.push((file, bytes)),
                Err(e) => return Err((file, e)),
            }
        }
        Ok(objects)
    }

    fn view_error(&self, name: &str, e: object_store::Error) -> StorageError {
        StorageError::InvalidLocation(self.location().to_string(), format!("view {name}: {e}"))
    }
}
