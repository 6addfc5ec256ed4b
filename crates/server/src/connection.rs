//! One client connection: its startup (TLS requirement, SCRAM), its session (see `session`;
//! a session per connection is what makes `SET` change only that connection), and the pgwire
//! handler traits, all on one per-connection object that hands statements to the session.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, ServerParameterProvider,
    StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{send_describe_response, send_query_response, ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::DescribePortalResponse;
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, PgWireConnectionState, PgWireServerHandlers, METADATA_DATABASE,
    METADATA_USER,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{Describe, Execute, TARGET_TYPE_BYTE_PORTAL};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use crate::auth::{Role, ScramExchange, Verifier};
use crate::catalog::DATABASE;
use crate::copy::PendingCopy;
use crate::errors::{
    error, fatal, INVALID_AUTHORIZATION, INVALID_PASSWORD, PROTOCOL_VIOLATION, QUERY_CANCELED, TOO_MANY_CONNECTIONS,
};
use crate::limits::CancelHandle;
use crate::query::{portal_parameters, Prepared, StatementParser};
use crate::session::{Session, Shared};
use crate::settings::Settings;
use crate::wire_check::check_sasl_initial_response;

enum Startup {
    /// Nothing received yet: the startup message (or an SSL request) comes first.
    New,
    /// SASL offered, waiting for the client-first-message; `None` verifier: unknown user,
    /// who goes through the exchange and fails at the end, as in PostgreSQL.
    AwaitingScramFirst(Option<Verifier>),
    AwaitingScramFinal(ScramExchange, bool),
    Done,
}

pub struct Connection {
    pub shared: Arc<Shared>,
    pid: i32,
    secret: i32,
    cancel: Arc<CancelHandle>,
    /// Set when the server is full: the startup is answered with an error.
    over_limit: bool,
    startup: Mutex<Startup>,
    session: Arc<OnceLock<Session>>,
    parser: Arc<StatementParser>,
    copy_in: PendingCopy,
    /// A portal's response that is not rows, run by [`ExtendedQueryHandler::on_execute`] and
    /// handed to pgwire's own Execute handling (which takes it from `do_query`).
    executed: std::sync::Mutex<Option<Response>>,
}

impl Connection {
    /// Admits a connection, counting it against `max_connections` until it is dropped.
    pub fn admit(shared: Arc<Shared>) -> Arc<Connection> {
        let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
        let over_limit = active > shared.options.max_connections;
        let pid = shared.next_pid.fetch_add(1, Ordering::Relaxed);
        let secret = {
            use ring::rand::SecureRandom;
            let mut b = [0u8; 4];
            ring::rand::SystemRandom::new().fill(&mut b).expect("system randomness");
            i32::from_ne_bytes(b)
        };
        let cancel = Arc::new(CancelHandle::default());
        let session = Arc::new(OnceLock::new());
        let parser = Arc::new(StatementParser { shared: shared.clone(), session: session.clone() });
        shared.cancels.lock().unwrap().insert(pid, (SecretKey::I32(secret).to_bytes(), cancel.clone()));
        Arc::new(Connection {
            shared,
            pid,
            secret,
            cancel,
            over_limit,
            startup: Mutex::new(Startup::New),
            session,
            parser,
            copy_in: Mutex::new(None),
            executed: std::sync::Mutex::new(None),
        })
    }

    /// Cancels the statement running now, as a CancelRequest would (the client went away).
    pub fn cancel_running(&self) {
        self.cancel.cancel();
    }

    /// The session, once authentication finished (handlers run only after it).
    fn session(&self) -> PgWireResult<&Session> {
        self.session.get().ok_or_else(|| fatal(PROTOCOL_VIOLATION, "query before authentication finished"))
    }

    async fn finish_startup<C>(&self, client: &mut C, user: &str, role: Role) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Session::open(self.shared.clone(), self.cancel.clone(), user, role, client.metadata())?;
        let _ = self.session.set(session);
        client.set_pid_and_secret_key(self.pid, SecretKey::I32(self.secret));
        finish_authentication(client, &StartupParameters(self.session()?.settings.clone())).await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.cancels.lock().unwrap().remove(&self.pid);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// ParameterStatus values sent after authentication, from the connection's settings.
struct StartupParameters(Arc<Settings>);

impl ServerParameterProvider for StartupParameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        let names = [
            "server_version",
            "server_encoding",
            "client_encoding",
            "DateStyle",
            "IntervalStyle",
            "TimeZone",
            "integer_datetimes",
            "standard_conforming_strings",
            "is_superuser",
            "session_authorization",
            "application_name",
            "default_transaction_read_only",
        ];
        Some(names.iter().filter_map(|n| self.0.get(n).map(|v| (n.to_string(), v))).collect())
    }
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.startup.lock().await;
        match (std::mem::replace(&mut *state, Startup::Done), message) {
            (Startup::New, PgWireFrontendMessage::Startup(startup)) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.over_limit {
                    return Err(fatal(
                        TOO_MANY_CONNECTIONS,
                        format!(
                            "sorry, too many clients already (max_connections is {})",
                            self.shared.options.max_connections
                        ),
                    ));
                }
                if self.shared.options.require_tls && !client.is_secure() {
                    return Err(fatal(INVALID_AUTHORIZATION, "this server requires TLS: connect with sslmode=require"));
                }
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_else(|| DATABASE.to_string());
                let database = client.metadata().get(METADATA_DATABASE).cloned().unwrap_or_else(|| user.clone());
                if database != DATABASE {
                    return Err(fatal(
                        "3D000",
                        format!("database \"{database}\" does not exist (this server has one database: {DATABASE})"),
                    ));
                }
                if self.shared.users.is_empty() {
                    // Trust: only possible on a loopback listener (checked when the server starts).
                    return self.finish_startup(client, &user, Role::Writer).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(vec!["SCRAM-SHA-256".into()])))
                    .await?;
                *state = Startup::AwaitingScramFirst(self.shared.users.get(&user).map(|u| u.verifier.clone()));
                Ok(())
            }
            (Startup::AwaitingScramFirst(verifier), PgWireFrontendMessage::PasswordMessageFamily(message)) => {
                if let PasswordMessageFamily::Raw(body) = &message {
                    check_sasl_initial_response(body).map_err(|m| fatal(PROTOCOL_VIOLATION, m.to_string()))?;
                }
                let initial = message.into_sasl_initial_response()?;
                if initial.auth_method != "SCRAM-SHA-256" {
                    return Err(fatal(
                        INVALID_PASSWORD,
                        format!("unsupported authentication method {}: use SCRAM-SHA-256", initial.auth_method),
                    ));
                }
                let known = verifier.is_some();
                // An unknown user gets a throwaway verifier so the exchange looks the same.
                let verifier = verifier.unwrap_or_else(|| Verifier::generate(&format!("{:x}", self.secret)));
                let data = initial.data.unwrap_or_default();
                let (exchange, server_first) =
                    ScramExchange::start(&data, verifier).map_err(|e| fatal(PROTOCOL_VIOLATION, e))?;
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASLContinue(Bytes::from(server_first))))
                    .await?;
                *state = Startup::AwaitingScramFinal(exchange, known);
                Ok(())
            }
            (Startup::AwaitingScramFinal(exchange, known), PgWireFrontendMessage::PasswordMessageFamily(message)) => {
                let response = message.into_sasl_response()?;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                let refused = || fatal(INVALID_PASSWORD, format!("password authentication failed for user \"{user}\""));
                let server_final = exchange.finish(&response.data).map_err(|_| refused())?;
                if !known {
                    return Err(refused());
                }
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASLFinal(Bytes::from(server_final))))
                    .await?;
                let role = self.shared.users.get(&user).map(|u| u.role).unwrap_or(Role::Reader);
                self.finish_startup(client, &user, role).await
            }
            (_, _) => Err(fatal(PROTOCOL_VIOLATION, "unexpected message during authentication")),
        }
    }
}

