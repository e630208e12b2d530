//! The hook context: how the scheduler and the hook tools talk. Per hook the
//! scheduler writes `<ctx base>/<context id>/context.json` (the snapshot the
//! tools answer from) and `pending.json` (the buffered, transactional state:
//! local databags, ports, unit state, starting as the committed values).
//! Tools rewrite `pending.json` and append immediate effects (status, logs,
//! version) to `immediate.jsonl`. After the hook the scheduler commits
//! `pending.json` if the hook exited 0 and always applies `immediate.jsonl`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use juju_contract::WorkloadStatus;

use crate::model::{Databag, Status, Workload};

/// The context base inside a machine.
pub const CTX_BASE: &str = "/var/lib/juju/jujulet/ctx";
/// Overrides [`CTX_BASE`] (tests, and the local runner whose "inside" is a temp dir).
pub const CTX_BASE_ENV: &str = "JUJULET_CTX_BASE";

pub const CONTEXT_FILE: &str = "context.json";
pub const PENDING_FILE: &str = "pending.json";
pub const IMMEDIATE_FILE: &str = "immediate.jsonl";
/// An action's results, its failure and its log, written by the action tools.
pub const ACTION_FILE: &str = "action.json";

/// Context ids are `wsgi/0-install-<hex>`; the dir name cannot hold the `/`.
pub fn dir_name(context_id: &str) -> String {
    context_id.replace('/', "-")
}

/// Where the tools find the context `context_id` (they run inside).
pub fn dir_for(base: &Path, context_id: &str) -> PathBuf {
    base.join(dir_name(context_id))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub id: String,
    pub model_name: String,
    pub unit: String,
    pub app: String,
    pub hook: String,
    pub leader: bool,
    /// The current relation (relation hooks).
    pub relation_id: Option<u64>,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    /// Every declared option (nulls included); defaults overlaid by set values.
    pub config: BTreeMap<String, Value>,
    pub relations: Vec<CtxRelation>,
    /// Resource name → path inside the machine.
    pub resources: BTreeMap<String, String>,
    /// The unit's workload status at hook start (status-get).
    pub status: Status<Workload>,
    pub app_status: Status<Workload>,
    pub private_address: String,
    /// Endpoints of the charm (network-get bindings).
    pub endpoints: Vec<String>,
    /// The action this context runs, if it is one.
    #[serde(default)]
    pub action: Option<CtxAction>,
}

/// The action a context runs: its name and its validated parameters
/// (defaults filled in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CtxAction {
    pub name: String,
    pub params: serde_json::Map<String, Value>,
}

/// What the action tools recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// action-set results, nested by their dotted keys.
    pub results: serde_json::Map<String, Value>,
    /// action-fail's message (the action failed if set).
    pub failed: Option<String>,
    /// action-log lines.
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtxRelation {
    pub id: u64,
    pub endpoint: String,
    pub remote_app: String,
    /// relation-list: remote units in the relation from this unit's view.
    pub members: BTreeSet<String>,
    /// Readable remote unit data (members and departed ones).
    pub remote_units: BTreeMap<String, Databag>,
    pub remote_app_data: Databag,
    /// Secrets granted on this relation (URI → content), for secret-get.
    #[serde(default)]
    pub secrets: BTreeMap<String, Databag>,
    /// Not listed by relation-ids (the broken relation in its -broken hook).
    #[serde(default)]
    pub broken: bool,
}

/// The transactional part: starts as the committed state; tools rewrite it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Relation id → the local unit's databag.
    pub unit_data: BTreeMap<u64, Databag>,
    /// Relation id → the local application's databag.
    pub app_data: BTreeMap<u64, Databag>,
    pub ports: BTreeSet<String>,
    pub state: Databag,
}

/// An effect that applies at once, whatever the hook's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Immediate {
    Status {
        application: bool,
        status: WorkloadStatus,
        message: String,
    },
    Log {
        level: String,
        message: String,
    },
    Version {
        version: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{what} {path}: {detail}")]
    File {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
}

fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    what: &'static str,
) -> Result<T, ContextError> {
    let err = |detail: String| ContextError::File {
        what,
        path: path.to_owned(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
}

fn write_json<T: Serialize>(
    path: &Path,
    value: &T,
    what: &'static str,
) -> Result<(), ContextError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ContextError::File {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    crate::model::write_atomic(path, &bytes).map_err(|e| ContextError::File {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

pub fn read_context(dir: &Path) -> Result<Context, ContextError> {
    read_json(&dir.join(CONTEXT_FILE), "reading the hook context")
}

pub fn write_context(dir: &Path, ctx: &Context) -> Result<(), ContextError> {
    write_json(&dir.join(CONTEXT_FILE), ctx, "writing the hook context")
}

pub fn read_action(dir: &Path) -> ActionRecord {
    read_json(&dir.join(ACTION_FILE), "reading the action record").unwrap_or_default()
}

pub fn write_action(dir: &Path, record: &ActionRecord) -> Result<(), ContextError> {
    write_json(&dir.join(ACTION_FILE), record, "writing the action record")
}

pub fn read_pending(dir: &Path) -> Result<Pending, ContextError> {
    read_json(
        &dir.join(PENDING_FILE),
        "reading the hook's pending changes",
    )
}

pub fn write_pending(dir: &Path, pending: &Pending) -> Result<(), ContextError> {
    write_json(
        &dir.join(PENDING_FILE),
        pending,
        "writing the hook's pending changes",
    )
}

pub fn append_immediate(dir: &Path, item: &Immediate) -> Result<(), ContextError> {
    use std::io::Write;
    let path = dir.join(IMMEDIATE_FILE);
    let err = |detail: String| ContextError::File {
        what: "recording",
        path: path.clone(),
        detail,
    };
    let mut line = serde_json::to_string(item).map_err(|e| err(e.to_string()))?;
    line.push('\n');
    // One write(2) on an O_APPEND file: lines from concurrent tools don't interleave.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| err(e.to_string()))
}

/// The immediate effects recorded so far (unparsable lines are skipped: a
/// tool killed mid-write must not lose the others).
pub fn read_immediate(dir: &Path) -> Vec<Immediate> {
    std::fs::read_to_string(dir.join(IMMEDIATE_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
