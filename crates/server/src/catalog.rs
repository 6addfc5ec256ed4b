//! What every connection's session starts from: Northstar's engine session, the `events`
//! table kept current, `pg_catalog` from datafusion-pg-catalog, and the few PostgreSQL
//! functions that crate leaves out (`version`, `current_setting`, `pg_typeof`,
//! `col_description`, `pg_get_indexdef`); Northstar's functions in `pg_proc` come from
//! `function_catalog`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::MemTable;
use datafusion::common::{exec_err, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};
use northstar_engine::EngineOptions;
use northstar_storage::{core_schema, DataLocation, EventStore, StorageError};
use tokio::sync::Mutex;

use crate::settings::{Settings, PG_VERSION};
use crate::SessionUpgrade;

/// The database name clients connect to and `current_database()` returns.
pub const DATABASE: &str = "northstar";

/// How stale `events` may be for readers when another process writes to the table: its Delta
/// log is listed at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The events table shared by every connection: one writer handle (appends are serialized in
/// this process; Delta's commit protocol orders them against other processes) and the table
/// version sessions currently read.
pub struct SharedEventStore {
    store: Mutex<EventStore>,
    checked: std::sync::Mutex<Instant>,
    /// Set when a writer in this process (the HTTP collector) committed: the next statement
    /// reloads at once instead of waiting for the interval.
    stale: std::sync::atomic::AtomicBool,
}

