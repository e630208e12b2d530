//! Parsing the `environment_variables` option: `VAR1=val1 VAR2="a b" URL=https://x/?a=b`.
//!
//! Rules (each a fix of layer:wsgi B8):
//! - shell words (the `shell-words` crate: single and double quotes, backslash
//!   escapes, `#` starts a comment), then each word is split at its FIRST `=`,
//!   so values may contain `=` and, quoted, spaces;
//! - keys are `[A-Za-z_][A-Za-z0-9_]*`;
//! - reserved keys are refused (see [`RESERVED`]);
//! - duplicates: the last one wins, as in a shell assignment list and as
//!   layer:wsgi did, so appending `X=new` to the option overrides an earlier `X`;
//! - values that cannot be carried by the environment file (newline, carriage
//!   return, NUL) are refused with the variable's name.
//!
//! Errors never quote a value: values are often secrets and the errors end up
//! in a status message.

use std::collections::BTreeMap;

/// Keys an operator may not set, and why.
///
/// `PATH` is reserved: the agent fixes it (the venv's `bin` first) for
/// gunicorn and provision_command, and a replaced PATH would silently change
/// which `python` the provision command runs. The systemd and gunicorn
/// hand-over variables would break readiness or the USR2 upgrade, and
/// `GUNICORN_CMD_ARGS` would bypass the extra_gunicorn_args allow-list.
pub const RESERVED: &[(&str, &str)] = &[
    (
        "DATABASE_URL",
        "set from the postgres, database or mongo relation",
    ),
    ("MONGO_URL", "set from the mongo relation"),
    ("PATH", "set by the charm, the virtualenv's bin first"),
    (
        "GUNICORN_CMD_ARGS",
        "would bypass the extra_gunicorn_args allow-list",
    ),
    ("NOTIFY_SOCKET", "set by systemd for readiness notification"),
    ("LISTEN_FDS", "used by systemd socket passing"),
    ("LISTEN_PID", "used by systemd socket passing"),
    ("LISTEN_FDNAMES", "used by systemd socket passing"),
    ("GUNICORN_FD", "used by gunicorn's USR2 upgrade"),
    ("GUNICORN_PID", "used by gunicorn's USR2 upgrade"),
    ("GCONV_PATH", "makes the C library load code"),
    ("LOCPATH", "makes the C library load code"),
    ("NLSPATH", "makes the C library load files"),
    ("HOSTALIASES", "redirects host name lookups"),
    ("GLIBC_TUNABLES", "tunes the C library (an attack surface)"),
    (
        "STATE_DIRECTORY",
        "set by systemd: the app's data directory",
    ),
    (
        "CACHE_DIRECTORY",
        "set by systemd: the app's cache directory",
    ),
    (
        "WSGI_DATA_DIR",
        "set by the charm: the app's data directory",
    ),
    (
        "WSGI_CACHE_DIR",
        "set by the charm: the app's cache directory",
    ),
    ("WSGI_RELEASE", "set by the charm: the serving release"),
    (
        "WSGI_APP_DIR",
        "set by the charm: the serving release's code",
    ),
];

/// Prefixes of names an operator may not set: the dynamic loader's and the
/// allocator's variables make any program load code or behave otherwise.
pub const RESERVED_PREFIXES: &[(&str, &str)] = &[
    (
        "LD_",
        "the dynamic loader's variables make programs load code",
    ),
    ("MALLOC_", "tunes the C library's allocator"),
];

/// True for an environment variable name the layer accepts: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The problem with a value that would reach a line of the environment file,
/// if any (newline, carriage return and NUL cannot be carried).
pub fn value_problem(value: &str) -> Option<&'static str> {
    if value.contains('\n') {
        Some("value contains a newline")
    } else if value.contains('\r') {
        Some("value contains a carriage return")
    } else if value.contains('\0') {
        Some("value contains a NUL character")
    } else {
        None
    }
}

