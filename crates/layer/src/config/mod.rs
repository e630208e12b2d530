//! The charm's options (config.yaml), typed and validated from `config-get --all --format=json`.
//!
//! Every option is checked; all problems are collected (the layer shows them
//! together in a blocked status), and each names its option:
//! `port: 70000 is not a TCP port (1-65535)`. Errors never repeat the value of
//! `environment_variables` (it holds secrets). Options missing from the map
//! take config.yaml's defaults; unknown options are ignored (a charm built on
//! the layer may add its own).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod envvars;
pub mod gunicorn_args;
pub mod layer_options;
pub mod paths;
pub mod requirements;

use self::paths::{AppPaths, check_abs_path, check_rel_path};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP port gunicorn binds on 0.0.0.0.
    pub port: u16,
    /// `module:callable`, validated.
    pub wsgi_module: String,
    /// The provision command's argv (empty: none). Runs without a shell.
    pub provision_command: Vec<String>,
    /// Seconds provision_command may run.
    pub provision_timeout: u32,
    /// Wheel directory relative to the application directory, if any.
    pub pip_cache_dir: Option<String>,
    /// gunicorn's log file besides the journal.
    pub wsgi_logfile_path: LogFile,
    /// Debian packages (`name` or `name=version`).
    pub apt_dependencies: Vec<String>,
    /// The operator's variables (reserved keys refused, last duplicate wins).
    pub environment_variables: BTreeMap<String, String>,
    /// Number of workers, resolved (`0` in config → 2 × CPUs + 1).
    pub workers: u32,
    /// gunicorn worker class.
    pub worker_class: String,
    /// Threads per worker.
    pub threads: u32,
    /// Worker timeout in seconds (0 disables it, as in gunicorn).
    pub timeout: u32,
    /// Keep-alive seconds.
    pub keepalive: u32,
    /// Requests before a worker is recycled (0 = never).
    pub max_requests: u32,
    /// Path of the health check request.
    pub health_check_path: String,
    /// Seconds to wait for a healthy answer.
    pub health_check_timeout: u32,
    /// Further gunicorn arguments, each from the allow-list.
    pub extra_gunicorn_args: Vec<String>,
    /// Database to request; None means the application name.
    pub database_name: Option<String>,
    /// Roles to request (pgsql).
    pub database_roles: Vec<String>,
    /// Extensions to request (pgsql).
    pub database_extensions: Vec<String>,
    /// The package index to install from, instead of PyPI.
    pub index_url: Option<String>,
    /// Further package indexes.
    pub extra_index_url: Vec<String>,
    /// Hosts whose index is used without TLS verification.
    pub trusted_host: Vec<String>,
    /// The service's memory limit (`MemoryMax=`), e.g. `512M`; None: none.
    pub memory_max: Option<String>,
    /// The service's task limit (`TasksMax=`).
    pub tasks_max: u32,
    /// Who installs the requirements.
    pub installer: InstallerChoice,
    /// Releases kept (with their venvs) for list-releases and rollback.
    pub release_history: u32,
}

/// The `installer` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallerChoice {
    /// The charm's own uv (the default): no python3-venv, no pip needed.
    Uv,
    /// The venv's pip (python3-venv is installed for it).
    Pip,
}

fn installer(r: &mut OptionReader<'_>) -> InstallerChoice {
    match r.string("installer").as_deref() {
        Some("pip") => InstallerChoice::Pip,
        Some("uv") | None => InstallerChoice::Uv,
        Some(other) => {
            r.fail("installer", format!("{} is not uv or pip", quoted(other)));
            InstallerChoice::Uv
        }
    }
}

/// One problem with one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The option's name as in config.yaml.
    pub option: &'static str,
    /// What is wrong, for an operator.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.problem)
    }
}

