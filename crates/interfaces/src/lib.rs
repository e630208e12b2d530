//! Relation protocols of the wsgi charm: pure functions from relation data
//! (string databags) to typed results. No I/O, no processes, no hook tools:
//! the agent reads the databags, calls these, and writes what they return.
//!
//! - [`pgsql`]: the classic PostgreSQL charm's `pgsql` interface (requires).
//! - [`postgresql_client`]: the current PostgreSQL charm's interface (requires).
//! - [`mongodb`]: the classic `mongodb` interface (requires).
//! - [`http`]: the `http` interface (provides), for load balancers.
//! - [`url`]: `DATABASE_URL` / `MONGO_URL` with every component percent-encoded.
//! - [`validate`]: checks every value that comes from the other side.

#![deny(missing_docs)]

pub mod http;
pub mod mongodb;
pub mod pgsql;
pub mod postgresql_client;
pub mod url;
pub mod validate;

/// A relation databag: what one unit (or application) published.
pub use juju_contract::Databag;
