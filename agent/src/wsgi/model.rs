//! The seams of the layer: what it asks of Juju (implemented over hookenv by
//! the runtime) and of the machine (implemented over `crate::host`). Both
//! are traits so that the reconcile's decisions can be unit-tested with
//! fakes; in a hook they are the real hook tools and the real host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use interfaces::Databag;
use serde_json::{Map, Value};

/// Any failure of a seam, with the context an operator needs.
pub type SeamError = Box<dyn std::error::Error + Send + Sync>;

/// A workload status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Working on it.
    Maintenance,
    /// An operator must act.
    Blocked,
    /// Waiting for something outside (a database).
    Waiting,
    /// Serving.
    Active,
}

impl Status {
    /// The word status-set takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Maintenance => "maintenance",
            Status::Blocked => "blocked",
            Status::Waiting => "waiting",
            Status::Active => "active",
        }
    }
}

/// What the layer reads from and writes to Juju.
pub trait Juju {
    /// This unit, e.g. `wsgi/0`.
    fn unit_name(&self) -> &str;
    /// The charm directory.
    fn charm_dir(&self) -> &Path;
    /// The config (config-get), read once per hook.
    fn config(&self) -> Result<Map<String, Value>, SeamError>;
    /// The path of a resource, or None when none is attached.
    fn resource(&self, name: &str) -> Result<Option<PathBuf>, SeamError>;
    /// status-set.
    fn status(&self, status: Status, message: &str) -> Result<(), SeamError>;
    /// open-port PORT/tcp.
    fn open_port(&self, port: u16) -> Result<(), SeamError>;
    /// close-port PORT/tcp.
    fn close_port(&self, port: u16) -> Result<(), SeamError>;
    /// application-version-set.
    fn app_version(&self, version: &str) -> Result<(), SeamError>;
    /// Whether this unit leads its application.
    fn is_leader(&self) -> Result<bool, SeamError>;
    /// Relation ids (`ep:N`) of an endpoint.
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>, SeamError>;
    /// Remote units of a relation.
    fn relation_units(&self, relation_id: &str) -> Result<Vec<String>, SeamError>;
    /// A unit's databag, or with `app` an application's.
    fn relation_get(&self, relation_id: &str, who: &str, app: bool) -> Result<Databag, SeamError>;
    /// Publishes keys in this unit's databag (or, as leader, its app's).
    fn relation_set(&self, relation_id: &str, data: &Databag, app: bool) -> Result<(), SeamError>;
    /// The content of a Juju secret.
    fn secret_get(&self, uri: &str) -> Result<Databag, SeamError>;
    /// The address other units reach this one at (for the website relation).
    fn ingress_address(&self) -> Result<String, SeamError>;
    /// The hook's relation context: (relation id, remote unit, departing unit).
    fn relation_context(&self) -> (Option<&str>, Option<&str>, Option<&str>);
    /// A line in the unit's log (juju-log).
    fn log(&self, message: &str);
}

/// The service as systemd sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// `active`, `failed`, `inactive`, …
    pub active_state: String,
    /// The main PID (0 when not running).
    pub main_pid: u32,
}

/// What the layer does to the machine.
pub trait Host {
    /// Creates the system user and group if missing.
    fn ensure_user(&mut self, name: &str, home: &Path) -> Result<(), SeamError>;
    /// Installs Debian packages (no-op when installed).
    fn apt_install(&mut self, packages: &[String]) -> Result<(), SeamError>;
    /// Unpacks the archive into a release and switches `current` to it;
    /// returns the release id.
    fn unpack_release(
        &mut self,
        archive: &Path,
        releases: &Path,
        current: &Path,
    ) -> Result<String, SeamError>;
    /// Makes the venv match the app's requirements; returns a string naming
    /// its inputs (interpreter, requirements, wheel dir) for the hashes.
    fn ensure_venv(
        &mut self,
        venv: &Path,
        app_dir: &Path,
        wheels: Option<&Path>,
    ) -> Result<String, SeamError>;
    /// Writes a file if its content differs (atomically); returns whether it did.
    fn write_file(
        &mut self,
        path: &Path,
        content: &str,
        mode: u32,
        group: Option<&str>,
    ) -> Result<bool, SeamError>;
    /// Creates the log file, owned by the user, if missing.
    fn ensure_log_file(&mut self, path: &Path, user: &str) -> Result<(), SeamError>;
    /// Removes a file if present.
    fn remove_file(&mut self, path: &Path) -> Result<(), SeamError>;
    /// `systemctl <verb> <unit>` for daemon-reload (unit ignored), enable,
    /// start, restart, reload, stop, disable.
    fn systemctl(&mut self, verb: &str, unit: &str) -> Result<(), SeamError>;
    /// ActiveState and MainPID.
    fn service_state(&mut self, unit: &str) -> Result<ServiceState, SeamError>;
    /// The last lines of the service's journal.
    fn journal_tail(&mut self, unit: &str, lines: usize) -> String;
    /// GET http://127.0.0.1:port/path until healthy or the deadline; the status line.
    fn health(&mut self, port: u16, path: &str, timeout_s: u32) -> Result<String, SeamError>;
    /// Runs the provision command as the user in dir with env.
    fn provision(
        &mut self,
        argv: &[String],
        user: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
        timeout_s: u32,
    ) -> Result<(), SeamError>;
    /// Number of CPUs, for workers = 0.
    fn cpus(&self) -> u32;
    /// Connects to a database URL (`postgresql://`, `mongodb://`) and
    /// authenticates; the error names the server's answer, never the password.
    fn check_database(&mut self, _url: &str) -> Result<(), SeamError> {
        Ok(())
    }
    /// The process listening on this TCP port: None when free, Some(0)
    /// when held by a process that cannot be identified. Checked before the
    /// service moves to a port, so one held by another process is reported
    /// as such.
    fn port_holder(&mut self, _port: u16) -> Option<u32> {
        None
    }
}

/// The context the layer's handlers receive.
pub struct LayerCtx {
    /// Juju, through hook tools.
    pub juju: Box<dyn Juju>,
    /// The machine.
    pub host: Box<dyn Host>,
}
