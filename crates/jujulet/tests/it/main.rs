//! jujulet's integration tests: one binary, one module per area, one
//! support module. Tests that boot machines or run real servers are
//! ignored (with the reason) unless the `e2e` feature is on; with it, a
//! missing tool fails them.
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

mod e2e_nspawn;
mod machine_nspawn;
mod machine_reaches_standins;
mod scheduler;
mod standin_haproxy;
mod standin_mongodb;
mod standin_postgresql;
mod support;
mod tools;
mod wsgi_dbcheck;
mod wsgi_faults;
mod wsgi_hello;
mod wsgi_layered;
mod wsgi_proxy;
mod wsgi_relations;
mod wsgi_releases;
mod wsgi_resilience;
mod wsgi_security;
