//! The only module that runs Juju hook tools.
//!
//! - [`context`]: the hook context (unit, hook name, relation…) parsed once
//!   from the environment Juju builds for the hook.
//! - [`runner`]: how a tool is run: the real processes, or a fake in tests.
//! - [`client`]: a typed client of the tools: always `--format=json`, each
//!   value read at most once per hook, writes that change nothing skipped,
//!   large or secret values sent on stdin (`--file -`), never in argv.

pub mod client;
pub mod context;
pub mod runner;

pub use client::{HookTools, ToolError};
pub use context::{ContextError, HookContext, HookKind};
pub use runner::{ProcessRunner, ToolOutput, ToolRunner};
