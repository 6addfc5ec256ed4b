//! Derived state kept next to the events table: objects computed from the events (the identity
//! links, `_northstar_identity/`) that save recomputing them at every start. They are caches in
//! the strict sense: each says which table version it covers, and a reader that finds one
//! missing, older or damaged derives what it needs from the events again. Delta ignores paths
//! that start with `_`.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::table::EventStore;
use crate::{Result, StorageError};

impl EventStore {
    /// The bytes of the derived object at `name` (a path under the table), `None` if absent.
    pub async fn read_derived(&self, name: &str) -> Result<Option<bytes::Bytes>> {
        let store = self.delta_table().object_store();
        let read = async { store.get(&Path::from(name)).await?.bytes().await };
        match read.await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.derived_error(name, e)),
        }
    }

    /// Writes (or replaces) the derived object at `name` in one put: a reader sees the old
    /// object or the new one, never part of either.
    pub async fn write_derived(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let store = self.delta_table().object_store();
        store.put(&Path::from(name), PutPayload::from(bytes)).await.map_err(|e| self.derived_error(name, e))?;
        Ok(())
    }

    fn derived_error(&self, name: &str, e: object_store::Error) -> StorageError {
        StorageError::InvalidLocation(self.location().to_string(), format!("{name}: {e}"))
    }
}
