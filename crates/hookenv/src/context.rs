//! The hook context, parsed once from the environment (juju-hook-contract.md §2).

use std::path::PathBuf;

use thiserror::Error;

/// Hook or action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookKind {
    /// `hooks/<name>`.
    Hook(String),
    /// `actions/<name>`.
    Action(String),
}

/// Who and where this hook runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// `app/N`.
    pub unit: String,
    /// The application.
    pub app: String,
    /// N.
    pub unit_number: u32,
    /// The hook (or action).
    pub kind: HookKind,
    /// The relation's endpoint, in relation hooks.
    pub relation: Option<String>,
    /// `endpoint:N`, in relation hooks.
    pub relation_id: Option<String>,
    /// The remote unit (absent for created, broken and app-data changes).
    pub remote_unit: Option<String>,
    /// The remote application, in relation hooks.
    pub remote_app: Option<String>,
    /// The unit leaving, in departed hooks.
    pub departing_unit: Option<String>,
    /// The charm directory.
    pub charm_dir: PathBuf,
    /// The model.
    pub model: String,
    /// Juju's version.
    pub juju_version: String,
    /// The model's proxy settings (`JUJU_CHARM_HTTP_PROXY`, `_HTTPS_`,
    /// `_NO_`), empty when unset: what the charm's downloads must use.
    pub proxy: Proxy,
}

/// The model's proxy settings, as Juju exports them to hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    /// `juju-http-proxy`.
    pub http: String,
    /// `juju-https-proxy`.
    pub https: String,
    /// `juju-no-proxy`.
    pub no_proxy: String,
}

impl Proxy {
    /// The variables a downloader reads (pip, uv, curl): upper- and
    /// lower-case forms, the set ones only.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in [
            ("HTTP_PROXY", &self.http),
            ("HTTPS_PROXY", &self.https),
            ("NO_PROXY", &self.no_proxy),
        ] {
            if !value.is_empty() {
                out.push((name.to_owned(), value.clone()));
                out.push((name.to_ascii_lowercase(), value.clone()));
            }
        }
        out
    }
}

/// A hook environment that cannot be right.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("hook environment: {var}: {problem}")]
pub struct ContextError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ContextError {
    ContextError {
        var,
        problem: problem.into(),
    }
}

impl HookContext {
    /// The hook's name (`""` for an action).
    pub fn hook_name(&self) -> &str {
        match &self.kind {
            HookKind::Hook(h) => h,
            HookKind::Action(_) => "",
        }
    }

    /// From the process environment and argv[0].
    pub fn from_env() -> Result<Self, ContextError> {
        let argv0 = std::env::args_os()
            .next()
            .map(|a| a.to_string_lossy().into_owned());
        Self::from_vars(|k| std::env::var(k).ok(), argv0.as_deref().unwrap_or(""))
    }

    /// From any variable lookup (tests pass a map); `argv0` is the fallback
    /// for the hook name when JUJU_DISPATCH_PATH is absent (older agents).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        argv0: &str,
    ) -> Result<Self, ContextError> {
        // Juju exports some variables empty rather than absent: same meaning.
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let unit = get("JUJU_UNIT_NAME").ok_or_else(|| err("JUJU_UNIT_NAME", "not set"))?;
        let (app, number) = unit
            .split_once('/')
            .and_then(|(a, n)| Some((a, n.parse::<u32>().ok()?)))
            .filter(|(a, _)| !a.is_empty())
            .ok_or_else(|| err("JUJU_UNIT_NAME", format!("{unit:?} is not app/N")))?;
        let kind = match get("JUJU_DISPATCH_PATH") {
            Some(path) => parse_dispatch_path(&path)?,
            None => {
                let name = argv0.rsplit('/').next().unwrap_or("");
                if name.is_empty() || name == "dispatch" || name == "wsgi-agent" {
                    return Err(err(
                        "JUJU_DISPATCH_PATH",
                        "not set, and argv[0] names no hook",
                    ));
                }
                HookKind::Hook(name.to_owned())
            }
        };
        let relation_id = get("JUJU_RELATION_ID");
        if let Some(rid) = &relation_id {
            let ok = rid
                .rsplit_once(':')
                .is_some_and(|(_, n)| n.parse::<u64>().is_ok());
            if !ok {
                return Err(err(
                    "JUJU_RELATION_ID",
                    format!("{rid:?} is not endpoint:N"),
                ));
            }
        }
        let charm_dir = get("JUJU_CHARM_DIR")
            .or_else(|| get("CHARM_DIR"))
            .map(PathBuf::from)
            .ok_or_else(|| err("JUJU_CHARM_DIR", "not set"))?;
        Ok(HookContext {
            app: app.to_owned(),
            unit_number: number,
            unit: unit.clone(),
            kind,
            relation: get("JUJU_RELATION"),
            relation_id,
            remote_unit: get("JUJU_REMOTE_UNIT"),
            remote_app: get("JUJU_REMOTE_APP"),
            departing_unit: get("JUJU_DEPARTING_UNIT"),
            charm_dir,
            model: get("JUJU_MODEL_NAME").unwrap_or_default(),
            juju_version: get("JUJU_VERSION").unwrap_or_default(),
            proxy: Proxy {
                http: get("JUJU_CHARM_HTTP_PROXY").unwrap_or_default(),
                https: get("JUJU_CHARM_HTTPS_PROXY").unwrap_or_default(),
                no_proxy: get("JUJU_CHARM_NO_PROXY").unwrap_or_default(),
            },
        })
    }
}

