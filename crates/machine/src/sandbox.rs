//! Commands run as an unprivileged user inside a transient systemd unit with
//! the service's hardening: what runs the app's installer and its
//! provision_command. Root starts `systemd-run` with a fixed environment;
//! systemd (PID 1) drops to the user, applies the sandbox, reads the
//! variables from files root wrote (never from root's own environment, and
//! never in the unit's properties, which every user can read), and stops the
//! whole cgroup when the command ends: nothing it started outlives it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{Cmd, Exit, Output};
use crate::systemd::HARDENING;
use crate::{Error, proc};

/// How a sandboxed command runs.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The transient unit's name, without `.service` (unique per run: a
    /// random suffix is added).
    pub name: String,
    /// `User=` and `Group=`.
    pub user: String,
    /// `WorkingDirectory=`.
    pub dir: PathBuf,
    /// The only paths it may write (`ReadWritePaths=`); they must exist.
    pub writable: Vec<PathBuf>,
    /// Files of `KEY="value"` lines read by systemd as root
    /// (`EnvironmentFile=`); secrets go here, never in `env`.
    pub env_files: Vec<PathBuf>,
    /// Variables that are no secret (PATH, HOME...), set with `--setenv`.
    pub env: Vec<(String, String)>,
    /// `RuntimeMaxSec=`: systemd stops the unit at this age.
    pub timeout: Duration,
    /// `UMask=` (the service's is 0077; a build that the service reads later
    /// needs 0022).
    pub umask: &'static str,
    /// Further properties, e.g. the service's `StateDirectory=` (the
    /// caller builds them from validated names only).
    pub extra: Vec<String>,
}

/// The unit properties of `sandbox` (everything but the command), as
/// `systemd-run` arguments.
pub fn properties(s: &Sandbox) -> Vec<String> {
    let mut p = vec![
        format!("User={}", s.user),
        format!("Group={}", s.user),
        format!("WorkingDirectory={}", s.dir.display()),
        format!("RuntimeMaxSec={}", s.timeout.as_secs().max(1)),
        format!("UMask={}", s.umask),
        "PrivateUsers=yes".to_owned(),
        "CapabilityBoundingSet=".to_owned(),
        "AmbientCapabilities=".to_owned(),
        // The commands fail like any program; systemd need not remember them.
        "KillMode=control-group".to_owned(),
    ];
    p.extend(HARDENING.iter().map(|(k, v)| format!("{k}={v}")));
    for w in &s.writable {
        p.push(format!("ReadWritePaths={}", w.display()));
    }
    for f in &s.env_files {
        p.push(format!("EnvironmentFile={}", f.display()));
    }
    p.extend(s.extra.iter().cloned());
    p
}

impl Sandbox {
    /// Runs `program args` in the sandbox; the output (stdout and stderr,
    /// through `--pipe`) and how it exited. Only failing to start the unit
    /// and the timeout are errors.
    pub fn run_status(&self, program: &str, args: &[String]) -> Result<(Exit, Output), Error> {
        check_name(&self.name)?;
        // systemd-run would look a bare name up in its own PATH (root's);
        // the command's PATH is the sandbox's (the venv first). A lookup
        // reads directories, it runs nothing.
        let program = self.resolve(program)?;
        let program = program.as_str();
        let unit = format!("{}-{}", self.name, suffix());
        let mut cmd = Cmd::new("/usr/bin/systemd-run")
            .args([
                "--wait",
                "--pipe",
                "--collect",
                "--quiet",
                "--no-ask-password",
                "--service-type=exec",
            ])
            .arg(format!("--unit={unit}"));
        for p in properties(self) {
            cmd = cmd.arg("-p").arg(p);
        }
        for (k, v) in &self.env {
            cmd = cmd.arg(format!("--setenv={k}={v}"));
        }
        cmd = cmd
            .arg("--")
            .arg(program)
            .args(args)
            // The root side: a fixed environment, nothing the app chose.
            .env_clear([
                (
                    "PATH".to_owned(),
                    "/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
                ),
                ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ])
            // systemd stops it at RuntimeMaxSec; this bounds a client that hangs.
            .timeout(self.timeout + Duration::from_secs(30));
        let started = std::time::Instant::now();
        let result = cmd.run_status();
        if matches!(result, Err(Error::Timeout { .. })) {
            // The client is gone; the unit must not outlive it.
            stop(&unit);
        }
        let (exit, out) = result?;
        // A unit stopped at RuntimeMaxSec ends as a failure: say it as the
        // timeout it was, as for any command.
        if !exit.success() && started.elapsed() >= self.timeout {
            return Err(Error::Timeout {
                cmd: format!("{program} (as {} in {unit})", self.user),
                secs: self.timeout.as_secs(),
                tail: out.tail(),
            });
        }
        Ok((exit, out))
    }

