//! Identity resolution: one person across anonymous ids, devices and logins.
//!
//! Persons are derived from the events alone (docs/identity.md): the identity links in the
//! table (`links.rs`: `$identify`, Segment `identify`/`alias`, `$create_alias`,
//! `$merge_dangerously`, any event with both an anonymous and a user id) are applied in time
//! order with PostHog's merge rules (`resolve.rs`, reserved ids in `reserved.rs`). The links of
//! a table version are kept with the files they came from (`state.rs`), so a new version reads
//! only its new files, and the persons always belong to exactly the version being read.
//! `events` gains a `person_id` column resolved at scan time (`person_events.rs`), and
//! `persons`, `groups` and `group_members` are SQL over it (`tables.rs`).

mod extract;
mod id_map;
mod links;
mod person_events;
mod reserved;
mod resolve;
mod state;
mod tables;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use northstar_storage::EventStore;

pub use extract::{ANONYMOUS_ID, MESSAGE_TYPE, PREVIOUS_ID};
pub use links::{link_of, Link, LinkColumns, LinkKind};
pub use person_events::{MappedDictionaries, PersonEvents, PersonOf, OWN_BUCKET, PERSON_ID};
pub use reserved::is_reserved_id;
pub use resolve::{resolve, Persons};
pub use state::{IdentityState, SAVED_STATE};
pub use tables::{
    derived_tables, rows_by_account, rows_with_account_columns, DerivedTable, DEFAULT_GROUP_TYPE, GROUP_COLUMNS,
    PERSON_COLUMNS,
};

/// The newest identity state this process made of each table (by location), shared by all
/// its sessions: a new version starts from it and reads only the files it has not read.
static STATES: LazyLock<tokio::sync::Mutex<HashMap<String, Arc<IdentityState>>>> = LazyLock::new(Default::default);

/// The identity state of the version `store` holds; `schema` is that version's query schema
/// (`events` as sessions see it). Starts from this process's newest state of the table, else
/// from the saved one, and saves the result when it is of a newer version than the start.
pub async fn identity_at(store: &EventStore, state: &SessionState, schema: &SchemaRef) -> Result<Arc<IdentityState>> {
    let spec = store.snapshot_spec().map_err(external)?;
    let key = spec.table_url.clone();
    let mut states = STATES.lock().await;
    let known = states.get(&key).cloned();
    if let Some(known) = known.as_ref().filter(|k| k.is_of(&spec)) {
        return Ok(known.clone());
    }
    let start = match known {
        Some(known) => Some(known),
        None => load_saved(store).await.map(Arc::new),
    };
    // A saved state of exactly this version (number and files) is this version's: decoding it
    // resolved its persons already, and bringing it "up to date" would only resolve them again.
    let identity = match &start {
        Some(saved) if saved.is_of(&spec) => saved.clone(),
        _ => Arc::new(IdentityState::bring_to(start.as_deref(), state, &spec, schema).await?),
    };
    // Older states are replaced, and one of this version's number but other files.
    let replaces = |s: &Arc<IdentityState>| s.version <= identity.version && !s.is_of(&spec);
    if start.as_ref().is_none_or(replaces) {
        save(store, &identity).await;
    }
    if states.get(&key).is_none_or(replaces) {
        states.insert(key, identity.clone());
    }
    Ok(identity)
}

/// Derives the identity state of the version `store` holds from the events alone, ignoring any
/// saved or remembered state, and saves it (`northstar rebuild-persons`).
pub async fn rebuild(store: &EventStore, state: &SessionState, schema: &SchemaRef) -> Result<Arc<IdentityState>> {
    let spec = store.snapshot_spec().map_err(external)?;
    let identity = Arc::new(IdentityState::bring_to(None, state, &spec, schema).await?);
    store.write_derived(SAVED_STATE, identity.encode()?).await.map_err(external)?;
    STATES.lock().await.insert(spec.table_url, identity.clone());
    Ok(identity)
}

/// The saved state, or `None` when there is none or it cannot be read (then it is derived
/// again from the events: it is a cache).
async fn load_saved(store: &EventStore) -> Option<IdentityState> {
    let bytes = match store.read_derived(SAVED_STATE).await {
        Ok(bytes) => bytes?,
        Err(e) => {
            tracing::warn!("reading the saved identity state: {e}; deriving it from the events");
            return None;
        }
    };
    IdentityState::decode(bytes)
        .inspect_err(|e| tracing::warn!("the saved identity state is unreadable ({e}); deriving it from the events"))
        .ok()
}

/// Saves `identity`; a location that refuses the write (read-only) only costs the next process
/// the time to derive it again.
async fn save(store: &EventStore, identity: &IdentityState) {
    let written = match identity.encode() {
        Ok(bytes) => store.write_derived(SAVED_STATE, bytes).await.map_err(external),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!("saving the identity state of version {}: {e}", identity.version);
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}
