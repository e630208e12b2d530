//! The database check, run as its own process: `wsgi-dbcheck` beside this
//! binary (the charm's `bin/`), given the URL on stdin, never in its
//! arguments. Its clients (tokio-postgres, the mongodb driver, rustls) stay
//! out of the hook binary, which every hook starts; this one runs only when
//! a database URL is new.

use std::path::PathBuf;
use std::time::Duration;

use dbcheck_protocol::{Checked, DbCheckError};
use machine::Cmd;

/// The helper's file name, in the directory of the running agent.
pub const HELPER: &str = "wsgi-dbcheck";

/// Checks `url` with the helper beside the running binary. A missing
/// helper is a packing mistake, reported as such: the check is never
/// skipped in silence.
pub(crate) fn check(url: &str, timeout: Duration) -> Result<Checked, DbCheckError> {
    check_with(&helper()?, url, timeout)
}

fn helper() -> Result<PathBuf, DbCheckError> {
    let exe = std::env::current_exe()
        .map_err(|e| DbCheckError(format!("cannot find the running binary: {e}")))?;
    let path = exe.with_file_name(HELPER);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DbCheckError(format!(
            "the database check {} is missing beside {}: the charm is not packed right (scripts/pack)",
            path.display(),
            exe.display()
        )))
    }
}

/// Runs `helper` on `url`. Every message is scrubbed of the password again:
/// whatever the helper printed, or failed with, reaches a status line.
pub fn check_with(
    helper: &std::path::Path,
    url: &str,
    timeout: Duration,
) -> Result<Checked, DbCheckError> {
    let secret = dbcheck_protocol::password_of(url);
    let scrubbed = |m: &str| DbCheckError(dbcheck_protocol::scrub(m, secret.as_deref()));
    let secs = timeout.as_secs().clamp(1, 300);
    let cmd = Cmd::new(helper)
        .arg("--timeout")
        .arg(secs.to_string())
        .stdin(format!("{url}\n"))
        // The helper bounds its own work; this bounds a helper that hangs.
        .timeout(Duration::from_secs(secs + 5));
    match cmd.run_status() {
        Ok((exit, out)) => match (exit, dbcheck_protocol::parse_answer(&out.stdout)) {
            (machine::Exit::Code(0), Some(Ok(c))) => Ok(c),
            (machine::Exit::Code(1), Some(Err(e))) => Err(scrubbed(&e.0)),
            _ => {
                let failed = machine::Error::Failed {
                    cmd: cmd.display(),
                    exit,
                    tail: out.tail(),
                };
                Err(scrubbed(&format!("the database check failed: {failed}")))
            }
        },
        Err(e) => Err(scrubbed(&format!(
            "the database check failed: {}",
            error_chain(&e)
        ))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
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
