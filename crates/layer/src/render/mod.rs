//! The layer's desired state: the rendered files and their hashes, and the
//! least disruptive action that applies a change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod envfile;
pub mod gunicorn_conf;
pub mod logrotate;
pub mod quote;
pub mod socket;
pub mod unit;

use self::envfile::{EnvFileError, merge, render_env_file};
use self::gunicorn_conf::{GunicornConfError, GunicornSpec, render_gunicorn_conf};
use self::logrotate::{LogrotateError, render_logrotate};
use self::socket::render_socket;
use self::unit::{UnitError, UnitSpec, render_unit};
use crate::config::Config;
use crate::config::layer_options::LayerOptions;
use crate::config::paths::AppPaths;

pub use machine::digest;

/// Hashes of everything that decides how the running service must change.
/// Stored by the host after a successful apply and compared on the next hook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hashes {
    /// The unit file.
    pub unit: String,
    /// The socket unit (a change means a new listening socket: the service
    /// stops, the socket is replaced, the service starts).
    #[serde(default)]
    pub socket: String,
    /// The service user (also in the unit; kept apart to say why a restart happens).
    pub user: String,
    /// The serving release's venv (the key of its inputs).
    pub venv: String,
    /// gunicorn.conf.py.
    pub gunicorn_conf: String,
    /// The environment file.
    pub env_file: String,
    /// The serving release.
    pub source: String,
}

/// What to do to the running service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Nothing changed that the service sees.
    Nothing,
    /// `systemctl reload` (HUP): gunicorn re-reads its conf and the env file and
    /// starts new workers, which re-import the app from `current`; in-flight
    /// requests finish; no request is refused (hardened-unit.md §2).
    Reload,
    /// `systemctl daemon-reload` if the unit changed, then `systemctl restart`:
    /// drops requests for about 0.4 s, so only where a reload cannot apply the change.
    Restart,
}

/// The least disruptive action that takes the service from `old` to `new`.
///
/// - socket changed (the port) → Restart, with the socket replaced while
///   the service is stopped (a HUP would make gunicorn bind the new port
///   itself).
/// - unit file changed → Restart (after daemon-reload): the master's argv,
///   user, capabilities and sandbox are fixed at exec; a HUP re-uses them.
/// - user changed → Restart: the master runs as the old user; a reload would
///   fork workers as the old user.
/// - venv changed → Restart: a new interpreter cannot be loaded into a
///   running master, and a reinstalled gunicorn or worker class (imported by
///   the master, forked into workers) would stay the old one beside new files.
/// - gunicorn conf, env file or source changed → Reload: gunicorn re-executes
///   the conf (which re-reads the env file, so removed keys disappear) and
///   new workers import the app afresh from the `current` link.
/// - nothing changed → Nothing.
pub fn action(old: &Hashes, new: &Hashes) -> Action {
    if old.unit != new.unit
        || old.socket != new.socket
        || old.user != new.user
        || old.venv != new.venv
    {
        Action::Restart
    } else if old.gunicorn_conf != new.gunicorn_conf
        || old.env_file != new.env_file
        || old.source != new.source
    {
        Action::Reload
    } else {
        Action::Nothing
    }
}

/// Inputs from relations (already validated by the interfaces crate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelationInputs {
    /// Variables the relations provide (`DATABASE_URL`, `MONGO_URL`).
    pub env: BTreeMap<String, String>,
    /// The website relation's proxy addresses, for forwarded_allow_ips.
    pub proxies: Vec<String>,
}

/// Every file the layer writes for one application, rendered, and their hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    /// `wsgi-<app>.service`.
    pub unit: String,
    /// `wsgi-<app>.socket`.
    pub socket: String,
    /// gunicorn.conf.py.
    pub gunicorn_conf: String,
    /// The environment file (holds secrets: 0640 root:<user>, never logged).
    pub env_file: String,
    /// The logrotate snippet, when there is a log file.
    pub logrotate: Option<String>,
    /// The hashes [`action`] compares.
    pub hashes: Hashes,
}

/// Why the desired state could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The unit file.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// The environment file.
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    /// gunicorn.conf.py.
    #[error(transparent)]
    GunicornConf(#[from] GunicornConfError),
    /// The logrotate snippet.
    #[error(transparent)]
    Logrotate(#[from] LogrotateError),
}

/// The release the files are rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    /// Its number.
    pub id: u32,
    /// Its venv's key.
    pub venv: String,
    /// Its archive's hash.
    pub source: String,
}

