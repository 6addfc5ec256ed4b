//! The state statements run against: what every connection of a server shares ([`Shared`]),
//! and one logged-in connection's own session ([`Session`]): its DataFusion session, settings,
//! role and cancel handle. The statement modules (`query`, `write`, `copy`) add their methods
//! to [`Session`]; `connection` owns it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicUsize};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use pgwire::error::PgWireResult;

use crate::auth::{authorize, Role, Users};
use crate::catalog::{constant, CurrentSetting, SharedEventStore, DATABASE};
use crate::errors::from_datafusion;
use crate::limits::{CancelHandle, CappedPool, StatementLimits};
use crate::settings::Settings;
use crate::statement::{Access, Classified};
use crate::ServerOptions;

/// State shared by every connection of a server.
pub struct Shared {
    pub template: SessionContext,
    pub events: SharedEventStore,
    pub users: Users,
    pub options: ServerOptions,
    pub parser: PostgresCompatibilityParser,
    /// Connections by pid, with their cancel secret, for CancelRequests.
    pub cancels: Mutex<HashMap<i32, (Bytes, Arc<CancelHandle>)>>,
    pub next_pid: AtomicI32,
    pub active: AtomicUsize,
}

impl Shared {
    pub fn new(template: SessionContext, events: SharedEventStore, users: Users, options: ServerOptions) -> Self {
        Shared {
            template,
            events,
            users,
            options,
            parser: PostgresCompatibilityParser::new(),
            cancels: Default::default(),
            next_pid: AtomicI32::new(1000),
            active: AtomicUsize::new(0),
        }
    }
}

/// An open SQL-level cursor: the rest of its query's result (cursor.rs runs the statements).
pub struct OpenCursor {
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    pub stream: datafusion::execution::SendableRecordBatchStream,
    /// Rows pulled from the stream and not yet fetched.
    pub pending: std::collections::VecDeque<datafusion::arrow::array::RecordBatch>,
    /// `WITH HOLD`: stays open past the end of its transaction.
    pub hold: bool,
}

/// Temporary tables go when their session ends, as in PostgreSQL; one that was dropped and
/// whose name now holds another table leaves that table alone.
impl Drop for Session {
    fn drop(&mut self) {
        for (name, table) in self.temporary_tables.lock().unwrap().drain(..) {
            // The default schema's tables are in memory: the lookup is ready at once.
            let current = futures::executor::block_on(self.ctx.table_provider(name.as_str())).ok();
            if current.is_some_and(|current| table.upgrade().is_some_and(|t| Arc::ptr_eq(&t, &current))) {
                let _ = self.ctx.deregister_table(name.as_str());
            }
        }
    }
}

/// The logged-in user's session.
pub struct Session {
    pub shared: Arc<Shared>,
    pub ctx: SessionContext,
    pub settings: Arc<Settings>,
    /// The values the session started with (the server's `--statement-timeout`, the client's
    /// startup `application_name`): what `RESET` restores.
    pub startup: Settings,
    pub role: Role,
    pub cancel: Arc<CancelHandle>,
    /// What each SQL-level `PREPARE name` defined does, for authorizing `EXECUTE name`.
    prepared: Mutex<HashMap<String, Access>>,
    /// Open SQL-level cursors (cursor.rs).
    pub cursors: tokio::sync::Mutex<HashMap<String, OpenCursor>>,
    /// Tables this session made with `CREATE TEMPORARY TABLE`: dropped when it ends.
    temporary_tables: Mutex<Vec<(String, Weak<dyn TableProvider>)>>,
    /// Set by the simple-query loop while earlier statements of the same query string have
    /// results pgwire has not sent yet (it sends them once every statement has run): a
    /// `COPY … TO STDOUT` then leaves its rows to pgwire too, so they come after them.
    pub earlier_results_unsent: std::sync::atomic::AtomicBool,
}

