//! Hostile configuration (issue 8): whatever an operator or a script puts in
//! `juju config`, the agent refuses it by name or accepts a value that is
//! safe to use; it never panics. WSGI_FUZZ_CASES raises the case count (the
//! soak, scripts/soak, runs a million cases across the fuzz targets).

use std::path::{Component, Path};

use proptest::prelude::*;
use serde_json::{Value, json};
use wsgi_layer::config::Config;

use crate::cases;

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        "[ -~\n\r\t]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const OPTIONS: &[&str] = &[
    "port",
    "wsgi_module",
    "provision_command",
    "pip_cache_dir",
    "wsgi_logfile_path",
    "apt_dependencies",
    "environment_variables",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "keepalive",
    "max_requests",
    "health_check_path",
    "health_check_timeout",
    "extra_gunicorn_args",
    "provision_timeout",
    "database_name",
    "database_roles",
    "database_extensions",
];

/// A path made to escape: `..`, absolute parts, `.`, empty components,
/// backslashes, NUL, newlines, unicode look-alikes.
fn sneaky_path() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("/".to_owned()),
        Just("\\..".to_owned()),
        Just("\u{2024}\u{2024}".to_owned()),
        Just("%2e%2e".to_owned()),
        "[a-z]{1,6}",
        "[ -~\n\0]{0,6}",
    ];
    proptest::collection::vec(part, 1..6).prop_map(|v| v.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    /// Every option with any JSON value: a Config or errors that name the
    /// option, never a panic.
    #[test]
    fn any_config_is_refused_by_name_or_accepted(values in proptest::collection::vec(proptest::option::of(any_json()), OPTIONS.len())) {
        let mut map = serde_json::Map::new();
        for (name, v) in OPTIONS.iter().zip(values) {
            if let Some(v) = v {
                map.insert((*name).to_owned(), v);
            }
        }
        match Config::from_json(&Value::Object(map), 2) {
            Ok(c) => {
                prop_assert!(c.port > 0);
                for (k, v) in &c.environment_variables {
                    prop_assert!(wsgi_layer::config::envvars::is_valid_key(k), "{k:?}");
                    prop_assert!(!v.contains(['\n', '\r', '\0']), "{v:?}");
                }
                for p in &c.apt_dependencies {
                    prop_assert!(!p.is_empty() && !p.starts_with('-'), "{p:?}");
                    prop_assert!(p.chars().all(|ch| ch.is_ascii_alphanumeric() || "+-.:".contains(ch)), "{p:?}");
                }
                prop_assert!(!c.wsgi_module.contains(['\n', '\0', ' ']), "{:?}", c.wsgi_module);
                for a in &c.extra_gunicorn_args {
                    prop_assert!(!a.contains(['\n', '\0']), "{a:?}");
                }
            }
            Err(errors) => {
                let text = errors.to_string();
                prop_assert!(!text.is_empty());
                prop_assert!(OPTIONS.iter().any(|o| text.contains(o)), "{text}");
            }
        }
    }

    /// pip_cache_dir never leads out of the application directory.
    #[test]
    fn pip_cache_dir_stays_inside_the_app(p in sneaky_path()) {
        let app = Path::new("/srv/app/current");
        if let Ok(c) = Config::from_json(&json!({"pip_cache_dir": p}), 2)
            && let Some(dir) = c.pip_cache_path(app)
        {
            prop_assert!(dir.starts_with(app), "{dir:?}");
            let rel = dir.strip_prefix(app).unwrap();
            prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{dir:?}");
            prop_assert!(!rel.as_os_str().is_empty(), "{dir:?}");
        }
    }

    /// environment_variables: any text parses to valid keys and storable
    /// values, or is refused; never a panic.
    #[test]
    fn environment_variables_text_never_panics(text in prop_oneof![any::<String>(), "([A-Za-z_]{1,4}=('[^']{0,6}'|\"[^\"]{0,6}\"|[^ ]{0,6}) ?){0,5}"]) {
        if let Ok(map) = wsgi_layer::config::envvars::parse(&text) {
            for (k, v) in &map {
                prop_assert!(wsgi_layer::config::envvars::is_valid_key(k), "{k:?}");
                prop_assert!(wsgi_layer::config::envvars::value_problem(v).is_none(), "{v:?}");
            }
        }
    }
}