#[async_trait]
impl CancelHandler for Connection {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let signal = {
            let cancels = self.shared.cancels.lock().unwrap();
            cancels
                .get(&request.pid)
                .filter(|(secret, _)| *secret == request.secret_key.to_bytes())
                .map(|(_, s)| s.clone())
        };
        if let Some(signal) = signal {
            tracing::info!(pid = request.pid, "cancel request");
            signal.cancel();
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session()?;
        let statements = self.parser.split(query)?;
        let mut responses = Vec::with_capacity(statements.len());
        for prepared in statements {
            session.earlier_results_unsent.store(!responses.is_empty(), Ordering::Relaxed);
            match session.execute(client, &prepared, None, &Format::UnifiedText, &self.copy_in).await {
                Ok(response) => responses.push(response),
                Err(e) if responses.is_empty() => return Err(e),
                // Later statements of a multi-statement query: report and stop, as PostgreSQL does.
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        session.earlier_results_unsent.store(false, Ordering::Relaxed);
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    /// A Describe of a portal the protocol does not know may name a SQL cursor (DECLARE).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or_default();
        if message.target_type == TARGET_TYPE_BYTE_PORTAL && client.portal_store().get_portal(name).is_none() {
            if let Some(fields) = self.session()?.cursor_fields(name).await {
                return send_describe_response(client, &DescribePortalResponse::new(fields?)).await;
            }
        }
        self._on_describe(client, message).await
    }

    /// Streams the rows of an Execute that asks for all of them (`max_rows` 0, what nearly every
    /// driver sends), as the simple protocol does. pgwire 0.41 moves a portal's rows into one
    /// `Vec` before sending the first: a 10M-row result through psycopg held 1.36 GB in the
    /// server (175 MB through psql) and nothing reached the client until the scan ended. An
    /// Execute with a row limit (JDBC's fetch size, ODBC's declare/fetch) buffers at most that
    /// many rows and keeps pgwire's handling, as does every response that is not rows.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal))
                if message.max_rows == 0 && matches!(client.state(), PgWireConnectionState::ReadyForQuery) =>
            {
                portal
            }
            _ => return self._on_execute(client, message).await,
        };
        if !matches!(*portal.state().lock().await, PortalExecutionState::Initial) {
            return self._on_execute(client, message).await;
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        match self.run_portal(client, &portal).await? {
            Response::Query(rows) => {
                *portal.state().lock().await = PortalExecutionState::Finished;
                send_query_response(client, rows, false).await?;
            }
            other => {
                *self.executed.lock().unwrap() = Some(other);
                client.set_state(PgWireConnectionState::ReadyForQuery);
                return self._on_execute(client, message).await;
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(response) = self.executed.lock().unwrap().take() {
            return Ok(response);
        }
        self.run_portal(client, portal).await
    }
}

impl Connection {
    /// Runs a bound portal's statement in this connection's session.
    async fn run_portal<C>(&self, client: &mut C, portal: &Portal<Prepared>) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let params = portal_parameters(portal)?;
        let format = &portal.result_column_format;
        self.session()?.execute(client, &portal.statement.statement, params, format, &self.copy_in).await
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut copy = self.copy_in.lock().await;
        let copy = copy.as_mut().ok_or_else(|| error(PROTOCOL_VIOLATION, "COPY data without COPY FROM STDIN"))?;
        copy.write(&data.data)
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self
            .copy_in
            .lock()
            .await
            .take()
            .ok_or_else(|| error(PROTOCOL_VIOLATION, "CopyDone without COPY FROM STDIN"))?;
        let rows = self.session()?.copy_in_finish(copy).await?;
        client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(rows).into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copy_in.lock().await.take();
        error(QUERY_CANCELED, format!("COPY from stdin failed: {}", fail.message))
    }
}

impl ErrorHandler for Connection {
    fn on_error<C: ClientInfo>(&self, _client: &C, error: &mut PgWireError) {
        tracing::debug!(pid = self.pid, "error sent to client: {error}");
    }
}

/// The handler set pgwire asks for; every role is played by the one connection object.
pub struct Handlers(pub Arc<Connection>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.0.clone()
    }
    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.0.clone()
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.0.clone()
    }
}
