//! One accepted socket served to its end: pgwire's `process_socket` loop, with two changes.
//!
//! - The byte stream after TLS negotiation goes through [`CheckedStream`], so pgwire decodes
//!   only messages whose layout was checked (see `wire_check`); the first malformed message
//!   gets a FATAL 08P01 error naming the problem and the connection is closed, where pgwire's
//!   own loop would panic or close without a word.
//! - A panic while handling a message (a bug in Northstar, DataFusion or pgwire) ends that
//!   message's statement with an XX000 error instead of killing the connection's task
//!   silently; the connection goes on (its session lives in `Session`, which a statement's
//!   unwinding leaves as it was, and tokio's mutexes do not poison).
//!
//! The rest is pgwire 0.41's loop as it is (`process_socket_messages!`): the same handlers,
//! `process_message` and `process_error`, the same 60 s startup timeout.

use std::io;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::PgWireError;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message, PgWireMessageServerCodec};
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use crate::connection::Handlers;
use crate::errors::{error, fatal, INTERNAL_ERROR, PROTOCOL_VIOLATION};
use crate::wire_check::{malformed_message, CheckedStream};

/// How long a client may take from connecting to finishing authentication (pgwire's value).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a connection whose client sent more than it has read yet is looked at again for
/// having closed.
const CLOSED_POLL: Duration = Duration::from_millis(200);

/// Serves one client connection until it ends. A statement still running when the client
/// closes its socket is cancelled (see [`cancel_when_closed`]).
pub async fn serve(tcp: TcpStream, tls: Option<TlsAcceptor>, handlers: Handlers) -> io::Result<()> {
    let watcher = match watch_handle(&tcp) {
        Ok(watched) => Some(tokio::spawn(cancel_when_closed(watched, handlers.0.clone()))),
        Err(e) => {
            tracing::debug!("cannot watch the connection for its client closing it: {e}");
            None
        }
    };
    let served = serve_messages(tcp, tls, &handlers).await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    served
}

/// A second handle on the socket, for [`cancel_when_closed`] to peek at.
fn watch_handle(tcp: &TcpStream) -> io::Result<TcpStream> {
    let fd = socket2::SockRef::from(tcp).try_clone()?;
    let std: std::net::TcpStream = fd.into();
    std.set_nonblocking(true)?;
    TcpStream::from_std(std)
}

/// Cancels the running statement once the client has closed its end: while a statement runs,
/// nobody reads the socket, so an aggregate that sends nothing until it ends would otherwise
/// compute on for a client that is gone. Peeks (never reads) so pgwire sees every byte.
async fn cancel_when_closed(socket: TcpStream, connection: std::sync::Arc<crate::connection::Connection>) {
    let mut byte = [0u8; 1];
    loop {
        if socket.readable().await.is_err() {
            break;
        }
        match socket.peek(&mut byte).await {
            Ok(0) | Err(_) => break,
            // Bytes the client sent ahead (pipelining): look again later.
            Ok(_) => tokio::time::sleep(CLOSED_POLL).await,
        }
    }
    connection.cancel_running();
}

/// See `serve_messages`: the bytes of messages gathered before they are written out.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

async fn serve_messages(tcp: TcpStream, tls: Option<TlsAcceptor>, handlers: &Handlers) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = negotiate_tls(tcp, tls) => negotiated?,
    };
    // None: a direct TLS connection to a server without TLS.
    let Some(negotiated) = negotiated else { return Ok(()) };
    let parts = negotiated.into_parts();
    let mut checked = FramedParts::new(CheckedStream::new(parts.io, parts.read_buf), parts.codec);
    checked.write_buf = parts.write_buf;
    let mut socket: Framed<_, PgWireMessageServerCodec<_>> = Framed::from_parts(checked);
    // Results leave in writes of up to this many bytes instead of tokio-util's 8 KiB: a large
    // result is millions of DataRow messages, and fewer, larger writes cost fewer syscalls.
    socket.set_backpressure_boundary(WRITE_BUFFER_BYTES);

    let startup_handler = handlers.startup_handler();
    let simple_query_handler = handlers.simple_query_handler();
    let extended_query_handler = handlers.extended_query_handler();
    let copy_handler = handlers.copy_handler();
    let cancel_handler = handlers.cancel_handler();
    let error_handler = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if starting {
            tokio::select! {
                _ = &mut startup_timeout => None,
                next = socket.next() => next,
            }
        } else {
            socket.next().await
        };
        let message = match next {
            Some(Ok(PgWireFrontendMessage::Terminate(_))) | None => break,
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                // A message that failed its check or pgwire's decoding: name the problem, close.
                let problem = match &e {
                    PgWireError::IoError(io) => match malformed_message(io) {
                        Some(malformed) => malformed.to_string(),
                        None => return Err(io::Error::new(io.kind(), io.to_string())),
                    },
                    other => other.to_string(),
                };
                tracing::debug!("closing a connection after a malformed message: {problem}");
                let _ = process_error(&mut socket, fatal(PROTOCOL_VIOLATION, problem), false).await;
                let _ = socket.close().await;
                break;
            }
        };
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended_query) => is_extended_query,
            _ => message.is_extended_query(),
        };
        let handled = AssertUnwindSafe(process_message(
            message,
            &mut socket,
            startup_handler.clone(),
            simple_query_handler.clone(),
            extended_query_handler.clone(),
            copy_handler.clone(),
            cancel_handler.clone(),
        ))
        .catch_unwind()
        .await;
        match handled {
            Ok(Ok(())) => {}
            Ok(Err(mut e)) => {
                error_handler.on_error(&socket, &mut e);
                process_error(&mut socket, e, is_extended_query).await?;
            }
            Err(panic) => {
                let what = panic_text(&*panic);
                tracing::error!("a statement panicked: {what}");
                let e = error(INTERNAL_ERROR, format!("internal error: {what} (please report it)"));
                process_error(&mut socket, e, is_extended_query).await?;
            }
        }
    }
    Ok(())
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}
