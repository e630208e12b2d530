//! Stand-ins: the remote side of a relation, played by a real server on
//! loopback (a throwaway PostgreSQL cluster, a MongoDB-protocol server, an
//! HAProxy). Each stand-in lives in its own directory
//! (`<model_dir>/standins/<name>/`) with its state as JSON (`state.json`:
//! ports, PIDs, passwords, data dirs), so a later CLI process rebuilds it
//! with [`open`] and finds the same server still running.
//!
//! The scheduler drives it like this:
//! 1. `open(kind, dir, app, n_units)` then `start(progress)` once (idempotent:
//!    a started stand-in whose server is alive does nothing);
//! 2. on `relate` (before the joined hooks: a real remote unit has its
//!    addresses from the start) and after every hook that committed relation
//!    data on a relation with this stand-in, `react(&snapshot)` and diff the
//!    returned [`RemoteData`] against what the remote side published before;
//!    fire `-relation-changed` for what differs;
//! 3. on `unrelate`, `broken(&snapshot)` (e.g. PostgreSQL drops the role, so
//!    a stale password really stops working);
//! 4. on `destroy`, `stop()` (idempotent; removes the server's data).
//!
//! What each kind publishes:
//! - `postgresql` (`pgsql`, `postgresql_client`): see [`postgresql`]; on
//!   pgsql it answers as soon as a charm unit is in the relation, with the
//!   requested `database` or else the client application's name, as the
//!   PostgreSQL charm does;
//! - `mongodb` (`mongodb`): `hostname`, `port`, `replset`, `type` per unit,
//!   no credentials (the classic interface has none);
//! - `haproxy` (`http`): only its units' addresses; [`StandIn::address`] is
//!   the frontend to send requests to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod haproxy;
pub mod mongodb;
pub mod postgresql;
mod util;

/// What the charm side of one relation has committed, as the stand-in sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationSnapshot {
    /// The charm's endpoint name (`postgres`, `database`, `mongo`, `website`).
    pub endpoint: String,
    /// The interface name (`pgsql`, `postgresql_client`, `mongodb`, `http`).
    pub interface: String,
    /// Juju's relation id (the number in `postgres:3`); stand-ins key their
    /// per-relation state (roles, backends) by it.
    pub relation_id: u64,
    /// The charm's application name (e.g. `wsgi`).
    pub local_app: String,
    /// The charm's application databag (written by its leader).
    pub local_app_data: BTreeMap<String, String>,
    /// Unit name (`wsgi/0`) → that unit's databag, for every charm unit in
    /// the relation (including Juju's `private-address`/`ingress-address`).
    pub local_units: BTreeMap<String, BTreeMap<String, String>>,
}

/// The complete remote side a stand-in publishes now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteData {
    /// The stand-in application's databag.
    pub app_data: BTreeMap<String, String>,
    /// Juju secrets the stand-in application owns and grants on this
    /// relation: URI (`secret:…`) → content.
    #[serde(default)]
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Stand-in unit name (`postgresql/0`) → its databag. Every unit from
    /// [`StandIn::units`] is present (possibly with only its addresses).
    pub units: BTreeMap<String, BTreeMap<String, String>>,
}

/// Knobs for tests; the defaults are what a real charm would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// PostgreSQL: generate passwords full of `@:/%#?&+ ` and quotes
    /// instead of 40 alphanumerics, to prove the charm encodes them.
    #[serde(default)]
    pub hostile_password: bool,
}

pub trait StandIn {
    /// What it stands for.
    fn kind(&self) -> Kind;
    /// The stand-in's application name (e.g. `postgresql`).
    fn app(&self) -> &str;
    /// Its unit names (`postgresql/0`, …), in order.
    fn units(&self) -> Vec<String>;
    /// The interfaces it can be related over (`pgsql`, `postgresql_client`, …).
    fn interfaces(&self) -> &'static [&'static str];
    /// Start the server (and persist its state). Idempotent.
    fn start(&mut self, progress: &dyn Fn(&str)) -> Result<(), StandInError>;
    /// Whether the server process is alive.
    fn is_running(&self) -> bool;
    /// Act on what the charm side committed (create a database, reconfigure
    /// backends, …) and return the whole remote side as it stands now.
    fn react(&mut self, charm_side: &RelationSnapshot) -> Result<RemoteData, StandInError>;
    /// The relation is gone: undo what `react` did for it (drop the role,
    /// remove the backends). Idempotent.
    fn broken(&mut self, charm_side: &RelationSnapshot) -> Result<(), StandInError>;
    /// Stop the server and remove its data. Idempotent.
    fn stop(&mut self) -> Result<(), StandInError>;
    /// Where the server listens on loopback (HAProxy: its frontend), once started.
    fn address(&self) -> Option<SocketAddr>;
    /// One line for `jujulet status`, e.g. `postgresql 15 on 127.0.0.1:41234`.
    fn status(&self) -> String;
}

