//! The flag book of one dispatch: the current flags, the changes recorded for
//! the pass gating (charms.reactive's `FlagWatch`), the "a flag was cleared"
//! marker that re-tests the current pass, and synchronous triggers.

use std::collections::BTreeSet;

use super::trigger::{Edge, Triggers};

/// Triggers that re-trigger each other forever would overflow the stack; a
/// chain this deep is a bug in the handler set, reported, not a crash.
const MAX_TRIGGER_DEPTH: usize = 64;

pub(crate) struct FlagBook {
    pub(crate) flags: BTreeSet<String>,
    triggers: Triggers,
    /// Flags that changed (really) since the last commit of the watch.
    pending: Vec<String>,
    /// Flags that changed in the previous pass: what gates the next one.
    changes: BTreeSet<String>,
    /// Set by every clear, even of an unset flag, as in charms.reactive.
    pub(crate) removed: bool,
    pub(crate) trigger_overflow: Option<String>,
}

impl FlagBook {
    pub(crate) fn new(flags: BTreeSet<String>, triggers: Triggers) -> Self {
        FlagBook {
            flags,
            triggers,
            pending: Vec::new(),
            changes: BTreeSet::new(),
            removed: false,
            trigger_overflow: None,
        }
    }

    pub(crate) fn is_set(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    pub(crate) fn set(&mut self, flag: &str) {
        self.set_at(flag, 0);
    }

    pub(crate) fn clear(&mut self, flag: &str) {
        self.clear_at(flag, 0);
    }

    fn set_at(&mut self, flag: &str, depth: usize) {
        if self.flags.insert(flag.to_owned()) {
            self.pending.push(flag.to_owned());
            self.fire(flag, Edge::Set, depth);
        }
    }

    fn clear_at(&mut self, flag: &str, depth: usize) {
        self.removed = true;
        if self.flags.remove(flag) {
            self.pending.push(flag.to_owned());
            self.fire(flag, Edge::Cleared, depth);
        }
    }

    fn fire(&mut self, flag: &str, edge: Edge, depth: usize) {
        let Some(actions) = self.triggers.get(flag, edge) else {
            return;
        };
        if depth >= MAX_TRIGGER_DEPTH {
            self.trigger_overflow.get_or_insert_with(|| flag.to_owned());
            return;
        }
        let actions = actions.clone();
        for f in &actions.set {
            self.set_at(f, depth + 1);
        }
        for f in &actions.clear {
            self.clear_at(f, depth + 1);
        }
    }

    /// Whether any of `watched` changed in the previous pass.
    pub(crate) fn changed_last_pass(&self, watched: &BTreeSet<String>) -> bool {
        !self.changes.is_disjoint(watched)
    }

    /// The flags that changed in the previous pass.
    pub(crate) fn last_changes(&self) -> &BTreeSet<String> {
        &self.changes
    }

    /// Ends a batch: its changes gate the next pass (`FlagWatch.commit`).
    pub(crate) fn commit_watch(&mut self) -> &BTreeSet<String> {
        self.changes = std::mem::take(&mut self.pending).into_iter().collect();
        &self.changes
    }

    /// Forgets changes made before the dispatch started (`FlagWatch.reset`).
    pub(crate) fn reset_watch(&mut self) {
        self.pending.clear();
        self.changes.clear();
    }
}
