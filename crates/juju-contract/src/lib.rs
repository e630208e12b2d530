//! The vocabulary of Juju's hook contract, as one list each, shared by the
//! charm side (`hookenv`, which runs the tools) and by `jujulet` (which
//! implements them), so the two cannot drift apart.
//!
//! # Layout
//!
//! - [`Tool`]: every hook tool, by its command name.
//! - [`WorkloadStatus`]: what `status-set` takes.
//! - [`RelationHook`]: the relation hook kinds, in the order Juju runs them.

#![deny(missing_docs)]

use std::fmt;

macro_rules! tools {
    ($($variant:ident => $name:literal,)*) => {
        /// A hook tool, named as Juju installs it on the hook's PATH.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Tool {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Tool {
            /// Every tool, in this list's order.
            pub const ALL: &'static [Tool] = &[$(Tool::$variant,)*];

            /// The command name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Tool::$variant => $name,)*
                }
            }
        }
    };
}

tools! {
    ConfigGet => "config-get",
    RelationIds => "relation-ids",
    RelationList => "relation-list",
    RelationGet => "relation-get",
    RelationSet => "relation-set",
    StatusSet => "status-set",
    StatusGet => "status-get",
    JujuLog => "juju-log",
    OpenPort => "open-port",
    ClosePort => "close-port",
    OpenedPorts => "opened-ports",
    UnitGet => "unit-get",
    NetworkGet => "network-get",
    IsLeader => "is-leader",
    ApplicationVersionSet => "application-version-set",
    ResourceGet => "resource-get",
    ActionGet => "action-get",
    ActionSet => "action-set",
    ActionFail => "action-fail",
    ActionLog => "action-log",
    StateGet => "state-get",
    StateSet => "state-set",
    StateDelete => "state-delete",
    SecretGet => "secret-get",
}

impl Tool {
    /// The tool named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.iter().copied().find(|t| t.name() == name)
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A workload status a charm may set (`status-set STATUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadStatus {
    /// Working on it.
    Maintenance,
    /// An operator must act.
    Blocked,
    /// Waiting for something outside the unit (a database, the leader).
    Waiting,
    /// Serving.
    Active,
}

impl WorkloadStatus {
    /// Every status a charm may set, as `status-set` lists them.
    pub const ALL: &'static [WorkloadStatus] = &[
        WorkloadStatus::Maintenance,
        WorkloadStatus::Blocked,
        WorkloadStatus::Waiting,
        WorkloadStatus::Active,
    ];

    /// The word `status-set` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkloadStatus::Maintenance => "maintenance",
            WorkloadStatus::Blocked => "blocked",
            WorkloadStatus::Waiting => "waiting",
            WorkloadStatus::Active => "active",
        }
    }

    /// The status named `word`, if a charm may set it.
    pub fn parse(word: &str) -> Option<WorkloadStatus> {
        WorkloadStatus::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == word)
    }
}

impl fmt::Display for WorkloadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hooks of a relation, in the order Juju runs them for one relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelationHook {
    /// `<endpoint>-relation-created`: the relation exists, no unit yet.
    Created,
    /// `-relation-joined`: a remote unit entered.
    Joined,
    /// `-relation-changed`: a remote unit's (or application's) data changed.
    Changed,
    /// `-relation-departed`: a remote unit left.
    Departed,
    /// `-relation-broken`: the relation is gone.
    Broken,
}

impl RelationHook {
    /// Every kind, in Juju's order.
    pub const ALL: &'static [RelationHook] = &[
        RelationHook::Created,
        RelationHook::Joined,
        RelationHook::Changed,
        RelationHook::Departed,
        RelationHook::Broken,
    ];

    /// `joined`, `changed`...
    pub const fn as_str(self) -> &'static str {
        match self {
            RelationHook::Created => "created",
            RelationHook::Joined => "joined",
            RelationHook::Changed => "changed",
            RelationHook::Departed => "departed",
            RelationHook::Broken => "broken",
        }
    }

    /// The hook name for `endpoint`: `website-relation-joined`.
    pub fn hook_name(self, endpoint: &str) -> String {
        format!("{endpoint}-relation-{}", self.as_str())
    }

    /// Splits a hook name into its endpoint and kind, if it is a relation hook.
    pub fn parse_hook(hook: &str) -> Option<(&str, RelationHook)> {
        let (endpoint, kind) = hook.rsplit_once("-relation-")?;
        let kind = RelationHook::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == kind)?;
        (!endpoint.is_empty()).then_some((endpoint, kind))
    }
}

impl fmt::Display for RelationHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hooks every charm gets that are not relation hooks.
pub const STANDARD_HOOKS: &[&str] = &[
    "install",
    "leader-elected",
    "leader-settings-changed",
    "config-changed",
    "start",
    "upgrade-charm",
    "update-status",
    "stop",
    "remove",
    "secret-changed",
];

/// A relation databag: keys to string values, as Juju stores them.
pub type Databag = std::collections::BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tool::ALL {
            assert_eq!(Tool::from_name(t.name()), Some(*t));
        }
        assert_eq!(Tool::from_name("rm"), None);
        for s in WorkloadStatus::ALL {
            assert_eq!(WorkloadStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(WorkloadStatus::parse("error"), None);
    }

    #[test]
    fn relation_hook_names() {
        assert_eq!(
            RelationHook::parse_hook("my-db-relation-joined"),
            Some(("my-db", RelationHook::Joined))
        );
        assert_eq!(RelationHook::parse_hook("config-changed"), None);
        assert_eq!(RelationHook::parse_hook("-relation-joined"), None);
        assert_eq!(
            RelationHook::Broken.hook_name("website"),
            "website-relation-broken"
        );
    }
}
