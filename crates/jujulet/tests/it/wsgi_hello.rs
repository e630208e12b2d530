//! The WSGI layer end to end (issue 4): the charm and its agent deployed by
//! jujulet into a real nspawn machine with systemd, examples/hello served by
//! a real gunicorn from a real venv, checked over real HTTP.

use std::time::Duration;

use crate::support::{Model, app_tarball, eventually, get, repo};

const UNIT: &str = "wsgi-hello.service";

fn workers(m: &Model) -> usize {
    let pid = m.main_pid(UNIT).to_string();
    let (_, out, _) = m.exec(&["pgrep", "-P", &pid]);
    out.lines().count()
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn hello_deploys_and_every_config_change_is_live_without_restarts() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-e2e-hello-");
    let tar = app_tarball(
        &repo().join("examples/hello"),
        &[],
        &m.tmp.path().join("hello.tar.gz"),
    );
    // Port 80: a low port, bound by the unprivileged app user through
    // CAP_NET_BIND_SERVICE.
    m.deploy("hello", &tar, &["workers=3"]);
    let st = m.unit_status();
    assert!(
        st.contains("active")
            && st.contains("Serving wsgi:application (release 1) on :80, 3 workers"),
        "{st}"
    );
    assert_eq!(get(80, "/"), (200, "Hello, World!\n".into()));

    // gunicorn's log in the journal and in wsgi_logfile_path, requests too.
    let (_, journal, _) = m.exec(&["journalctl", "-u", UNIT, "--no-pager", "-o", "cat"]);
    let (_, file, _) = m.exec(&["cat", "/var/log/wsgi/hello.log"]);
    for (name, text) in [("journal", &journal), ("log file", &file)] {
        assert!(
            text.contains("Listening at: http://0.0.0.0:80"),
            "{name}: {text}"
        );
        assert!(text.contains("\"GET / HTTP/1.0\" 200"), "{name}: {text}");
    }

    // The unit as systemd reads it: verify is clean, exposure at most 2.0.
    let (code, out, err) = m.exec(&[
        "systemd-analyze",
        "verify",
        "/etc/systemd/system/wsgi-hello.service",
    ]);
    assert_eq!(code, 0, "verify: {out}{err}");
    assert!(
        !format!("{out}{err}").contains("wsgi-hello"),
        "verify: {out}{err}"
    );
    let (_, out, err) = m.exec(&["systemd-analyze", "security", "--no-pager", UNIT]);
    let score: f64 = format!("{out}{err}")
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for wsgi-hello.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure line: {out}{err}"));
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score}");

    // The app runs as its own user without new privileges.
    let pid = m.main_pid(UNIT);
    let status =
        std::fs::read_to_string(m.root().join("proc").join(pid.to_string()).join("status"));
    let (_, proc_status, _) = m.exec(&["cat", &format!("/proc/{pid}/status")]);
    drop(status);
    assert!(proc_status.contains("NoNewPrivs:\t1"), "{proc_status}");
    let (_, user, _) = m.exec(&["ps", "-o", "user=", "-p", &pid.to_string()]);
    assert_eq!(user.trim(), "wsgi-hello");

    // environment_variables: live after one hook, by a reload (same master).
    let secret = "tok3n-7f9c pa ss=w\"ord$HOME`x`";
    let setting = format!(
        "environment_variables=GREETING='big world' SECRET='{}'",
        secret.replace('\'', "'\\''")
    );
    m.ok(&["config", &setting]);
    assert_eq!(get(80, "/"), (200, "Hello, big world!\n".into()));
    assert_eq!(get(80, "/env?name=SECRET"), (200, format!("{secret}\n")));
    assert_eq!(
        m.main_pid(UNIT),
        pid,
        "a variable change restarted the service"
    );

    // The environment file: 0640 root:wsgi; the secret nowhere else under
    // /etc or /var/log, nor in the unit's log.
    let (_, stat, _) = m.exec(&["stat", "-c", "%a %U %G", "/etc/wsgi/hello/environment"]);
    assert_eq!(stat.trim(), "640 root wsgi-hello");
    let (_, found, _) = m.exec(&["grep", "-rlF", "tok3n-7f9c", "/etc", "/var/log"]);
    let found: Vec<&str> = found.lines().collect();
    assert_eq!(found, ["/etc/wsgi/hello/environment"], "the secret leaked");
    assert!(!m.log().contains("tok3n-7f9c"), "the secret is in juju-log");
    assert!(
        !m.ok(&["status"]).contains("tok3n-7f9c"),
        "the secret is in a status"
    );
    let unit_file =
        std::fs::read_to_string(m.root().join("etc/systemd/system/wsgi-hello.service")).unwrap();
    assert!(
        !unit_file.contains("tok3n-7f9c"),
        "the secret is in the unit"
    );
    let (_, cmdline, _) = m.exec(&["cat", &format!("/proc/{pid}/cmdline")]);
    assert!(
        !cmdline.contains("tok3n-7f9c"),
        "the secret is in gunicorn's arguments"
    );

    // workers, wsgi_module, port: each live after one config-changed.
    m.ok(&["config", "workers=2"]);
    assert!(
        eventually(Duration::from_secs(20), || workers(&m) == 2),
        "workers: {}",
        workers(&m)
    );
    m.ok(&["config", "wsgi_module=wsgi:other"]);
    assert_eq!(get(80, "/"), (200, "Other app\n".into()));
    assert_eq!(
        m.main_pid(UNIT),
        pid,
        "gunicorn re-reads workers and module on HUP"
    );
    // systemd holds the socket: the service has no capability even on
    // port 80, and a port change is a new socket and one restart (a HUP
    // would make gunicorn bind the new port itself).
    let unit_file = m.root().join("etc/systemd/system/wsgi-hello.service");
    let unit_text = std::fs::read_to_string(&unit_file).unwrap();
    assert!(
        unit_text.contains("CapabilityBoundingSet=\n")
            && !unit_text.contains("CAP_NET_BIND_SERVICE"),
        "{unit_text}"
    );
    let (_, socket, _) = m.exec(&["systemctl", "is-active", "wsgi-hello.socket"]);
    assert_eq!(socket.trim(), "active");
    m.ok(&["config", "port=18087"]);
    assert_eq!(get(18087, "/"), (200, "Other app\n".into()));
    assert_eq!(get(80, "/").0, 0, "the old port still answers");
    let st = m.ok(&["status"]);
    assert!(st.contains("18087/tcp") && !st.contains(" 80/tcp"), "{st}");
    let pid2 = m.main_pid(UNIT);
    assert_ne!(pid2, pid, "a new socket: a restart was needed");
    m.ok(&["config", "port=18088"]);
    assert_eq!(get(18088, "/"), (200, "Other app\n".into()));
    assert_eq!(get(18087, "/").0, 0, "the old port still answers");
    let pid = m.main_pid(UNIT);

    // Removing a variable removes it from the app.
    m.ok(&[
        "config",
        "wsgi_module=wsgi:application",
        "environment_variables=GREETING=again",
    ]);
    assert_eq!(get(18088, "/"), (200, "Hello, again!\n".into()));
    assert_eq!(get(18088, "/env?name=SECRET").0, 404);

    // 20 update-status hooks: nothing restarts, nothing is rewritten.
    let env_file = m.root().join("etc/wsgi/hello/environment");
    let mtime = std::fs::metadata(&env_file).unwrap().modified().unwrap();
    let (_, before, _) = m.exec(&["systemctl", "show", "--property=NRestarts", "--value", UNIT]);
    for _ in 0..20 {
        m.ok(&["hook", "update-status"]);
    }
    assert_eq!(m.main_pid(UNIT), pid);
    let (_, after, _) = m.exec(&["systemctl", "show", "--property=NRestarts", "--value", UNIT]);
    assert_eq!(before, after);
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().modified().unwrap(),
        mtime
    );
    assert!(m.unit_status().contains("active"));

    // stop/remove: the service, its files and its port are gone.
    m.ok(&["hook", "stop"]);
    m.ok(&["hook", "remove"]);
    let (_, active, _) = m.exec(&["systemctl", "is-active", UNIT]);
    assert_ne!(active.trim(), "active");
    for f in [
        "etc/systemd/system/wsgi-hello.service",
        "etc/systemd/system/wsgi-hello.socket",
        "etc/wsgi/hello/environment",
    ] {
        assert!(!m.root().join(f).exists(), "{f} left behind");
    }
    assert!(!m.ok(&["status"]).contains("18088/tcp"));
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_variable_change_under_load_fails_no_request() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-e2e-load-");
    let tar = app_tarball(
        &repo().join("examples/hello"),
        &[],
        &m.tmp.path().join("hello.tar.gz"),
    );
    m.deploy("hello", &tar, &["port=18090", "workers=2"]);
    assert_eq!(get(18090, "/"), (200, "Hello, World!\n".into()));
    let pid = m.main_pid(UNIT);
    let wrk = std::process::Command::new("wrk")
        .args(["-t2", "-c8", "-d8s", "http://127.0.0.1:18090/"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    m.ok(&["config", "environment_variables=GREETING=loaded"]);
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap();
    assert!(requests > 100, "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    assert_eq!(get(18090, "/"), (200, "Hello, loaded!\n".into()));
    assert_eq!(m.main_pid(UNIT), pid);
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn broken_import_requirements_and_provision_block_then_recover() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-e2e-fail-");
    let hello = repo().join("examples/hello");
    let dir = m.tmp.path();
    let broken = app_tarball(
        &hello,
        &[("wsgi.py", "import no_such_module_xyz\n")],
        &dir.join("broken.tar.gz"),
    );
    m.deploy("hello", &broken, &["port=18095", "health_check_timeout=8"]);
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains("no_such_module_xyz"),
        "{st}"
    );

    let good = app_tarball(&hello, &[], &dir.join("good.tar.gz"));
    m.ok(&["attach-resource", &format!("app={}", good.display())]);
    assert!(m.unit_status().contains("active"), "{}", m.unit_status());
    assert_eq!(get(18095, "/"), (200, "Hello, World!\n".into()));

    let missing = app_tarball(
        &hello,
        &[(
            "requirements.txt",
            "no-such-package-wsgi-charm-test==9.9.9\n",
        )],
        &dir.join("missing.tar.gz"),
    );
    m.ok(&["attach-resource", &format!("app={}", missing.display())]);
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains("no-such-package-wsgi-charm-test"),
        "{st}"
    );
    // The app that was running keeps serving meanwhile.
    assert_eq!(get(18095, "/").0, 200);
    m.ok(&["attach-resource", &format!("app={}", good.display())]);
    assert!(m.unit_status().contains("active"), "{}", m.unit_status());

    m.ok(&[
        "config",
        "provision_command=python3 -c \"raise SystemExit('migration exploded')\"",
    ]);
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains("migration exploded"),
        "{st}"
    );
    m.ok(&[
        "config",
        "provision_command=python3 -c \"open('/tmp/provisioned', 'w')\"",
    ]);
    assert!(m.unit_status().contains("active"), "{}", m.unit_status());
}

