//! The model's state: one JSON document (`<model_dir>/model.json`) holding
//! what a Juju controller would know about our single unit: config, relations
//! with both sides' databags, statuses, ports, unit state, the hook queue.
//! Written atomically (temp file + rename) so a killed CLI never leaves half
//! a model behind.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use juju_contract::RelationHook;

use crate::machines::MachineKind;

pub mod actions;
pub mod charm;
pub mod config;

pub type Databag = BTreeMap<String, String>;

pub const MODEL_FILE: &str = "model.json";
pub const MODEL_NAME: &str = "jujulet";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{what}: {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file operation, through fs-err (its message names the path).
    #[error(transparent)]
    Fs(#[from] std::io::Error),
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("no model in {0}; run `jujulet deploy CHARM_DIR` first")]
    NoModel(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

pub fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ModelError {
    let (what, path) = (what.to_owned(), path.to_owned());
    move |source| ModelError::Io { what, path, source }
}

/// A unit's workload status, as `juju status` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Nothing set yet (Juju: after start, if the charm set nothing).
    #[default]
    Unknown,
    Maintenance,
    Blocked,
    Waiting,
    Active,
    /// A hook failed.
    Error,
    /// The unit is gone (after remove).
    Terminated,
}

/// A unit agent's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agent {
    /// The machine is being made.
    #[default]
    Allocating,
    Idle,
    /// Running a hook.
    Executing,
    /// A hook failed; `resolve` retries it.
    Error,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Unknown => "unknown",
            Workload::Maintenance => "maintenance",
            Workload::Blocked => "blocked",
            Workload::Waiting => "waiting",
            Workload::Active => "active",
            Workload::Error => "error",
            Workload::Terminated => "terminated",
        }
    }
}

impl From<juju_contract::WorkloadStatus> for Workload {
    fn from(s: juju_contract::WorkloadStatus) -> Self {
        match s {
            juju_contract::WorkloadStatus::Maintenance => Workload::Maintenance,
            juju_contract::WorkloadStatus::Blocked => Workload::Blocked,
            juju_contract::WorkloadStatus::Waiting => Workload::Waiting,
            juju_contract::WorkloadStatus::Active => Workload::Active,
        }
    }
}

impl Agent {
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::Allocating => "allocating",
            Agent::Idle => "idle",
            Agent::Executing => "executing",
            Agent::Error => "error",
        }
    }
}

/// A status and its message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status<S> {
    pub status: S,
    pub message: String,
}

impl<S> Status<S> {
    pub fn new(status: S, message: impl Into<String>) -> Self {
        Status {
            status,
            message: message.into(),
        }
    }
}

/// One hook to run, with the relation context it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Full hook name, e.g. `install`, `website-relation-joined`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation_id: Option<u64>,
    /// JUJU_REMOTE_UNIT (empty for created/broken/app-changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_unit: Option<String>,
    /// JUJU_DEPARTING_UNIT, departed hooks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departing_unit: Option<String>,
    /// Set when this runs an action (`name` is the action's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionCall>,
}

