//! `northstar hash-password`: a SCRAM-SHA-256 verifier line for a users file.

use anyhow::{bail, Context, Result};
use northstar_server::{Role, Verifier};

use crate::cli::HashPasswordArgs;

pub fn run(args: HashPasswordArgs) -> Result<()> {
    let role = Role::parse(&args.role).map_err(anyhow::Error::msg)?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("empty password on stdin");
    }
    let role = match role {
        Role::Writer => "writer",
        Role::Reader => "reader",
    };
    println!("{} {role} {}", args.user, Verifier::generate(password));
    Ok(())
}
