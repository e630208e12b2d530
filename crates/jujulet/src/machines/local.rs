//! A `local` runner for tests: a [`Machine`] whose "inside" is a plain host
//! directory. Commands run directly on the host (no container, no root), and
//! the paths processes see are host paths under [`Machine::root`]
//! ([`crate::install::Paths::as_seen_inside`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::time::Duration;

use crate::machines::{Machine, MachineError, MachineKind};

pub struct LocalMachine {
    root: PathBuf,
}

impl LocalMachine {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
}

impl Machine for LocalMachine {
    fn kind(&self) -> MachineKind {
        MachineKind::Local
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn exec(&self, argv: &[String], env: &[(String, String)], cwd: &Path) -> io::Result<Output> {
        let (first, rest) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "exec: empty command"))?;
        Command::new(first)
            .args(rest)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
    }

    fn exec_timeout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        timeout: Duration,
    ) -> io::Result<Output> {
        let (first, rest) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "exec: empty command"))?;
        machine::process::output_within(
            Command::new(first)
                .args(rest)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .current_dir(cwd),
            timeout,
        )
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }

    fn destroy(&mut self) -> Result<(), MachineError> {
        Ok(())
    }
}
