//! A `local` runner for tests: a [`Machine`] whose "inside" is a plain host
//! directory. Commands run directly on the host (no container, no root), and
//! paths the scheduler computes "inside" are already host paths under
//! [`Machine::root`] (the scheduler prefixes them because the kind is `host`
//! and the root is not `/`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::machine::{Machine, MachineError, MachineKind};

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
        MachineKind::Host
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
        let mut wrapped = vec![
            "/usr/bin/timeout".to_owned(),
            "--kill-after=5".to_owned(),
            format!("{}.{:03}", timeout.as_secs(), timeout.subsec_millis()),
        ];
        wrapped.extend(argv.iter().cloned());
        self.exec(&wrapped, env, cwd)
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }

    fn destroy(&mut self) -> Result<(), MachineError> {
        Ok(())
    }
}
