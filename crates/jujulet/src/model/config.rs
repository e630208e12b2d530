//! Charm config: the option schema from config.yaml, `juju config k=v`
//! parsing typed by it (with Juju's error texts), and the effective values
//! a hook sees (defaults overlaid by what was set).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{ModelError, io_err};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Schema {
    #[serde(default)]
    pub options: BTreeMap<String, OptionDecl>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OptionDecl {
    #[serde(rename = "type", default = "string_type")]
    pub kind: String,
    #[serde(default)]
    pub default: Option<Value>,
}

fn string_type() -> String {
    "string".into()
}

impl Schema {
    /// config.yaml of `charm_dir`; a charm without one has no options.
    pub fn read(charm_dir: &Path) -> Result<Self, ModelError> {
        let path = charm_dir.join("config.yaml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_err("reading the charm's config", &path)(e)),
        };
        let schema: Self = serde_saphyr::from_str(&text).map_err(|e| ModelError::Parse {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        for (name, decl) in &schema.options {
            if !matches!(
                decl.kind.as_str(),
                "string" | "int" | "float" | "boolean" | "secret"
            ) {
                return Err(ModelError::Parse {
                    path,
                    detail: format!("option {name:?} has unknown type {:?}", decl.kind),
                });
            }
        }
        Ok(schema)
    }

    /// Parse one `k=v` as `juju config` does.
    pub fn parse_assignment(&self, arg: &str) -> Result<(String, Value), ModelError> {
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| ModelError::Invalid(format!("expected \"key=value\", got {arg:?}")))?;
        let decl = self
            .options
            .get(key)
            .ok_or_else(|| ModelError::Invalid(format!("unknown option {key:?}")))?;
        let bad = || {
            ModelError::Invalid(format!(
                "option {key:?} expected {}, got {raw:?}",
                decl.kind
            ))
        };
        let value = match decl.kind.as_str() {
            "int" => Value::from(raw.trim().parse::<i64>().map_err(|_| bad())?),
            "float" => serde_json::Number::from_f64(raw.trim().parse::<f64>().map_err(|_| bad())?)
                .map(Value::Number)
                .ok_or_else(bad)?,
            "boolean" => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Value::Bool(true),
                "false" | "no" | "off" => Value::Bool(false),
                _ => return Err(bad()),
            },
            _ => Value::String(raw.to_owned()),
        };
        Ok((key.to_owned(), value))
    }

    /// Check `key` names an option (for `--reset`).
    pub fn check_key(&self, key: &str) -> Result<(), ModelError> {
        if self.options.contains_key(key) {
            Ok(())
        } else {
            Err(ModelError::Invalid(format!("unknown option {key:?}")))
        }
    }

    /// Every declared option: the set value, else the default, else null.
    pub fn effective(&self, set: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        self.options
            .iter()
            .map(|(k, d)| {
                let v = set
                    .get(k)
                    .cloned()
                    .or_else(|| d.default.clone())
                    .unwrap_or(Value::Null);
                (k.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    fn schema() -> Schema {
        serde_saphyr::from_str(
            "options:\n  port: {type: int, default: 80}\n  debug: {type: boolean, default: false}\n  ratio: {type: float}\n  name: {type: string, default: x}\n",
        )
        .unwrap()
    }

    #[test]
    fn typed_assignments_and_errors() {
        let s = schema();
        assert_eq!(
            s.parse_assignment("port=8080").unwrap().1,
            Value::from(8080)
        );
        assert_eq!(
            s.parse_assignment("debug=true").unwrap().1,
            Value::Bool(true)
        );
        assert_eq!(
            s.parse_assignment("name=a=b").unwrap().1,
            Value::from("a=b")
        );
        assert_eq!(
            s.parse_assignment("port=x").unwrap_err().to_string(),
            "option \"port\" expected int, got \"x\""
        );
        assert_eq!(
            s.parse_assignment("k=1").unwrap_err().to_string(),
            "unknown option \"k\""
        );
        let eff = s.effective(&BTreeMap::new());
        assert_eq!(eff["port"], Value::from(80));
        assert_eq!(eff["ratio"], Value::Null);
    }
}
