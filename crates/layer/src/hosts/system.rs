//! The real machine as the layer's [`Host`], over the machine crate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use machine::release::{Source, Store};
use machine::systemd::{Systemctl, UnitState};
use machine::venv::Venv;

use crate::reconcile::GUNICORN;

/// Where the charm's uv is installed: root's, executable by everyone.
pub(crate) const UV: &str = "/usr/local/lib/wsgi-charm/uv";
use crate::seams::{Host, ProvisionRun};

/// The machine the hook runs on.
#[derive(Debug, Default)]
pub struct SystemHost {
    /// gunicorn's log file, when configured: its tail explains a failed start
    /// better than the journal (the traceback goes there).
    log_file: Option<PathBuf>,
}

impl Host for SystemHost {
    fn ensure_user(&mut self, name: &str, home: &Path) -> anyhow::Result<()> {
        machine::fs::create_dirs(home)?;
        machine::users::ensure_system_user(name, home)?;
        Ok(())
    }

    fn apt_install(&mut self, packages: &[String]) -> anyhow::Result<()> {
        machine::apt::install(packages)?;
        Ok(())
    }

    fn unpack_source(&mut self, archive: &Path, sources: &Path) -> anyhow::Result<Source> {
        Ok(machine::release::unpack(archive, sources)?)
    }

    fn import_source(&mut self, dir: &Path, sources: &Path) -> anyhow::Result<Source> {
        // Through a tar, so a directory gets every check an archive does.
        machine::fs::create_dirs(sources)?;
        let tar = sources.join(format!(".import-{}.tar", std::process::id()));
        let result = machine::release::pack_dir(dir, &tar)
            .and_then(|()| machine::release::unpack(&tar, sources));
        let _ = std::fs::remove_file(&tar);
        Ok(result?)
    }

    fn existing_source(&mut self, sources: &Path, hash: &str) -> anyhow::Result<Option<Source>> {
        Ok(machine::release::existing(sources, hash)?)
    }

