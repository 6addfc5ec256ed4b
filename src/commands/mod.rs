//! One module per command; each takes its parsed arguments from `crate::cli`.

pub mod cluster;
pub mod demo;
pub mod generate;
pub mod hash_password;
pub mod import;
pub mod maintenance;
pub mod query;
pub mod serve;
