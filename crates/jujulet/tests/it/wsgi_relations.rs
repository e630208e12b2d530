//! Relations end to end (issue 5): examples/notes in an nspawn machine,
//! related to jujulet's real stand-ins: PostgreSQL (a hostile password),
//! a MongoDB-protocol server and HAProxy in front.

use std::process::Command;

use crate::support::{Model, app_tarball, get, repo};

const PORT: u16 = 18110;

/// GET through curl, from a chosen source address.
fn curl_from(source: &str, url: &str, headers: &[&str]) -> String {
    let mut c = Command::new("curl");
    c.args(["-sS", "-m", "10", "--interface", source]);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c.arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn notes_through_postgresql_mongodb_and_haproxy() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-e2e-rel-");
    let tar = app_tarball(
        &repo().join("examples/notes"),
        &[],
        &m.tmp.path().join("notes.tar.gz"),
    );
    m.deploy(
        "notes",
        &tar,
        &[
            "port=18110",
            "provision_command=python3 migrate.py",
            "workers=2",
        ],
    );
    assert_eq!(get(PORT, "/"), (200, "notes: no database\n".into()));

    // PostgreSQL, with a password full of @:/%#?&+ and spaces.
    m.ok(&["relate", "postgres", "postgresql", "--hostile-password"]);
    let st = m.unit_status();
    assert!(st.contains("active"), "{st}");
    let (_, env_file, _) = m.exec(&["cat", "/etc/wsgi/notes/environment"]);
    let url = env_file
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL=\""))
        .unwrap_or_else(|| panic!("no DATABASE_URL: {env_file}"))
        .trim_end_matches('"')
        .replace("\\$", "$");
    let parsed = url::Url::parse(&url).unwrap();
    let password = percent_encoding::percent_decode_str(parsed.password().unwrap())
        .decode_utf8()
        .unwrap()
        .into_owned();
    assert!(
        password.contains('@') && password.contains('/') && password.contains(' '),
        "{password:?}"
    );

    let (code, body) = get(PORT, "/add?text=written%20through%20pg");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["text"], "written through pg");
    let (_, body) = get(PORT, "/notes");
    let notes = json(&body);
    assert!(
        notes["server"].as_str().unwrap().starts_with("PostgreSQL"),
        "{notes}"
    );
    assert_eq!(notes["database"], "notes");
    assert_eq!(notes["notes"][0]["text"], "written through pg");
    // The row is really in the server: read it back with psql, outside the app.
    let psql = Command::new("psql")
        .arg(&url)
        .args(["-Atc", "SELECT text FROM notes"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout).trim(),
        "written through pg"
    );

    // The password only in the 0640 environment file: not in any process's
    // arguments or initial environment, nor under /etc or /var/log elsewhere.
    let (_, pids, _) = m.exec(&["pgrep", "-f", "gunicorn"]);
    assert!(!pids.trim().is_empty());
    for pid in pids.lines() {
        let (_, cmdline, _) = m.exec(&["cat", &format!("/proc/{pid}/cmdline")]);
        let (_, environ, _) = m.exec(&["cat", &format!("/proc/{pid}/environ")]);
        assert!(
            !cmdline.contains(&password) && !environ.contains(&password),
            "pid {pid}"
        );
    }
    assert!(!m.log().contains(&password));
    // Every file the machine wrote (the overlay's upper dir) that holds the
    // password, raw or percent-encoded, is readable by root and the app
    // only: the environment file (0640 root:wsgi) and the agent's state (0600).
    let upper = m.root().parent().unwrap().join("upper");
    assert!(upper.is_dir(), "{upper:?}");
    let encoded = parsed.password().unwrap().to_owned();
    let mut holders = Vec::new();
    files_containing(
        &upper,
        &[password.as_bytes(), encoded.as_bytes()],
        &mut holders,
    );
    let mut names: Vec<String> = Vec::new();
    for (path, mode) in &holders {
        assert_eq!(
            mode & 0o007,
            0,
            "{path:?} (mode {mode:o}) holds the password"
        );
        names.push(path.strip_prefix(&upper).unwrap().display().to_string());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "etc/wsgi/notes/environment",
            "var/lib/juju/agents/unit-notes-0/charm/.wsgi-agent/state.json"
        ],
        "files holding the password"
    );

    // MongoDB: MONGO_URL reaches the app (insert and find back).
    m.ok(&["relate", "mongo", "mongodb"]);
    let (code, body) = get(PORT, "/mongo?text=a%20document");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["text"], "a document");

    // HAProxy in front: a request from 127.0.0.2 through it reaches gunicorn,
    // and the app sees 127.0.0.2 (from X-Forwarded-For), not the proxy.
    m.ok(&["relate", "website", "haproxy", "--units", "2"]);
    let status = m.ok(&["status"]);
    let frontend = status
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.ends_with("/)"))
        .unwrap_or_else(|| panic!("no frontend: {status}"))
        .trim_end_matches(')')
        .to_owned();
    let seen = json(&curl_from(
        "127.0.0.2",
        &format!("{frontend}forwarded"),
        &[],
    ));
    assert_eq!(seen["remote_addr"], "127.0.0.2", "{seen}");
    assert_eq!(seen["scheme"], "http");
    // The same headers straight from an untrusted address are ignored.
    let direct = json(&curl_from(
        "127.0.0.2",
        &format!("http://127.0.0.1:{PORT}/forwarded"),
        &["X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https"],
    ));
    assert_eq!(direct["remote_addr"], "127.0.0.2", "{direct}");
    assert_eq!(direct["scheme"], "http", "{direct}");
    // A trusted proxy's scheme is kept.
    let trusted = json(&curl_from(
        "127.0.0.1",
        &format!("http://127.0.0.1:{PORT}/forwarded"),
        &["X-Forwarded-Proto: https"],
    ));
    assert_eq!(trusted["scheme"], "https", "{trusted}");

    // Unrelate PostgreSQL: the app has no PostgreSQL database, and the
    // password is gone from its environment file.
    m.ok(&["unrelate", "postgres"]);
    let (_, body) = get(PORT, "/");
    assert_eq!(body, "notes: no database\n");
    let (_, env_file, _) = m.exec(&["cat", "/etc/wsgi/notes/environment"]);
    assert!(!env_file.contains(parsed.password().unwrap()), "{env_file}");
    assert!(!env_file.contains("postgresql://"), "{env_file}");
    // With only MongoDB related, DATABASE_URL is the MongoDB URL.
    assert!(env_file.contains("DATABASE_URL=\"mongodb://"), "{env_file}");
    m.ok(&["unrelate", "mongo"]);
    let (_, env_file, _) = m.exec(&["cat", "/etc/wsgi/notes/environment"]);
    assert!(
        !env_file.contains("MONGO_URL") && !env_file.contains("DATABASE_URL"),
        "{env_file}"
    );

    // The current PostgreSQL charm's interface: the leader asks for secrets,
    // the credentials come in a Juju secret read with secret-get.
    // (Another database: the notes table of the first belongs to its role.)
    m.ok(&["config", "database_name=notes_client"]);
    m.ok(&["relate", "database", "postgresql"]);
    let (code, body) = get(PORT, "/add?text=through%20a%20secret");
    assert_eq!(code, 200, "{body}\n{}", m.unit_status());
    let (_, body) = get(PORT, "/notes");
    assert_eq!(json(&body)["database"], "notes_client", "{body}");
    assert_eq!(
        json(&body)["notes"][0]["text"],
        "through a secret",
        "{body}"
    );
    let calls = std::fs::read_to_string(m.dir().join("tool-calls.log")).unwrap();
    assert!(
        calls.contains("\tsecret-get --format=json -- secret:"),
        "no secret-get"
    );
    for hook in calls
        .split("\n# ")
        .filter(|h| h.starts_with("database-relation"))
    {
        assert!(
            hook.matches("\tsecret-get").count() <= 1,
            "secret read twice in a hook:\n{hook}"
        );
    }
    m.ok(&["unrelate", "database"]);
    assert_eq!(get(PORT, "/").1, "notes: no database\n");
    assert!(m.unit_status().contains("active"));
}

/// Regular files under `dir` containing any of `needles`, with their modes.
fn files_containing(
    dir: &std::path::Path,
    needles: &[&[u8]],
    out: &mut Vec<(std::path::PathBuf, u32)>,
) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            files_containing(&p, needles, out);
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&p)
            && needles
                .iter()
                .any(|n| !n.is_empty() && bytes.windows(n.len()).any(|w| w == *n))
        {
            out.push((p, meta.permissions().mode() & 0o7777));
        }
    }
}
