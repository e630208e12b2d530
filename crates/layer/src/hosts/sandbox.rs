//! A [`Host`] that changes nothing outside one directory: files land under
//! `SANDBOX_ROOT`, and the commands that need root services are appended to
//! `$SANDBOX_ROOT/commands.log` instead of being run. This is the contract
//! of the peers benchmark (shared/bench-peers, `wsgi_host.py`), which runs
//! every charm under a fake Juju; it also lets the binary's own tests run
//! real hooks without touching the test machine.

use std::io::Write;
use std::path::{Path, PathBuf};

use machine::release::{Source, Store};
use machine::systemd::{ActiveState, Systemctl, UnitState};
use machine::venv::Venv;

use crate::seams::{Host, ProvisionRun};

/// Side effects confined to a directory.
pub struct SandboxHost {
    root: PathBuf,
    active: bool,
    pid: u32,
}

impl SandboxHost {
    /// A sandbox at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SandboxHost {
            root: root.into(),
            active: false,
            pid: 0,
        }
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    fn record(&self, argv: &[&str]) -> anyhow::Result<()> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("commands.log"))?;
        writeln!(log, "{}", shell_words::join(argv))?;
        Ok(())
    }
}

impl Host for SandboxHost {
    fn ensure_user(&mut self, name: &str, _home: &Path) -> anyhow::Result<()> {
        self.record(&[
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            name,
        ])
    }

    fn apt_install(&mut self, packages: &[String]) -> anyhow::Result<()> {
        let mut argv = vec!["apt-get", "install", "--yes", "--no-install-recommends"];
        argv.extend(packages.iter().map(String::as_str));
        self.record(&argv)
    }

    fn unpack_source(&mut self, archive: &Path, sources: &Path) -> anyhow::Result<Source> {
        let bytes = std::fs::read(self.path(archive)).or_else(|_| std::fs::read(archive))?;
        let hash = machine::digest(&bytes);
        let dir = self.path(&sources.join(&hash[..12]));
        std::fs::create_dir_all(&dir)?;
        Ok(Source {
            hash,
            root: dir.clone(),
            dir,
        })
    }

    fn import_source(&mut self, dir: &Path, sources: &Path) -> anyhow::Result<Source> {
        let hash = machine::digest(dir.display().to_string().as_bytes());
        let at = self.path(&sources.join(&hash[..12]));
        std::fs::create_dir_all(&at)?;
        Ok(Source {
            hash,
            root: at.clone(),
            dir: at,
        })
    }

    fn existing_source(&mut self, sources: &Path, hash: &str) -> anyhow::Result<Option<Source>> {
        let dir = self.path(&sources.join(hash.get(..12).unwrap_or(hash)));
        Ok(dir.is_dir().then(|| Source {
            hash: hash.to_owned(),
            root: dir.clone(),
            dir,
        }))
    }

    fn build_venv(
        &mut self,
        venvs: &Path,
        app: &Path,
        _: Option<&Path>,
        _: &machine::venv::Build,
    ) -> anyhow::Result<Venv> {
        let reqs = std::fs::read(app.join("requirements.txt")).unwrap_or_default();
        let key = machine::digest(&reqs);
        let dir = self.path(&venvs.join(&key[..16]));
        let marker = dir.join(".inputs");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(key.as_str()) {
            let pip = dir.join("bin/pip");
            self.record(&[
                &pip.display().to_string(),
                "install",
                "--requirement",
                "requirements.txt",
            ])?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&marker, &key)?;
        }
        Ok(Venv {
            requirements: key.clone(),
            key,
            dir,
        })
    }

    fn store(&mut self, app_dir: &Path) -> Store {
        Store::new(&self.path(app_dir))
    }

    fn install_uv(&mut self, _: &Path) -> anyhow::Result<Option<PathBuf>> {
        Ok(Some(PathBuf::from("/usr/local/lib/wsgi-charm/uv")))
    }

    fn write_file(
        &mut self,
        path: &Path,
        content: &str,
        mode: u32,
        _: Option<&str>,
    ) -> anyhow::Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        let real = self.path(path);
        if std::fs::read_to_string(&real).is_ok_and(|old| old == content) {
            return Ok(false);
        }
        if let Some(dir) = real.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&real, content)?;
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode))?;
        Ok(true)
    }

    fn ensure_log_file(&mut self, path: &Path, _: &str) -> anyhow::Result<()> {
        let real = self.path(path);
        if let Some(dir) = real.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(real)?;
        Ok(())
    }

    fn remove_file(&mut self, path: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(self.path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn systemctl(&mut self, verb: Systemctl, unit: &str) -> anyhow::Result<()> {
        if matches!(verb, Systemctl::Start | Systemctl::Restart) {
            self.active = true;
            self.pid += 1;
        }
        if verb == Systemctl::Stop {
            self.active = false;
        }
        if verb == Systemctl::DaemonReload {
            self.record(&["systemctl", verb.verb()])
        } else {
            self.record(&["systemctl", verb.verb(), unit])
        }
    }

    fn service_state(&mut self, _: &str) -> anyhow::Result<UnitState> {
        // Nothing runs in the sandbox: the unit counts as active once started
        // in this process, or when it was enabled earlier (a later hook).
        let enabled = std::fs::read_to_string(self.root.join("commands.log"))
            .is_ok_and(|log| log.contains("systemctl start") || log.contains("systemctl restart"));
        let active = self.active || enabled;
        Ok(UnitState {
            active: if active {
                ActiveState::Active
            } else {
                ActiveState::Inactive
            },
            main_pid: self.pid,
            restarts: 0,
            listen: Vec::new(),
        })
    }

    fn journal_tail(&mut self, _: &str, _: usize) -> String {
        String::new()
    }

    fn health(&mut self, _: u16, _: &str, _: u32) -> anyhow::Result<String> {
        Ok("HTTP/1.1 200 OK (sandbox)".into())
    }

    fn provision(&mut self, argv: &[String], run: &ProvisionRun<'_>) -> anyhow::Result<()> {
        let unit = format!("--unit={}", run.unit);
        let user = format!("--uid={}", run.user);
        let mut line = vec!["systemd-run", unit.as_str(), user.as_str(), "--"];
        line.extend(argv.iter().map(String::as_str));
        let dir = run.dir.display().to_string();
        line.extend(["#", "in", dir.as_str()]);
        self.record(&line)
    }

    fn cpus(&self) -> u32 {
        2
    }

    fn check_database(&mut self, _: &str) -> anyhow::Result<()> {
        // No database is reachable from the sandbox: as if it answered.
        Ok(())
    }

    fn port_holder(&mut self, _: u16) -> Option<u32> {
        None
    }
}
