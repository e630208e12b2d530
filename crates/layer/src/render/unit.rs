//! The systemd unit `wsgi-<app>.service`, rendered from a typed spec.
//!
//! Starts from the measured unit A of reference/hardened-unit.md (exposure
//! 1.6 with `NotifyAccess=all`). The listening socket is systemd's
//! (`wsgi-<app>.socket`, [`super::socket`]), passed to gunicorn at each
//! start: a restart queues connections instead of refusing them, and the
//! service needs no capability for a privileged port. Every value is either a constant, a number,
//! a validated name or path made only of characters systemd never interprets
//! (see [`super::paths::is_safe_path_char`]), or an `ExecStart=` word quoted
//! by [`systemd_word`]; so no config value can add a line or a directive
//! (layer:wsgi S2). Secrets never reach the unit: there is no `Environment=`
//! with a value from config or relations.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::quote::systemd_word;
use crate::config::Config;
use crate::config::layer_options::{LayerOptions, is_valid_username};
use crate::config::paths::{AppName, AppPaths, check_abs_path, is_safe_path_char};

/// What the unit is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The application (in Description= only).
    pub app: AppName,
    /// `User=` and `Group=` (the layer's username; the group has the same name).
    pub user: String,
    /// `WorkingDirectory=`: the serving release's code, through `current`.
    pub working_directory: PathBuf,
    /// The socket unit (`Requires=`, `After=`).
    pub socket: String,
    /// `StateDirectory=` and `CacheDirectory=` (`wsgi/<app>`).
    pub systemd_dir_name: String,
    /// The venv's gunicorn (ExecStart's executable).
    pub gunicorn: PathBuf,
    /// The gunicorn.conf.py given with `--config`.
    pub gunicorn_conf: PathBuf,
    /// The venv's `bin`, put first in `PATH`.
    pub venv_bin: PathBuf,
    /// Further gunicorn arguments (validated by [`Config`]; quoted here whatever they are).
    pub extra_args: Vec<String>,
    /// gunicorn's log file; the only path made writable (`ReadWritePaths=`).
    /// The host must create it (owned by the user) before the first start:
    /// the file, not its directory, is bind-mounted writable.
    pub log_file: Option<PathBuf>,
    /// `MemoryMax=`, when set.
    pub memory_max: Option<String>,
    /// `TasksMax=`.
    pub tasks_max: u32,
}

/// Why a spec could not be rendered (only reachable by a spec not built
/// from a validated [`Config`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unit file: {0}")]
pub struct UnitError(pub String);

impl UnitSpec {
    /// The spec for an application from its validated config and layer options.
    pub fn new(config: &Config, layer: &LayerOptions, paths: &AppPaths) -> Self {
        Self {
            app: paths.app.clone(),
            user: layer.username.clone(),
            working_directory: paths.current_app.clone(),
            socket: paths.socket.clone(),
            systemd_dir_name: paths.systemd_dir_name.clone(),
            gunicorn: paths.gunicorn.clone(),
            gunicorn_conf: paths.gunicorn_conf.clone(),
            venv_bin: paths.current_venv.join("bin"),
            extra_args: config.extra_gunicorn_args.clone(),
            log_file: config.log_file(paths),
            memory_max: config.memory_max.clone(),
            tasks_max: config.tasks_max,
        }
    }

    /// The gunicorn command line the unit runs, unquoted (what systemd's word
    /// splitting must give back).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            self.gunicorn.display().to_string(),
            "--config".to_owned(),
            self.gunicorn_conf.display().to_string(),
        ];
        argv.extend(self.extra_args.iter().cloned());
        argv
    }
}

fn safe_path(what: &str, p: &Path) -> Result<String, UnitError> {
    let s = p
        .to_str()
        .ok_or_else(|| UnitError(format!("{what} {p:?} is not UTF-8")))?;
    check_abs_path(s).map_err(|e| UnitError(format!("{what}: {e}")))?;
    Ok(s.to_owned())
}

