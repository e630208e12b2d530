//! `engine-trace`: a handler set described as data, run through the engine,
//! so that its behaviour can be compared case by case with charms.reactive.
//!
//! Input (the spec) and output (the trace):
//! ```text
//! {"hook": "config-changed", "flags": ["a"],
//!  "handlers": [{"name": "h1", "hooks": ["config-changed"], "set": ["b"], "clear": []},
//!               {"name": "h2", "when_all": ["a"], "when_not": ["c"], "set": ["c"], "clear": ["a"]}],
//!  "triggers": [{"when": "c", "set": ["d"], "clear": []}, {"when_not": "a", "clear": ["b"]}]}
//! → {"invoked": ["h1", "h2"], "flags": ["c", "d"]}
//! ```
//! A handler sets its `set` flags in order, then clears its `clear` flags.
//! Triggers are registered first, then the spec's `flags` are set (so
//! triggers fire on them), then the hook is dispatched.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{DispatchError, Edge, Engine, PatternError, State};

/// A handler set and the situation to dispatch it in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The hook to dispatch.
    pub hook: String,
    /// Flags set before dispatch.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Handlers, in registration order.
    #[serde(default)]
    pub handlers: Vec<SpecHandler>,
    /// Triggers, in registration order.
    #[serde(default)]
    pub triggers: Vec<SpecTrigger>,
}

/// One handler of a [`Spec`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecHandler {
    /// Its name, as reported in `invoked`.
    pub name: String,
    /// Hook patterns (hooks phase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
    /// All of these flags set.
    #[serde(default)]
    pub when_all: Vec<String>,
    /// At least one of these set.
    #[serde(default)]
    pub when_any: Vec<String>,
    /// None of these set.
    #[serde(default)]
    pub when_not: Vec<String>,
    /// Not all of these set.
    #[serde(default)]
    pub when_not_all: Vec<String>,
    /// Flags the body sets, in order.
    #[serde(default)]
    pub set: Vec<String>,
    /// Flags the body then clears, in order.
    #[serde(default)]
    pub clear: Vec<String>,
}

/// One trigger of a [`Spec`]: exactly one of `when`, `when_not`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecTrigger {
    /// Fires when this flag is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Fires when this flag is cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_not: Option<String>,
    /// Flags to set.
    #[serde(default)]
    pub set: Vec<String>,
    /// Flags to clear.
    #[serde(default)]
    pub clear: Vec<String>,
}

/// What the engine did with a [`Spec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// Handler names in the order they ran.
    pub invoked: Vec<String>,
    /// The flags after dispatch, sorted.
    pub flags: Vec<String>,
}

/// A spec that cannot be run, or that does not settle.
#[derive(Debug, Error)]
pub enum TraceError {
    /// Not a spec.
    #[error("bad spec: {0}")]
    Spec(#[from] serde_json::Error),
    /// A trigger without exactly one of when/when_not.
    #[error("bad spec: trigger {0} needs exactly one of \"when\" and \"when_not\"")]
    Trigger(usize),
    /// A bad hook pattern.
    #[error("bad spec: {0}")]
    Pattern(#[from] PatternError),
    /// Dispatch failed (e.g. did not settle).
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

/// Builds the engine a spec describes.
pub fn engine(spec: &Spec) -> Result<Engine<()>, TraceError> {
    let mut engine = Engine::new();
    for (i, t) in spec.triggers.iter().enumerate() {
        let (flag, edge) = match (&t.when, &t.when_not) {
            (Some(f), None) => (f, Edge::Set),
            (None, Some(f)) => (f, Edge::Cleared),
            _ => return Err(TraceError::Trigger(i)),
        };
        let set: Vec<&str> = t.set.iter().map(String::as_str).collect();
        let clear: Vec<&str> = t.clear.iter().map(String::as_str).collect();
        engine.trigger(flag, edge, &set, &clear);
    }
    for h in &spec.handlers {
        let (set, clear) = (h.set.clone(), h.clear.clone());
        engine
            .handler(h.name.clone())
            .hooks(&strs(&h.hooks))
            .when_all(&strs(&h.when_all))
            .when_any(&strs(&h.when_any))
            .when_not(&strs(&h.when_not))
            .when_not_all(&strs(&h.when_not_all))
            .run(move |ctx| {
                for f in &set {
                    ctx.set_flag(f);
                }
                for f in &clear {
                    ctx.clear_flag(f);
                }
                Ok(())
            })?;
    }
    Ok(engine)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `spec` from `state` (whose flags the spec's `flags` are added to),
/// leaving the result in `state`.
pub fn run_from(spec: &Spec, state: &mut State) -> Result<Trace, TraceError> {
    let engine = engine(spec)?;
    // Setting the initial flags is itself a dispatch-free step in which
    // triggers fire: a hook phase for a hook no handler is bound to.
    let mut init = Engine::<()>::new();
    init.triggers = engine.triggers.clone();
    init.dispatch_setting(&spec.flags, state)?;
    let report = engine.dispatch(&spec.hook, &[], state, &mut ())?;
    Ok(Trace {
        invoked: report.invoked,
        flags: state.flags.iter().cloned().collect(),
    })
}

/// Runs `spec` from no flags.
pub fn run(spec: &Spec) -> Result<Trace, TraceError> {
    run_from(spec, &mut State::default())
}