/// Every problem found in a configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Worker classes accepted by name; anything else must be a dotted path of
/// Python identifiers (a class the requirements install).
const WORKER_CLASSES: &[&str] = &[
    "sync",
    "gthread",
    "eventlet",
    "gevent",
    "tornado",
    "uvicorn.workers.UvicornWorker",
];

/// The longest string option accepted.
const MAX_STRING: usize = 65_536;

/// Defaults of config.yaml, used for options missing from config-get's map.
fn default_of(option: &str) -> Value {
    match option {
        "port" => Value::from(80),
        "wsgi_module" => Value::from("wsgi:application"),
        "provision_timeout" => Value::from(600),
        "tasks_max" => Value::from(512),
        "release_history" => Value::from(5),
        "installer" => Value::from("uv"),
        "workers" | "max_requests" => Value::from(0),
        "worker_class" => Value::from("sync"),
        "threads" => Value::from(1),
        "timeout" | "health_check_timeout" => Value::from(30),
        "keepalive" => Value::from(2),
        "health_check_path" => Value::from("/"),
        _ => Value::from(""),
    }
}

/// Reads options from config-get's map, collecting the problems found.
struct OptionReader<'a> {
    map: &'a serde_json::Map<String, Value>,
    errors: Vec<ConfigError>,
}

impl OptionReader<'_> {
    fn fail(&mut self, option: &'static str, problem: String) {
        self.errors.push(ConfigError { option, problem });
    }

    fn value(&self, option: &str) -> Value {
        match self.map.get(option) {
            None | Some(Value::Null) => default_of(option),
            Some(v) => v.clone(),
        }
    }

    /// An int option within `min..=max`; on error the default is returned
    /// (the error is recorded, so the default is never used).
    fn int(&mut self, option: &'static str, min: i64, max: i64, what: &str) -> u32 {
        let v = self.value(option);
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => u32::try_from(n).unwrap_or_default(),
            Some(n) => {
                self.fail(option, format!("{n} is not {what} ({min}-{max})"));
                0
            }
            None => {
                self.fail(option, format!("{} is not an integer", json_shown(&v)));
                0
            }
        }
    }

    fn string(&mut self, option: &'static str) -> Option<String> {
        match self.value(option) {
            Value::String(s) => {
                if s.contains('\0') {
                    self.fail(option, "contains a NUL character".to_owned());
                    None
                } else if s.len() > MAX_STRING {
                    // systemd ignores unit lines over 1 MiB; no option needs this much.
                    self.fail(option, format!("is longer than {MAX_STRING} bytes"));
                    None
                } else {
                    Some(s)
                }
            }
            v => {
                self.fail(option, format!("{} is not a string", json_shown(&v)));
                None
            }
        }
    }
}

/// A JSON value as text for an error message, cut short.
fn json_shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// A string value quoted for an error message (Rust debug quoting shows
/// control characters as escapes), cut short.
pub(crate) fn quoted(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{:?}…", s.chars().take(60).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

/// True for an ASCII Python identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_dotted(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

/// Check a `module:callable` (both sides dotted ASCII identifiers, no call).
pub fn check_wsgi_module(s: &str) -> Result<(), String> {
    match s.split_once(':') {
        Some((m, c)) if is_dotted(m) && is_dotted(c) => Ok(()),
        _ => Err(format!(
            "{} is not module:callable (dotted Python identifiers, e.g. myproject.wsgi:application)",
            quoted(s)
        )),
    }
}

/// Check a Debian package spec: `name` or `name=version`.
pub fn check_apt_package(s: &str) -> Result<(), String> {
    let (name, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-'));
    let version_ok = version.is_none_or(|v| {
        v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | ':' | '-'))
    });
    if name_ok && version_ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a Debian package name (optionally =version)",
            quoted(s)
        ))
    }
}

