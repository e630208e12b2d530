//! Machines: where the charm runs. `nspawn` boots the host's own OS as a
//! real systemd (PID 1) container under a tmpfs overlay; `cloud-image`
//! boots a minimal Debian 12 built with debootstrap the same way (what a
//! cloud gives a Juju machine); `host` runs on a host whose PID 1 is
//! systemd. A machine outlives the jujulet process that
//! created it: what is needed to find it again is kept in
//! `<model_dir>/machine.json`, and [`attach`] rebuilds it from there.
//!
//! Inside an nspawn machine the host's files are visible read-only-ish
//! through the overlay's lower layer ("/"), but a host file changed after
//! the machine booted may or may not show (overlayfs leaves that undefined);
//! to share a live directory, bind it with [`CreateOptions::binds`], and
//! place new files through [`Machine::root`].

use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod host;
pub mod image;
pub mod local;
mod nspawn;
pub mod process;
mod signals;

/// What a machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MachineKind {
    /// A real systemd (PID 1) container: the host's own OS under a tmpfs
    /// overlay (fast; has whatever the host has).
    Nspawn,
    /// The same container on a minimal Debian 12 root built once with
    /// debootstrap ([`image`]): python3 but no venv, pip or compiler.
    #[serde(rename = "cloud-image")]
    #[value(name = "cloud-image")]
    CloudImage,
    /// This host, which must be booted with systemd (a VM).
    Host,
    /// A plain directory of this host, for tests of the scheduler and the
    /// tools: no systemd, no root ([`local::LocalMachine`]).
    #[value(skip)]
    Local,
}

impl std::fmt::Display for MachineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Nspawn => "nspawn",
            Self::CloudImage => "cloud-image",
            Self::Host => "host",
            Self::Local => "local",
        })
    }
}

pub trait Machine {
    fn kind(&self) -> MachineKind;
    /// Host-side path of the machine's "/" (the overlay's merged dir for
    /// nspawn, "/" for host): place files here to have them inside.
    fn root(&self) -> &Path;
    /// Run `argv` inside the machine with exactly `env` (nothing inherited:
    /// pass PATH), in `cwd` (a path inside the machine), stdin null; capture
    /// the output. `argv[0]` is looked up in the given PATH.
    fn exec(&self, argv: &[String], env: &[(String, String)], cwd: &Path) -> io::Result<Output>;
    /// [`Machine::exec`] under coreutils `timeout`: after `timeout` the
    /// command gets SIGTERM and exits 124 (SIGKILL 5 s later: 137).
    fn exec_timeout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        timeout: Duration,
    ) -> io::Result<Output>;
    /// One line for `jujulet status`, e.g. `nspawn jujulet-1a2b3c4d (leader 4242)`.
    fn describe(&self) -> String;
    /// Power off and remove everything the machine left on the host. Idempotent.
    fn destroy(&mut self) -> Result<(), MachineError>;
    /// Power off and boot again, the disk kept (nspawn only).
    fn reboot(&mut self, progress: &dyn Fn(&str)) -> Result<(), MachineError> {
        let _ = progress;
        Err(MachineError::Invalid(format!(
            "a {} machine cannot be rebooted by jujulet",
            self.kind()
        )))
    }
}

/// A host directory made visible inside an nspawn machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub host: PathBuf,
    pub inside: PathBuf,
    pub read_only: bool,
}

/// Where [`CreateOptions::fail_after`] makes `create` fail (tests of cleanup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateStep {
    Tmpfs,
    Overlay,
    Spawn,
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// nspawn only: `--bind`/`--bind-ro` mounts.
    pub binds: Vec<Bind>,
    /// How long the boot may take to reach running/degraded.
    pub boot_timeout: Duration,
    /// Size of the tmpfs that holds the machine's writes.
    pub tmpfs_size: String,
    /// The overlay's lower layer (None: the host's "/").
    pub image: Option<PathBuf>,
    /// Test knob: fail right after this step.
    pub fail_after: Option<CreateStep>,
    /// Test knob: on failure leave everything as a killed process would
    /// (then [`destroy`] must clean up).
    pub keep_on_failure: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            binds: Vec::new(),
            // 0.5-3 s when the machine is idle; generous for 2 busy cores.
            boot_timeout: Duration::from_secs(120),
            tmpfs_size: "4g".into(),
            image: None,
            fail_after: None,
            keep_on_failure: false,
        }
    }
}

