//! wsgi-agent: the hooks of the wsgi charm.
//!
//! # Layout
//!
//! - [`hookenv`]: the only module that runs Juju hook tools; a typed, cached client
//!   and the hook context parsed once from the environment.
//! - [`reactive`]: the engine (flags, handlers, dispatch loop, triggers, state
//!   store). It knows nothing of WSGI, nor of hook tools.
//! - [`wsgi`]: the WSGI layer: handlers, rendering of the unit, environment and
//!   gunicorn files; it acts on the machine only through its `Host` seam.
//! - [`host`]: the machine: processes with timeouts, atomic files, systemd,
//!   users, apt, virtualenvs, release archives, the HTTP health probe.
//!   It knows nothing of WSGI or Juju.
//!
//! Relation protocols live in the `interfaces` crate (pure functions, no I/O).

pub mod hookenv;
pub mod host;
pub mod reactive;
pub mod runtime;
pub mod wsgi;

/// Cases for the crate's own property tests: WSGI_FUZZ_CASES (set by
/// scripts/soak) overrides the count CI runs.
#[cfg(test)]
pub(crate) fn fuzz_cases(ci: u32) -> u32 {
    std::env::var("WSGI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}
