//! wsgi-dbcheck as the agent runs it.
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

mod binary;
