//! Users and SCRAM-SHA-256 over stored verifiers.
//!
//! PostgreSQL stores `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` and never the
//! password; Northstar stores the same string, so a verifier can be copied from `pg_authid`.
//! pgwire 0.41's SCRAM server wants the salted password instead (a password equivalent), so the
//! exchange (RFC 5802/7677, about a hundred lines) is done here against the verifier.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

use pgwire::error::PgWireResult;

use crate::errors::{error, read_only, INSUFFICIENT_PRIVILEGE};
use crate::statement::Access;

pub const SCRAM_ITERATIONS: u32 = 4096;

/// The one authorization decision: whether `role` may run a statement of `access` (resolved:
/// an `EXECUTE` has the access of the statement it runs). Every statement passes here once,
/// before it runs, whichever protocol path it came by; `tag` names it in the refusal.
pub fn authorize(role: Role, access: &Access, tag: &str) -> PgWireResult<()> {
    match (role, access) {
        (_, Access::Forbidden(why)) => Err(error(INSUFFICIENT_PRIVILEGE, why.clone())),
        (Role::Writer, _) | (Role::Reader, Access::Read) => Ok(()),
        (Role::Reader, Access::Write | Access::OfPrepared(_)) => Err(read_only(tag)),
    }
}

/// DataFusion settings a client may change with `SET`: how queries are planned, explained,
/// parsed and printed, and the session time zone. Everything else under `datafusion.` is the
/// server's (`runtime.*`: memory limit, temporary directory; `execution.*`: batch size,
/// partitions, spilling; `catalog.*`: locations), set by its command-line options.
const SETTABLE_DATAFUSION_PREFIXES: [&str; 5] = [
    "datafusion.optimizer.",
    "datafusion.explain.",
    "datafusion.sql_parser.",
    "datafusion.format.",
    "datafusion.execution.time_zone",
];

/// Whether any client may `SET name` (see [`SETTABLE_DATAFUSION_PREFIXES`]); Northstar's own
/// settings (`statement_timeout`, `TimeZone` …) are checked by `Settings`.
pub fn authorize_setting(name: &str) -> PgWireResult<()> {
    let lower = name.to_ascii_lowercase();
    if !lower.starts_with("datafusion.") || SETTABLE_DATAFUSION_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Ok(());
    }
    Err(error(
        INSUFFICIENT_PRIVILEGE,
        format!("permission denied to set parameter \"{name}\": the server's limits and paths are set when it starts"),
    ))
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Queries and writes (INSERT, COPY FROM, CREATE …).
    Writer,
    /// Queries only.
    Reader,
}

impl Role {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "writer" | "rw" | "read-write" => Ok(Role::Writer),
            "reader" | "ro" | "read-only" | "readonly" => Ok(Role::Reader),
            other => Err(format!("unknown role '{other}': expected writer or reader")),
        }
    }
}

/// A SCRAM-SHA-256 verifier in PostgreSQL's text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Verifier {
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: digest::digest(&digest::SHA256, &client_key).as_ref().to_vec(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A verifier with a fresh random 16-byte salt.
    pub fn generate(password: &str) -> Self {
        let salt: [u8; 16] = rand_bytes();
        Self::from_password(password, &salt, SCRAM_ITERATIONS)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>): '{text}'")
        };
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let decode = |s: &str| B64.decode(s).map_err(|_| bad());
        let v = Verifier {
            iterations: iterations.parse().map_err(|_| bad())?,
            salt: decode(salt)?,
            stored_key: decode(stored)?,
            server_key: decode(server)?,
        };
        if v.stored_key.len() != 32 || v.server_key.len() != 32 || v.iterations == 0 {
            return Err(bad());
        }
        Ok(v)
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub role: Role,
    pub verifier: Verifier,
}

/// The users allowed to connect. Empty means no password authentication (trust), which the
/// server permits only on loopback.
#[derive(Debug, Clone, Default)]
pub struct Users(HashMap<String, User>);

impl Users {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.0.get(name)
    }

    pub fn insert(&mut self, name: &str, user: User) {
        self.0.insert(name.to_string(), user);
    }

    /// `name:password` from a flag or environment variable; only the verifier is kept.
    pub fn add_from_spec(&mut self, spec: &str, role: Role) -> Result<(), String> {
        let (name, password) = spec.split_once(':').ok_or_else(|| format!("user '{spec}': expected NAME:PASSWORD"))?;
        if name.is_empty() || password.is_empty() {
            return Err(format!("user '{name}': name and password must not be empty"));
        }
        self.insert(name, User { role, verifier: Verifier::generate(password) });
        Ok(())
    }

    /// A users file: one `name role verifier` per line (`#` starts a comment), as printed by
    /// `northstar hash-password`.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |msg: String| format!("{}: line {}: {msg}", path.display(), i + 1);
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, role, verifier] = parts[..] else {
                return Err(at("expected: NAME ROLE VERIFIER (role: writer or reader)".into()));
            };
            let role = Role::parse(role).map_err(at)?;
            let verifier = Verifier::parse(verifier).map_err(at)?;
            self.insert(name, User { role, verifier });
        }
        Ok(())
    }
}