/// Render the unit file.
///
/// No `EnvironmentFile=`: gunicorn.conf.py reads the environment file on
/// every start and every reload, so it is the only source of the app's
/// variables. With `EnvironmentFile=` as well, a variable removed from config
/// would survive a reload (gunicorn resets raw_env keys to the exec-time
/// environment; hardened-unit.md §2 caveat) and only a restart, which drops
/// requests, would remove it.
pub fn render_unit(spec: &UnitSpec) -> Result<String, UnitError> {
    if !is_valid_username(&spec.user) || spec.user == "root" {
        return Err(UnitError(format!(
            "{:?} is not a valid service user",
            spec.user
        )));
    }
    let workdir = safe_path("WorkingDirectory", &spec.working_directory)?;
    let venv_bin = safe_path("venv bin", &spec.venv_bin)?;
    safe_path("gunicorn", &spec.gunicorn)?;
    let log = spec
        .log_file
        .as_deref()
        .map(|p| safe_path("log file", p))
        .transpose()?;
    let argv = spec.argv();
    if let Some(a) = argv.iter().find(|a| a.contains('\0')) {
        return Err(UnitError(format!("ExecStart argument {a:?} contains NUL")));
    }
    let exec_start = argv
        .iter()
        .map(|w| systemd_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    let app = &spec.app;
    let user = &spec.user;
    let socket = &spec.socket;
    let dirs = &spec.systemd_dir_name;
    if !dirs
        .split('/')
        .all(|c| !c.is_empty() && c.chars().all(is_safe_path_char) && c != "." && c != "..")
        || !socket.ends_with(".socket")
        || !socket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(UnitError(format!(
            "bad socket {socket:?} or directory {dirs:?}"
        )));
    }

    let mut u = String::new();
    // write! to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        u,
        "\
# Written by the wsgi charm (wsgi-agent); changes are overwritten.
[Unit]
Description=WSGI application {app} (gunicorn)
Requires={socket}
After=network.target {socket}
StartLimitIntervalSec=300
StartLimitBurst=60

[Service]
Type=notify
# all: lets a worker of a SIGUSR2-re-executed master send MAINPID= (gunicorn.conf.py)
NotifyAccess=all
User={user}
Group={user}
WorkingDirectory={workdir}
# No EnvironmentFile=: gunicorn.conf.py reads the environment file at start and on
# every reload, so a variable removed from config is gone after a reload.
Environment=PATH={venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart={exec_start}
ExecReload=/bin/kill -s HUP $MAINPID
Restart=on-failure
# A crashing release restarts once a second while its health check runs
# (then it is rolled back): below the start limit ([Unit]), systemd keeps
# the socket listening and connections wait in its backlog.
RestartSec=1
# Data that outlives releases, upgrades and reboots; systemd makes them the
# user's and sets STATE_DIRECTORY and CACHE_DIRECTORY.
StateDirectory={dirs}
StateDirectoryMode=0700
CacheDirectory={dirs}
CacheDirectoryMode=0700
"
    );
    if let Some(log) = &log {
        let _ = writeln!(u, "ReadWritePaths={log}");
    }
    // The socket is systemd's: no capability at all, and PrivateUsers
    // (which a privileged bind() would need to be without).
    u.push_str(
        "\
AmbientCapabilities=
CapabilityBoundingSet=
PrivateUsers=yes
",
    );
    u.push_str("UMask=0077\n");
    if let Some(m) = &spec.memory_max {
        let _ = writeln!(u, "MemoryMax={m}");
    }
    let _ = writeln!(u, "TasksMax={}", spec.tasks_max);
    // The same sandbox as every command run for the app (machine::sandbox).
    for (key, value) in machine::systemd::HARDENING {
        let _ = writeln!(u, "{key}={value}");
    }
    u.push_str(
        "
[Install]
WantedBy=multi-user.target
",
    );
    Ok(u)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    pub(crate) fn spec(config: serde_json::Value) -> UnitSpec {
        let c = Config::from_json(&config, 2).unwrap();
        let app = AppName::new("hello").unwrap();
        let layer = LayerOptions::for_app(&app);
        let paths = AppPaths::new(&layer.application_root, &app).unwrap();
        UnitSpec::new(&c, &layer, &paths)
    }

    #[test]
    fn default_unit() {
        insta::assert_snapshot!("unit_default", render_unit(&spec(json!({}))).unwrap());
    }

    #[test]
    fn busy_unit() {
        let s = spec(json!({
            "port": 8080,
            "wsgi_logfile_path": "/var/log/hello/gunicorn.log",
            "extra_gunicorn_args": "--graceful-timeout 60 --forwarded-allow-ips=* --access-logformat '%(h)s \"%(r)s\" $x'",
        }));
        insta::assert_snapshot!("unit_busy", render_unit(&s).unwrap());
    }

    #[test]
    fn refuses_unsafe_specs() {
        let mut s = spec(json!({}));
        s.user = "root".into();
        assert!(render_unit(&s).is_err());
        let mut s = spec(json!({}));
        s.working_directory = PathBuf::from("/srv/a\nExecStartPre=/bin/sh");
        assert!(render_unit(&s).is_err());
        let mut s = spec(json!({}));
        s.extra_args = vec!["a\0b".into()];
        assert!(render_unit(&s).is_err());
    }
}
