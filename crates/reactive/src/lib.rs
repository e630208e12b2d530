//! The reactive engine: flags, handlers, the dispatch loop, triggers and the
//! state store, with the semantics of charms.reactive 1.5.3 (its `bus.py`)
//! and its known faults fixed.
//!
//! The engine knows nothing of WSGI and never runs a hook tool: handlers are
//! generic over a layer context `C` that the runtime supplies, and the
//! automatic `config.*` flags are computed from maps handed in.
//!
//! # Semantics in one screen
//!
//! - A hook is dispatched in two phases. The *hooks phase* runs once the
//!   handlers bound to the hook's name (patterns such as
//!   `{postgres,mongo}-relation-{joined,changed}`). The *flag loop* then runs
//!   passes: pass 0 runs every handler whose conditions hold; a later pass runs
//!   only handlers whose conditions hold and one of whose watched flags changed
//!   in the previous pass.
//! - Setting a flag takes effect in the next pass; clearing one (even an unset
//!   one) re-tests the not-yet-run handlers of the current pass at once.
//! - Order within a pass is registration order: deterministic, where
//!   charms.reactive follows the file system's walk order.
//! - A loop that has not settled after [`MAX_PASSES`] passes is an error naming
//!   the flags that kept changing, where charms.reactive stops silently.
//! - Triggers set or clear flags synchronously on real transitions.
//! - Flags, `data_changed` hashes and the config snapshot live in one
//!   [`State`], written by [`StateStore::commit`] once, atomically, only after
//!   a hook succeeded.
//!
//! # Layout
//!
//! - `flags.rs`: the flag book of one dispatch and its change log.
//! - `pattern.rs`: hook-name patterns (`{a,b}` alternation).
//! - `handler.rs`: conditions, handler bodies, the builder.
//! - `ctx.rs`: [`Ctx`], what a handler body receives.
//! - `trigger.rs`: synchronous triggers.
//! - `dispatch.rs`: the hooks phase and the flag loop.
//! - `state.rs`: [`State`] and its atomic [`StateStore`].
//! - `config_flags.rs`: the automatic `config.*` flags.
//! - `trace.rs`: `engine-trace`, a handler set described as data, for
//!   comparison with charms.reactive.

#![deny(missing_docs)]

mod config_flags;
mod ctx;
mod dispatch;
mod flags;
mod handler;
mod pattern;
mod state;
pub mod trace;
mod trigger;

pub use config_flags::config_flags;
pub use ctx::{Ctx, StoredError};
pub use dispatch::{DispatchError, MAX_PASSES, Report};
pub use handler::{HandlerBuilder, HandlerResult};
pub use pattern::{HookPattern, PatternError};
pub use state::{Loaded, Snapshot, State, StateError, StateStore};
pub use trigger::Edge;

use handler::Handler;
use trigger::Triggers;

/// A set of handlers and triggers, generic over the layer context `C` that
/// handler bodies receive.
pub struct Engine<C> {
    handlers: Vec<Handler<C>>,
    pub(crate) triggers: Triggers,
}

impl<C> Default for Engine<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> Engine<C> {
    /// An engine with no handlers.
    pub fn new() -> Self {
        Engine {
            handlers: Vec::new(),
            triggers: Triggers::default(),
        }
    }

    /// Starts registering a handler; finish with [`HandlerBuilder::run`].
    /// Handlers run in registration order within a pass.
    pub fn handler(&mut self, name: impl Into<String>) -> HandlerBuilder<'_, C> {
        HandlerBuilder::new(self, name.into())
    }

    /// When `flag` makes the transition `edge`, set `set` then clear `clear`,
    /// at once. Several triggers on one transition merge, as in
    /// charms.reactive: all their flags to set (in registration order), then
    /// all their flags to clear.
    pub fn trigger(&mut self, flag: &str, edge: Edge, set: &[&str], clear: &[&str]) {
        self.triggers.add(flag, edge, set, clear);
    }

    /// The names of the registered handlers, in order.
    pub fn handler_names(&self) -> impl Iterator<Item = &str> {
        self.handlers.iter().map(|h| h.name.as_str())
    }

    fn push(&mut self, handler: Handler<C>) {
        self.handlers.push(handler);
    }
}

/// Cases for the crate's own property tests: WSGI_FUZZ_CASES (set by
/// scripts/soak) overrides the count CI runs.
#[cfg(test)]
pub(crate) fn fuzz_cases(ci: u32) -> u32 {
    std::env::var("WSGI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}
