//! The flag book of one dispatch: the current flags, the changes recorded for
//! the pass gating (charms.reactive's `FlagWatch`), the "a flag was cleared"
//! marker that re-tests the current pass, and synchronous triggers.

use std::collections::BTreeSet;

use super::trigger::{Edge, Triggers};

/// Triggers that re-trigger each other forever would overflow the stack; a
/// chain this deep is a bug in the handler set, reported, not a crash.
const MAX_TRIGGER_DEPTH: usize = 64;
/// Firings allowed per set or clear made by a handler. Depth alone is not
/// enough: triggers that each set and clear several flags branch, and a
/// tree 64 deep is exponential (the soak found one that took 24 GB).
const MAX_TRIGGER_FIRINGS: usize = 4096;

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
    /// Firings since the last set or clear made by a handler.
    fired: usize,
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
            fired: 0,
        }
    }

    pub(crate) fn is_set(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    pub(crate) fn set(&mut self, flag: &str) {
        self.fired = 0;
        self.set_at(flag, 0);
    }

    pub(crate) fn clear(&mut self, flag: &str) {
        self.fired = 0;
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
        self.fired += 1;
        if depth >= MAX_TRIGGER_DEPTH || self.fired > MAX_TRIGGER_FIRINGS {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Triggers that branch (each change sets one flag and clears another)
    /// would make a tree of 2^64 firings; the budget stops it at once.
    #[test]
    fn branching_triggers_are_cut_off_quickly() {
        let mut t = Triggers::default();
        for (f, g) in [("a", "b"), ("b", "a")] {
            t.add(f, Edge::Set, &[g], &[f]);
            t.add(f, Edge::Cleared, &[f], &[g]);
        }
        let mut book = FlagBook::new(BTreeSet::new(), t);
        let start = std::time::Instant::now();
        book.set("a");
        assert!(book.trigger_overflow.is_some());
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        assert!(book.pending.len() <= 2 * MAX_TRIGGER_FIRINGS + 2);
    }
}
