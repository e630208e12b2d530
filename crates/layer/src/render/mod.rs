//! The layer's desired state: the rendered files and their hashes, and the
//! least disruptive action that applies a change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod envfile;
pub mod gunicorn_conf;
pub mod logrotate;
pub mod quote;
pub mod unit;

use self::envfile::{EnvFileError, merge, render_env_file};
use self::gunicorn_conf::{GunicornConfError, GunicornSpec, render_gunicorn_conf};
use self::logrotate::{LogrotateError, render_logrotate};
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
    /// The service user (also in the unit; kept apart to say why a restart happens).
    pub user: String,
    /// The venv's inputs: interpreter (path and version), requirements, wheel dir.
    pub venv: String,
    /// gunicorn.conf.py.
    pub gunicorn_conf: String,
    /// The environment file.
    pub env_file: String,
    /// The source release (content hash of the release the `current` link names).
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
    if old.unit != new.unit || old.user != new.user || old.venv != new.venv {
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

impl DesiredState {
    /// Render everything. `venv_inputs` is the host's hash of the venv's inputs
    /// (interpreter, requirements.txt, wheel dir); `source` the release hash.
    pub fn render(
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        relations: &RelationInputs,
        venv_inputs: &str,
        source: &str,
    ) -> Result<Self, RenderError> {
        let unit = render_unit(&UnitSpec::new(config, layer, paths))?;
        let gunicorn_conf =
            render_gunicorn_conf(&GunicornSpec::new(config, paths, &relations.proxies))?;
        let env_file = render_env_file(&merge(&config.environment_variables, &relations.env))?;
        let logrotate = config
            .log_file(paths)
            .map(|f| render_logrotate(&f))
            .transpose()?;
        let hashes = Hashes {
            unit: digest(unit.as_bytes()),
            user: digest(layer.username.as_bytes()),
            venv: digest(venv_inputs.as_bytes()),
            gunicorn_conf: digest(gunicorn_conf.as_bytes()),
            env_file: digest(env_file.as_bytes()),
            source: digest(source.as_bytes()),
        };
        Ok(Self {
            unit,
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
        DesiredState::render(&c, &layer, &paths, &rel, "py3.11 req-a", source).unwrap()
    }

    #[test]
    fn actions_per_change() {
        let base = state(json!({}), None, "r1").hashes;
        assert_eq!(action(&base, &base), Action::Nothing);
        let cases = [
            // 80 -> 443: both privileged, the unit is the same; only the conf changes.
            (state(json!({"port": 443}), None, "r1"), Action::Reload),
            // 80 -> 8080: the capabilities and PrivateUsers change: a new unit.
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
