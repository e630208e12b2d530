//! The `host` machine: the charm runs directly on this host, which must be
//! booted with systemd (a VM), as under Juju on a real machine.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{Machine, MachineError, MachineKind, State};

pub(super) struct Host {
    model_dir: PathBuf,
    root: PathBuf,
}

pub(super) fn require_systemd() -> Result<(), MachineError> {
    let comm = std::fs::read_to_string("/proc/1/comm")
        .map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_owned());
    check_systemd(&comm, Path::new("/run/systemd/system").is_dir())
}

/// /run/systemd/system is systemd's own "booted with systemd" test
/// (sd_booted); the comm check catches a leftover directory.
pub(super) fn check_systemd(pid1: &str, booted: bool) -> Result<(), MachineError> {
    if pid1 == "systemd" && booted {
        Ok(())
    } else {
        Err(MachineError::HostNotSystemd {
            found: pid1.to_owned(),
        })
    }
}

impl Host {
    pub(super) fn create(model_dir: &Path) -> Result<Self, MachineError> {
        require_systemd()?;
        super::write_state(model_dir, &State::Host)?;
        Ok(Self {
            model_dir: model_dir.to_owned(),
            root: PathBuf::from("/"),
        })
    }

    pub(super) fn attach(model_dir: &Path) -> Result<Self, MachineError> {
        require_systemd()?;
        Ok(Self {
            model_dir: model_dir.to_owned(),
            root: PathBuf::from("/"),
        })
    }
}

pub(super) fn forget(model_dir: &Path) -> Result<(), MachineError> {
    super::remove_state(model_dir)
}

impl Machine for Host {
    fn kind(&self) -> MachineKind {
        MachineKind::Host
    }
    fn root(&self) -> &Path {
        &self.root
    }
    fn exec(&self, argv: &[String], env: &[(String, String)], cwd: &Path) -> io::Result<Output> {
        let full = super::env_argv(argv, env, cwd, None)?;
        Command::new(&full[0])
            .args(&full[1..])
            .stdin(std::process::Stdio::null())
            .output()
    }
    fn exec_timeout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        timeout: Duration,
    ) -> io::Result<Output> {
        let full = super::env_argv(argv, env, cwd, Some(timeout))?;
        super::process::output_within(
            Command::new(&full[0]).args(&full[1..]),
            timeout + Duration::from_secs(15),
        )
    }
    fn describe(&self) -> String {
        "host".into()
    }
    fn destroy(&mut self) -> Result<(), MachineError> {
        // The host itself stays; only jujulet's record of it goes. Whatever
        // the charm installed is removed by its stop/remove hooks.
        forget(&self.model_dir)
    }
}
