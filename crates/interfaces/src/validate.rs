//! Checks on values received from the remote side of a relation: nothing
//! with control characters, no absurd lengths, ports that are ports. Every
//! error names the key, so a status message can say what the other side sent.

use thiserror::Error;

/// Longest value accepted for any single field.
pub const MAX_LEN: usize = 4096;

/// A relation value the charm refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("relation field {key:?}: {problem}")]
pub struct FieldError {
    /// The relation key.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

fn err(key: &str, problem: impl Into<String>) -> FieldError {
    FieldError {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// A free-text field (user, password, database): non-empty, bounded, no control
/// characters (a newline or NUL would break every file it is written to).
pub fn text(key: &str, value: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(err(key, "is empty"));
    }
    if value.len() > MAX_LEN {
        return Err(err(
            key,
            format!("is {} bytes long (at most {MAX_LEN})", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(err(key, "contains a control character"));
    }
    Ok(value.to_owned())
}

/// A database name: as [`text`], and not `.` or `..`, which URL parsers
/// (WHATWG, the `url` crate) remove as dot segments even when encoded.
pub fn database(key: &str, value: &str) -> Result<String, FieldError> {
    if value == "." || value == ".." {
        return Err(err(key, format!("{value:?} cannot be carried in a URL")));
    }
    text(key, value)
}

/// A host: an IP address (v4, or v6 with or without brackets) or a DNS name.
pub fn host(key: &str, value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    let v = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Ok(v.to_owned());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if v.is_empty() || v.len() > 253 || !v.trim_end_matches('.').split('.').all(label_ok) {
        return Err(err(
            key,
            format!("{:?} is not a host name or IP address", truncate(value)),
        ));
    }
    Ok(v.to_owned())
}

/// A TCP port, 1-65535.
pub fn port(key: &str, value: &str) -> Result<u16, FieldError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(err(
            key,
            format!("{:?} is not a TCP port (1-65535)", truncate(value)),
        )),
    }
}

/// At most 64 characters of a value, for messages (never a whole 10 kB string).
pub fn truncate(value: &str) -> String {
    let mut out: String = value.chars().take(64).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host("host", "10.0.0.5").unwrap(), "10.0.0.5");
        assert_eq!(host("host", "[fd00::1]").unwrap(), "fd00::1");
        assert_eq!(host("host", "fd00::1").unwrap(), "fd00::1");
        assert_eq!(
            host("host", "db-1.example.com").unwrap(),
            "db-1.example.com"
        );
        for bad in ["", "a b", "evil\nhost", "x/y", "a..b", "-x", "h@st"] {
            assert!(host("host", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_and_text() {
        assert_eq!(port("port", "5432").unwrap(), 5432);
        for bad in ["0", "65536", "-1", "x", ""] {
            assert_eq!(port("port", bad).unwrap_err().key, "port");
        }
        assert!(text("password", "p@ss:w/rd%?#").is_ok());
        assert_eq!(
            text("user", "a\nb").unwrap_err().to_string(),
            "relation field \"user\": contains a control character"
        );
        assert!(text("user", &"x".repeat(10_000)).is_err());
        assert!(text("user", "").is_err());
    }
}
