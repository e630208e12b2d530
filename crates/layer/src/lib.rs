//! The WSGI layer: what layer:wsgi promised, as handlers on the reactive
//! engine, and the hook runtime a charm's binary calls.
//!
//! A charm that includes the layer sets [`flags::SOURCE`] when its code is
//! in place; the layer sets [`flags::AVAILABLE`] (and [`flags::ACTIVE`])
//! while the service runs and answers its health check. The standalone
//! charm gets its code from the `app` resource instead.
//!
//! # Layout
//!
//! - [`config`]: the charm's options (config.yaml), the layer options
//!   (layer.yaml), environment variables, every per-application path;
//!   validated, pure.
//! - [`render`]: the desired state (unit file, gunicorn.conf.py, environment
//!   file, logrotate snippet), its hashes, and the least disruptive action
//!   that applies a change; pure.
//! - [`memory`]: what the layer remembers between hooks, one typed,
//!   versioned struct in the engine's state.
//! - [`seams`]: what the layer asks of Juju and of the machine, as traits,
//!   so its decisions are unit-tested with fakes.
//! - [`handlers`]: the handlers it registers on the engine; [`reconcile`]:
//!   the one that takes config, source and relations to a healthy service,
//!   step by named step; [`relations`]: its side of each relation;
//!   [`actions`]: list-releases and rollback.
//! - [`hosts`]: the seams' real implementations (hook tools, the machine),
//!   and a sandbox host for benchmarks and tests.
//! - [`runtime`]: from the process Juju starts to a committed hook.

#![deny(missing_docs)]

pub mod actions;
pub mod config;
pub mod handlers;
pub mod hosts;
pub mod memory;
pub mod reconcile;
pub mod relations;
pub mod render;
pub mod runtime;
pub mod seams;

pub use handlers::register;
pub use seams::{Host, Juju, LayerCtx, Status};

/// The layer's flags, public (layer:wsgi's contract) and internal.
pub mod flags {
    /// Set by an including charm when its code is in the application dir.
    pub const SOURCE: &str = "wsgi.source.available";
    /// Set while the service runs and answers its health check.
    pub const AVAILABLE: &str = "wsgi.available";
    /// The same as [`AVAILABLE`], under the name the seed's README used.
    pub const ACTIVE: &str = "wsgi.active";
    /// Internal: the user and base packages are in place.
    pub const INSTALLED: &str = "wsgi.installed";
}
