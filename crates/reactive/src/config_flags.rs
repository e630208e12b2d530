//! The automatic `config.*` flags of layer-basic, computed from the previous
//! config snapshot, the current config and the declared defaults.

use serde_json::{Map, Value};

/// Flags for this hook: `config.changed` (any option changed),
/// `config.changed.<opt>`, `config.set.<opt>` (truthy value, as Python reads
/// it: non-empty string, non-zero number, true), `config.default.<opt>` (equals
/// its default). With no previous snapshot (the first hook) every option
/// counts as changed. Options are those declared (`defaults`) and those set.
pub fn config_flags(
    previous: Option<&Map<String, Value>>,
    current: &Map<String, Value>,
    defaults: &Map<String, Value>,
) -> Vec<String> {
    let mut names: Vec<&String> = defaults.keys().chain(current.keys()).collect();
    names.sort();
    names.dedup();
    let mut flags = Vec::new();
    let mut any_changed = false;
    for name in names {
        let value = current.get(name).unwrap_or(&Value::Null);
        let default = defaults.get(name).unwrap_or(&Value::Null);
        let changed = previous.is_none_or(|p| p.get(name).unwrap_or(&Value::Null) != value);
        if changed {
            any_changed = true;
            flags.push(format!("config.changed.{name}"));
        }
        if truthy(value) {
            flags.push(format!("config.set.{name}"));
        }
        if value == default {
            flags.push(format!("config.default.{name}"));
        }
    }
    if any_changed {
        flags.push("config.changed".to_owned());
    }
    flags.sort();
    flags
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use serde_json::json;

    fn map(v: &Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn first_hook_changes_everything() {
        let defaults = map(&json!({"port": 80, "module": "wsgi:application", "extra": ""}));
        let current = map(&json!({"port": 8080, "module": "wsgi:application", "extra": ""}));
        assert_eq!(
            config_flags(None, &current, &defaults),
            vec![
                "config.changed",
                "config.changed.extra",
                "config.changed.module",
                "config.changed.port",
                "config.default.extra",
                "config.default.module",
                "config.set.module",
                "config.set.port",
            ]
        );
    }

    #[test]
    fn later_hooks_flag_only_what_changed() {
        let defaults = map(&json!({"port": 80, "workers": 0}));
        let previous = map(&json!({"port": 80, "workers": 0}));
        let current = map(&json!({"port": 81, "workers": 0}));
        let flags = config_flags(Some(&previous), &current, &defaults);
        assert_eq!(
            flags,
            vec![
                "config.changed",
                "config.changed.port",
                "config.default.workers",
                "config.set.port"
            ]
        );
        assert_eq!(
            config_flags(Some(&previous), &previous, &defaults),
            vec![
                "config.default.port",
                "config.default.workers",
                "config.set.port"
            ]
        );
    }
}