/// Create and boot a machine for the model in `model_dir`. On any failure
/// (or SIGINT/SIGTERM while it runs) what was set up is torn down again.
pub fn create(
    kind: MachineKind,
    model_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<Box<dyn Machine>, MachineError> {
    create_with(kind, model_dir, &CreateOptions::default(), progress)
}

pub fn create_with(
    kind: MachineKind,
    model_dir: &Path,
    options: &CreateOptions,
    progress: &dyn Fn(&str),
) -> Result<Box<dyn Machine>, MachineError> {
    let model_dir = absolute(model_dir)?;
    let state_path = model_dir.join(STATE_FILE);
    if state_path.exists() {
        return Err(MachineError::Exists(state_path));
    }
    match kind {
        MachineKind::Local => Err(MachineError::Invalid(
            "local machines are made by tests (LocalMachine::new), not by create".into(),
        )),
        MachineKind::Host => Ok(Box::new(host::Host::create(&model_dir)?)),
        MachineKind::Nspawn => Ok(Box::new(nspawn::Nspawn::create(
            &model_dir, options, progress,
        )?)),
        MachineKind::CloudImage => {
            let options = CreateOptions {
                image: Some(image::ensure(progress)?),
                ..options.clone()
            };
            Ok(Box::new(nspawn::Nspawn::create(
                &model_dir, &options, progress,
            )?))
        }
    }
}

/// Check, before anything is set up, that this host can run `kind`
/// machines: root and the tools for nspawn; systemd as PID 1 for host.
pub fn preflight(kind: MachineKind) -> Result<(), MachineError> {
    match kind {
        MachineKind::Local => Ok(()),
        MachineKind::Host => host::require_systemd(),
        MachineKind::Nspawn | MachineKind::CloudImage => {
            if !nix::unistd::geteuid().is_root() {
                return Err(MachineError::Invalid(
                    "nspawn machines need root (mounts, systemd-nspawn); run jujulet as root"
                        .into(),
                ));
            }
            let path = std::env::var_os("PATH").unwrap_or_default();
            let missing: Vec<&str> = [
                "systemd-nspawn",
                "nsenter",
                "setsid",
                "mount",
                "umount",
                "systemctl",
            ]
            .into_iter()
            .chain((kind == MachineKind::CloudImage).then_some("debootstrap"))
            .filter(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
            .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(MachineError::Invalid(format!(
                    "nspawn machines need {} on PATH; install systemd-container and util-linux \
                     (scripts/lib/install-deps)",
                    missing.join(", ")
                )))
            }
        }
    }
}

/// Find the machine recorded in `<model_dir>/machine.json`, checking it is alive.
pub fn attach(model_dir: &Path) -> Result<Box<dyn Machine>, MachineError> {
    let model_dir = absolute(model_dir)?;
    match read_state(&model_dir)? {
        None => Err(MachineError::NoMachine(model_dir.join(STATE_FILE))),
        Some(State::Host) => Ok(Box::new(host::Host::attach(&model_dir)?)),
        Some(State::Nspawn(st)) => Ok(Box::new(nspawn::Nspawn::attach(&model_dir, st)?)),
        Some(State::Shared { owner }) => attach(&owner),
    }
}

/// Records that the model in `model_dir` runs on the machine of the model
/// in `owner` (`juju deploy --to` an existing machine: two applications on
/// one machine); returns that machine. Destroying this model leaves it.
pub fn share(model_dir: &Path, owner: &Path) -> Result<Box<dyn Machine>, MachineError> {
    let model_dir = absolute(model_dir)?;
    let owner = absolute(owner)?;
    if owner == model_dir {
        return Err(MachineError::Invalid(
            "--to names this model's own dir".into(),
        ));
    }
    let machine = attach(&owner)?;
    write_state(&model_dir, &State::Shared { owner })?;
    Ok(machine)
}

/// Destroy whatever machine `<model_dir>` records, in whatever state it is
/// (booted, half created, its nspawn already dead). Idempotent: nothing
/// recorded and nothing mounted is success.
pub fn destroy(model_dir: &Path) -> Result<(), MachineError> {
    let model_dir = absolute(model_dir)?;
    match read_state(&model_dir)? {
        Some(State::Host) => host::forget(&model_dir),
        Some(State::Nspawn(st)) => nspawn::teardown(&model_dir, &st, None),
        // The machine is the owner's: only the record goes.
        Some(State::Shared { .. }) => remove_state(&model_dir),
        // No record, but a crash between mount and record is possible:
        // clean the machine dir anyway.
        None => nspawn::teardown(&model_dir, &nspawn::NspawnState::planned(&model_dir), None),
    }
}

/// The name (and hostname) of the nspawn machine of `model_dir`
/// (`jujulet-<8 hex>`, stable per canonical model dir path).
pub fn nspawn_name(model_dir: &Path) -> String {
    let dir = model_dir
        .canonicalize()
        .unwrap_or_else(|_| model_dir.to_owned());
    nspawn::machine_name(&dir)
}

const STATE_FILE: &str = "machine.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum State {
    Nspawn(nspawn::NspawnState),
    Host,
    /// The machine of another model (its dir).
    Shared {
        owner: PathBuf,
    },
}

fn read_state(model_dir: &Path) -> Result<Option<State>, MachineError> {
    let path = model_dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            MachineError::Invalid(format!(
                "{}: unreadable machine record ({e}); check for mounts under {} and remove it",
                path.display(),
                model_dir.join("machine").display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MachineError::Io {
            what: "reading the machine record".into(),
            path,
            source,
        }),
    }
}

