//! Every per-application path, derived from the layer's `application_root`
//! and the Juju application name, so no other module builds paths by hand.

use std::fmt;
use std::path::{Path, PathBuf};

/// A Juju application name, validated (`[a-z][a-z0-9-]*`, at most 64 bytes).
///
/// It becomes part of a unit name, a directory and a logrotate file name, so
/// nothing outside that set may pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppName(String);

/// Why a name or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

impl AppName {
    /// Validate a Juju application name.
    pub fn new(name: &str) -> Result<Self, PathError> {
        let mut chars = name.chars();
        let ok = matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
            && name.len() <= 64;
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(PathError(format!(
                "application name {name:?} is not a Juju application name ([a-z][a-z0-9-]*, at most 64 characters)"
            )))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters allowed in any path the layer writes into a unit file or a
/// logrotate snippet: no whitespace, quotes, `%` (a systemd specifier),
/// `$`, `\`, `*`/`?`/`[` (logrotate globs) or control characters, so these
/// paths need no quoting anywhere.
pub fn is_safe_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@')
}

/// Check that `p` is absolute, normalised (no empty, `.` or `..` component,
/// no trailing `/` except for `/` itself) and made of [`is_safe_path_char`].
/// Returns the problem, without naming the option (callers do).
pub fn check_abs_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not an absolute path"));
    }
    if let Some(c) = p.chars().find(|&c| !is_safe_path_char(c)) {
        return Err(format!(
            "{p:?} contains {c:?} (allowed: letters, digits and / . _ - + @)"
        ));
    }
    if p == "/" {
        return Ok(());
    }
    if p[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{p:?} is not normalised (empty, . or .. component)"
        ));
    }
    Ok(())
}

/// Check a relative path inside a directory: not absolute, no empty, `.` or
/// `..` component, safe characters. Joining it to a directory therefore stays
/// lexically inside that directory.
pub fn check_rel_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        return Err(format!(
            "{p:?} must be relative to the application directory"
        ));
    }
    if let Some(c) = p.chars().find(|&c| !is_safe_path_char(c)) {
        return Err(format!(
            "{p:?} contains {c:?} (allowed: letters, digits and / . _ - + @)"
        ));
    }
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{p:?} leaves or is not normalised inside the application directory (empty, . or .. component)"
        ));
    }
    Ok(())
}

/// All paths of one application. Built by [`AppPaths::new`] from validated
/// parts, so every path here is absolute, normalised and made of safe characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    /// The application name.
    pub app: AppName,
    /// `<root>/<app>`: sources, venvs, releases and `current` live here
    /// (see `machine::release::store`).
    pub app_dir: PathBuf,
    /// `<root>/<app>/source`: where a charm that includes the layer puts
    /// its code before setting `wsgi.source.available`.
    pub source_dir: PathBuf,
    /// `<root>/<app>/current`: the release that serves (a link, switched
    /// atomically).
    pub current: PathBuf,
    /// `<root>/<app>/current/app`: the serving release's code.
    pub current_app: PathBuf,
    /// `<root>/<app>/current/venv`: the serving release's venv.
    pub current_venv: PathBuf,
    /// `<root>/<app>/current/venv/bin/gunicorn`.
    pub gunicorn: PathBuf,
    /// `/etc/wsgi/<app>`: the directory of the env file and gunicorn conf.
    pub etc_dir: PathBuf,
    /// `/etc/wsgi/<app>/environment` (0640 root:<user>).
    pub env_file: PathBuf,
    /// `/etc/wsgi/<app>/gunicorn.conf.py`.
    pub gunicorn_conf: PathBuf,
    /// `wsgi-<app>.service`.
    pub service: String,
    /// `/etc/systemd/system/wsgi-<app>.service`.
    pub unit_file: PathBuf,
    /// `wsgi-<app>.socket`: the listening socket, held by systemd across
    /// restarts.
    pub socket: String,
    /// `/etc/systemd/system/wsgi-<app>.socket`.
    pub socket_file: PathBuf,
    /// `/etc/logrotate.d/wsgi-<app>`.
    pub logrotate: PathBuf,
    /// `/var/log/wsgi`: root-owned, the default home of the apps' log files.
    pub log_dir: PathBuf,
    /// `/var/log/wsgi/<app>.log`: the default wsgi_logfile_path.
    pub default_log_file: PathBuf,
    /// `wsgi/<app>`: the service's `StateDirectory=` and `CacheDirectory=`.
    pub systemd_dir_name: String,
    /// `/var/lib/wsgi/<app>`: the app's data, kept across releases,
    /// upgrades and reboots (systemd's StateDirectory).
    pub data_dir: PathBuf,
    /// `/var/cache/wsgi/<app>`: the app's cache (systemd's CacheDirectory).
    pub app_cache_dir: PathBuf,
    /// `/var/cache/wsgi/<app>/.installer`: the installer's cache (its
    /// HOME), owned by the app's user.
    pub cache_dir: PathBuf,
    /// `/run/wsgi/<app>`: root's files for the app's transient units (the
    /// installer's environment), 0700.
    pub run_dir: PathBuf,
}