/// A PostgreSQL name the charm asks for (database, role, extension):
/// `[A-Za-z0-9_-]`, at most 63 characters (PostgreSQL's limit).
fn is_pg_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Comma-separated names (database roles, extensions): `[A-Za-z0-9_-]+` each.
fn comma_names(r: &mut OptionReader<'_>, option: &'static str) -> Vec<String> {
    let Some(s) = r.string(option) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if is_pg_name(item) {
            out.push(item.to_owned());
        } else {
            r.fail(
                option,
                format!(
                    "{} is not a name ([A-Za-z0-9_-], at most 63 characters)",
                    quoted(item)
                ),
            );
        }
    }
    out
}

impl OptionReader<'_> {
    /// A string option that `check` accepts (its problem recorded if not).
    fn checked(&mut self, option: &'static str, check: fn(&str) -> Result<(), String>) -> String {
        let value = self.string(option).unwrap_or_default();
        if let Err(problem) = check(&value) {
            self.fail(option, problem);
        }
        value
    }

    /// A string option split into shell words.
    fn shell_words(&mut self, option: &'static str) -> Vec<String> {
        match self.string(option).map(|s| shell_words::split(&s)) {
            Some(Ok(words)) => words,
            Some(Err(_)) => {
                self.fail(option, "unterminated quote".to_owned());
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

fn pip_cache_dir(r: &mut OptionReader<'_>) -> Option<String> {
    let s = r.string("pip_cache_dir").filter(|s| !s.is_empty())?;
    match check_rel_path(&s) {
        Ok(()) => Some(s.trim_end_matches('/').to_owned()),
        Err(e) => {
            r.fail("pip_cache_dir", e);
            None
        }
    }
}

/// Where gunicorn's log goes besides the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    /// The application's own, `/var/log/wsgi/<app>.log` (the option empty):
    /// log collectors read files under /var/log.
    Default,
    /// A file the operator chose, absolute and under /var/log.
    At(PathBuf),
    /// The journal only (`none`).
    JournalOnly,
}

fn wsgi_logfile_path(r: &mut OptionReader<'_>) -> LogFile {
    let Some(s) = r.string("wsgi_logfile_path").filter(|s| !s.is_empty()) else {
        return LogFile::Default;
    };
    if s == "none" {
        return LogFile::JournalOnly;
    }
    match check_abs_path(&s) {
        Ok(()) if s.starts_with("/var/log/") => LogFile::At(PathBuf::from(s)),
        Ok(()) => {
            r.fail(
                "wsgi_logfile_path",
                format!("{} is not under /var/log", quoted(&s)),
            );
            LogFile::Default
        }
        Err(e) => {
            r.fail("wsgi_logfile_path", e);
            LogFile::Default
        }
    }
}

fn apt_dependencies(r: &mut OptionReader<'_>) -> Vec<String> {
    let mut packages = Vec::new();
    if let Some(s) = r.string("apt_dependencies") {
        for pkg in s.split_whitespace() {
            match check_apt_package(pkg) {
                Ok(()) => packages.push(pkg.to_owned()),
                Err(e) => r.fail("apt_dependencies", e),
            }
        }
    }
    packages
}

fn environment_variables(r: &mut OptionReader<'_>) -> BTreeMap<String, String> {
    match r
        .string("environment_variables")
        .map(|s| envvars::parse(&s))
    {
        Some(Ok(vars)) => vars,
        Some(Err(problems)) => {
            for p in problems {
                r.fail("environment_variables", p);
            }
            BTreeMap::new()
        }
        None => BTreeMap::new(),
    }
}

fn check_worker_class(class: &str) -> Result<(), String> {
    if WORKER_CLASSES.contains(&class) || (class.contains('.') && is_dotted(class)) {
        Ok(())
    } else {
        Err(format!(
            "{} is not a worker class (sync, gthread, eventlet, gevent, tornado, or a dotted class path)",
            quoted(class)
        ))
    }
}

fn check_health_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        Err(format!("{} does not start with /", quoted(path)))
    } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "{} contains whitespace or control characters",
            quoted(path)
        ))
    } else {
        Ok(())
    }
}

