//! Triggers: when flag F is set (or cleared), set and clear other flags at
//! once. Stored merged per (flag, edge) exactly as charms.reactive keeps them
//! (`reactive.flag_set_triggers.F`): the flags to set, then the flags to clear.

use std::collections::BTreeMap;

/// The transition a trigger fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    /// The flag went from unset to set.
    Set,
    /// The flag went from set to unset.
    Cleared,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Actions {
    pub(crate) set: Vec<String>,
    pub(crate) clear: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Triggers {
    by_flag: BTreeMap<(String, Edge), Actions>,
}

impl Triggers {
    pub(crate) fn add(&mut self, flag: &str, edge: Edge, set: &[&str], clear: &[&str]) {
        let actions = self.by_flag.entry((flag.to_owned(), edge)).or_default();
        // charms.reactive ignores a flag already listed for the same trigger.
        for f in set {
            if !actions.set.iter().any(|s| s == f) {
                actions.set.push((*f).to_owned());
            }
        }
        for f in clear {
            if !actions.clear.iter().any(|s| s == f) {
                actions.clear.push((*f).to_owned());
            }
        }
    }

    pub(crate) fn get(&self, flag: &str, edge: Edge) -> Option<&Actions> {
        self.by_flag.get(&(flag.to_owned(), edge))
    }
}