/// An action to run: its task id and validated parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCall {
    pub id: u64,
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl Hook {
    pub fn plain(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            relation_id: None,
            remote_unit: None,
            departing_unit: None,
            action: None,
        }
    }

    /// The action `name` with `params`, as task `id`.
    pub fn action(name: &str, id: u64, params: serde_json::Map<String, serde_json::Value>) -> Self {
        Self {
            action: Some(ActionCall { id, params }),
            ..Self::plain(name)
        }
    }

    pub fn relation(rel: &Relation, kind: RelationHook, remote_unit: Option<&str>) -> Self {
        Self {
            name: kind.hook_name(&rel.endpoint),
            relation_id: Some(rel.id),
            remote_unit: remote_unit.map(str::to_owned),
            departing_unit: if kind == RelationHook::Departed {
                remote_unit.map(str::to_owned)
            } else {
                None
            },
            action: None,
        }
    }

    /// `install`, or `website-relation-joined (website:0, haproxy/1)`.
    pub fn describe(&self) -> String {
        match (self.relation_id, &self.remote_unit) {
            (Some(id), Some(u)) if !u.is_empty() => format!("{} (relation {id}, {u})", self.name),
            (Some(id), _) => format!("{} (relation {id})", self.name),
            _ => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub id: u64,
    /// The charm's endpoint (`website`).
    pub endpoint: String,
    pub interface: String,
    /// The stand-in's kind (`haproxy`) and application name.
    pub standin_kind: crate::standin::Kind,
    pub remote_app: String,
    pub n_units: usize,
    #[serde(default)]
    pub hostile_password: bool,
    /// Remote unit name → its databag, as last published by the stand-in.
    pub remote_units: BTreeMap<String, Databag>,
    pub remote_app_data: Databag,
    /// Secrets the remote application granted on this relation (URI → content).
    #[serde(default)]
    pub secrets: BTreeMap<String, Databag>,
    pub local_unit_data: Databag,
    pub local_app_data: Databag,
    /// Remote units this unit has seen join (relation-list), sorted.
    pub joined: BTreeSet<String>,
    /// Set by unrelate: no new hooks but departed/broken for it.
    #[serde(default)]
    pub dying: bool,
}

impl Relation {
    /// The databag Juju fills in for a unit entering a relation.
    pub fn default_unit_data() -> Databag {
        [
            ("egress-subnets", "127.0.0.1/32"),
            ("ingress-address", "127.0.0.1"),
            ("private-address", "127.0.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub uuid: String,
    pub app: String,
    pub unit: String,
    pub leader: bool,
    /// The charm as given on the host (re-read by `upgrade`).
    pub charm_dir: PathBuf,
    pub machine: MachineKind,
    /// Values set with `juju config`/`--config`, typed by config.yaml.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Resource name → host path given to deploy.
    pub resources: BTreeMap<String, PathBuf>,
    pub relations: Vec<Relation>,
    pub next_relation_id: u64,
    pub workload: Status<Workload>,
    pub app_status: Status<Workload>,
    /// The message is `hook failed: "<name>"` in error.
    pub agent: Status<Agent>,
    pub ports: BTreeSet<String>,
    pub state: Databag,
    pub version: String,
    pub queue: VecDeque<Hook>,
    /// The hook that failed; retried by `resolve`.
    pub error_hook: Option<Hook>,
    /// Whether `start` has run (config-changed after install queues it).
    #[serde(default)]
    pub started: bool,
    /// `remove-application` ran: the unit is terminated, only `status`,
    /// `debug-log`, `exec` and `destroy` remain.
    #[serde(default)]
    pub removed: bool,
    /// The last operation or task id handed out (`juju run` numbers both
    /// from one sequence: operation 1, task 2).
    #[serde(default)]
    pub last_task_id: u64,
    /// `juju model-config` values jujulet reads (see [`MODEL_CONFIG`]).
    #[serde(default)]
    pub model_config: BTreeMap<String, String>,
    /// When the update-status timer fires next (Unix ms; None: not armed).
    #[serde(default)]
    pub next_update_status: Option<u64>,
    /// The automatic retry of the failed hook: its attempt and when (Unix ms).
    #[serde(default)]
    pub retry: Option<(u32, u64)>,
}

/// The model-config keys jujulet knows, with their defaults (Juju's names).
pub const MODEL_CONFIG: &[(&str, &str)] = &[
    ("automatically-retry-hooks", "true"),
    ("update-status-hook-interval", "5m"),
    ("juju-http-proxy", ""),
    ("juju-https-proxy", ""),
    ("juju-ftp-proxy", ""),
    ("juju-no-proxy", "127.0.0.1,localhost,::1"),
];

impl Model {
    /// A model-config value (its default when unset).
    pub fn setting(&self, key: &str) -> String {
        self.model_config.get(key).cloned().unwrap_or_else(|| {
            MODEL_CONFIG
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_default()
        })
    }

    /// `update-status-hook-interval`, None when off (`0`).
    pub fn update_status_interval(&self) -> Option<std::time::Duration> {
        parse_duration(&self.setting("update-status-hook-interval")).filter(|d| !d.is_zero())
    }
}

/// `30s`, `5m`, `1h`, `250ms`, or a number of seconds.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// Checks a `model-config KEY=VALUE`.
pub fn check_model_config(key: &str, value: &str) -> Result<(), ModelError> {
    if !MODEL_CONFIG.iter().any(|(k, _)| *k == key) {
        let known: Vec<&str> = MODEL_CONFIG.iter().map(|(k, _)| *k).collect();
        return Err(ModelError::Invalid(format!(
            "unknown model config key {key:?} (jujulet reads: {})",
            known.join(", ")
        )));
    }
    let ok = match key {
        "automatically-retry-hooks" => matches!(value, "true" | "false"),
        "update-status-hook-interval" => parse_duration(value).is_some(),
        _ => !value.contains(['\n', '\0']),
    };
    if ok {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!(
            "{key}: invalid value {value:?}"
        )))
    }
}

impl Model {
    pub fn new(app: &str, charm_dir: &Path, machine: MachineKind) -> Self {
        Self {
            name: MODEL_NAME.into(),
            uuid: pseudo_uuid(),
            app: app.into(),
            unit: format!("{app}/0"),
            leader: true,
            charm_dir: charm_dir.to_owned(),
            machine,
            config: BTreeMap::new(),
            resources: BTreeMap::new(),
            relations: Vec::new(),
            next_relation_id: 0,
            workload: Status::new(Workload::Waiting, "waiting for machine"),
            app_status: Status::default(),
            agent: Status::new(Agent::Allocating, ""),
            ports: BTreeSet::new(),
            state: Databag::new(),
            version: String::new(),
            queue: VecDeque::new(),
            error_hook: None,
            started: false,
            removed: false,
            last_task_id: 0,
            model_config: BTreeMap::new(),
            next_update_status: None,
            retry: None,
        }
    }

    /// `unit-wsgi-0`: the unit's tag, used in agent paths.
    pub fn unit_tag(&self) -> String {
        format!("unit-{}", self.unit.replace('/', "-"))
    }

    pub fn relation(&self, id: u64) -> Option<&Relation> {
        self.relations.iter().find(|r| r.id == id)
    }

    pub fn relation_mut(&mut self, id: u64) -> Option<&mut Relation> {
        self.relations.iter_mut().find(|r| r.id == id)
    }

    pub fn path(model_dir: &Path) -> PathBuf {
        model_dir.join(MODEL_FILE)
    }

    pub fn exists(model_dir: &Path) -> bool {
        Self::path(model_dir).is_file()
    }

    pub fn load(model_dir: &Path) -> Result<Self, ModelError> {
        let path = Self::path(model_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::NoModel(model_dir.to_owned()));
            }
            Err(e) => return Err(io_err("reading the model", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| ModelError::Parse {
            path,
            detail: format!("unreadable model ({e}); run `jujulet destroy` and deploy again"),
        })
    }

    pub fn save(&self, model_dir: &Path) -> Result<(), ModelError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| ModelError::Parse {
            path: Self::path(model_dir),
            detail: e.to_string(),
        })?;
        write_atomic(&Self::path(model_dir), &json)
    }
}

/// Write `bytes` to `path` through a temp file in the same dir and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io_err("writing", &tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("renaming into place", path))
}

/// A random-looking v4-shaped UUID without a crate: Juju only needs it opaque.
pub fn pseudo_uuid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// `n` hex digits from the clock, the pid and a counter hashed together.
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < n {
        // RandomState is seeded per process from the OS: good enough here.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}