/// Parse the option. On error, every problem found is returned (without the
/// option name; [`crate::wsgi::config`] prefixes it).
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, Vec<String>> {
    let words = shell_words::split(text).map_err(|_| vec!["unterminated quote".to_owned()])?;
    let mut vars = BTreeMap::new();
    let mut problems = Vec::new();
    for (n, word) in words.iter().enumerate() {
        let Some((key, value)) = word.split_once('=') else {
            // The word may be a value split off by a missing quote: say where, not what.
            problems.push(format!(
                "word {} is not KEY=value (quote values that contain spaces)",
                n + 1
            ));
            continue;
        };
        if !is_valid_key(key) {
            let shown: String = key.chars().take(40).collect();
            problems.push(format!(
                "{shown:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
            ));
            continue;
        }
        let reserved = RESERVED
            .iter()
            .find(|(k, _)| *k == key)
            .or_else(|| RESERVED_PREFIXES.iter().find(|(p, _)| key.starts_with(p)));
        if let Some((_, why)) = reserved {
            problems.push(format!("{key} is reserved ({why})"));
            continue;
        }
        if let Some(p) = value_problem(value) {
            problems.push(format!("{key}: {p}"));
            continue;
        }
        vars.insert(key.to_owned(), value.to_owned());
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap().into_iter().collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_shell_words() {
        assert_eq!(ok(""), kv(&[]));
        assert_eq!(ok("  "), kv(&[]));
        assert_eq!(
            ok(r#"VAR1=val1 VAR2="a value with spaces" URL=https://x/?a=b&c=d EMPTY="#),
            kv(&[
                ("EMPTY", ""),
                ("URL", "https://x/?a=b&c=d"),
                ("VAR1", "val1"),
                ("VAR2", "a value with spaces"),
            ])
        );
        assert_eq!(
            ok("B64=YWJj== Q='it''s'"),
            kv(&[("B64", "YWJj=="), ("Q", "its")])
        );
        assert_eq!(
            ok(r#"S='$HOME "x"' T="a\"b\\c""#),
            kv(&[("S", "$HOME \"x\""), ("T", "a\"b\\c")])
        );
        assert_eq!(ok("X=1 X=2"), kv(&[("X", "2")]), "last wins");
        assert_eq!(ok("_a=1 # C=3"), kv(&[("_a", "1")]), "# starts a comment");
    }

    #[test]
    fn errors_name_the_variable_and_collect() {
        assert_eq!(parse(r#"A="open"#).unwrap_err(), vec!["unterminated quote"]);
        assert_eq!(
            parse("A=1 oops 1X=2 DATABASE_URL=x PATH=/bin B=\"a\nb\" C=\"\r\"").unwrap_err(),
            vec![
                "word 2 is not KEY=value (quote values that contain spaces)",
                "\"1X\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                "DATABASE_URL is reserved (set from the postgres, database or mongo relation)",
                "PATH is reserved (set by the charm, the virtualenv's bin first)",
                "B: value contains a newline",
                "C: value contains a carriage return",
            ]
        );
        assert_eq!(
            parse("MONGO_URL=x GUNICORN_CMD_ARGS=--bind=x").unwrap_err(),
            vec![
                "MONGO_URL is reserved (set from the mongo relation)",
                "GUNICORN_CMD_ARGS is reserved (would bypass the extra_gunicorn_args allow-list)",
            ]
        );
        assert_eq!(
            parse("LD_PRELOAD=/srv/a/current/evil.so LD_LIBRARY_PATH=/x MALLOC_ARENA_MAX=2 GCONV_PATH=/x").unwrap_err(),
            vec![
                "LD_PRELOAD is reserved (the dynamic loader's variables make programs load code)",
                "LD_LIBRARY_PATH is reserved (the dynamic loader's variables make programs load code)",
                "MALLOC_ARENA_MAX is reserved (tunes the C library's allocator)",
                "GCONV_PATH is reserved (makes the C library load code)",
            ]
        );
        assert_eq!(
            parse("=x").unwrap_err(),
            vec!["\"\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"]
        );
    }
}