fn extra_gunicorn_args(r: &mut OptionReader<'_>) -> Vec<String> {
    let words = r.shell_words("extra_gunicorn_args");
    for p in gunicorn_args::check(&words) {
        r.fail("extra_gunicorn_args", p);
    }
    words
}

/// An index URL: http(s), no whitespace or control characters (it goes into
/// the installer's arguments, never through a shell).
fn check_index_url(u: &str) -> Result<(), String> {
    let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
    if scheme_ok && u.len() > 8 && !u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(format!("{} is not an http(s) URL", quoted(u)))
    }
}

fn index_url(r: &mut OptionReader<'_>) -> Option<String> {
    let s = r.string("index_url").filter(|s| !s.is_empty())?;
    match check_index_url(&s) {
        Ok(()) => Some(s),
        Err(e) => {
            r.fail("index_url", e);
            None
        }
    }
}

fn url_list(r: &mut OptionReader<'_>, option: &'static str) -> Vec<String> {
    let mut urls = Vec::new();
    for u in r.string(option).unwrap_or_default().split_whitespace() {
        match check_index_url(u) {
            Ok(()) => urls.push(u.to_owned()),
            Err(e) => r.fail(option, e),
        }
    }
    urls
}

fn trusted_hosts(r: &mut OptionReader<'_>) -> Vec<String> {
    let mut hosts = Vec::new();
    for h in r
        .string("trusted_host")
        .unwrap_or_default()
        .split_whitespace()
    {
        let (name, port) = h.rsplit_once(':').unwrap_or((h, "1"));
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if ok {
            hosts.push(h.to_owned());
        } else {
            r.fail(
                "trusted_host",
                format!("{} is not a host or host:port", quoted(h)),
            );
        }
    }
    hosts
}

/// `512M`, `2G`, `1073741824`, or a percentage of the machine's memory.
fn memory_max(r: &mut OptionReader<'_>) -> Option<String> {
    let s = r.string("memory_max").filter(|s| !s.is_empty())?;
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let ok = !digits.is_empty()
        && digits.len() <= 15
        && matches!(unit, "" | "K" | "M" | "G" | "T" | "%")
        && (unit != "%" || digits.parse::<u32>().is_ok_and(|p| (1..=100).contains(&p)));
    if ok {
        Some(s)
    } else {
        r.fail(
            "memory_max",
            format!(
                "{} is not a size (bytes, or a number with K, M, G, T; or a percentage 1-100%)",
                quoted(&s)
            ),
        );
        None
    }
}

fn database_name(r: &mut OptionReader<'_>) -> Option<String> {
    let s = r.string("database_name").filter(|s| !s.is_empty())?;
    if is_pg_name(&s) {
        Some(s)
    } else {
        r.fail(
            "database_name",
            format!(
                "{} is not a database name ([A-Za-z0-9_-], at most 63 characters)",
                quoted(&s)
            ),
        );
        None
    }
}

