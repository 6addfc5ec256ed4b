//! Every frontend message checked against the protocol's layout before pgwire decodes it.
//!
//! pgwire 0.41's decoders read fields with `Buf::get_*` and `split_to`, which panic when a
//! message is shorter than its counts and lengths claim (Parse with more parameter types than
//! its body holds, Bind with a parameter length of 2³¹−1), and they read past the end of the
//! message into the next one. Upstream has not fixed this (0.42 decodes the same way), and a
//! patched copy of the crate would be ours to keep in step. So the connection's byte stream
//! goes through [`CheckedStream`], which hands pgwire only whole messages whose every count,
//! length and terminator fits the message; the first that does not ends the connection with
//! an 08P01 error (see `connection::serve`). Checks follow PostgreSQL's protocol description
//! ("Message Formats"); a negative Execute row limit is read as 0 ("no limit"), as PostgreSQL
//! does, instead of overflowing pgwire's row counter.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest message accepted (PostgreSQL's limit for a single message, 1 GiB minus one).
const MAX_MESSAGE_LENGTH: usize = 0x3fff_ffff;
/// The largest startup packet (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_LENGTH: usize = 10_000;
/// Protocol codes of the untyped packets a connection may start with.
const CANCEL_REQUEST_CODE: u32 = 80_877_102;
const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// Why a message was refused: the text of the 08P01 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

fn malformed<T>(text: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(text.into()))
}

/// Reads one message body field by field, failing instead of reading past its end.
struct Fields<'a> {
    message: &'static str,
    body: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        if self.body.len() < n {
            return malformed(format!(
                "invalid {} message: {what} needs {n} bytes, {} left",
                self.message,
                self.body.len()
            ));
        }
        let (head, rest) = self.body.split_at(n);
        self.body = rest;
        Ok(head)
    }

    fn int16(&mut self, what: &str) -> Result<i16, Malformed> {
        Ok(i16::from_be_bytes(self.take(2, what)?.try_into().expect("two bytes")))
    }

    fn int32(&mut self, what: &str) -> Result<i32, Malformed> {
        Ok(i32::from_be_bytes(self.take(4, what)?.try_into().expect("four bytes")))
    }

    /// A count that must not be negative.
    fn count(&mut self, what: &str) -> Result<usize, Malformed> {
        let n = self.int16(what)?;
        if n < 0 {
            return malformed(format!("invalid {} message: negative {what} {n}", self.message));
        }
        Ok(n as usize)
    }

    fn cstring(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        match self.body.iter().position(|&b| b == 0) {
            Some(end) => {
                let text = &self.body[..end];
                self.body = &self.body[end + 1..];
                Ok(text)
            }
            None => malformed(format!("invalid {} message: {what} is not terminated", self.message)),
        }
    }

    fn end(&self) -> Result<(), Malformed> {
        if self.body.is_empty() {
            Ok(())
        } else {
            malformed(format!("invalid {} message: {} bytes after its last field", self.message, self.body.len()))
        }
    }
}

/// Checks one typed message (`kind`, then the body after the length). Returns the offset in
/// the body of an Execute row limit to rewrite to 0, when it is negative.
fn check_typed(kind: u8, body: &[u8]) -> Result<Option<usize>, Malformed> {
    let name = match kind {
        b'Q' => "Query",
        b'P' => "Parse",
        b'B' => "Bind",
        b'E' => "Execute",
        b'D' => "Describe",
        b'C' => "Close",
        b'f' => "CopyFail",
        b'H' => "Flush",
        b'S' => "Sync",
        b'X' => "Terminate",
        b'c' => "CopyDone",
        // CopyData and the password family (PasswordMessage, SASLInitialResponse,
        // SASLResponse) carry bytes whose layout depends on the state; the handlers check them.
        b'd' | b'p' => return Ok(None),
        other => return malformed(format!("invalid frontend message type {}", other as char)),
    };
    let mut fields = Fields { message: name, body };
    let mut negative_row_limit = None;
    match kind {
        b'Q' | b'f' => {
            fields.cstring(if kind == b'Q' { "query string" } else { "error message" })?;
        }
        b'P' => {
            fields.cstring("statement name")?;
            fields.cstring("query string")?;
            let types = fields.count("parameter type count")?;
            fields.take(4 * types, "parameter types")?;
        }
        b'B' => {
            fields.cstring("portal name")?;
            fields.cstring("statement name")?;
            let formats = fields.count("parameter format count")?;
            fields.take(2 * formats, "parameter formats")?;
            for _ in 0..fields.count("parameter count")? {
                let length = fields.int32("parameter length")?;
                if length < -1 {
                    return malformed(format!("invalid Bind message: parameter length {length}"));
                }
                if length > 0 {
                    fields.take(length as usize, "parameter value")?;
                }
            }
            let formats = fields.count("result format count")?;
            fields.take(2 * formats, "result formats")?;
        }
        b'E' => {
            fields.cstring("portal name")?;
            let offset = body.len() - fields.body.len();
            if fields.int32("row limit")? < 0 {
                negative_row_limit = Some(offset);
            }
        }
        b'D' | b'C' => {
            let target = fields.take(1, "target")?[0];
            if target != b'S' && target != b'P' {
                return malformed(format!("invalid {name} message: target {:?} is neither S nor P", target as char));
            }
            fields.cstring("name")?;
        }
        _ => {}
    }
    fields.end()?;
    Ok(negative_row_limit)
}

