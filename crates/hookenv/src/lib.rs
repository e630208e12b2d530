//! The only code of the charm that runs Juju hook tools.
//!
//! # Layout
//!
//! - [`context`]: the hook context (unit, hook name, relation...) parsed once
//!   from the environment Juju builds for the hook.
//! - [`runner`]: how a tool is run: the real processes, or a fake in tests.
//! - [`client`]: a typed client of the tools: always `--format=json`, each
//!   value read at most once per hook, writes that change nothing skipped,
//!   large or secret values sent on stdin (`--file -`), never in argv.
//! - [`log`]: `tracing` events and panics to `juju-log`.
//! - [`secrets`]: values scrubbed from every status and log line.

#![deny(missing_docs)]

pub mod client;
pub mod context;
pub mod log;
pub mod runner;
pub mod secrets;

pub use client::{HookTools, ToolError};
pub use context::{ContextError, HookContext, HookKind, Proxy};
pub use juju_contract::{Databag, Tool, WorkloadStatus};
pub use runner::{ProcessRunner, ToolOutput, ToolRunner};

/// Cases for the crate's own property tests: WSGI_FUZZ_CASES (set by
/// scripts/soak) overrides the count CI runs.
#[cfg(test)]
pub(crate) fn fuzz_cases(ci: u32) -> u32 {
    std::env::var("WSGI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}