/// What the charm tells the app of where it runs, in its environment (the
/// service's and provision_command's alike).
pub fn charm_env(paths: &AppPaths, release: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("WSGI_DATA_DIR".into(), paths.data_dir.display().to_string()),
        (
            "WSGI_CACHE_DIR".into(),
            paths.app_cache_dir.display().to_string(),
        ),
        ("WSGI_RELEASE".into(), release.to_string()),
        (
            "WSGI_APP_DIR".into(),
            paths.release_app(release).display().to_string(),
        ),
    ])
}

impl DesiredState {
    /// Render everything for the release `serving`.
    pub fn render(
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        relations: &RelationInputs,
        serving: &Serving,
    ) -> Result<Self, RenderError> {
        let unit = render_unit(&UnitSpec::new(config, layer, paths))?;
        let socket = render_socket(&paths.app, config.port);
        let gunicorn_conf =
            render_gunicorn_conf(&GunicornSpec::new(config, paths, &relations.proxies))?;
        let mut env = merge(&config.environment_variables, &relations.env);
        env.extend(charm_env(paths, serving.id));
        let env_file = render_env_file(&env)?;
        let logrotate = config
            .log_file(paths)
            .map(|f| render_logrotate(&f))
            .transpose()?;
        let hashes = Hashes {
            unit: digest(unit.as_bytes()),
            socket: digest(socket.as_bytes()),
            user: digest(layer.username.as_bytes()),
            venv: serving.venv.clone(),
            gunicorn_conf: digest(gunicorn_conf.as_bytes()),
            env_file: digest(env_file.as_bytes()),
            source: format!("{}:{}", serving.id, serving.source),
        };
        Ok(Self {
            unit,
            socket,
            gunicorn_conf,
            env_file,
            logrotate,
            hashes,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use crate::config::paths::AppName;
    use serde_json::json;

    fn state(config: serde_json::Value, db: Option<&str>, source: &str) -> DesiredState {
        let c = Config::from_json(&config, 2).unwrap();
        let app = AppName::new("hello").unwrap();
        let layer = LayerOptions::for_app(&app);
        let paths = AppPaths::new(&layer.application_root, &app).unwrap();
        let mut rel = RelationInputs::default();
        if let Some(db) = db {
            rel.env.insert("DATABASE_URL".into(), db.into());
        }
        let serving = Serving {
            id: u32::from(source.as_bytes()[1] - b'0'),
            venv: "venv-a".into(),
            source: source.into(),
        };
        DesiredState::render(&c, &layer, &paths, &rel, &serving).unwrap()
    }

    #[test]
    fn actions_per_change() {
        let base = state(json!({}), None, "r1").hashes;
        assert_eq!(action(&base, &base), Action::Nothing);
        let cases = [
            // Another port: another socket (systemd binds it), then a restart.
            (state(json!({"port": 443}), None, "r1"), Action::Restart),
            (state(json!({"port": 8080}), None, "r1"), Action::Restart),
            (
                state(json!({"environment_variables": "A=1"}), None, "r1"),
                Action::Reload,
            ),
            (
                state(json!({}), Some("postgresql://u:p@h/d"), "r1"),
                Action::Reload,
            ),
            (state(json!({}), None, "r2"), Action::Reload),
            (state(json!({"workers": 9}), None, "r1"), Action::Reload),
            (
                state(json!({"extra_gunicorn_args": "--backlog 64"}), None, "r1"),
                Action::Restart,
            ),
            (state(json!({"tasks_max": 64}), None, "r1"), Action::Restart),
            (
                state(
                    json!({"wsgi_logfile_path": "/var/log/hello/other.log"}),
                    None,
                    "r1",
                ),
                Action::Restart,
            ),
            // Not seen by the service at all.
            (
                state(json!({"health_check_path": "/up"}), None, "r1"),
                Action::Nothing,
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            assert_eq!(action(&base, &s.hashes), *want, "case {i}");
        }
        // The journal only: no file, nothing to rotate.
        let journal = state(json!({"wsgi_logfile_path": "none"}), None, "r1");
        assert_eq!(journal.logrotate, None);
        assert!(!journal.gunicorn_conf.contains("/var/log"));
        assert_eq!(action(&base, &journal.hashes), Action::Restart);
        let mut h = base.clone();
        h.venv = "x".into();
        assert_eq!(action(&base, &h), Action::Restart);
        let mut h = base.clone();
        h.user = "x".into();
        assert_eq!(action(&base, &h), Action::Restart);
        let mut h = base.clone();
        h.gunicorn_conf = "x".into();
        h.unit = "y".into();
        assert_eq!(
            action(&base, &h),
            Action::Restart,
            "a restart covers a reload"
        );
    }
}
