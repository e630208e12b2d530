//! Machines: where the charm runs. `nspawn` boots the host's own OS as a
//! real systemd (PID 1) container under a tmpfs overlay; `host` runs on a
//! host whose PID 1 is systemd. A machine outlives the jujulet process that
//! created it: what is needed to find it again is kept in
//! `<model_dir>/machine.json`, and [`attach`] rebuilds it from there.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineKind {
    Nspawn,
    Host,
}

impl std::str::FromStr for MachineKind {
    type Err = MachineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nspawn" => Ok(Self::Nspawn),
            "host" => Ok(Self::Host),
            other => Err(MachineError::Invalid(format!(
                "unknown machine kind {other:?}; use nspawn or host"
            ))),
        }
    }
}

impl std::fmt::Display for MachineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Nspawn => "nspawn",
            Self::Host => "host",
        })
    }
}

pub trait Machine {
    fn kind(&self) -> MachineKind;
    /// Host-side path of the machine's "/" (the overlay's merged dir for
    /// nspawn, "/" for host): place files here to have them inside.
    fn root(&self) -> &Path;
    /// Run `argv` inside the machine with exactly `env` (nothing inherited),
    /// in `cwd` (a path inside the machine), stdin null; capture the output.
    fn exec(&self, argv: &[String], env: &[(String, String)], cwd: &Path) -> io::Result<Output>;
    /// [`Machine::exec`], killed after `timeout`: the command then ends with
    /// exit status 124 (as coreutils `timeout`), or 137 if it ignored TERM.
    fn exec_timeout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        timeout: Duration,
    ) -> io::Result<Output>;
    /// Power off and remove everything the machine left on the host. Idempotent.
    fn destroy(&mut self) -> Result<(), MachineError>;
}

/// Create and boot a machine for the model in `model_dir`.
pub fn create(
    kind: MachineKind,
    model_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<Box<dyn Machine>, MachineError> {
    let _ = (kind, model_dir, progress);
    Err(MachineError::Invalid("machines are not implemented yet".into()))
}

/// Find the machine recorded in `<model_dir>/machine.json`, checking it is alive.
pub fn attach(model_dir: &Path) -> Result<Box<dyn Machine>, MachineError> {
    let _ = model_dir;
    Err(MachineError::Invalid("machines are not implemented yet".into()))
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