impl Config {
    /// Read and validate config-get's JSON map. `cpus` resolves `workers: 0`
    /// to 2 × cpus + 1. Returns every problem found, not only the first.
    pub fn from_json(json: &Value, cpus: u32) -> Result<Config, ConfigErrors> {
        let empty = serde_json::Map::new();
        let map = match json {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => {
                return Err(ConfigErrors(vec![ConfigError {
                    option: "config",
                    problem: format!("{} is not a map of options", json_shown(other)),
                }]));
            }
        };
        let mut r = OptionReader {
            map,
            errors: Vec::new(),
        };
        // Fields are read in config.yaml's order, so problems are listed so.
        let config = Config {
            port: u16::try_from(r.int("port", 1, 65535, "a TCP port")).unwrap_or(80),
            wsgi_module: r.checked("wsgi_module", check_wsgi_module),
            provision_command: r.shell_words("provision_command"),
            provision_timeout: r.int("provision_timeout", 1, 86_400, "a number of seconds"),
            pip_cache_dir: pip_cache_dir(&mut r),
            wsgi_logfile_path: wsgi_logfile_path(&mut r),
            apt_dependencies: apt_dependencies(&mut r),
            environment_variables: environment_variables(&mut r),
            workers: match r.int("workers", 0, 1024, "a number of workers") {
                0 => cpus.clamp(1, 256) * 2 + 1,
                n => n,
            },
            worker_class: r.checked("worker_class", check_worker_class),
            threads: r.int("threads", 1, 1024, "a number of threads"),
            timeout: r.int("timeout", 0, 86_400, "a number of seconds"),
            keepalive: r.int("keepalive", 0, 3600, "a number of seconds"),
            max_requests: r.int("max_requests", 0, 100_000_000, "a number of requests"),
            health_check_path: r.checked("health_check_path", check_health_path),
            health_check_timeout: r.int("health_check_timeout", 1, 3600, "a number of seconds"),
            extra_gunicorn_args: extra_gunicorn_args(&mut r),
            database_name: database_name(&mut r),
            database_roles: comma_names(&mut r, "database_roles"),
            database_extensions: comma_names(&mut r, "database_extensions"),
            index_url: index_url(&mut r),
            extra_index_url: url_list(&mut r, "extra_index_url"),
            trusted_host: trusted_hosts(&mut r),
            memory_max: memory_max(&mut r),
            tasks_max: r.int("tasks_max", 16, 1_000_000, "a number of tasks"),
            installer: installer(&mut r),
            release_history: r.int("release_history", 1, 100, "a number of releases"),
        };
        if r.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(r.errors))
        }
    }

    /// The wheel directory joined to the application's source directory
    /// (the current release). It stays inside `source_dir` lexically: the
    /// relative path has no `..`, no absolute part and no empty component.
    pub fn pip_cache_path(&self, source_dir: &Path) -> Option<PathBuf> {
        self.pip_cache_dir.as_ref().map(|rel| source_dir.join(rel))
    }

    /// gunicorn's log file (None: the journal only).
    pub fn log_file(&self, paths: &AppPaths) -> Option<PathBuf> {
        match &self.wsgi_logfile_path {
            LogFile::Default => Some(paths.default_log_file.clone()),
            LogFile::At(p) => Some(p.clone()),
            LogFile::JournalOnly => None,
        }
    }

    /// `max_requests_jitter`: 10% of max_requests (0 when recycling is off).
    pub fn max_requests_jitter(&self) -> u32 {
        self.max_requests / 10
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use serde_json::json;

    fn errors(j: Value) -> Vec<String> {
        Config::from_json(&j, 2)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_from_an_empty_map() {
        let c = Config::from_json(&json!({}), 2).unwrap();
        assert_eq!(c.port, 80);
        assert_eq!(c.workers, 5);
        assert_eq!(c.wsgi_module, "wsgi:application");
        assert_eq!(c.wsgi_logfile_path, LogFile::Default);
        assert_eq!(c.tasks_max, 512);
        assert!(c.environment_variables.is_empty());
        assert_eq!(c.max_requests_jitter(), 0);
    }

    #[test]
    fn busy_config() {
        let c = Config::from_json(
            &json!({
                "port": 8080, "workers": 3, "max_requests": 1000, "pip_cache_dir": "wheels/",
                "provision_command": "python manage.py migrate --noinput",
                "apt_dependencies": "libpq5 libjpeg62-turbo=1:2.1.5-2",
                "extra_gunicorn_args": "--graceful-timeout 60 --forwarded-allow-ips=* --log-level=warning --proxy-protocol",
                "database_roles": "a, b", "wsgi_logfile_path": "none",
            }),
            4,
        )
        .unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.max_requests_jitter(), 100);
        assert_eq!(
            c.provision_command,
            ["python", "manage.py", "migrate", "--noinput"]
        );
        assert_eq!(
            c.pip_cache_path(Path::new("/srv/a/current")),
            Some(PathBuf::from("/srv/a/current/wheels"))
        );
        assert_eq!(c.database_roles, ["a", "b"]);
        assert_eq!(c.wsgi_logfile_path, LogFile::JournalOnly);
        assert_eq!(c.apt_dependencies, ["libpq5", "libjpeg62-turbo=1:2.1.5-2"]);
    }

    /// One case per rule, with the exact text an operator sees.
    #[test]
    fn every_rule_has_its_message() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"port": 70000}),
                "port: 70000 is not a TCP port (1-65535)",
            ),
            (json!({"port": 0}), "port: 0 is not a TCP port (1-65535)"),
            (json!({"port": "80"}), "port: \"80\" is not an integer"),
            (json!({"port": 1.5}), "port: 1.5 is not an integer"),
            (
                json!({"wsgi_module": "a b"}),
                "wsgi_module: \"a b\" is not module:callable (dotted Python identifiers, e.g. myproject.wsgi:application)",
            ),
            (
                json!({"wsgi_module": "app:create()"}),
                "wsgi_module: \"app:create()\" is not module:callable (dotted Python identifiers, e.g. myproject.wsgi:application)",
            ),
            (
                json!({"wsgi_module": "app\n[Service]:x"}),
                "wsgi_module: \"app\\n[Service]:x\" is not module:callable (dotted Python identifiers, e.g. myproject.wsgi:application)",
            ),
            (
                json!({"provision_command": "echo 'x"}),
                "provision_command: unterminated quote",
            ),
            (
                json!({"provision_command": "a\u{0}b"}),
                "provision_command: contains a NUL character",
            ),
            (
                json!({"provision_timeout": 0}),
                "provision_timeout: 0 is not a number of seconds (1-86400)",
            ),
            (
                json!({"pip_cache_dir": "../wheels"}),
                "pip_cache_dir: \"../wheels\" leaves or is not normalised inside the application directory (empty, . or .. component)",
            ),
            (
                json!({"pip_cache_dir": "/tmp/wheels"}),
                "pip_cache_dir: \"/tmp/wheels\" must be relative to the application directory",
            ),
            (
                json!({"wsgi_logfile_path": "/tmp/x.log"}),
                "wsgi_logfile_path: \"/tmp/x.log\" is not under /var/log",
            ),
            (
                json!({"wsgi_logfile_path": "/var/log/../etc/x"}),
                "wsgi_logfile_path: \"/var/log/../etc/x\" is not normalised (empty, . or .. component)",
            ),
            (
                json!({"wsgi_logfile_path": "var/log/x"}),
                "wsgi_logfile_path: \"var/log/x\" is not an absolute path",
            ),
            (
                json!({"wsgi_logfile_path": "/var/log/a b"}),
                "wsgi_logfile_path: \"/var/log/a b\" contains ' ' (allowed: letters, digits and / . _ - + @)",
            ),
            (
                json!({"wsgi_logfile_path": "/var/log"}),
                "wsgi_logfile_path: \"/var/log\" is not under /var/log",
            ),
            (
                json!({"apt_dependencies": "libpq5 -o"}),
                "apt_dependencies: \"-o\" is not a Debian package name (optionally =version)",
            ),
            (
                json!({"apt_dependencies": "Foo"}),
                "apt_dependencies: \"Foo\" is not a Debian package name (optionally =version)",
            ),
            (
                json!({"apt_dependencies": "foo=bar"}),
                "apt_dependencies: \"foo=bar\" is not a Debian package name (optionally =version)",
            ),
            (
                json!({"environment_variables": "A=\"x"}),
                "environment_variables: unterminated quote",
            ),
            (
                json!({"environment_variables": "DATABASE_URL=x"}),
                "environment_variables: DATABASE_URL is reserved (set from the postgres, database or mongo relation)",
            ),
            (
                json!({"environment_variables": "K=\"a\nb\""}),
                "environment_variables: K: value contains a newline",
            ),
            (
                json!({"workers": -1}),
                "workers: -1 is not a number of workers (0-1024)",
            ),
            (
                json!({"worker_class": "sync; rm"}),
                "worker_class: \"sync; rm\" is not a worker class (sync, gthread, eventlet, gevent, tornado, or a dotted class path)",
            ),
            (
                json!({"worker_class": "custom"}),
                "worker_class: \"custom\" is not a worker class (sync, gthread, eventlet, gevent, tornado, or a dotted class path)",
            ),
            (
                json!({"threads": 0}),
                "threads: 0 is not a number of threads (1-1024)",
            ),
            (
                json!({"timeout": 100_000}),
                "timeout: 100000 is not a number of seconds (0-86400)",
            ),
            (
                json!({"keepalive": -2}),
                "keepalive: -2 is not a number of seconds (0-3600)",
            ),
            (
                json!({"max_requests": -1}),
                "max_requests: -1 is not a number of requests (0-100000000)",
            ),
            (
                json!({"health_check_path": "health"}),
                "health_check_path: \"health\" does not start with /",
            ),
            (
                json!({"health_check_path": "/a b"}),
                "health_check_path: \"/a b\" contains whitespace or control characters",
            ),
            (
                json!({"health_check_timeout": 0}),
                "health_check_timeout: 0 is not a number of seconds (1-3600)",
            ),
            (
                json!({"extra_gunicorn_args": "--bind=0.0.0.0:1"}),
                "extra_gunicorn_args: \"--bind\" is not an allowed gunicorn option",
            ),
            (
                json!({"extra_gunicorn_args": "-c"}),
                "extra_gunicorn_args: \"-c\" is not an allowed gunicorn option",
            ),
            (
                json!({"extra_gunicorn_args": "--preload"}),
                "extra_gunicorn_args: \"--preload\" is not an allowed gunicorn option",
            ),
            (
                json!({"extra_gunicorn_args": "--user=root"}),
                "extra_gunicorn_args: \"--user\" is not an allowed gunicorn option",
            ),
            (
                json!({"extra_gunicorn_args": "--backlog"}),
                "extra_gunicorn_args: --backlog needs a value",
            ),
            (
                json!({"extra_gunicorn_args": "--backlog --no-sendfile"}),
                "extra_gunicorn_args: --backlog needs a value",
            ),
            (
                json!({"extra_gunicorn_args": "--backlog=x"}),
                "extra_gunicorn_args: --backlog: \"x\" is not a non-negative integer",
            ),
            (
                json!({"extra_gunicorn_args": "--log-level loud"}),
                "extra_gunicorn_args: --log-level: \"loud\" is not one of info, warning, error, critical (debug would print the environment, secrets included)",
            ),
            (
                json!({"extra_gunicorn_args": "--log-level=debug"}),
                "extra_gunicorn_args: --log-level: \"debug\" is not one of info, warning, error, critical (debug would print the environment, secrets included)",
            ),
            (
                json!({"index_url": "ftp://mirror/simple"}),
                "index_url: \"ftp://mirror/simple\" is not an http(s) URL",
            ),
            (
                json!({"extra_index_url": "https://a/simple https://b c"}),
                "extra_index_url: \"c\" is not an http(s) URL",
            ),
            (
                json!({"trusted_host": "mirror.example:x"}),
                "trusted_host: \"mirror.example:x\" is not a host or host:port",
            ),
            (
                json!({"memory_max": "lots"}),
                "memory_max: \"lots\" is not a size (bytes, or a number with K, M, G, T; or a percentage 1-100%)",
            ),
            (
                json!({"tasks_max": 2}),
                "tasks_max: 2 is not a number of tasks (16-1000000)",
            ),
            (
                json!({"extra_gunicorn_args": "--no-sendfile=1"}),
                "extra_gunicorn_args: --no-sendfile takes no value",
            ),
            (
                json!({"extra_gunicorn_args": "--proxy-protocol=1"}),
                "extra_gunicorn_args: --proxy-protocol: \"1\" is not one of off, auto, v1, v2",
            ),
            (
                json!({"extra_gunicorn_args": "--proxy-protocol x"}),
                "extra_gunicorn_args: --proxy-protocol: \"x\" is not one of off, auto, v1, v2",
            ),
            (
                json!({"extra_gunicorn_args": "other:app"}),
                "extra_gunicorn_args: \"other:app\" is not an option (the application is set by wsgi_module)",
            ),
            (
                json!({"extra_gunicorn_args": "--access-logformat \"a\nb\""}),
                "extra_gunicorn_args: --access-logformat: \"a\\nb\" is not text without control characters",
            ),
            (
                json!({"extra_gunicorn_args": "'--x"}),
                "extra_gunicorn_args: unterminated quote",
            ),
            (
                json!({"database_name": "a;b"}),
                "database_name: \"a;b\" is not a database name ([A-Za-z0-9_-], at most 63 characters)",
            ),
            (
                json!({"database_roles": "a,b c"}),
                "database_roles: \"b c\" is not a name ([A-Za-z0-9_-], at most 63 characters)",
            ),
            (
                json!({"database_extensions": 5}),
                "database_extensions: 5 is not a string",
            ),
        ];
        for (j, want) in cases {
            assert_eq!(errors(j.clone()), vec![want.to_string()], "{j}");
        }
    }

    #[test]
    fn long_strings_are_refused() {
        assert_eq!(
            errors(json!({"extra_gunicorn_args": "x".repeat(65_537)})),
            vec!["extra_gunicorn_args: is longer than 65536 bytes"]
        );
    }

    #[test]
    fn all_errors_are_collected() {
        let e = Config::from_json(&json!({"port": 0, "threads": 0, "wsgi_module": "x"}), 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "port: 0 is not a TCP port (1-65535); wsgi_module: \"x\" is not module:callable (dotted Python identifiers, e.g. myproject.wsgi:application); threads: 0 is not a number of threads (1-1024)"
        );
    }

    /// config.yaml and this module agree: every option is known, and the
    /// defaults used for missing options are config.yaml's.
    #[test]
    fn defaults_match_config_yaml() {
        #[derive(serde::Deserialize)]
        struct Opt {
            default: Value,
        }
        #[derive(serde::Deserialize)]
        struct File {
            options: BTreeMap<String, Opt>,
        }
        let file: File = serde_saphyr::from_str(include_str!("../../../../config.yaml")).unwrap();
        let mut from_yaml = serde_json::Map::new();
        for (name, opt) in file.options {
            assert_eq!(default_of(&name), opt.default, "default of {name}");
            from_yaml.insert(name, opt.default);
        }
        assert_eq!(
            Config::from_json(&Value::Object(from_yaml), 2).unwrap(),
            Config::from_json(&json!({}), 2).unwrap()
        );
    }

    #[test]
    fn not_a_map() {
        assert_eq!(
            Config::from_json(&json!([1]), 1).unwrap_err().to_string(),
            "config: [1] is not a map of options"
        );
    }

    #[test]
    fn accepted_worker_classes_and_args() {
        for wc in [
            "sync",
            "gthread",
            "uvicorn.workers.UvicornWorker",
            "my.pkg.Worker",
        ] {
            assert!(
                Config::from_json(&json!({"worker_class": wc}), 1).is_ok(),
                "{wc}"
            );
        }
        let c = Config::from_json(
            &json!({"extra_gunicorn_args": "--limit-request-field_size 8190 --header-map=drop --access-logformat '%(h)s \"%(r)s\"' --statsd-host=localhost:8125"}),
            1,
        )
        .unwrap();
        assert_eq!(c.extra_gunicorn_args.len(), 6);
    }
}
