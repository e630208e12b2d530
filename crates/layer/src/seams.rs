//! The seams of the layer: what it asks of Juju (implemented over hookenv
//! by [`crate::hosts::HookJuju`]) and of the machine (over the machine crate
//! by [`crate::hosts::SystemHost`]). Both are traits so that the
//! reconcile's decisions can be unit-tested with fakes; in a hook they are
//! the real hook tools and the real machine. Every method must be
//! implemented: a new host cannot forget the database check or the port
//! check by inheriting a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use interfaces::Databag;
use machine::release::{Source, Store};
use machine::systemd::{Systemctl, UnitState};
use machine::venv::Venv;
use serde_json::{Map, Value};

pub use juju_contract::WorkloadStatus as Status;

/// The relation a hook runs for, from the hook's environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelationContext<'a> {
    /// `endpoint:N`.
    pub relation_id: Option<&'a str>,
    /// The remote unit (absent for created, broken and app-data changes).
    pub remote_unit: Option<&'a str>,
    /// The unit leaving, in departed hooks.
    pub departing_unit: Option<&'a str>,
}

/// What the layer reads from and writes to Juju.
pub trait Juju {
    /// This unit, e.g. `wsgi/0`.
    fn unit_name(&self) -> &str;
    /// The charm directory.
    fn charm_dir(&self) -> &Path;
    /// The config (config-get), read once per hook.
    fn config(&self) -> anyhow::Result<Map<String, Value>>;
    /// The path of a resource, or None when none is attached.
    fn resource(&self, name: &str) -> anyhow::Result<Option<PathBuf>>;
    /// status-set.
    fn status(&self, status: Status, message: &str) -> anyhow::Result<()>;
    /// open-port PORT/tcp.
    fn open_port(&self, port: u16) -> anyhow::Result<()>;
    /// close-port PORT/tcp.
    fn close_port(&self, port: u16) -> anyhow::Result<()>;
    /// application-version-set.
    fn app_version(&self, version: &str) -> anyhow::Result<()>;
    /// Whether this unit leads its application.
    fn is_leader(&self) -> anyhow::Result<bool>;
    /// Relation ids (`ep:N`) of an endpoint.
    fn relation_ids(&self, endpoint: &str) -> anyhow::Result<Vec<String>>;
    /// Remote units of a relation.
    fn relation_units(&self, relation_id: &str) -> anyhow::Result<Vec<String>>;
    /// A unit's databag, or with `app` an application's.
    fn relation_get(&self, relation_id: &str, who: &str, app: bool) -> anyhow::Result<Databag>;
    /// Publishes keys in this unit's databag (or, as leader, its app's).
    fn relation_set(&self, relation_id: &str, data: &Databag, app: bool) -> anyhow::Result<()>;
    /// The content of a Juju secret.
    fn secret_get(&self, uri: &str) -> anyhow::Result<Databag>;
    /// The address other units reach this one at (for the website relation).
    fn ingress_address(&self) -> anyhow::Result<String>;
    /// The hook's relation context.
    fn relation_context(&self) -> RelationContext<'_>;
    /// A line in the unit's log (juju-log).
    fn log(&self, message: &str);
    /// The model's proxy settings as a downloader's variables
    /// (`HTTPS_PROXY`, `https_proxy`, `NO_PROXY`...), the set ones only.
    fn proxy_env(&self) -> Vec<(String, String)>;
    /// The action's parameters (action-get), in an action.
    fn action_params(&self) -> anyhow::Result<Map<String, Value>>;
    /// Results of the action (action-set KEY=VALUE; dotted keys nest).
    fn action_set(&self, results: &BTreeMap<String, String>) -> anyhow::Result<()>;
    /// Fails the action with a message (action-fail).
    fn action_fail(&self, message: &str) -> anyhow::Result<()>;
    /// A progress line the operator sees while the action runs (action-log).
    fn action_log(&self, message: &str) -> anyhow::Result<()>;
}