/// A pure-Python wheel that exists nowhere but here.
const MAKE_WHEEL: &str = r#"
import base64, hashlib, sys, zipfile
name, ver = "wsgicharm_offline", "1.0"
di = f"{name}-{ver}.dist-info"
files = {
    f"{name}.py": b'VALUE = "from a local wheel"\n',
    f"{di}/METADATA": b"Metadata-Version: 2.1\nName: wsgicharm-offline\nVersion: 1.0\n",
    f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: wsgi-charm test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}" for p, d in files.items()]
record.append(f"{di}/RECORD,,")
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for p, d in files.items():
        z.writestr(p, d)
    z.writestr(f"{di}/RECORD", "\n".join(record) + "\n")
"#;

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn requirements_install_offline_from_pip_cache_dir() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-e2e-offline-");
    let app = m.tmp.path().join("app");
    let wheels = app.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let run = |c: &mut std::process::Command| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(std::process::Command::new("python3")
        .args(["-c", MAKE_WHEEL])
        .arg(wheels.join("wsgicharm_offline-1.0-py3-none-any.whl")));
    // gunicorn itself must be in the wheel directory too: nothing comes
    // from an index. The app names the version (the charm then adds none).
    run(std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
        .arg(&wheels)
        .arg("gunicorn==27.0.1"));
    std::fs::write(
        app.join("requirements.txt"),
        "wsgicharm-offline==1.0\ngunicorn==27.0.1\n",
    )
    .unwrap();
    std::fs::write(
        app.join("wsgi.py"),
        "from wsgicharm_offline import VALUE\n\n\ndef application(environ, start_response):\n    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n    return [VALUE.encode() + b\"\\n\"]\n",
    )
    .unwrap();
    let tar = m.tmp.path().join("offline.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tar)
        .arg("-C")
        .arg(&app)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    m.deploy("hello", &tar, &["port=18097", "pip_cache_dir=wheels"]);
    assert!(m.unit_status().contains("active"), "{}", m.unit_status());
    assert_eq!(get(18097, "/"), (200, "from a local wheel\n".into()));
    // A path out of the app directory is refused, naming the option.
    m.ok(&["config", "pip_cache_dir=../../etc"]);
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains("pip_cache_dir"),
        "{st}"
    );
}