    fn build_venv(
        &mut self,
        venvs: &Path,
        app_dir: &Path,
        wheels: Option<&Path>,
        build: &machine::venv::Build,
    ) -> anyhow::Result<Venv> {
        let read = |p: &Path| -> anyhow::Result<String> {
            let bytes = machine::venv::read_app_file(p, machine::venv::MAX_REQUIREMENTS)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        // Where code comes from is the operator's to say, not the app's.
        crate::config::requirements::check(app_dir, &mut |p| read(p))?;
        let requirements = read(&app_dir.join("requirements.txt"))?;
        let extra = if names_gunicorn(&requirements) {
            Vec::new()
        } else {
            vec![GUNICORN.to_owned()]
        };
        let req = machine::venv::VenvRequest {
            venvs,
            app_dir,
            wheels,
            extra: &extra,
            pins: GUNICORN,
            build,
        };
        machine::venv::ensure(&req).map_err(|e| {
            let cause = machine::venv::cause(&e);
            anyhow::Error::new(e).context(cause)
        })
    }

    fn store(&mut self, app_dir: &Path) -> Store {
        Store::new(app_dir)
    }

    fn install_uv(&mut self, charm_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        let from = charm_dir.join("bin/uv");
        if !from.is_file() {
            return Ok(None);
        }
        let to = Path::new(UV);
        let bytes = fs_err::read(&from)?;
        machine::fs::write_if_changed(to, &bytes, 0o755, Some((0, 0)))?;
        Ok(Some(to.to_owned()))
    }

    fn write_file(
        &mut self,
        path: &Path,
        content: &str,
        mode: u32,
        group: Option<&str>,
    ) -> anyhow::Result<bool> {
        let owner = match group {
            Some(g) => Some((0, machine::users::group_id(g)?)),
            None => None,
        };
        Ok(machine::fs::write_if_changed(
            path,
            content.as_bytes(),
            mode,
            owner,
        )?)
    }

    fn ensure_log_file(&mut self, path: &Path, user: &str) -> anyhow::Result<()> {
        let ids = machine::users::lookup(user)?
            .ok_or_else(|| anyhow::anyhow!("user {user} does not exist"))?;
        machine::fs::ensure_file(path, 0o640, ids)?;
        self.log_file = Some(path.to_owned());
        Ok(())
    }

    fn remove_file(&mut self, path: &Path) -> anyhow::Result<()> {
        machine::fs::remove_if_exists(path)?;
        Ok(())
    }

    fn systemctl(&mut self, verb: Systemctl, unit: &str) -> anyhow::Result<()> {
        if verb == Systemctl::Reload {
            // The change is live when the hook ends: wait for the old workers.
            machine::systemd::reload_and_wait(unit, Duration::from_secs(40))?;
            return Ok(());
        }
        machine::systemd::systemctl(verb, unit)?;
        Ok(())
    }

    fn service_state(&mut self, unit: &str) -> anyhow::Result<UnitState> {
        Ok(machine::systemd::unit_state(unit)?)
    }

    fn journal_tail(&mut self, unit: &str, lines: usize) -> String {
        // gunicorn's own log (a traceback) says more than systemd's lines:
        // its exception line first, then the last lines of both.
        let file = self
            .log_file
            .as_deref()
            .map(|p| tail_of_file(p, 40))
            .unwrap_or_default();
        let journal = machine::systemd::journal_tail(unit, lines);
        let mut out: Vec<String> = Vec::new();
        if let Some(exc) = file.lines().rev().find(|l| is_exception_line(l)) {
            out.push(exc.trim().to_owned());
        }
        // Access log lines (the health check's own requests) say nothing.
        let errors_only = |t: &str| -> String {
            t.lines()
                .filter(|l| !is_access_line(l))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (file, journal) = (errors_only(&file), errors_only(&journal));
        let source = if file.trim().is_empty() {
            &journal
        } else {
            &file
        };
        for l in
            machine::text::last_lines(source, lines.saturating_sub(out.len()).max(1)).split(" | ")
        {
            if !l.is_empty() && !out.iter().any(|o| o == l) {
                out.push(l.to_owned());
            }
        }
        out.join("\n")
    }

    fn health(&mut self, port: u16, path: &str, timeout_s: u32) -> anyhow::Result<String> {
        let timeout = Duration::from_secs(u64::from(timeout_s.max(1)));
        Ok(machine::health::wait_healthy(port, path, timeout)?)
    }

    fn provision(&mut self, argv: &[String], run: &ProvisionRun<'_>) -> anyhow::Result<()> {
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        let sandbox = machine::sandbox::Sandbox {
            name: run.unit.clone(),
            user: run.user.to_owned(),
            dir: run.dir.to_owned(),
            writable: run.writable.clone(),
            env_files: vec![run.env_file.to_owned()],
            env: run
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: Duration::from_secs(u64::from(run.timeout_s.max(1))),
            umask: "0077",
            extra: run.properties.clone(),
        };
        sandbox.run(program, args)?;
        Ok(())
    }

    fn check_database(&mut self, url: &str) -> anyhow::Result<()> {
        match super::dbcheck::check(url, Duration::from_secs(10))? {
            dbcheck_protocol::Checked::Connected => {}
            dbcheck_protocol::Checked::NotChecked => {
                tracing::info!("database URL not checked (TLS)");
            }
        }
        Ok(())
    }

    fn port_holder(&mut self, port: u16) -> Option<u32> {
        machine::net::listener_of(port)
    }

    fn cpus(&self) -> u32 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    }
}

/// Whether a requirements file names gunicorn (then its pin wins).
pub fn names_gunicorn(requirements: &str) -> bool {
    requirements.lines().any(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        l.strip_prefix("gunicorn").is_some_and(|rest| {
            !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    })
}

/// The last `lines` lines of a file, reading at most its last 16 KiB.
fn tail_of_file(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    machine::text::last_lines(&String::from_utf8_lossy(&buf), lines).replace(" | ", "\n")
}

/// A line of gunicorn's access log: `ADDR - - [date] "GET / HTTP/1.0" 200 …`.
fn is_access_line(line: &str) -> bool {
    line.contains(" - ") && line.contains("] \"") && line.contains(" HTTP/")
}

/// A Python exception line: `ModuleNotFoundError: No module named 'x'`.
fn is_exception_line(line: &str) -> bool {
    let Some((name, _)) = line.trim().split_once(':') else {
        return false;
    };
    let last = name.rsplit('.').next().unwrap_or(name);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && (last.ends_with("Error")
            || last.ends_with("Exception")
            || matches!(last, "SystemExit" | "KeyboardInterrupt"))
}

#[cfg(test)]
mod tests {
    use super::{is_exception_line, names_gunicorn};

    #[test]
    fn gunicorn_in_requirements_is_recognised() {
        assert!(names_gunicorn("flask\nGunicorn==22.0.0\n"));
        assert!(names_gunicorn("gunicorn\n"));
        assert!(names_gunicorn("  gunicorn[gevent]>=21\n"));
        assert!(!names_gunicorn("gunicorn-thing==1\nflask\n"));
        assert!(!names_gunicorn("# gunicorn\n"));
    }

    #[test]
    fn exception_lines() {
        assert!(is_exception_line(
            "ModuleNotFoundError: No module named 'x'"
        ));
        assert!(is_exception_line(
            "psycopg.OperationalError: connection failed"
        ));
        assert!(!is_exception_line(
            "[2026-11-25 02:45:08 +0000] [165] [ERROR] Exception in worker"
        ));
        assert!(!is_exception_line("Reason: Worker failed to boot."));
        assert!(super::is_access_line(
            "127.0.0.1 - - [25/Nov/2026:03:22:15 +0000] \"GET / HTTP/1.0\" 500 175 \"-\" \"wsgi-agent\""
        ));
        assert!(!super::is_access_line(
            "[2026-11-25 03:22:15 +0000] [12] [ERROR] Exception in worker"
        ));
    }
}
