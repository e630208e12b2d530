//! The grammar of `extra_gunicorn_args`: the gunicorn options an operator
//! may add, and what value each takes (checked against gunicorn 27.0.1's
//! argument parser).

use super::quoted;

/// The kind of value an allowed gunicorn option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    /// No value.
    Flag,
    /// A non-negative integer.
    Int,
    /// One of gunicorn's log levels.
    LogLevel,
    /// `drop`, `refuse` or `dangerous`.
    HeaderMap,
    /// Free text without control characters.
    Text,
    /// An optional PROXY protocol mode (gunicorn 27's `--proxy-protocol [MODE]`).
    ProxyMode,
}

/// gunicorn 27's `--proxy-protocol` modes.
const PROXY_MODES: &[&str] = &["off", "auto", "v1", "v2"];

/// gunicorn options an operator may add. Each one only tunes request handling
/// or logging format. Not allowed, because they would break the unit or
/// bypass a decision made elsewhere: --bind (port), --user/--group (User=),
/// -c/--config, --daemon, --pid, --chdir, --worker-tmp-dir, --pythonpath,
/// -e/--env (secrets would land in the unit), --preload (a HUP would no longer
/// reload code), --reload (inotify on the release tree), --paste,
/// --error-logfile/--access-logfile/--log-file (ReadWritePaths is made for
/// wsgi_logfile_path only), --log-config*, --workers/--threads/--timeout/
/// --keep-alive/--max-requests*/--worker-class (options of their own), -k, -w.
const ALLOWED_ARGS: &[(&str, ArgKind)] = &[
    ("--graceful-timeout", ArgKind::Int),
    ("--backlog", ArgKind::Int),
    ("--limit-request-line", ArgKind::Int),
    ("--limit-request-fields", ArgKind::Int),
    ("--limit-request-field_size", ArgKind::Int),
    ("--worker-connections", ArgKind::Int),
    ("--forwarded-allow-ips", ArgKind::Text),
    ("--proxy-allow-from", ArgKind::Text),
    ("--access-logformat", ArgKind::Text),
    ("--statsd-host", ArgKind::Text),
    ("--statsd-prefix", ArgKind::Text),
    ("--log-level", ArgKind::LogLevel),
    ("--header-map", ArgKind::HeaderMap),
    ("--proxy-protocol", ArgKind::ProxyMode),
    ("--no-sendfile", ArgKind::Flag),
    ("--enable-stdio-inheritance", ArgKind::Flag),
];

/// Checks `extra_gunicorn_args` words against the allow-list; the problems found.
pub fn check(words: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (word.as_str(), None),
        };
        let Some(&(_, kind)) = ALLOWED_ARGS.iter().find(|(n, _)| *n == name) else {
            if word.starts_with('-') {
                problems.push(format!(
                    "{} is not an allowed gunicorn option",
                    quoted(name)
                ));
            } else {
                problems.push(format!(
                    "{} is not an option (the application is set by wsgi_module)",
                    quoted(word)
                ));
            }
            continue;
        };
        if kind == ArgKind::Flag {
            if inline.is_some() {
                problems.push(format!("{name} takes no value"));
            }
            continue;
        }
        if kind == ArgKind::ProxyMode {
            // The mode is optional; argparse takes a following word that is not an option.
            let mode = match inline {
                Some(v) => Some(v),
                None => match words.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => None,
                },
            };
            if let Some(m) = mode.filter(|m| !PROXY_MODES.contains(&m.as_str())) {
                problems.push(format!(
                    "{name}: {} is not one of off, auto, v1, v2",
                    quoted(&m)
                ));
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match words.get(i) {
                // gunicorn's argparse would read a value starting with "-" as an option.
                Some(v) if !v.starts_with('-') => {
                    i += 1;
                    v.clone()
                }
                _ => {
                    problems.push(format!("{name} needs a value"));
                    continue;
                }
            },
        };
        let ok = match kind {
            ArgKind::Int => {
                !value.is_empty() && value.len() <= 9 && value.chars().all(|c| c.is_ascii_digit())
            }
            // Not debug: at debug gunicorn logs its whole configuration at
            // every start and reload, the environment (DATABASE_URL...) with it.
            ArgKind::LogLevel => ["info", "warning", "error", "critical"].contains(&value.as_str()),
            ArgKind::HeaderMap => ["drop", "refuse", "dangerous"].contains(&value.as_str()),
            ArgKind::Text | ArgKind::Flag | ArgKind::ProxyMode => {
                !value.chars().any(char::is_control)
            }
        };
        if !ok {
            let want = match kind {
                ArgKind::Int => "a non-negative integer",
                ArgKind::LogLevel => {
                    "one of info, warning, error, critical (debug would print the environment, secrets included)"
                }
                ArgKind::HeaderMap => "one of drop, refuse, dangerous",
                ArgKind::Text | ArgKind::Flag | ArgKind::ProxyMode => {
                    "text without control characters"
                }
            };
            problems.push(format!("{name}: {} is not {want}", quoted(&value)));
        }
    }
    problems
}
