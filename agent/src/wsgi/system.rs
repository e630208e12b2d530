//! The real machine as the layer's [`Host`], over `crate::host`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{Host, SeamError, ServiceState};
use crate::host::{self, Cmd, HostError};

/// The machine the hook runs on.
#[derive(Debug, Default)]
pub struct SystemHost {
    /// gunicorn's log file, when configured: its tail explains a failed start
    /// better than the journal (the traceback goes there).
    log_file: Option<PathBuf>,
}

impl Host for SystemHost {
    fn ensure_user(&mut self, name: &str, home: &Path) -> Result<(), SeamError> {
        host::fs::create_dirs(home)?;
        host::users::ensure_system_user(name, home)?;
        Ok(())
    }

    fn apt_install(&mut self, packages: &[String]) -> Result<(), SeamError> {
        host::apt::install(packages)?;
        Ok(())
    }

    fn unpack_release(
        &mut self,
        archive: &Path,
        releases: &Path,
        current: &Path,
    ) -> Result<String, SeamError> {
        Ok(host::release::unpack(archive, releases, current)?)
    }

    fn ensure_venv(
        &mut self,
        venv: &Path,
        app_dir: &Path,
        wheels: Option<&Path>,
    ) -> Result<String, SeamError> {
        let req = host::venv::VenvRequest {
            venv,
            app_dir,
            wheels,
        };
        Ok(host::venv::ensure(&req)?)
    }

    fn write_file(
        &mut self,
        path: &Path,
        content: &str,
        mode: u32,
        group: Option<&str>,
    ) -> Result<bool, SeamError> {
        let owner = match group {
            Some(g) => Some((0, host::users::group_id(g)?)),
            None => None,
        };
        Ok(host::fs::write_if_changed(
            path,
            content.as_bytes(),
            mode,
            owner,
        )?)
    }

    fn ensure_log_file(&mut self, path: &Path, user: &str) -> Result<(), SeamError> {
        let ids = host::users::lookup(user)?
            .ok_or_else(|| HostError::Other(format!("user {user} does not exist")))?;
        host::fs::ensure_file(path, 0o640, ids)?;
        self.log_file = Some(path.to_owned());
        Ok(())
    }

    fn remove_file(&mut self, path: &Path) -> Result<(), SeamError> {
        host::fs::remove_if_exists(path)?;
        Ok(())
    }

    fn systemctl(&mut self, verb: &str, unit: &str) -> Result<(), SeamError> {
        if verb == "reload" {
            // The change is live when the hook ends: wait for the old workers.
            host::systemd::reload_and_wait(unit, Duration::from_secs(40))?;
            return Ok(());
        }
        host::systemd::systemctl(verb, unit)?;
        Ok(())
    }

    fn service_state(&mut self, unit: &str) -> Result<ServiceState, SeamError> {
        let s = host::systemd::unit_state(unit)?;
        Ok(ServiceState {
            active_state: s.active_state,
            main_pid: s.main_pid,
        })
    }

    fn journal_tail(&mut self, unit: &str, lines: usize) -> String {
        // gunicorn's own log (a traceback) says more than systemd's lines:
        // its exception line first, then the last lines of both.
        let file = self
            .log_file
            .as_deref()
            .map(|p| tail_of_file(p, 40))
            .unwrap_or_default();
        let journal = host::systemd::journal_tail(unit, lines);
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
            host::process::last_lines(source, lines.saturating_sub(out.len()).max(1)).split(" | ")
        {
            if !l.is_empty() && !out.iter().any(|o| o == l) {
                out.push(l.to_owned());
            }
        }
        out.join("\n")
    }

    fn health(&mut self, port: u16, path: &str, timeout_s: u32) -> Result<String, SeamError> {
        let timeout = Duration::from_secs(u64::from(timeout_s.max(1)));
        Ok(host::health::wait_healthy(port, path, timeout)?)
    }

    fn provision(
        &mut self,
        argv: &[String],
        user: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
        timeout_s: u32,
    ) -> Result<(), SeamError> {
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        Cmd::new(program)
            .args(args)
            .as_user(user)
            .dir(dir)
            .env_clear(env.iter().map(|(k, v)| (k.clone(), v.clone())))
            .timeout(Duration::from_secs(u64::from(timeout_s.max(1))))
            .run()?;
        Ok(())
    }

    fn check_database(&mut self, url: &str) -> Result<(), SeamError> {
        match host::dbcheck::check(url, Duration::from_secs(10))? {
            host::dbcheck::Checked::Connected => {}
            host::dbcheck::Checked::NotChecked => {
                tracing::info!(
                    "database URL not checked (TLS, or no {} beside the agent)",
                    host::dbcheck::HELPER
                );
            }
        }
        Ok(())
    }

    fn port_holder(&mut self, port: u16) -> Option<u32> {
        host::net::listener_of(port)
    }

    fn cpus(&self) -> u32 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    }
}

/// The last `lines` lines of a file, reading at most its last 16 KiB.
fn tail_of_file(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    host::process::last_lines(&String::from_utf8_lossy(&buf), lines).replace(" | ", "\n")
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
    use super::is_exception_line;

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