/// The kinds of stand-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A throwaway PostgreSQL cluster, as the PostgreSQL charm.
    #[default]
    Postgresql,
    /// A MongoDB-protocol server, as the MongoDB charm.
    Mongodb,
    /// A real HAProxy, as the HAProxy charm.
    Haproxy,
}

impl Kind {
    /// Its name (also the stand-in application's default name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Postgresql => "postgresql",
            Kind::Mongodb => "mongodb",
            Kind::Haproxy => "haproxy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Open the stand-in in `dir`: load `dir/state.json` if it exists (a stand-in
/// started by an earlier process; `kind` and `app_name` must then match, and
/// `n_units` may differ: the same server then plays more or fewer units), else
/// prepare a new, not yet started one. Nothing runs until `start`.
pub fn open(
    kind: Kind,
    dir: &Path,
    app_name: &str,
    n_units: usize,
) -> Result<Box<dyn StandIn>, StandInError> {
    open_with(kind, dir, app_name, n_units, &Options::default())
}

/// [`open`] with test knobs. The options of a stand-in loaded from its state
/// are the ones it was created with.
pub fn open_with(
    kind: Kind,
    dir: &Path,
    app_name: &str,
    n_units: usize,
    options: &Options,
) -> Result<Box<dyn StandIn>, StandInError> {
    if n_units == 0 {
        return Err(StandInError::Invalid(format!(
            "stand-in {app_name}: needs at least one unit"
        )));
    }
    let common = util::Common::open(kind, dir, app_name, n_units, options)?;
    match kind {
        Kind::Postgresql => Ok(Box::new(postgresql::PostgreSql::open(common)?)),
        Kind::Mongodb => Ok(Box::new(mongodb::MongoDb::open(common)?)),
        Kind::Haproxy => Ok(Box::new(haproxy::HaProxy::open(common)?)),
    }
}

/// Where the stand-in application `app` of the model lives:
/// `<model_dir>/standins/<app>`.
pub fn dir_for(model_dir: &Path, app: &str) -> PathBuf {
    model_dir.join("standins").join(app)
}

/// Reopen the stand-in recorded in `dir` (its `state.json`), whatever its
/// kind; for `jujulet destroy`, which must stop everything a model started
/// even when the model state lost track of it.
pub fn open_existing(dir: &Path) -> Result<Box<dyn StandIn>, StandInError> {
    let meta = util::Common::peek(dir)?;
    open(meta.kind, dir, &meta.app, meta.n_units)
}

/// Every stand-in recorded under `<model_dir>/standins/`, by directory.
pub fn list(model_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(model_dir.join("standins"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("state.json").is_file())
        .collect();
    out.sort();
    out
}

/// Stop every stand-in of the model (see [`list`]); the first error is
/// returned after trying them all.
pub fn stop_all(model_dir: &Path) -> Result<(), StandInError> {
    let mut first = None;
    for dir in list(model_dir) {
        if let Err(e) = open_existing(&dir).and_then(|mut s| s.stop()) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Check, before anything starts, that this host has what a `kind`
/// stand-in needs (server binaries, the postgres user), so the CLI can fail
/// early with what to install.
pub fn preflight(kind: Kind) -> Result<(), StandInError> {
    match kind {
        Kind::Postgresql => postgresql::preflight(),
        Kind::Mongodb => mongodb::preflight(),
        Kind::Haproxy => haproxy::preflight(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("{0}")]
    Invalid(String),
    #[error("stand-in {app} ({kind}) does not speak interface {interface:?}; it speaks {speaks}")]
    Interface {
        app: String,
        kind: Kind,
        interface: String,
        speaks: String,
    },
    #[error("{what}: {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed ({code}): {stderr_tail}\n{hint}")]
    Command {
        cmd: String,
        /// `exit code N`, `killed by a signal`, or `could not run: …`.
        code: String,
        stderr_tail: String,
        hint: String,
    },
    #[error("{what} did not come up within {secs} s: {detail}")]
    Timeout {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("{tool} not found ({detail}); run `eval \"$(scripts/lib/install-deps)\"` as root")]
    Missing { tool: String, detail: String },
}
