//! The database check, run as its own process: `wsgi-dbcheck` beside this
//! binary (the charm's `bin/`), given the URL on stdin, never in its
//! arguments. Its clients (tokio-postgres, the mongodb driver, rustls) stay
//! out of the hook binary, which every hook starts; this one runs only when
//! a database URL is new.

use std::path::PathBuf;
use std::time::Duration;

pub use dbcheck::{Checked, DbCheckError};

use super::process::{Cmd, HostError, describe, tail};

/// The helper's file name, in the directory of the running agent.
pub const HELPER: &str = "wsgi-dbcheck";

/// Checks `url` with the helper beside the running binary; without one
/// (a development build), the URL is not checked.
pub fn check(url: &str, timeout: Duration) -> Result<Checked, DbCheckError> {
    match helper() {
        Some(helper) => check_with(&helper, url, timeout),
        None => Ok(Checked::NotChecked),
    }
}

fn helper() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join(HELPER);
    path.is_file().then_some(path)
}

/// Runs `helper` on `url`. Every message is scrubbed of the password again:
/// whatever the helper printed, or failed with, reaches a status line.
pub fn check_with(
    helper: &std::path::Path,
    url: &str,
    timeout: Duration,
) -> Result<Checked, DbCheckError> {
    let secret = dbcheck::password_of(url);
    let scrubbed = |m: &str| DbCheckError(dbcheck::scrub(m, secret.as_deref()));
    let secs = timeout.as_secs().clamp(1, 300);
    let cmd = Cmd::new(helper)
        .arg("--timeout")
        .arg(secs.to_string())
        .stdin(format!("{url}\n"))
        // The helper bounds its own work; this bounds a helper that hangs.
        .timeout(Duration::from_secs(secs + 5));
    match cmd.run_status() {
        Ok((code, out)) => match (code, dbcheck::parse_answer(&out.stdout)) {
            (Some(0), Some(Ok(c))) => Ok(c),
            (Some(1), Some(Err(e))) => Err(scrubbed(&e.0)),
            _ => {
                let failed = HostError::Failed {
                    cmd: cmd.display(),
                    status: describe(code, &out),
                    tail: tail(&out),
                };
                Err(scrubbed(&format!("the database check failed: {failed}")))
            }
        },
        Err(e) => Err(scrubbed(&format!("the database check failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in helper: a script that answers as told and records its
    /// arguments and stdin.
    fn fake(dir: &std::path::Path, body: &str) -> PathBuf {
        let p = dir.join("wsgi-dbcheck");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    const URL: &str = "postgresql://u:s3cr%40t@127.0.0.1:5432/db";

    #[test]
    fn the_url_goes_on_stdin_and_the_answer_comes_back() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("seen");
        let h = fake(
            d.path(),
            &format!(
                "echo \"$@\" > {0}; cat >> {0}; echo connected",
                log.display()
            ),
        );
        assert_eq!(
            check_with(&h, URL, Duration::from_secs(3)),
            Ok(Checked::Connected)
        );
        let seen = std::fs::read_to_string(&log).unwrap();
        assert_eq!(seen, format!("--timeout 3\n{URL}\n"));
        let h = fake(d.path(), "echo not-checked");
        assert_eq!(
            check_with(&h, URL, Duration::from_secs(3)),
            Ok(Checked::NotChecked)
        );
    }

    #[test]
    fn a_failure_is_the_helpers_words_without_the_password() {
        let d = tempfile::tempdir().unwrap();
        let h = fake(
            d.path(),
            "echo 'failed: PostgreSQL at 127.0.0.1:5432: bad s3cr@t and s3cr%40t'; exit 1",
        );
        let e = check_with(&h, URL, Duration::from_secs(3)).unwrap_err();
        assert_eq!(e.0, "PostgreSQL at 127.0.0.1:5432: bad *** and ***");
    }

    #[test]
    fn a_broken_helper_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let h = fake(
            d.path(),
            "echo 'thread main panicked at s3cr@t' >&2; exit 101",
        );
        let e = check_with(&h, URL, Duration::from_secs(3)).unwrap_err();
        assert!(e.0.contains("wsgi-dbcheck"), "{e}");
        assert!(e.0.contains("exit code 101"), "{e}");
        assert!(e.0.contains("panicked at ***"), "{e}");
        // exit 0 with a failure line, or garbage, is not trusted either
        let h = fake(d.path(), "echo 'failed: x'");
        assert!(check_with(&h, URL, Duration::from_secs(3)).is_err());
        let h = fake(d.path(), "sleep 30");
        let start = std::time::Instant::now();
        let e = check_with(&h, URL, Duration::from_secs(1)).unwrap_err();
        assert!(e.0.contains("timed out"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let e = check_with(&d.path().join("missing"), URL, Duration::from_secs(1)).unwrap_err();
        assert!(e.0.contains("cannot run"), "{e}");
    }
}