/// Write the record atomically (temp file, fsync, rename): a CLI killed
/// mid-write must not lose track of mounts and processes.
fn write_state(model_dir: &Path, state: &State) -> Result<(), MachineError> {
    use std::io::Write;
    let path = model_dir.join(STATE_FILE);
    let tmp = model_dir.join(".machine.json.tmp");
    let io_err = |source| MachineError::Io {
        what: "writing the machine record".into(),
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| MachineError::Invalid(format!("serialising the machine record: {e}")))?;
    let mut f = std::fs::File::create(&tmp).map_err(io_err)?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    std::fs::rename(&tmp, &path).map_err(io_err)
}

fn remove_state(model_dir: &Path) -> Result<(), MachineError> {
    let path = model_dir.join(STATE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MachineError::Io {
            what: "removing the machine record".into(),
            path,
            source,
        }),
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, MachineError> {
    std::fs::create_dir_all(dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|source| MachineError::Io {
            what: "opening the model dir".into(),
            path: dir.to_owned(),
            source,
        })
}

/// `env -i [-C cwd] K=V… argv…`: the exact environment and cwd, checked so
/// no argument can be misread by env as an assignment or an option.
fn env_argv(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    timeout: Option<Duration>,
) -> io::Result<Vec<String>> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let first = argv
        .first()
        .ok_or_else(|| bad("exec: empty command".into()))?;
    if first.contains('=') || first.starts_with('-') {
        return Err(bad(format!(
            "exec: command name {first:?} would be misread by env(1); give a path"
        )));
    }
    if !cwd.is_absolute() {
        return Err(bad(format!(
            "exec: cwd {} must be an absolute path inside the machine",
            cwd.display()
        )));
    }
    let mut out = vec![
        "/usr/bin/env".to_owned(),
        "-i".to_owned(),
        format!("--chdir={}", cwd.display()),
    ];
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(bad(format!(
                "exec: invalid environment variable name {k:?}"
            )));
        }
        out.push(format!("{k}={v}"));
    }
    if let Some(t) = timeout {
        out.extend([
            "/usr/bin/timeout".to_owned(),
            "--kill-after=5".to_owned(),
            format!("{}.{:03}", t.as_secs(), t.subsec_millis()),
        ]);
    }
    out.extend(argv.iter().cloned());
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{0}")]
    Invalid(String),
    #[error("a machine is already recorded in {0}; run `jujulet destroy` first")]
    Exists(PathBuf),
    #[error("no machine is recorded in {0}; deploy first")]
    NoMachine(PathBuf),
    #[error(
        "the machine recorded in {record} is gone ({detail}); run `jujulet destroy` to clean up, then deploy again"
    )]
    Gone { record: PathBuf, detail: String },
    #[error(
        "machine kind `host` needs a host whose PID 1 is systemd; PID 1 here is {found:?}. Use the nspawn machine kind"
    )]
    HostNotSystemd { found: String },
    #[error("{what}: {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{cmd}` failed ({code}): {stderr_tail}\n{hint}")]
    Command {
        cmd: String,
        code: String,
        stderr_tail: String,
        hint: String,
    },
    #[error(
        "the machine did not boot within {secs} s (last state: {last}); tail of {log}:\n{log_tail}"
    )]
    BootTimeout {
        secs: u64,
        last: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("systemd-nspawn exited during boot ({status}); tail of {log}:\n{log_tail}")]
    NspawnDied {
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("interrupted; what was set up has been removed")]
    Interrupted,
    #[error("failing on purpose after {0:?} (test knob)")]
    Injected(CreateStep),
    #[error("{failure}\n(cleaning up failed too: {cleanup})")]
    CleanupFailed {
        failure: Box<MachineError>,
        cleanup: Box<MachineError>,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn env_argv_is_exact() {
        let a = env_argv(
            &["ls".into(), "-l".into()],
            &[("PATH".into(), "/bin".into())],
            Path::new("/tmp"),
            Some(Duration::from_millis(1500)),
        )
        .unwrap();
        assert_eq!(
            a,
            [
                "/usr/bin/env",
                "-i",
                "--chdir=/tmp",
                "PATH=/bin",
                "/usr/bin/timeout",
                "--kill-after=5",
                "1.500",
                "ls",
                "-l"
            ]
        );
        assert!(env_argv(&["A=b".into()], &[], Path::new("/"), None).is_err());
        assert!(
            env_argv(
                &["x".into()],
                &[("A=".into(), String::new())],
                Path::new("/"),
                None
            )
            .is_err()
        );
        assert!(env_argv(&[], &[], Path::new("/"), None).is_err());
        assert!(env_argv(&["x".into()], &[], Path::new("srv"), None).is_err());
    }

    #[test]
    fn host_machines_need_systemd_as_pid_1() {
        // The decision, on both answers; the probe of /proc/1/comm itself
        // is the line in require_systemd.
        assert!(host::check_systemd("systemd", true).is_ok());
        let e = host::check_systemd("process_api", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PID 1 here is \"process_api\""), "{e}");
        assert!(
            host::check_systemd("systemd", false).is_err(),
            "no /run/systemd/system"
        );
    }
}
