//! The machine, for the charm's hooks and for jujulet alike: processes with
//! timeouts and process-group kill, /proc, files written atomically,
//! systemd, apt, users, virtualenvs, release archives, an HTTP probe.
//!
//! Nothing here knows about WSGI or Juju. Every failure is an [`Error`] that
//! names the command or path, its exit status and the tail of its output.
//!
//! # Layout
//!
//! - [`process`]: [`Cmd`], one way to run a command (timeout, its own
//!   process group killed whole, the output's tail kept for errors), and
//!   [`process::output_within`] for a plain `std::process::Command`.
//! - [`children`]: the record of running commands that lets the next hook
//!   end what a killed one left behind.
//! - [`proc`]: processes by PID and start time, their children, signals.
//! - [`text`]: the tails of outputs and files, for messages.
//! - [`wait`]: polling until a condition holds.
//! - [`fs`]: files written atomically and only when changed.
//! - [`systemd`], [`apt`], [`users`]: the services, packages and users.
//! - [`sandbox`]: a command run as an unprivileged user in a transient
//!   unit with the service's hardening.
//! - [`venv`]: a virtualenv filled by uv or pip.
//! - [`release`]: a tar archive unpacked as a release, `current` switched.
//! - [`health`]: an HTTP probe on loopback; [`net`]: who holds a port.

#![deny(missing_docs)]

pub mod apt;
pub mod children;
mod error;
pub mod fs;
pub mod health;
pub mod net;
pub mod proc;
pub mod process;
pub mod release;
pub mod sandbox;
pub mod systemd;
pub mod text;
pub mod users;
pub mod venv;
pub mod wait;

pub use error::Error;
pub use process::{Cmd, Exit, Output};

/// SHA-256 of `bytes`, lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The path of `program` on PATH, if there is one.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    ::which::which(program).ok()
}