/// `hooks/install`, `/var/lib/juju/.../charm/hooks/install` (a legacy hook
/// link exec'ing dispatch passes its own path), `actions/backup`.
fn parse_dispatch_path(path: &str) -> Result<HookKind, ContextError> {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or("");
    let dir = parts.next().unwrap_or("");
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match dir {
        "hooks" if valid => Ok(HookKind::Hook(name.to_owned())),
        "actions" if valid => Ok(HookKind::Action(name.to_owned())),
        _ => Err(err(
            "JUJU_DISPATCH_PATH",
            format!("{path:?} is not hooks/<name> or actions/<name>"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use std::collections::HashMap;

    fn ctx(pairs: &[(&str, &str)], argv0: &str) -> Result<HookContext, ContextError> {
        let mut env: HashMap<String, String> = HashMap::from([
            ("JUJU_UNIT_NAME".into(), "wsgi/0".into()),
            (
                "JUJU_CHARM_DIR".into(),
                "/var/lib/juju/agents/unit-wsgi-0/charm".into(),
            ),
        ]);
        for (k, v) in pairs {
            env.insert((*k).into(), (*v).into());
        }
        HookContext::from_vars(|k| env.get(k).cloned(), argv0)
    }

    #[test]
    fn every_hook_kind() {
        let c = ctx(&[("JUJU_DISPATCH_PATH", "hooks/install")], "./dispatch").unwrap();
        assert_eq!(
            (c.hook_name(), c.app.as_str(), c.unit_number),
            ("install", "wsgi", 0)
        );
        assert_eq!(c.relation_id, None);

        let created = ctx(
            &[
                ("JUJU_DISPATCH_PATH", "hooks/db-relation-created"),
                ("JUJU_RELATION", "db"),
                ("JUJU_RELATION_ID", "db:7"),
                ("JUJU_REMOTE_UNIT", ""),
                ("JUJU_REMOTE_APP", "postgresql"),
            ],
            "dispatch",
        )
        .unwrap();
        assert_eq!(created.remote_unit, None, "exported empty means none");
        assert_eq!(created.relation_id.as_deref(), Some("db:7"));

        let departed = ctx(
            &[
                ("JUJU_DISPATCH_PATH", "hooks/db-relation-departed"),
                ("JUJU_RELATION_ID", "db:7"),
                ("JUJU_REMOTE_UNIT", "postgresql/1"),
                ("JUJU_DEPARTING_UNIT", "postgresql/1"),
            ],
            "dispatch",
        )
        .unwrap();
        assert_eq!(departed.departing_unit.as_deref(), Some("postgresql/1"));

        let action = ctx(&[("JUJU_DISPATCH_PATH", "actions/backup")], "dispatch").unwrap();
        assert_eq!(action.kind, HookKind::Action("backup".into()));
        assert_eq!(action.hook_name(), "");

        let legacy = ctx(
            &[],
            "/var/lib/juju/agents/unit-wsgi-0/charm/hooks/config-changed",
        )
        .unwrap();
        assert_eq!(legacy.hook_name(), "config-changed");
        let via_link = ctx(
            &[("JUJU_DISPATCH_PATH", "/x/charm/hooks/start")],
            "dispatch",
        )
        .unwrap();
        assert_eq!(via_link.hook_name(), "start");
    }

    #[test]
    fn bad_environments_name_the_variable() {
        assert_eq!(ctx(&[], "dispatch").unwrap_err().var, "JUJU_DISPATCH_PATH");
        assert_eq!(
            ctx(
                &[
                    ("JUJU_UNIT_NAME", "wsgi"),
                    ("JUJU_DISPATCH_PATH", "hooks/x")
                ],
                "d"
            )
            .unwrap_err()
            .var,
            "JUJU_UNIT_NAME"
        );
        assert_eq!(
            ctx(
                &[
                    ("JUJU_DISPATCH_PATH", "hooks/x"),
                    ("JUJU_RELATION_ID", "db")
                ],
                "d"
            )
            .unwrap_err()
            .var,
            "JUJU_RELATION_ID"
        );
        assert!(ctx(&[("JUJU_DISPATCH_PATH", "hooks/a;b")], "d").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::fuzz_cases(256)))]
        #[test]
        fn never_panics(path in ".{0,40}", unit in ".{0,20}", rid in ".{0,20}") {
            let _ = ctx(&[("JUJU_DISPATCH_PATH", &path), ("JUJU_UNIT_NAME", &unit), ("JUJU_RELATION_ID", &rid)], &path);
        }
    }
}
