//! Northstar's integration tests: one binary, so the dependency tree links once.

mod bad_input;
mod buckets;
mod collector;
mod crash;
mod damage;
mod dates;
mod demo;
mod distributed;
mod experiments;
mod functions;
mod goldens;
mod identity;
mod import;
mod maintenance;
mod object_store;
mod properties;
mod query;
mod reports;
mod server;
mod support;