/// Checks an untyped startup-phase packet (its body after the length). Returns whether it was
/// a StartupMessage (after which messages are typed).
fn check_startup(body: &[u8]) -> Result<bool, Malformed> {
    let mut fields = Fields { message: "startup", body };
    let code = fields.int32("protocol code")? as u32;
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            fields.end()?;
            Ok(false)
        }
        CANCEL_REQUEST_CODE => {
            fields.message = "CancelRequest";
            fields.int32("process id")?;
            // Protocol 3.2 keys are 4 to 256 bytes.
            if fields.body.len() < 4 || fields.body.len() > 256 {
                return malformed(format!("invalid CancelRequest message: key of {} bytes", fields.body.len()));
            }
            Ok(false)
        }
        code if code >> 16 == 3 => {
            // Name/value pairs, then an empty name.
            loop {
                let key = fields.cstring("parameter name")?;
                if key.is_empty() {
                    break;
                }
                fields.cstring("parameter value")?;
            }
            fields.end()?;
            Ok(true)
        }
        code => malformed(format!("unsupported frontend protocol {}.{}", code >> 16, code & 0xffff)),
    }
}

/// Checks the body of a password-family message read as a SASLInitialResponse (mechanism
/// name, then a length of -1 or of exactly the bytes that follow). A client that sends
/// another kind of password message to a SCRAM login fails here, not in pgwire's decoder.
pub fn check_sasl_initial_response(body: &[u8]) -> Result<(), Malformed> {
    let mut fields = Fields { message: "SASLInitialResponse", body };
    fields.cstring("mechanism name")?;
    let length = fields.int32("response length")?;
    if length < -1 {
        return malformed(format!("invalid SASLInitialResponse message: response length {length}"));
    }
    if length > 0 {
        fields.take(length as usize, "response")?;
    }
    fields.end()
}

/// A connection's byte stream that passes on only checked whole messages (see the module
/// docs). Writes go straight through.
pub struct CheckedStream<T> {
    inner: T,
    /// Bytes read but not yet a whole message.
    unchecked: BytesMut,
    /// Whole checked messages not yet read by pgwire.
    checked: BytesMut,
    /// Before the StartupMessage, packets have no type byte.
    startup: bool,
    failed: Option<Malformed>,
}

impl<T> CheckedStream<T> {
    /// `already_read`: bytes taken off the socket before (by TLS negotiation's peek).
    pub fn new(inner: T, already_read: BytesMut) -> Self {
        CheckedStream { inner, unchecked: already_read, checked: BytesMut::new(), startup: true, failed: None }
    }