impl Session {
    /// A session over a copy of the server's template, with its own memory cap and settings.
    pub fn open(
        shared: Arc<Shared>,
        cancel: Arc<CancelHandle>,
        user: &str,
        role: Role,
        parameters: &HashMap<String, String>,
    ) -> PgWireResult<Session> {
        let application_name = parameters.get("application_name").map(String::as_str).unwrap_or_default();
        let startup_settings = || -> PgWireResult<Settings> {
            let settings = Settings::new(user, DATABASE, application_name, role == Role::Reader);
            if let Some(timeout) = shared.options.statement_timeout {
                settings.set("statement_timeout", &timeout.as_millis().to_string())?;
            }
            // The client's `TimeZone` start-up parameter (pgjdbc sends the JVM's zone), then
            // `options='-c name=value …'` (libpq's PGOPTIONS), as PostgreSQL applies them.
            if let Some(zone) = parameters.get("TimeZone") {
                settings.set("TimeZone", zone)?;
            }
            for (name, value) in
                command_line_settings(parameters.get("options").map(String::as_str).unwrap_or_default())
            {
                settings.set(&name, &value)?;
            }
            Ok(settings)
        };
        let settings = Arc::new(startup_settings()?);
        let startup = startup_settings()?;
        let template = shared.template.state();
        let pool = Arc::new(CappedPool::new(template.runtime_env().memory_pool.clone(), shared.options.query_memory));
        let runtime = RuntimeEnvBuilder::from_runtime_env(template.runtime_env())
            .with_memory_pool(pool)
            .build_arc()
            .map_err(from_datafusion)?;
        let state = SessionStateBuilder::new_from_existing(template).with_runtime_env(runtime).build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_udf(CurrentSetting::udf(settings.clone()));
        // datafusion-pg-catalog answers `session_user` (and `current_user`, which it rewrites
        // to it) with "postgres" whoever logged in.
        ctx.register_udf(constant("session_user", ScalarValue::Utf8(Some(user.to_string())), 0..=0));
        let session = Session {
            shared,
            ctx,
            settings,
            startup,
            role,
            cancel,
            prepared: Mutex::default(),
            cursors: Default::default(),
            temporary_tables: Mutex::default(),
            earlier_results_unsent: Default::default(),
        };
        session.apply_time_zone()?;
        Ok(session)
    }

    /// Records a table made by `CREATE TEMPORARY TABLE name`, to drop when the session ends.
    pub async fn remember_temporary_table(&self, name: String) {
        if let Ok(table) = self.ctx.table_provider(name.as_str()).await {
            self.temporary_tables.lock().unwrap().push((name, Arc::downgrade(&table)));
        }
    }

    /// Limits for a statement starting now: the connection's cancel handle and the session's
    /// `statement_timeout`.
    pub fn limits(&self) -> StatementLimits {
        StatementLimits::start(&self.cancel, self.settings.statement_timeout())
    }

    /// Whether this session's role may run `statement` (see [`authorize`]); an `EXECUTE` is
    /// judged by what its `PREPARE` defined. An unknown name has nothing to run: DataFusion
    /// refuses it.
    pub fn authorize(&self, statement: &Classified) -> PgWireResult<()> {
        let access = match &statement.access {
            Access::OfPrepared(name) => self.prepared.lock().unwrap().get(name).cloned().unwrap_or(Access::Read),
            access => access.clone(),
        };
        authorize(self.role, &access, &statement.tag)
    }

    /// Records what a `PREPARE` that just ran defined.
    pub fn remember_prepared(&self, statement: &Classified) {
        if let Some((name, access)) = &statement.defines {
            self.prepared.lock().unwrap().insert(name.clone(), access.clone());
        }
    }
}

/// The `-c name=value` and `--name=value` settings of a start-up `options` parameter, as
/// PostgreSQL's postmaster reads them: words split at spaces, `\\` escaping the next character.
fn command_line_settings(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => words.extend((!word.is_empty()).then(|| std::mem::take(&mut word))),
            c => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = match word.as_str() {
            "-c" => words.next(),
            _ => word.strip_prefix("-c").or_else(|| word.strip_prefix("--")).map(str::to_string),
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            settings.push((name.replace('-', "_"), value.to_string()));
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::command_line_settings;

    #[test]
    fn start_up_options_are_read_as_postgres_reads_them() {
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(
            command_line_settings("-c TimeZone=Europe/Paris  -cstatement_timeout=5s --search-path=a,b"),
            pairs(&[("TimeZone", "Europe/Paris"), ("statement_timeout", "5s"), ("search_path", "a,b")])
        );
        assert_eq!(command_line_settings("-c application_name=my\\ app"), pairs(&[("application_name", "my app")]));
        assert!(command_line_settings("").is_empty());
    }
}