impl SharedEventStore {
    pub async fn open(location: &DataLocation) -> Result<Self, StorageError> {
        Ok(SharedEventStore {
            store: Mutex::new(EventStore::open(location).await?),
            checked: std::sync::Mutex::new(Instant::now()),
            stale: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Registers the current version in `ctx`'s catalog (shared by all sessions). Before the
    /// first write there is no Delta table: an empty table with the core columns stands in,
    /// so clients can introspect and query it.
    pub async fn register(&self, ctx: &SessionContext) -> Result<(), StorageError> {
        let store = self.store.lock().await;
        if store.version().is_some() {
            northstar_engine::register_events(ctx, &store).await
        } else {
            let empty = MemTable::try_new(core_schema(), vec![vec![]])?;
            northstar_engine::replace_table(ctx, "events", Arc::new(empty))?;
            Ok(())
        }
    }

    /// Marks the registered version as out of date (another writer in this process committed).
    pub fn mark_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Picks up commits made by other processes, at most once per [`REFRESH_INTERVAL`] (at
    /// once after [`Self::mark_stale`]).
    pub async fn refresh(&self, ctx: &SessionContext) -> Result<(), StorageError> {
        {
            let mut checked = self.checked.lock().unwrap();
            let stale = self.stale.swap(false, std::sync::atomic::Ordering::SeqCst);
            if !stale && checked.elapsed() < REFRESH_INTERVAL {
                return Ok(());
            }
            *checked = Instant::now();
        }
        let changed = {
            let mut store = self.store.lock().await;
            let before = store.version();
            store.reload().await?;
            store.version() != before
        };
        if changed {
            self.register(ctx).await?;
        }
        Ok(())
    }

    /// Saves what a statement that ran changed of views and tables (see
    /// [`northstar_engine::persist_catalog_change`]). The store's lock orders the saves, so the
    /// last one written holds every statement that finished before it.
    pub async fn persist_catalog_change(
        &self,
        ctx: &SessionContext,
        statement: &datafusion::sql::sqlparser::ast::Statement,
    ) -> Result<(), StorageError> {
        let store = self.store.lock().await;
        northstar_engine::persist_catalog_change(ctx, &store, statement).await
    }

    /// Saves a renamed table under its new name, then removes the old one: a crash between
    /// the two leaves both, never neither.
    pub async fn persist_table_rename(
        &self,
        ctx: &SessionContext,
        from: &datafusion::sql::sqlparser::ast::ObjectName,
        to: &datafusion::sql::sqlparser::ast::ObjectName,
    ) -> Result<(), StorageError> {
        let store = self.store.lock().await;
        northstar_engine::save_table(ctx, &store, to).await?;
        northstar_engine::drop_saved_table(ctx, &store, from).await
    }

    /// The schema writes must produce (see [`EventStore::write_schema`]).
    pub async fn write_schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.store.lock().await.write_schema()
    }

    /// Runs a write with exclusive use of the store, then makes its commit visible.
    pub async fn write<T>(
        &self,
        ctx: &SessionContext,
        f: impl AsyncFnOnce(&mut EventStore) -> pgwire::error::PgWireResult<T>,
    ) -> pgwire::error::PgWireResult<T> {
        let out = {
            let mut store = self.store.lock().await;
            f(&mut store).await?
        };
        self.register(ctx).await.map_err(|e| crate::errors::error(crate::errors::INTERNAL_ERROR, e.to_string()))?;
        Ok(out)
    }
}

/// The session every connection's session is cloned from.
pub async fn template_session(
    events: &SharedEventStore,
    engine: &EngineOptions,
    upgrade: Option<&SessionUpgrade>,
) -> Result<SessionContext, StorageError> {
    let mut ctx = northstar_engine::new_context(engine)?;
    if let Some(upgrade) = upgrade {
        ctx = northstar_engine::context_with_reports((upgrade.0)(ctx.state()));
    }
    events.register(&ctx).await?;
    {
        let store = events.store.lock().await;
        northstar_engine::load_saved_tables(&ctx, &store).await?;
        northstar_engine::load_views(&ctx, &store).await?;
    }
    let catalog = ctx.state().config().options().catalog.default_catalog.clone();
    datafusion_pg_catalog::setup_pg_catalog(&ctx, &catalog, EmptyContextProvider)
        .map_err(|e| StorageError::DataFusion(*e))?;
    // The same pg_catalog over the tables as PostgreSQL describes them (catalog_presets.rs).
    let described = crate::catalog_presets::PostgresCatalogInfo(ctx.state().catalog_list().clone());
    let static_tables = Arc::new(PgCatalogStaticTables::try_new().map_err(StorageError::DataFusion)?);
    let pg_catalog = PgCatalogSchemaProvider::try_new(described, static_tables.clone(), EmptyContextProvider)
        .map_err(StorageError::DataFusion)?;
    ctx.catalog(&catalog)
        .ok_or_else(|| StorageError::DataFusion(DataFusionError::Plan(format!("no catalog {catalog}"))))?
        .register_schema("pg_catalog", Arc::new(pg_catalog))
        .map_err(StorageError::DataFusion)?;
    crate::function_catalog::register(&ctx, &catalog, &static_tables).await.map_err(StorageError::DataFusion)?;
    crate::built_size::register(&ctx);
    ctx.add_analyzer_rule(Arc::new(crate::information_schema_types::InformationSchemaTypes));
    ctx.register_udf(constant("version", ScalarValue::Utf8(Some(version_string())), 0..=0));
    // Columns have no comments; PostgreSQL returns NULL for objects without one.
    ctx.register_udf(constant("col_description", ScalarValue::Utf8(None), 2..=2));
    ctx.register_udf(constant("shobj_description", ScalarValue::Utf8(None), 2..=2));
    ctx.register_udf(constant("pg_get_indexdef", ScalarValue::Utf8(None), 1..=3));
    // No column default, index expression or argument default exists whose expression tree it
    // could print (datafusion-pg-catalog's answered '' even for NULL; pgcli shows that).
    ctx.register_udf(constant("pg_get_expr", ScalarValue::Utf8(None), 2..=3));
    // No column is backed by a sequence (SQLAlchemy and pgjdbc ask for each column).
    ctx.register_udf(constant("pg_get_serial_sequence", ScalarValue::Utf8(None), 2..=2));
    // No session has a temporary schema of its own (temporary tables live in `public`):
    // PostgreSQL answers 0 then. ADBC lists schemas with `oid = pg_my_temp_schema()`.
    ctx.register_udf(constant("pg_my_temp_schema", ScalarValue::Int64(Some(0)), 0..=0));
    // Every type and function lives in pg_catalog, which is always on the search path.
    ctx.register_udf(constant("pg_type_is_visible", ScalarValue::Boolean(Some(true)), 1..=1));
    ctx.register_udf(constant("pg_function_is_visible", ScalarValue::Boolean(Some(true)), 1..=1));
    ctx.register_udf(ScalarUDF::from(PgTypeof { signature: Signature::any(1, Volatility::Immutable) }));
    ctx.register_udf(current_schemas());
    Ok(ctx)
}

/// `current_schemas(include_implicit)` as PostgreSQL answers it on the default search path
/// (`"$user", public`, no schema named after the role): `{pg_catalog,public}`, or `{public}`
/// without the implicit schemas. datafusion-pg-catalog's lists `public` first and adds
/// `information_schema`, which is not on PostgreSQL's path; pgcli completes from this list.
fn current_schemas() -> ScalarUDF {
    use datafusion::arrow::array::{AsArray, ListBuilder, StringBuilder};
    use datafusion::arrow::datatypes::Field;
    let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    let schemas = |args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
        let implicit = ColumnarValue::values_to_arrays(args)?;
        let implicit = implicit[0].as_boolean();
        let mut lists = ListBuilder::new(StringBuilder::new());
        for row in 0..implicit.len() {
            if implicit.is_null(row) {
                lists.append_null();
                continue;
            }
            if implicit.value(row) {
                lists.values().append_value("pg_catalog");
            }
            lists.values().append_value("public");
            lists.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(lists.finish())))
    };
    datafusion::logical_expr::create_udf(
        "current_schemas",
        vec![DataType::Boolean],
        list,
        Volatility::Stable,
        Arc::new(schemas),
    )
}

/// `version()` in PostgreSQL's shape: SQLAlchemy and others parse the number after "PostgreSQL".
pub fn version_string() -> String {
    format!(
        "PostgreSQL {PG_VERSION} (Northstar {}) on {}-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// A function of fixed arity range that always returns the same value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

pub(crate) fn constant(name: &'static str, value: ScalarValue, arity: std::ops::RangeInclusive<usize>) -> ScalarUDF {
    let signatures = arity
        .map(|n| {
            if n == 0 {
                datafusion::logical_expr::TypeSignature::Nullary
            } else {
                datafusion::logical_expr::TypeSignature::Any(n)
            }
        })
        .collect();
    ScalarUDF::from(Constant { name, value, signature: Signature::one_of(signatures, Volatility::Stable) })
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.value.data_type())
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// `pg_typeof(x)`: the PostgreSQL type name of the argument's type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let data_type = args.arg_fields[0].data_type();
        let name = match arrow_pg::datatypes::into_pg_type(data_type) {
            Ok(t) => crate::function_catalog::display_type_name(t.name()),
            Err(_) => data_type.to_string(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `current_setting(name [, missing_ok])` over one connection's settings.
#[derive(Debug)]
pub struct CurrentSetting {
    settings: Arc<Settings>,
    signature: Signature,
}

impl CurrentSetting {
    pub fn udf(settings: Arc<Settings>) -> ScalarUDF {
        let signature = Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8]),
                datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        );
        ScalarUDF::from(CurrentSetting { settings, signature })
    }
}

impl PartialEq for CurrentSetting {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.settings, &other.settings)
    }
}
impl Eq for CurrentSetting {}
impl Hash for CurrentSetting {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "current_setting".hash(state)
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let missing_ok = matches!(args.args.get(1), Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))));
        let lookup = |name: &str| -> DfResult<Option<String>> {
            match self.settings.get(name) {
                Some(v) => Ok(Some(v)),
                None if missing_ok => Ok(None),
                None => exec_err!("unrecognized configuration parameter \"{name}\""),
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))) => {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(lookup(name)?)))
            }
            ColumnarValue::Scalar(_) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            ColumnarValue::Array(names) => {
                let names = names.as_any().downcast_ref::<StringArray>().expect("Utf8 by signature");
                let values = (0..names.len())
                    .map(|i| if names.is_null(i) { Ok(None) } else { lookup(names.value(i)) })
                    .collect::<DfResult<StringArray>>()?;
                Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
            }
        }
    }
}