    /// Moves every whole message of `unchecked` to `checked`, stopping at the first refused one.
    fn check_whole_messages(&mut self) {
        while self.failed.is_none() {
            let header = if self.startup { 0 } else { 1 };
            if self.unchecked.len() < header + 4 {
                return;
            }
            let declared = i32::from_be_bytes(self.unchecked[header..header + 4].try_into().expect("four bytes"));
            let limit = if self.startup { MAX_STARTUP_LENGTH } else { MAX_MESSAGE_LENGTH };
            let minimum = if self.startup { 8 } else { 4 };
            if declared < minimum || declared as usize > limit {
                self.failed = Some(Malformed(format!("invalid message length {declared}")));
                return;
            }
            let total = header + declared as usize;
            if self.unchecked.len() < total {
                return;
            }
            let mut message = self.unchecked.split_to(total);
            let body = &message[header + 4..];
            let outcome = if self.startup {
                check_startup(body).map(|started| {
                    self.startup = !started;
                    None
                })
            } else {
                check_typed(message[0], body)
            };
            match outcome {
                Ok(negative_row_limit) => {
                    if let Some(offset) = negative_row_limit {
                        let at = header + 4 + offset;
                        message[at..at + 4].copy_from_slice(&0i32.to_be_bytes());
                    }
                    self.checked.put(message);
                }
                Err(problem) => self.failed = Some(problem),
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CheckedStream<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            this.check_whole_messages();
            if !this.checked.is_empty() {
                let n = this.checked.len().min(buf.remaining());
                buf.put_slice(&this.checked[..n]);
                this.checked.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(problem) = &this.failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, problem.clone())));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.unchecked.extend_from_slice(read.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CheckedStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The malformed-message problem inside an error from the checked stream, if it is one.
pub fn malformed_message(error: &io::Error) -> Option<&Malformed> {
    error.get_ref()?.downcast_ref::<Malformed>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn startup() -> Vec<u8> {
        let body = [&196608i32.to_be_bytes()[..], b"user\0alice\0\0"].concat();
        [&(body.len() as i32 + 4).to_be_bytes()[..], &body].concat()
    }

    /// What pgwire would read from `bytes` sent after a StartupMessage, and the problem found.
    fn pass(bytes: &[u8]) -> (Vec<u8>, Option<Malformed>) {
        let mut stream = CheckedStream::new(tokio::io::empty(), BytesMut::from(&[&startup()[..], bytes].concat()[..]));
        stream.check_whole_messages();
        (stream.checked[startup().len()..].to_vec(), stream.failed)
    }

    #[test]
    fn well_formed_messages_pass_unchanged() {
        let parse = typed(b'P', &[b"s1\0SELECT $1\0".as_slice(), &1i16.to_be_bytes(), &23i32.to_be_bytes()].concat());
        let bind = typed(
            b'B',
            &[
                b"\0s1\0".as_slice(),
                &1i16.to_be_bytes(),
                &1i16.to_be_bytes(),
                &1i16.to_be_bytes(),
                &4i32.to_be_bytes(),
                &7i32.to_be_bytes(),
                &0i16.to_be_bytes(),
            ]
            .concat(),
        );
        let all = [parse, bind, typed(b'E', b"\0\0\0\0\0"), typed(b'S', b""), typed(b'Q', b"SELECT 1\0")].concat();
        assert_eq!(pass(&all), (all.clone(), None));
    }

    #[test]
    fn counts_and_lengths_beyond_the_message_are_refused() {
        let cases = [
            (typed(b'P', &[b"\0SELECT 1\0".as_slice(), &5i16.to_be_bytes()].concat()), "parameter types needs 20"),
            (typed(b'P', &[b"\0SELECT 1\0".as_slice(), &(-1i16).to_be_bytes()].concat()), "negative parameter type"),
            (
                typed(
                    b'B',
                    &[b"\0\0".as_slice(), &0i16.to_be_bytes(), &1i16.to_be_bytes(), &i32::MAX.to_be_bytes()].concat(),
                ),
                "parameter value needs 2147483647",
            ),
            (typed(b'E', b"\0\0\0"), "row limit needs 4"),
            (typed(b'D', b"X\0"), "neither S nor P"),
            (typed(b'Q', b"SELECT 1"), "not terminated"),
            (typed(b'S', b"junk"), "bytes after its last field"),
            (b"P\xff\xff\xff\xff".to_vec(), "invalid message length -1"),
            (typed(b'Z', b""), "message type Z"),
        ];
        for (bytes, expected) in cases {
            let (passed, problem) = pass(&bytes);
            assert!(passed.is_empty(), "{expected}: passed {passed:?}");
            let problem = problem.unwrap_or_else(|| panic!("{expected}: accepted"));
            assert!(problem.0.contains(expected), "{problem} does not say {expected}");
        }
    }

    #[test]
    fn messages_before_a_malformed_one_still_pass() {
        let sync = typed(b'S', b"");
        let (passed, problem) = pass(&[sync.clone(), typed(b'E', b"\0")].concat());
        assert_eq!(passed, sync);
        assert!(problem.is_some());
    }

    #[test]
    fn a_negative_row_limit_means_no_limit() {
        let (passed, problem) = pass(&typed(b'E', &[b"\0".as_slice(), &(-5i32).to_be_bytes()].concat()));
        assert_eq!((passed, problem), (typed(b'E', &[b"\0".as_slice(), &0i32.to_be_bytes()].concat()), None));
    }

    #[test]
    fn a_cleartext_password_is_not_a_sasl_initial_response() {
        assert!(check_sasl_initial_response(b"secret\0").unwrap_err().0.contains("response length needs 4"));
        let sasl = [b"SCRAM-SHA-256\0".as_slice(), &3i32.to_be_bytes(), b"n,,"].concat();
        assert_eq!(check_sasl_initial_response(&sasl), Ok(()));
    }

    /// pgwire's decoding of everything the checker passes, message by message, as the
    /// connection's codec does it; `Err` with the panic's text if pgwire panicked.
    fn decode_all_with_pgwire(checked: &[u8]) -> Result<(), String> {
        use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};
        let mut buf = BytesMut::from(checked);
        let mut context = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        context.awaiting_frontend_ssl = false;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            while !buf.is_empty() {
                match PgWireFrontendMessage::decode(&mut buf, &context) {
                    Ok(Some(PgWireFrontendMessage::Startup(_))) => context.awaiting_frontend_startup = false,
                    Ok(Some(PgWireFrontendMessage::PasswordMessageFamily(message))) => {
                        if let pgwire::messages::startup::PasswordMessageFamily::Raw(body) = &message {
                            if check_sasl_initial_response(body).is_ok() {
                                let _ = message.into_sasl_initial_response();
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }))
        .map_err(|panic| format!("{panic:?}"))
    }

    /// Messages of the kinds clients send, then cut, lengthened, re-counted or overwritten
    /// at random: the fuzzing corpus of the property below.
    fn mutated_messages() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let kinds = prop::sample::select(b"QPBEDCfHSXcdpzF".to_vec());
        let message = (kinds, prop::collection::vec(any::<u8>(), 0..48), any::<i16>(), any::<i32>(), 0u8..6).prop_map(
            |(kind, mut body, count, length, how)| {
                match how {
                    // A count or length field planted where decoders read one.
                    0 => body.splice(0..0, count.to_be_bytes()).for_each(drop),
                    1 => body.splice(0..0, [&b"\0\0"[..], &length.to_be_bytes()].concat()).for_each(drop),
                    2 => body.push(0),
                    _ => {}
                }
                let declared = if how == 5 { length } else { body.len() as i32 + 4 };
                [&[kind][..], &declared.to_be_bytes(), &body].concat()
            },
        );
        prop::collection::vec(message, 1..6).prop_map(|messages| messages.concat())
    }

    proptest::proptest! {
        // NORTHSTAR_FUZZ_CASES raises the count for a long fuzzing run (docs/clients.md).
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("NORTHSTAR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000)
        ))]

        #[test]
        fn whatever_the_checker_passes_pgwire_decodes_without_panicking(tail in mutated_messages()) {
            let mut stream = CheckedStream::new(tokio::io::empty(), BytesMut::from(&[&startup()[..], &tail].concat()[..]));
            stream.check_whole_messages();
            proptest::prop_assert_eq!(decode_all_with_pgwire(&stream.checked), Ok(()));
        }
    }

    #[test]
    fn the_fuzz_property_catches_what_pgwire_panics_on() {
        // The same decoding without the checker panics on a short Parse: the property can fail.
        let parse = typed(b'P', &[b"\0SELECT 1\0".as_slice(), &100i16.to_be_bytes()].concat());
        let unchecked = [startup(), parse].concat();
        assert!(decode_all_with_pgwire(&unchecked).is_err());
    }

    #[test]
    fn startup_packets_are_checked() {
        let mut stream = CheckedStream::new(tokio::io::empty(), BytesMut::from(&b"\0\0\0\x09\0\x03\0\0u"[..]));
        stream.check_whole_messages();
        assert!(stream.failed.unwrap().0.contains("not terminated"));
        let cancel =
            [&16i32.to_be_bytes()[..], &80877102i32.to_be_bytes(), &7i32.to_be_bytes(), &9i32.to_be_bytes()].concat();
        let mut stream = CheckedStream::new(tokio::io::empty(), BytesMut::from(&cancel[..]));
        stream.check_whole_messages();
        assert_eq!((stream.checked.len(), stream.failed), (16, None));
    }
}
