//! The argument grammar of Juju's hook tools (gnuflag, interspersed):
//! `--flag value`, `--flag=value`, `-r 3`, bool flags optionally `=true`,
//! `--` ends the flags. Errors are Init errors: exit code 2.

use std::collections::BTreeMap;

use super::ToolError;

/// One flag: its spellings (the first is the canonical one) and whether it
/// takes a value.
pub struct Flag {
    pub names: &'static [&'static str],
    pub value: bool,
}

pub const fn valued(names: &'static [&'static str]) -> Flag {
    Flag { names, value: true }
}

pub const fn boolean(names: &'static [&'static str]) -> Flag {
    Flag {
        names,
        value: false,
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    values: BTreeMap<&'static str, String>,
    pub positional: Vec<String>,
}

impl Parsed {
    pub fn value(&self, canonical: &str) -> Option<&str> {
        self.values.get(canonical).map(String::as_str)
    }

    pub fn flag(&self, canonical: &str) -> bool {
        self.values.get(canonical).is_some_and(|v| v == "true")
    }
}

pub fn parse(args: &[String], spec: &[Flag]) -> Result<Parsed, ToolError> {
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.positional.extend(it.by_ref().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            out.positional.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let flag = spec
            .iter()
            .find(|f| f.names.contains(&name))
            .ok_or_else(|| ToolError::usage(format!("flag provided but not defined: {name}")))?;
        let canonical = flag.names[0];
        let value = if flag.value {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| ToolError::usage(format!("flag needs an argument: {name}")))?,
            }
        } else {
            match inline.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("true" | "1") => "true".to_owned(),
                Some("false" | "0") => "false".to_owned(),
                Some(other) => {
                    return Err(ToolError::usage(format!(
                        "invalid value {other:?} for flag {name}: parse error"
                    )));
                }
            }
        };
        out.values.insert(canonical, value);
    }
    Ok(out)
}

/// `k=v` pairs (relation-set, state-set): split on the first `=`.
pub fn key_values(args: &[String]) -> Result<Vec<(String, String)>, ToolError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ToolError::usage(format!("expected \"key=value\", got {arg:?}")))?;
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(ToolError::usage(format!(
                "key {k:?} specified more than once"
            )));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}
