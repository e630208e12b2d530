//! Values that must never leave the agent in a status message or a
//! juju-log line: passwords from relations, the contents of Juju secrets,
//! the app's environment values. The layer registers them as it learns
//! them; [`crate::HookTools::status_set`] and [`crate::HookTools::log`]
//! scrub every message before it goes.

use std::sync::Mutex;

/// Registered values, longest first (so a password containing a shorter
/// registered value is masked whole).
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Values shorter than this are not scrubbed: masking every "1" or "on"
/// would make messages unreadable and protects nothing.
pub const MIN_LEN: usize = 4;

/// Remembers `value` (for this process: one hook) as a secret.
pub fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    if let Ok(mut s) = SECRETS.lock()
        && !s.iter().any(|v| v == value)
    {
        s.push(value.to_owned());
        s.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// `text` with every registered value replaced by `***`.
pub fn scrub(text: &str) -> String {
    let Ok(secrets) = SECRETS.lock() else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_longest_first() {
        register("s3cr3t");
        register("s3cr3t-and-more");
        register("on");
        assert_eq!(scrub("pw s3cr3t-and-more, s3cr3t, on"), "pw ***, ***, on");
    }
}
