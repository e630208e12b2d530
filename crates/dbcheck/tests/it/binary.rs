//! The `wsgi-dbcheck` process contract the agent relies on: the URL on
//! stdin, one answer line, exit 0/1, the password never printed. A real
//! server is met end to end in jujulet/tests/wsgi_dbcheck.rs.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsgi-dbcheck"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_clients() {
    let (code, out, _) = run(&["--version"], "");
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("wsgi-dbcheck ") && out.contains("clients: postgresql, mongodb"),
        "{out}"
    );
}

#[test]
fn a_refused_connection_is_one_failed_line_without_the_password() {
    for url in [
        "postgresql://app:pa%40ss%2Fword@127.0.0.1:1/db\n",
        "mongodb://app:pa%40ss%2Fword@127.0.0.1:1/db?serverSelectionTimeoutMS=500\n",
    ] {
        let (code, out, err) = run(&["--timeout", "2"], url);
        assert_eq!(code, Some(1), "{url}: {out} {err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("failed: "), "{out}");
        assert!(out.contains("127.0.0.1:1"), "{out}");
        for secret in ["pa%40ss%2Fword", "pa@ss/word"] {
            assert!(
                !out.contains(secret) && !err.contains(secret),
                "{out} {err}"
            );
        }
    }
}

#[test]
fn tls_and_unknown_schemes() {
    let (code, out, _) = run(&[], "postgresql://u:p@127.0.0.1:1/db?sslmode=require\n");
    assert_eq!((code, out.trim()), (Some(0), "not-checked"));
    let (code, out, _) = run(&[], "redis://u:hunter22@127.0.0.1:1\n");
    assert_eq!(code, Some(1));
    assert!(out.starts_with("failed: unsupported scheme"), "{out}");
    let (code, _, err) = run(&["--timeout", "0"], "");
    assert_eq!(code, Some(2), "{err}");
}