/// Server side of one SCRAM-SHA-256 exchange (no channel binding).
#[derive(Debug)]
pub struct ScramExchange {
    verifier: Verifier,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramExchange {
    /// Handles client-first-message; returns the exchange and server-first-message.
    pub fn start(client_first: &[u8], verifier: Verifier) -> Result<(Self, String), String> {
        let text = std::str::from_utf8(client_first).map_err(|_| "SCRAM message is not UTF-8".to_string())?;
        // gs2-header: "n,," (no binding) or "y,," (client could bind, thinks we cannot).
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or_else(|| "unsupported SCRAM channel binding request".to_string())?;
        let client_nonce =
            attribute(bare, 'r').ok_or_else(|| "SCRAM client-first-message without nonce".to_string())?;
        let nonce = format!("{client_nonce}{}", B64.encode(rand_bytes::<18>()));
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&verifier.salt), verifier.iterations);
        Ok((
            ScramExchange { verifier, client_first_bare: bare.to_string(), server_first: server_first.clone(), nonce },
            server_first,
        ))
    }

    /// Checks client-final-message; returns server-final-message when the proof is right.
    pub fn finish(&self, client_final: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(client_final).map_err(|_| "SCRAM message is not UTF-8".to_string())?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or_else(|| "SCRAM client-final-message without proof".to_string())?;
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err("SCRAM nonce mismatch".into());
        }
        let proof = B64.decode(proof).map_err(|_| "SCRAM proof is not base64".to_string())?;
        let auth_message = format!("{},{},{}", self.client_first_bare, self.server_first, without_proof);
        let client_signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err("wrong password".into());
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        let stored = digest::digest(&digest::SHA256, &client_key);
        // Constant-time comparison: every byte is looked at whatever the first difference.
        let difference = stored.as_ref().iter().zip(&self.verifier.stored_key).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 || self.verifier.stored_key.len() != stored.as_ref().len() {
            return Err("wrong password".into());
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| part.strip_prefix(name).and_then(|p| p.strip_prefix('=')))
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    // SASLprep as PostgreSQL does; a password it rejects is used as is (PostgreSQL's rule too).
    let normalized = stringprep::saslprep(password).map(|p| p.into_owned()).unwrap_or_else(|_| password.to_string());
    let mut out = vec![0u8; 32];
    let iterations = std::num::NonZeroU32::new(iterations).expect("iterations > 0");
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, normalized.as_bytes(), &mut out);
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).expect("system randomness");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_may_run_reads_only() {
        assert!(authorize(Role::Reader, &Access::Read, "SELECT").is_ok());
        assert!(authorize(Role::Reader, &Access::Write, "INSERT").is_err());
        // An EXECUTE not resolved to what it runs is refused rather than guessed.
        assert!(authorize(Role::Reader, &Access::OfPrepared("p".into()), "EXECUTE").is_err());
        assert!(authorize(Role::Writer, &Access::Write, "INSERT").is_ok());
    }

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil".
    #[test]
    fn rfc7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = Verifier::from_password("pencil", &salt, 4096);
        let client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (mut exchange, _) = ScramExchange::start(client_first, verifier).unwrap();
        // Replay the RFC's server nonce so its proof applies.
        exchange.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        exchange.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", exchange.nonce);
        let final_msg = format!("c=biws,r={},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", exchange.nonce);
        assert_eq!(exchange.finish(final_msg.as_bytes()).unwrap(), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        let wrong = format!("c=biws,r={},p=AAAAZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", exchange.nonce);
        assert!(exchange.finish(wrong.as_bytes()).is_err());
    }

    #[test]
    fn verifier_round_trips_through_text() {
        let v = Verifier::generate("secret");
        assert_eq!(Verifier::parse(&v.to_string()).unwrap(), v);
        assert!(Verifier::parse("md5abc").unwrap_err().contains("SCRAM-SHA-256$"));
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let v = Verifier::generate("pw");
        std::fs::write(&path, format!("# users\nalice writer {v}\nbob admin {v}\n")).unwrap();
        let err = Users::default().load_file(&path).unwrap_err();
        assert!(err.contains("line 3") && err.contains("unknown role"), "{err}");
    }
}
