//! The hook binary's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

mod differential;
mod runtime_hooks;