/// What the layer does to the machine.
pub trait Host {
    /// Creates the system user and group if missing.
    fn ensure_user(&mut self, name: &str, home: &Path) -> anyhow::Result<()>;
    /// Installs Debian packages (no-op when installed).
    fn apt_install(&mut self, packages: &[String]) -> anyhow::Result<()>;
    /// Unpacks the archive as a source under `sources` (once per content).
    fn unpack_source(&mut self, archive: &Path, sources: &Path) -> anyhow::Result<Source>;
    /// Takes the directory a charm put its code in as a source under
    /// `sources`, with the same checks as an archive.
    fn import_source(&mut self, dir: &Path, sources: &Path) -> anyhow::Result<Source>;
    /// The source unpacked earlier from the archive of this hash, if whole.
    fn existing_source(&mut self, sources: &Path, hash: &str) -> anyhow::Result<Option<Source>>;
    /// The venv for the app in `app_dir`: an existing one with the same
    /// inputs, or one built beside the others under `venvs` by `build`'s
    /// unprivileged user in a sandbox. The error's message (`{e}`) is the
    /// cause in one line; the chain (`{e:#}`) has the installer's output.
    fn build_venv(
        &mut self,
        venvs: &Path,
        app_dir: &Path,
        wheels: Option<&Path>,
        build: &machine::venv::Build,
    ) -> anyhow::Result<Venv>;
    /// The releases of the application in `app_dir`.
    fn store(&mut self, app_dir: &Path) -> Store;
    /// Puts the charm's own uv (`bin/uv` in the charm) where the app's user
    /// can run it but not change it; its path, or None when the charm has none.
    fn install_uv(&mut self, charm_dir: &Path) -> anyhow::Result<Option<PathBuf>>;
    /// Writes a file if its content differs (atomically); returns whether it did.
    fn write_file(
        &mut self,
        path: &Path,
        content: &str,
        mode: u32,
        group: Option<&str>,
    ) -> anyhow::Result<bool>;
    /// Creates the log file, owned by the user, if missing.
    fn ensure_log_file(&mut self, path: &Path, user: &str) -> anyhow::Result<()>;
    /// Removes a file if present.
    fn remove_file(&mut self, path: &Path) -> anyhow::Result<()>;
    /// `systemctl VERB UNIT` (a reload waits for the old workers to go).
    fn systemctl(&mut self, verb: Systemctl, unit: &str) -> anyhow::Result<()>;
    /// ActiveState and MainPID.
    fn service_state(&mut self, unit: &str) -> anyhow::Result<UnitState>;
    /// The last lines of the service's journal.
    fn journal_tail(&mut self, unit: &str, lines: usize) -> String;
    /// GET http://127.0.0.1:port/path until healthy or the deadline; the status line.
    fn health(&mut self, port: u16, path: &str, timeout_s: u32) -> anyhow::Result<String>;
    /// Runs the provision command as the app's user, in a transient unit
    /// with the service's sandbox, in `dir`, with the variables of the
    /// environment file `env_file` plus `env` (no secret in `env`).
    fn provision(&mut self, argv: &[String], run: &ProvisionRun<'_>) -> anyhow::Result<()>;
    /// Number of CPUs, for workers = 0.
    fn cpus(&self) -> u32;
    /// Connects to a database URL (`postgresql://`, `mongodb://`) and
    /// authenticates; the error names the server's answer, never the password.
    fn check_database(&mut self, url: &str) -> anyhow::Result<()>;
    /// The process listening on this TCP port: None when free, Some(0)
    /// when held by a process that cannot be identified. Checked before the
    /// service moves to a port, so one held by another process is reported
    /// as such.
    fn port_holder(&mut self, port: u16) -> Option<u32>;
}

/// How provision_command runs.
#[derive(Debug, Clone)]
pub struct ProvisionRun<'a> {
    /// The transient unit's name prefix (`wsgi-<app>-provision`).
    pub unit: String,
    /// The app's user.
    pub user: &'a str,
    /// Its working directory (the release).
    pub dir: &'a Path,
    /// The app's environment file (secrets: DATABASE_URL...).
    pub env_file: &'a Path,
    /// Variables that are no secret: PATH (the venv first), HOME, LANG.
    pub env: BTreeMap<String, String>,
    /// The paths it may write besides its state and cache directories.
    pub writable: Vec<PathBuf>,
    /// Further unit properties: the service's `StateDirectory=` and
    /// `CacheDirectory=`, so it sees the data the service sees.
    pub properties: Vec<String>,
    /// Seconds it may run.
    pub timeout_s: u32,
}

/// The context the layer's handlers receive.
pub struct LayerCtx {
    /// Juju, through hook tools.
    pub juju: Box<dyn Juju>,
    /// The machine.
    pub host: Box<dyn Host>,
}
