//! Faults end to end (issue 8), in a real nspawn machine: each ends in a
//! status that names the cause, loses nothing that was working, and the
//! next hook after the cause is gone returns to active.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Model, app_tarball, eventually, get, repo};

/// hello, which refuses to import when CRASH is set in its environment.
const CRASHABLE: &str = "import os\nif os.environ.get(\"CRASH\"):\n    raise RuntimeError(\"crash requested by CRASH\")\n";

fn crashable_hello(m: &Model, name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let hello = repo().join("examples/hello");
    let wsgi = std::fs::read_to_string(hello.join("wsgi.py")).unwrap();
    let wsgi = format!("{CRASHABLE}{wsgi}");
    let mut files = vec![("wsgi.py", wsgi.as_str())];
    files.extend_from_slice(extra);
    app_tarball(&hello, &files, &m.tmp.path().join(name))
}

fn blocked_with(m: &Model, needle: &str) {
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains(needle),
        "expected blocked naming {needle:?}: {st}\n{}",
        m.log()
    );
}

fn active(m: &Model) {
    let st = m.unit_status();
    assert!(st.contains("active"), "{st}\n{}", m.log());
}

fn sh(m: &Model, script: &str) -> String {
    let (code, out, err) = m.exec(&["sh", "-c", script]);
    assert_eq!(code, 0, "{script}: {out}{err}");
    out
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn resource_pip_port_crash_disk_and_dpkg_faults() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-faults-");
    let good = crashable_hello(&m, "good.tar.gz", &[]);
    m.deploy("hello", &good, &["port=18400", "health_check_timeout=10"]);
    active(&m);
    let pid = m.main_pid("wsgi-hello.service");

    // A corrupt resource: blocked, the running release keeps serving.
    let junk = m.tmp.path().join("junk.tar.gz");
    std::fs::write(&junk, b"\x1f\x8b\x08\x00garbage, not gzip at all").unwrap();
    m.ok(&["attach-resource", &format!("app={}", junk.display())]);
    blocked_with(&m, "app resource");
    assert_eq!(get(18400, "/"), (200, "Hello, World!\n".into()));
    m.ok(&["attach-resource", &format!("app={}", good.display())]);
    active(&m);

    // A refused archive costs the running service no restart.
    assert_eq!(m.main_pid("wsgi-hello.service"), pid, "a needless restart");

    // The package index unreachable (the operator's index option: the
    // archive may not name one) for a release that needs a package not yet
    // installed (one whose requirements are all met needs no index).
    m.ok(&["config", "index_url=http://127.0.0.1:9/simple"]);
    let needs = crashable_hello(&m, "needs.tar.gz", &[("requirements.txt", "six\n")]);
    m.ok(&["attach-resource", &format!("app={}", needs.display())]);
    blocked_with(&m, "installing requirements failed");
    blocked_with(&m, "127.0.0.1:9");
    assert_eq!(get(18400, "/").0, 200, "the running app was lost");
    m.ok(&["config", "--reset", "index_url"]);
    m.ok(&["attach-resource", &format!("app={}", good.display())]);
    active(&m);
    // (The index is an input of the venv: changing it restarts, once.)
    let pid = m.main_pid("wsgi-hello.service");
    m.ok(&["attach-resource", &format!("app={}", good.display())]);
    active(&m);
    // Going back to the release it already serves costs no restart.
    assert_eq!(m.main_pid("wsgi-hello.service"), pid, "a needless restart");

    // The new port held by another process.
    sh(
        &m,
        "systemd-run --unit=squatter python3 -m http.server 18401 --bind 0.0.0.0",
    );
    assert!(eventually(Duration::from_secs(10), || get(18401, "/").0 == 200));
    m.ok(&["config", "port=18401"]);
    blocked_with(&m, "port 18401 is in use by another process");
    assert_eq!(get(18400, "/"), (200, "Hello, World!\n".into()));
    sh(&m, "systemctl stop squatter");
    m.ok(&["hook", "config-changed"]);
    active(&m);
    assert_eq!(get(18401, "/"), (200, "Hello, World!\n".into()));
    assert_eq!(get(18400, "/").0, 0);

    // The app crashing after start: a variable makes every new worker fail
    // to import; systemd restarts gunicorn until its start limit; blocked
    // with the exception's line. Removing the variable recovers.
    m.ok(&["config", "environment_variables=CRASH=1"]);
    blocked_with(&m, "RuntimeError: crash requested by CRASH");
    m.ok(&["config", "environment_variables="]);
    active(&m);
    assert_eq!(get(18401, "/"), (200, "Hello, World!\n".into()));

    // The disk full under the environment file: blocked, the old file whole
    // and still in force; freeing space and the next hook apply the change.
    sh(
        &m,
        "set -e; cp -a /etc/wsgi/hello /run/keep-hello; \
         mount -t tmpfs -o size=64k tmpfs /etc/wsgi/hello; cp -a /run/keep-hello/. /etc/wsgi/hello/; \
         dd if=/dev/zero of=/etc/wsgi/hello/filler bs=1k 2>/dev/null || true",
    );
    let env_before = sh(&m, "cat /etc/wsgi/hello/environment");
    m.ok(&["config", "environment_variables=GREETING=full"]);
    blocked_with(&m, "No space left on device");
    assert_eq!(sh(&m, "cat /etc/wsgi/hello/environment"), env_before);
    assert_eq!(get(18401, "/"), (200, "Hello, World!\n".into()));
    sh(&m, "rm /etc/wsgi/hello/filler");
    m.ok(&["hook", "config-changed"]);
    active(&m);
    assert_eq!(get(18401, "/"), (200, "Hello, full!\n".into()));

    // The dpkg lock held by another apt for a while: the install waits for
    // it instead of failing.
    sh(
        &m,
        "systemd-run --unit=locker python3 -c \"import fcntl,time; f=open('/var/lib/dpkg/lock-frontend','w'); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(8)\"",
    );
    assert!(eventually(Duration::from_secs(5), || sh(
        &m,
        "systemctl is-active locker || true"
    )
    .trim()
        == "active"));
    let t = Instant::now();
    m.ok(&["config", "apt_dependencies=sl"]);
    let waited = t.elapsed();
    active(&m);
    let (code, _, _) = m.exec(&["dpkg-query", "-W", "sl"]);
    assert_eq!(code, 0, "sl not installed");
    assert!(
        waited > Duration::from_secs(3),
        "did not wait for the lock: {waited:?}"
    );
    eprintln!(
        "dpkg lock: waited and installed in {:.1} s",
        waited.as_secs_f64()
    );
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if e.file_type().is_ok_and(|t| t.is_dir())
            && !p.ends_with("machine")
            && let Some(f) = find_file(&p, name)
        {
            return Some(f);
        }
    }
    None
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn postgresql_down_at_provision_time_blocks_then_recovers() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-faults-pg-");
    let tar = app_tarball(
        &repo().join("examples/notes"),
        &[],
        &m.tmp.path().join("notes.tar.gz"),
    );
    m.deploy(
        "notes",
        &tar,
        &["port=18410", "provision_command=python3 migrate.py"],
    );
    m.ok(&["relate", "postgres", "postgresql"]);
    active(&m);
    assert_eq!(get(18410, "/").1, "notes: 0 in PostgreSQL\n");

    // Freeze the server: connections hang until migrate.py's timeout.
    let pidfile = find_file(&m.dir(), "postmaster.pid").unwrap();
    let pg: String = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let kill = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pg])
                .status()
                .unwrap()
                .success()
        );
    };
    kill("-STOP");
    // A new provision_command runs now (once per source, URL and command).
    // While it hangs on the frozen server: the database password is in its
    // environment, never in its arguments.
    let (_, env_file, _) = m.exec(&["cat", "/etc/wsgi/notes/environment"]);
    let url = env_file
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let secret = url
        .split_once("://")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0
        .split_once(':')
        .unwrap()
        .1
        .to_owned();
    let watcher = {
        std::thread::spawn(move || {
            let mut seen = 0;
            let until = Instant::now() + Duration::from_secs(8);
            while Instant::now() < until {
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    if cmd.contains("migrate.py --again") {
                        seen += 1;
                        assert!(
                            !cmd.contains(&secret),
                            "password in provision's arguments: {cmd}"
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        })
    };
    let r = m.jujulet(&["config", "provision_command=python3 migrate.py --again"]);
    kill("-CONT");
    let seen = watcher.join().unwrap();
    assert!(seen > 0, "the provision process was never seen");
    assert!(r.0, "{}{}", r.1, r.2);
    blocked_with(&m, "provision_command failed");
    blocked_with(&m, "timeout");
    // The server is back: the next hook retries the provision.
    m.ok(&["hook", "config-changed"]);
    active(&m);
    assert_eq!(get(18410, "/").1, "notes: 0 in PostgreSQL\n");
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_missing_resource_blocks_until_one_is_attached() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-faults-nores-");
    let args = Model::deploy_args("hello", None, &["port=18420"]);
    m.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    blocked_with(&m, "attach the app resource");
    // Other hooks keep saying so.
    m.ok(&["hook", "update-status"]);
    m.ok(&["config", "workers=2"]);
    blocked_with(&m, "attach the app resource");
    let tar = crashable_hello(&m, "hello.tar.gz", &[]);
    m.ok(&["attach-resource", &format!("app={}", tar.display())]);
    active(&m);
    assert_eq!(get(18420, "/"), (200, "Hello, World!\n".into()));
}