impl AppPaths {
    /// Derive every path. `application_root` must pass [`check_abs_path`]
    /// (the layer options do that).
    pub fn new(application_root: &Path, app: &AppName) -> Result<Self, PathError> {
        let root_text = application_root.to_str().ok_or_else(|| {
            PathError(format!(
                "application_root {application_root:?} is not UTF-8"
            ))
        })?;
        check_abs_path(root_text).map_err(|e| PathError(format!("application_root: {e}")))?;
        let app_dir = application_root.join(app.as_str());
        let current = app_dir.join("current");
        let etc_dir = Path::new("/etc/wsgi").join(app.as_str());
        let service = format!("wsgi-{app}.service");
        let socket = format!("wsgi-{app}.socket");
        let app_cache_dir = Path::new("/var/cache/wsgi").join(app.as_str());
        Ok(Self {
            app: app.clone(),
            source_dir: app_dir.join("source"),
            current_app: current.join("app"),
            current_venv: current.join("venv"),
            gunicorn: current.join("venv/bin/gunicorn"),
            current,
            env_file: etc_dir.join("environment"),
            gunicorn_conf: etc_dir.join("gunicorn.conf.py"),
            etc_dir,
            unit_file: Path::new("/etc/systemd/system").join(&service),
            service,
            socket_file: Path::new("/etc/systemd/system").join(&socket),
            socket,
            logrotate: PathBuf::from(format!("/etc/logrotate.d/wsgi-{app}")),
            log_dir: PathBuf::from("/var/log/wsgi"),
            default_log_file: PathBuf::from(format!("/var/log/wsgi/{app}.log")),
            systemd_dir_name: format!("wsgi/{app}"),
            data_dir: Path::new("/var/lib/wsgi").join(app.as_str()),
            cache_dir: app_cache_dir.join(".installer"),
            app_cache_dir,
            run_dir: Path::new("/run/wsgi").join(app.as_str()),
            app_dir,
        })
    }

    /// `<root>/<app>/releases/<id>/app`: a release's code, as the service
    /// and provision_command see it.
    pub fn release_app(&self, id: u32) -> PathBuf {
        self.app_dir.join(format!("releases/{id}/app"))
    }

    /// `<root>/<app>/releases/<id>/venv`.
    pub fn release_venv(&self, id: u32) -> PathBuf {
        self.app_dir.join(format!("releases/{id}/venv"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn paths_of_an_app() {
        let p = AppPaths::new(Path::new("/srv"), &AppName::new("my-app").unwrap()).unwrap();
        assert_eq!(p.service, "wsgi-my-app.service");
        assert_eq!(p.app_dir, Path::new("/srv/my-app"));
        assert_eq!(p.current, Path::new("/srv/my-app/current"));
        assert_eq!(p.current_app, Path::new("/srv/my-app/current/app"));
        assert_eq!(
            p.gunicorn,
            Path::new("/srv/my-app/current/venv/bin/gunicorn")
        );
        assert_eq!(p.socket, "wsgi-my-app.socket");
        assert_eq!(p.data_dir, Path::new("/var/lib/wsgi/my-app"));
        assert_eq!(p.env_file, Path::new("/etc/wsgi/my-app/environment"));
        assert_eq!(
            p.gunicorn_conf,
            Path::new("/etc/wsgi/my-app/gunicorn.conf.py")
        );
        assert_eq!(
            p.unit_file,
            Path::new("/etc/systemd/system/wsgi-my-app.service")
        );
        assert_eq!(p.logrotate, Path::new("/etc/logrotate.d/wsgi-my-app"));
        assert_eq!(p.release_app(3), Path::new("/srv/my-app/releases/3/app"));
    }

    #[test]
    fn app_names() {
        for bad in ["", "App", "1app", "a b", "a/b", "a\n", "a_b", "-a"] {
            assert!(AppName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            AppName::new("A").unwrap_err().to_string(),
            "application name \"A\" is not a Juju application name ([a-z][a-z0-9-]*, at most 64 characters)"
        );
        assert!(AppName::new("wsgi-app2").is_ok());
    }

    #[test]
    fn abs_and_rel_paths() {
        assert!(check_abs_path("/srv").is_ok());
        assert!(check_abs_path("/").is_ok());
        assert_eq!(
            check_abs_path("srv").unwrap_err(),
            "\"srv\" is not an absolute path"
        );
        assert!(check_abs_path("/srv/../etc").is_err());
        assert!(check_abs_path("/srv//x").is_err());
        assert!(check_abs_path("/srv/").is_err());
        assert!(check_abs_path("/srv/a b").is_err());
        assert!(check_abs_path("/srv/%n").is_err());
        assert!(check_rel_path("wheels").is_ok());
        assert!(check_rel_path("vendor/wheels/").is_ok());
        assert!(check_rel_path("../x").is_err());
        assert!(check_rel_path("/x").is_err());
        assert!(check_rel_path("a/./b").is_err());
        assert!(check_rel_path("").is_err());
    }
}
