//! The machine: processes with timeouts, files written atomically, systemd,
//! users, apt, virtualenvs, release archives and an HTTP health probe.
//!
//! Nothing here knows about WSGI or Juju; `crate::wsgi::system` adapts these
//! operations to the layer's `Host` seam. Every failure is a [`HostError`]
//! that names the command or path, its exit code and the tail of its output.

pub mod apt;
pub mod dbcheck;
pub mod fs;
pub mod health;
pub mod net;
pub mod process;
pub mod release;
pub mod systemd;
pub mod users;
pub mod venv;

pub use process::{Cmd, HostError};
