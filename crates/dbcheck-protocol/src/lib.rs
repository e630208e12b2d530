//! What `wsgi-dbcheck` answers and how the agent reads it, with the
//! password scrubbing both sides apply. No database client lives here: the
//! agent links this crate, and a client in it would weigh on every hook.
//!
//! The helper reads the URL on stdin and prints one line:
//! `connected`, `not-checked` or `failed: <why>` ([`answer_line`]).

#![deny(missing_docs)]

/// The outcome of a check that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Connected, authenticated and answered a trivial query.
    Connected,
    /// The URL asks for TLS, or its client is not in this build: the app's
    /// own connection will tell.
    NotChecked,
}

/// Why a database URL is not usable (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DbCheckError(pub String);

/// The one line `wsgi-dbcheck` prints for a result.
pub fn answer_line(result: &Result<Checked, DbCheckError>) -> String {
    match result {
        Ok(Checked::Connected) => "connected".to_owned(),
        Ok(Checked::NotChecked) => "not-checked".to_owned(),
        // One line: the message must not be able to add a second answer.
        Err(DbCheckError(msg)) => format!("failed: {}", msg.replace(['\n', '\r'], " ")),
    }
}

/// Reads `wsgi-dbcheck`'s answer back; `None` when it is not one.
pub fn parse_answer(stdout: &str) -> Option<Result<Checked, DbCheckError>> {
    let line = stdout.lines().next()?.trim_end();
    match line {
        "connected" => Some(Ok(Checked::Connected)),
        "not-checked" => Some(Ok(Checked::NotChecked)),
        _ => line
            .strip_prefix("failed: ")
            .map(|m| Err(DbCheckError(m.to_owned()))),
    }
}

/// The password in `scheme://user:password@host…`, if any.
pub fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// Removes the password (as given, and percent-decoded) from a message.
pub fn scrub(message: &str, password: Option<&str>) -> String {
    let Some(p) = password else {
        return message.to_owned();
    };
    let decoded = percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned();
    let mut out = message.replace(p, "***");
    if !decoded.is_empty() {
        out = out.replace(&decoded, "***");
    }
    out
}

/// `host:port` of the URL, for messages.
pub fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    after_user.split(['/', '?']).next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn password_and_address_are_found() {
        let url = "postgresql://u:p%40ss%2Fw@[::1]:5432/db?sslmode=disable";
        assert_eq!(password_of(url).as_deref(), Some("p%40ss%2Fw"));
        assert_eq!(address(url), "[::1]:5432");
        assert_eq!(
            scrub(
                "auth failed for p@ss/w and p%40ss%2Fw",
                password_of(url).as_deref()
            ),
            "auth failed for *** and ***"
        );
        assert_eq!(password_of("mongodb://127.0.0.1:1/?replicaSet=x"), None);
    }

    #[test]
    fn answers_round_trip_on_one_line() {
        for r in [
            Ok(Checked::Connected),
            Ok(Checked::NotChecked),
            Err(DbCheckError("PostgreSQL at h:1: refused".into())),
        ] {
            assert_eq!(parse_answer(&answer_line(&r)), Some(r));
        }
        let two = Err(DbCheckError("a\nconnected".into()));
        assert_eq!(
            parse_answer(&answer_line(&two)),
            Some(Err(DbCheckError("a connected".into())))
        );
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("panicked at ..."), None);
    }
}
