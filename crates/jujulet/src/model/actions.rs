//! A charm's actions.yaml and the parameters of `jujulet run`, checked as
//! Juju checks them: each action's params are a JSON schema object; values
//! given as `key=value` are read as YAML scalars (`n=3` is a number), dotted
//! keys nest; unknown keys are refused when `additionalProperties: false`,
//! required ones must be given, types must match, and defaults fill in.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ModelError, io_err};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionSpec {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default = "yes", rename = "additionalProperties")]
    pub additional_properties: bool,
}

fn yes() -> bool {
    true
}

/// The charm's actions, by name (none without an actions.yaml).
pub fn read(charm_dir: &Path) -> Result<BTreeMap<String, ActionSpec>, ModelError> {
    let path = charm_dir.join("actions.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err("reading the charm's actions", &path)(e)),
    };
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_saphyr::from_str(&text).map_err(|e| ModelError::Parse {
        path,
        detail: e.to_string(),
    })
}

/// A `key=value` value, as Juju reads it: a YAML scalar.
fn scalar(text: &str) -> Value {
    match text {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "null" | "~" | "" => return Value::Null,
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')));
    Value::String(unquoted.unwrap_or(text).to_owned())
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

/// The parameters of `run UNIT ACTION key=value...`, validated against the
/// action's schema, defaults filled in.
pub fn params(
    actions: &BTreeMap<String, ActionSpec>,
    name: &str,
    args: &[String],
) -> Result<Map<String, Value>, ModelError> {
    let spec = actions.get(name).ok_or_else(|| {
        let known: Vec<&str> = actions.keys().map(String::as_str).collect();
        ModelError::Invalid(format!(
            "action {name:?} not defined for this charm; its actions: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let mut given = Map::new();
    for arg in args {
        let (key, value) = arg.split_once('=').ok_or_else(|| {
            ModelError::Invalid(format!("argument {arg:?} must be of the form key...=value"))
        })?;
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(ModelError::Invalid(format!("argument {arg:?}: empty key")));
        }
        let mut at = &mut given;
        for part in &parts[..parts.len() - 1] {
            let entry = at
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            at = entry.as_object_mut().ok_or_else(|| {
                ModelError::Invalid(format!("argument {arg:?}: {part} is not an object"))
            })?;
        }
        at.insert(parts[parts.len() - 1].to_owned(), scalar(value));
    }
    let mut problems = Vec::new();
    for (k, v) in &given {
        match spec.params.get(k) {
            None if !spec.additional_properties => {
                problems.push(format!("additional property {k:?} is not allowed"));
            }
            None => {}
            Some(schema) => {
                // `type` is a name or a list of names (JSON schema).
                let types: Vec<&str> = match schema.get("type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if !types.is_empty() && !types.iter().any(|t| type_ok(t, v)) {
                    problems.push(format!(
                        "{k}: invalid type, expected {}",
                        types.join(" or ")
                    ));
                }
                if let Some(Value::Array(allowed)) = schema.get("enum")
                    && !allowed.contains(v)
                {
                    problems.push(format!("{k}: must be one of {allowed:?}"));
                }
            }
        }
    }
    for r in &spec.required {
        if !given.contains_key(r) {
            problems.push(format!("{r} is required"));
        }
    }
    if !problems.is_empty() {
        return Err(ModelError::Invalid(format!(
            "validation failed for action {name:?}: {}",
            problems.join("; ")
        )));
    }
    for (k, schema) in &spec.params {
        if !given.contains_key(k)
            && let Some(d) = schema.get("default")
        {
            given.insert(k.clone(), d.clone());
        }
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> BTreeMap<String, ActionSpec> {
        serde_saphyr::from_str(
            "rollback:\n  params:\n    to:\n      type: string\n      default: previous\n  additionalProperties: false\nany:\n  params:\n    to:\n      type: [string, integer]\ncount:\n  params:\n    n:\n      type: integer\n  required: [n]\n",
        )
        .unwrap()
    }

    #[test]
    fn params_are_typed_defaulted_and_checked() {
        let s = spec();
        assert_eq!(params(&s, "rollback", &[]).unwrap()["to"], "previous");
        // As in Juju, `to=3` is a number: refused where a string is declared.
        let e = params(&s, "rollback", &["to=3".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("to: invalid type, expected string"), "{e}");
        assert_eq!(params(&s, "any", &["to=3".into()]).unwrap()["to"], 3);
        assert_eq!(
            params(&s, "any", &["to=previous".into()]).unwrap()["to"],
            "previous"
        );
        let e = params(&s, "count", &[]).unwrap_err().to_string();
        assert!(e.contains("n is required"), "{e}");
        let e = params(&s, "count", &["n=x".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected integer"), "{e}");
        let e = params(&s, "rollback", &["other=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("additional property \"other\""), "{e}");
        let e = params(&s, "nope", &[]).unwrap_err().to_string();
        assert!(e.contains("not defined"), "{e}");
        assert_eq!(params(&s, "count", &["n=4".into()]).unwrap()["n"], 4);
    }
}