    /// [`Sandbox::run_status`], where a non-zero exit is an error naming the
    /// command, its exit code and the tail of its output.
    pub fn run(&self, program: &str, args: &[String]) -> Result<Output, Error> {
        let (exit, out) = self.run_status(program, args)?;
        if exit.success() {
            Ok(out)
        } else {
            let mut words = vec![program.to_owned()];
            words.extend(args.iter().cloned());
            Err(Error::Failed {
                cmd: shell_words::join(words),
                exit,
                tail: out.tail(),
            })
        }
    }
}

impl Sandbox {
    /// `program` as an absolute path, found in the sandbox's PATH.
    fn resolve(&self, program: &str) -> Result<String, Error> {
        if program.contains('/') {
            return Ok(program.to_owned());
        }
        let path = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
        std::env::split_paths(path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
            .ok_or_else(|| Error::Invalid(format!("{program} is not in the PATH {path}")))
    }
}

/// The exposure `systemd-analyze security` gives a unit with these
/// properties (for reports and tests): the properties are written to a
/// scratch unit file under `dir` and analysed offline.
pub fn exposure(sandbox: &Sandbox, dir: &Path) -> Result<f64, Error> {
    let unit = dir.join(format!("{}-exposure.service", sandbox.name));
    let mut text = String::from("[Service]\nExecStart=/bin/true\n");
    for p in properties(sandbox) {
        text.push_str(&p);
        text.push('\n');
    }
    fs_err::write(&unit, text)?;
    let out = Cmd::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .timeout(Duration::from_secs(60))
        .run()?;
    out.stdout
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for ")
                .and_then(|(_, rest)| rest.split_once(": "))
                .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        })
        .ok_or_else(|| Error::Invalid(format!("systemd-analyze gave no exposure: {}", out.stdout)))
}

fn stop(unit: &str) {
    let _ = Cmd::new("systemctl")
        .args(["--no-ask-password", "kill", "--signal=SIGKILL", unit])
        .timeout(Duration::from_secs(30))
        .run();
    let _ = Cmd::new("systemctl")
        .args(["--no-ask-password", "stop", unit])
        .timeout(Duration::from_secs(60))
        .run();
}

/// Unit names are `[A-Za-z0-9:_.\-]`; ours are fixed prefixes and app names.
fn check_name(name: &str) -> Result<(), Error> {
    if !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{name:?} is not a unit name")))
    }
}

/// A suffix that makes the unit's name unique (PID and time).
fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = proc::Proc::of(std::process::id()).map_or(0, |p| p.start);
    format!("{}-{start}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn properties_carry_the_hardening_and_no_secret() {
        let s = Sandbox {
            name: "wsgi-hello-build".into(),
            user: "wsgi-hello".into(),
            dir: "/srv/hello/current".into(),
            writable: vec!["/srv/hello/venv".into()],
            env_files: vec!["/run/wsgi/hello/build.env".into()],
            env: vec![("HOME".into(), "/var/cache/wsgi/hello".into())],
            timeout: Duration::from_secs(600),
            umask: "0022",
            extra: vec!["StateDirectory=wsgi/hello".into()],
        };
        let p = properties(&s);
        for want in [
            "User=wsgi-hello",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/srv/hello/venv",
            "EnvironmentFile=/run/wsgi/hello/build.env",
            "RuntimeMaxSec=600",
            "SystemCallFilter=~@privileged @resources",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} missing from {p:?}");
        }
        assert!(check_name("wsgi-hello-build").is_ok());
        assert!(check_name("a b").is_err() && check_name("").is_err());
    }
}
