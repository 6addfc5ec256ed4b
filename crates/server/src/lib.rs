//! Northstar's PostgreSQL wire endpoint.
//!
//! pgwire 0.41 speaks the protocol; arrow-pg encodes Arrow results; datafusion-pg-catalog
//! provides `pg_catalog` and the SQL rewrites client introspection needs. The handlers are
//! Northstar's own (not datafusion-postgres's `serve`): a DataFusion session per connection,
//! SCRAM over stored verifiers, TLS that fails closed, limits that stop running scans, and
//! writes that are single Delta commits. See `docs/clients.md`.

mod auth;
mod built_size;
mod catalog;
mod catalog_presets;
mod catalog_rewrites;
mod column_names;
mod complexity;
mod connection;
mod copy;
mod cursor;
mod errors;
mod function_catalog;
mod information_schema_types;
mod limits;
mod query;
mod relations;
mod rename;
mod result_stream;
mod row_batches;
mod session;
mod settings;
mod socket;
mod statement;
mod table_rows;
mod time_zone;
mod wire_check;
mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::SessionState;
use northstar_engine::EngineOptions;
use northstar_storage::DataLocation;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

pub use auth::{Role, User, Users, Verifier};
pub use catalog::{version_string, DATABASE};
use connection::{Connection, Handlers};
use session::Shared;

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub engine: EngineOptions,
    pub tls: Option<TlsFiles>,
    /// Refuse connections that did not negotiate TLS.
    pub require_tls: bool,
    pub max_connections: usize,
    /// Memory one connection's running statement may use before spilling or failing.
    pub query_memory: usize,
    /// Default `statement_timeout` of new connections.
    pub statement_timeout: Option<Duration>,
    /// Changes the session every connection starts from before tables are registered: the
    /// binary uses it to plan `events` queries on a Ballista cluster.
    pub session_upgrade: Option<SessionUpgrade>,
}

/// A change to the template session's state (see [`ServerOptions::session_upgrade`]).
#[derive(Clone)]
pub struct SessionUpgrade(pub Arc<dyn Fn(SessionState) -> SessionState + Send + Sync>);

impl std::fmt::Debug for SessionUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionUpgrade")
    }
}

impl ServerOptions {
    pub fn new(listen: SocketAddr, engine: EngineOptions) -> Self {
        let query_memory = engine.effective_memory_limit() / 2;
        ServerOptions {
            listen,
            engine,
            tls: None,
            require_tls: false,
            max_connections: 100,
            query_memory,
            statement_timeout: None,
            session_upgrade: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Config(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// Boxed: a `StorageError` is large (DataFusion's and delta-rs's errors inside), and every
    /// other variant would pay for its size.
    #[error(transparent)]
    Storage(Box<northstar_storage::StorageError>),
}

impl From<northstar_storage::StorageError> for ServerError {
    fn from(error: northstar_storage::StorageError) -> Self {
        ServerError::Storage(Box::new(error))
    }
}

pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    connections: ConnectionRuntime,
}

/// Stack size of the threads connections run on. Parsing, planning and printing a statement
/// recurse over its tree; at the nesting limit (`complexity.rs`) that takes a few MiB in a debug
/// build, more than the 2 MiB of tokio's default workers.
const CONNECTION_STACK: usize = 64 << 20;

/// The runtime every connection (and the DataFusion work it starts) runs on, owned by the
/// server so that what a statement may do never depends on the stack size of the embedder's
/// runtime. Shut down in the background when the server goes, as dropping a runtime inside
/// async code is not allowed.
struct ConnectionRuntime(Option<tokio::runtime::Runtime>);

impl ConnectionRuntime {
    fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("northstar-connection")
            .thread_stack_size(CONNECTION_STACK)
            .enable_all()
            .build()?;
        Ok(ConnectionRuntime(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("runtime until dropped").handle()
    }
}

impl Drop for ConnectionRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Server {
    /// Checks the configuration, opens the data location and binds the listener. Fails
    /// rather than serve less securely than configured.
    pub async fn bind(location: &DataLocation, users: Users, options: ServerOptions) -> Result<Server, ServerError> {
        if users.is_empty() && !options.listen.ip().is_loopback() {
            return Err(ServerError::Config(format!(
                "refusing to listen on {} without authentication: add users (--users FILE or --user NAME:PASSWORD) or listen on 127.0.0.1",
                options.listen
            )));
        }
        if options.require_tls && options.tls.is_none() {
            return Err(ServerError::Config("--require-tls needs --tls-cert and --tls-key".into()));
        }
        let tls = options.tls.as_ref().map(load_tls).transpose()?;
        let events = catalog::SharedEventStore::open(location).await?;
        let template = catalog::template_session(&events, &options.engine, options.session_upgrade.as_ref()).await?;
        let listener = TcpListener::bind(options.listen).await.map_err(|e| ServerError::Listen(options.listen, e))?;
        let connections = ConnectionRuntime::new()
            .map_err(|e| ServerError::Config(format!("cannot start connection threads: {e}")))?;
        Ok(Server { listener, tls, shared: Arc::new(Shared::new(template, events, users, options)), connections })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// A function another writer in this process (the HTTP collector) calls after each commit,
    /// so that the next statement reads the new version without waiting for the refresh
    /// interval.
    pub fn table_change_notifier(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.events.mark_stale()
    }

    /// Serves until the task is dropped (connections then end with the server's connection
    /// runtime). A failing connection never stops the others.
    pub async fn run(self) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Re-registered on the connection runtime's reactor (`into_std` keeps it non-blocking).
            let socket = match socket.into_std() {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::warn!(%peer, "cannot hand over a connection: {e}");
                    continue;
                }
            };
            let handlers = Handlers(Connection::admit(self.shared.clone()));
            let tls = self.tls.clone();
            self.connections.handle().spawn(async move {
                let served = match tokio::net::TcpStream::from_std(socket) {
                    Ok(socket) => socket::serve(socket, tls, handlers).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, "connection ended with an error: {e}");
                }
            });
        }
    }
}

fn load_tls(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!("{}: no certificate found", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", files.key.display())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("{} and {}: {e}", files.cert.display(), files.key.display())))?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
