//! The database check end to end (issue 5): a new DATABASE_URL that does
//! not authenticate is not applied; the unit waits with the server's words,
//! the running app keeps its old URL, and the next hook after the cause is
//! fixed applies the new one. The check is wsgi-dbcheck (dbcheck/), which
//! jujulet places beside the agent.

use std::process::Command;

use crate::support::{Model, app_tarball, repo};

const UNIT: &str = "wsgi-hello.service";

fn env_url(m: &Model) -> String {
    let (_, env, _) = m.exec(&["cat", "/etc/wsgi/hello/environment"]);
    env.lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL=\""))
        .unwrap_or_else(|| panic!("no DATABASE_URL: {env}"))
        .trim_end_matches('"')
        .replace("\\$", "$")
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-Atc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_database_url_that_does_not_authenticate_is_not_applied() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-dbcheck-");
    let tar = app_tarball(
        &repo().join("examples/hello"),
        &[],
        &m.tmp.path().join("hello.tar.gz"),
    );
    m.deploy("hello", &tar, &["port=18130"]);
    // The helper the agent runs, as the charm carries it, in the machine.
    let (code, version, err) = m.exec(&[
        "/var/lib/juju/agents/unit-hello-0/charm/bin/wsgi-dbcheck",
        "--version",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        version.contains("clients: postgresql, mongodb"),
        "{version}"
    );
    m.ok(&["relate", "postgres", "postgresql"]);
    assert!(m.unit_status().contains("active"), "{}", m.unit_status());
    let url = env_url(&m);
    assert!(url.ends_with("/hello"), "{url}");
    let pid = m.main_pid(UNIT);

    // The role's password changes behind the charm's back; then a new
    // database is asked for, so the URL changes (same stale password).
    psql(&url, "ALTER ROLE CURRENT_USER PASSWORD 'changed-elsewhere'");
    m.ok(&["config", "database_name=hello2"]);
    let st = m.unit_status();
    assert!(st.contains("waiting"), "{st}");
    assert!(
        st.contains("password authentication failed for user"),
        "{st}"
    );
    assert!(!st.contains("changed-elsewhere"), "{st}");
    // The app is not switched to the broken URL, nor restarted or reloaded.
    assert_eq!(env_url(&m), url);
    assert_eq!(m.main_pid(UNIT), pid);
    let calls = std::fs::read_to_string(m.dir().join("tool-calls.log")).unwrap();
    let last = calls.rsplit("\n# ").next().unwrap();
    assert!(!last.contains("status-set active"), "{last}");

    // The password is put back: update-status retries and applies the URL.
    let stale = url::Url::parse(&url).unwrap();
    let mut changed = stale.clone();
    changed.set_password(Some("changed-elsewhere")).unwrap();
    let original = percent_encoding::percent_decode_str(stale.password().unwrap())
        .decode_utf8()
        .unwrap()
        .replace('\'', "''");
    psql(
        changed.as_str(),
        &format!("ALTER ROLE CURRENT_USER PASSWORD '{original}'"),
    );
    m.ok(&["hook", "update-status"]);
    assert!(m.unit_status().contains("active"), "{}", m.unit_status());
    assert!(env_url(&m).ends_with("/hello2"), "{}", env_url(&m));
    assert_eq!(m.main_pid(UNIT), pid, "a new URL is a reload");
}
