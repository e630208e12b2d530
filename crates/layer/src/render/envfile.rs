//! The environment file `/etc/wsgi/<app>/environment` (0640 root:<user>).
//!
//! One `KEY="value"` line per variable, sorted by key, after a comment line.
//! Inside the double quotes, `\`, `"`, `` ` `` and `$` are written with a
//! backslash before them; every other character is written as is. Newline,
//! carriage return and NUL are refused (an error names the variable).
//!
//! Both readers agree on this text:
//! - systemd's `EnvironmentFile=` (env-file.c): in a double-quoted value a
//!   backslash before one of `` "\`$ `` yields that character, and nothing
//!   else in our output is special (a quoted newline would be, so there is none);
//! - the `_read_env` in gunicorn.conf.py ([`super::gunicorn_conf`]), which
//!   implements exactly that rule for the lines this module writes.
//!
//! Tests prove both round-trips (agent/tests/wsgi_render.rs).

use std::collections::BTreeMap;

use crate::config::envvars::{is_valid_key, value_problem};

/// Why the map could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment file: {0}")]
pub struct EnvFileError(pub String);

/// Characters written with a backslash before them inside the quotes.
const ESCAPED: &[char] = &['\\', '"', '`', '$'];

/// The header line of the file.
pub const HEADER: &str = "# Written by the wsgi charm (wsgi-agent); changes are overwritten.\n";

/// Merge the operator's variables with the relations' (`DATABASE_URL`,
/// `MONGO_URL`, …). Relation keys win; config cannot hold them anyway
/// ([`super::envvars::RESERVED`]).
pub fn merge(
    config_vars: &BTreeMap<String, String>,
    relation_vars: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = config_vars.clone();
    all.extend(relation_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// Render the file. Errors name the variable, never its value.
pub fn render_env_file(vars: &BTreeMap<String, String>) -> Result<String, EnvFileError> {
    let mut out = String::from(HEADER);
    for (key, value) in vars {
        if !is_valid_key(key) {
            let shown: String = key.chars().take(40).collect();
            return Err(EnvFileError(format!("{shown:?} is not a variable name")));
        }
        if let Some(p) = value_problem(value) {
            return Err(EnvFileError(format!("{key}: {p}")));
        }
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            if ESCAPED.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("\"\n");
    }
    Ok(out)
}

/// Read a file written by [`render_env_file`] back (strict: any other line
/// is an error naming its number). For tests and for tools that need the
/// app's environment from the file.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, EnvFileError> {
    let mut vars = BTreeMap::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || EnvFileError(format!("line {} is not KEY=\"value\"", n + 1));
        let (key, rest) = line.split_once('=').ok_or_else(bad)?;
        let body = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .ok_or_else(bad)?;
        if !is_valid_key(key) {
            return Err(bad());
        }
        let mut value = String::with_capacity(body.len());
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e) if ESCAPED.contains(&e) => value.push(e),
                    _ => return Err(bad()),
                },
                '"' | '`' | '$' => return Err(bad()),
                c => value.push(c),
            }
        }
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_env_file() {
        insta::assert_snapshot!(
            "envfile_default",
            render_env_file(&BTreeMap::new()).unwrap()
        );
    }

    #[test]
    fn busy_env_file() {
        let vars = merge(
            &map(&[
                ("GREETING", "hello world"),
                ("QUOTED", r#"say "hi" \ `cmd` $HOME %n"#),
                ("URL", "https://x/?a=b&c=d"),
                ("EMPTY", ""),
                ("TAB", "a\tb"),
                ("UNICODE", "é – 日本"),
            ]),
            &map(&[
                (
                    "DATABASE_URL",
                    "postgresql://juju_hello:p%40ss@10.0.0.5:5432/hello",
                ),
                ("MONGO_URL", "mongodb://10.0.0.7:27017/hello"),
            ]),
        );
        let text = render_env_file(&vars).unwrap();
        assert_eq!(parse_env_file(&text).unwrap(), vars);
        insta::assert_snapshot!("envfile_busy", text);
    }

    #[test]
    fn refuses_what_a_line_cannot_carry() {
        for (v, want) in [
            ("a\nb", "environment file: K: value contains a newline"),
            (
                "a\rb",
                "environment file: K: value contains a carriage return",
            ),
            (
                "a\0b",
                "environment file: K: value contains a NUL character",
            ),
        ] {
            assert_eq!(
                render_env_file(&map(&[("K", v)])).unwrap_err().to_string(),
                want
            );
        }
        assert_eq!(
            render_env_file(&map(&[("1K", "v")]))
                .unwrap_err()
                .to_string(),
            "environment file: \"1K\" is not a variable name"
        );
    }

    #[test]
    fn strict_parser_rejects_foreign_lines() {
        assert!(parse_env_file("K=v\n").is_err());
        assert!(parse_env_file("K=\"a\\nb\"\n").is_err());
        assert_eq!(
            parse_env_file("# c\n\nK=\"a\\$b\"\n").unwrap(),
            map(&[("K", "a$b")])
        );
    }
}
