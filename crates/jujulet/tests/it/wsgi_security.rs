//! Nothing the app, its dependencies, its config or its archive controls
//! runs as root (shared/reference/security-review.md, E1-E8 and W1-W7),
//! end to end in one nspawn machine: each finding's hostile input is
//! attached or configured in turn, each is refused or confined, and the
//! unit comes back to serving between them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Model, app_tarball, eventually, get, repo};

const PORT: u16 = 18700;
const UNIT: &str = "wsgi-hello.service";

fn sh(m: &Model, script: &str) -> String {
    let (code, out, err) = m.exec(&["sh", "-c", script]);
    assert_eq!(code, 0, "{script}: {out}{err}");
    out
}

fn status(m: &Model) -> String {
    m.unit_status()
}

fn blocked_with(m: &Model, needle: &str) {
    let st = status(m);
    assert!(
        st.contains("blocked") && st.contains(needle),
        "expected blocked naming {needle:?}: {st}\n{}",
        m.log()
    );
}

fn serving(m: &Model) {
    let st = status(m);
    assert!(st.contains("active"), "{st}\n{}", m.log());
    assert!(
        eventually(Duration::from_secs(10), || get(PORT, "/").0 == 200),
        "not serving"
    );
}

/// A python3 script, run on the host, that writes an archive.
fn python(script: &str, out: &Path) {
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

/// An app whose requirement is a local project with an in-tree build
/// backend: at import the backend records who it runs as, and tries to
/// write outside the venv (E1: the installer ran as root in the release).
const LOCAL_BACKEND: &str = r#"
import io, sys, tarfile
def add(t, name, text, mode=0o644):
    data = text.encode(); ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode
    t.addfile(ti, io.BytesIO(data))
with tarfile.open(sys.argv[1], "w:gz") as t:
    add(t, "wsgi.py", "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n")
    add(t, "requirements.txt", "./pkg\n")
    add(t, "pkg/pyproject.toml", '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    add(t, "pkg/backend.py",
        "import os\n"
        "home = os.environ.get('HOME', '/nonexistent')\n"
        "open(os.path.join(home, 'backend-uid'), 'w').write(str(os.geteuid()))\n"
        "for p in ('/etc/pwned-by-backend', '/var/lib/pwned-by-backend', '/srv/hello/current/app/pwned'):\n"
        "    try:\n"
        "        open(p, 'w').write('x')\n"
        "    except OSError:\n"
        "        pass\n"
        "raise SystemExit('backend: refusing to build, on purpose')\n")
"#;

/// A wheel whose console script is named `setpriv` (E2: root ran the
/// venv's `setpriv`, found through the child's PATH). If root ever runs it,
/// it leaves a mark only root can write.
const SETPRIV_WHEEL: &str = r#"
import sys, zipfile, hashlib, base64
name, ver = "evilsetpriv", "1.0"
di = f"{name}-{ver}.dist-info"
files = {
    f"{name}.py": "import os\ndef main():\n    if os.geteuid() == 0:\n        open('/var/lib/setpriv-ran-as-root', 'w').write('x')\n",
    f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n",
    f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    f"{di}/entry_points.txt": f"[console_scripts]\nsetpriv = {name}:main\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for p, d in files.items():
        z.writestr(p, d)
        h = base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{p},sha256={h},{len(d)}")
    record.append(f"{di}/RECORD,,")
    z.writestr(f"{di}/RECORD", "\n".join(record) + "\n")
"#;

/// E4: a chain of links that each pass a lexical check, ending at /etc/shadow.
const LINK_CHAIN: &str = r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    d = tarfile.TarInfo("a"); d.type = tarfile.DIRTYPE; t.addfile(d)
    prev = None
    for i in range(1, 10):
        ti = tarfile.TarInfo("a/up" if i == 1 else f"a/up{i}"); ti.type = tarfile.SYMTYPE
        ti.linkname = ".." if i == 1 else f"{prev}/.."
        prev = ti.name.split("/")[-1]
        t.addfile(ti)
    for name, target in (("a/shadow", f"{prev}/etc/shadow"), ("requirements.txt", "a/shadow")):
        ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; t.addfile(ti)
    data = b"def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n"
    ti = tarfile.TarInfo("wsgi.py"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
"#;

/// E5: a few hundred bytes whose PAX record says 5 GiB, the header's own
/// size field 0.
const PAX_BOMB: &str = r#"
import io, sys, tarfile
ti = tarfile.TarInfo("wsgi.py"); ti.size = 0
ti.pax_headers = {"size": str(5 << 30)}
with tarfile.open(sys.argv[1], "w:gz", format=tarfile.PAX_FORMAT) as t:
    t.addfile(ti, io.BytesIO(b""))
"#;

/// W1: an archive made under umask 000: a world-writable app directory and
/// requirements.txt.
const WORLD_WRITABLE: &str = r##"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    d = tarfile.TarInfo("app"); d.type = tarfile.DIRTYPE; d.mode = 0o777; t.addfile(d)
    for name, text, mode in (("app/wsgi.py", open(sys.argv[2]).read(), 0o666),
                             ("app/requirements.txt", "", 0o666),
                             ("app/tool", "#!/bin/sh\n", 0o4777)):
        data = text.encode(); ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode
        t.addfile(ti, io.BytesIO(data))
"##;

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn nothing_the_app_its_archive_or_its_config_controls_runs_as_root() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-security-");
    let tmp = m.tmp.path();
    let hello = repo().join("examples/hello");
    let good = app_tarball(&hello, &[], &tmp.join("good.tar.gz"));
    let port = format!("port={PORT}");
    m.deploy(
        "hello",
        &good,
        &[
            &port,
            "provision_command=sh -c 'setsid sleep 1000 >/dev/null 2>&1 < /dev/null & true'",
        ],
    );
    serving(&m);

    // E6: two applications of the charm on one machine (a second model
    // deployed onto this one's machine, as `juju deploy --to`): each runs
    // as its own user, and neither can read the other's environment file
    // or data, or signal the other's processes.
    assert_eq!(
        sh(&m, "stat -c '%a %U %G' /etc/wsgi/hello/environment").trim(),
        "640 root wsgi-hello"
    );
    let other = Model::new("wsgi-security-notes-");
    let notes_tar = app_tarball(
        &repo().join("examples/hello"),
        &[],
        &other.tmp.path().join("notes.tar.gz"),
    );
    let args = Model::deploy_args(
        "notes",
        Some(&notes_tar),
        &[
            "port=18701",
            "environment_variables=NOTES_SECRET=n0tes-only",
        ],
    );
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let owner = m.dir().display().to_string();
    args.extend(["--to", &owner]);
    other.ok(&args);
    assert!(
        other.unit_status().contains("active"),
        "{}",
        other.unit_status()
    );
    assert_eq!(get(18701, "/env?name=NOTES_SECRET").1, "n0tes-only\n");
    let users = sh(
        &m,
        "ps -o user= -p $(systemctl show -p MainPID --value wsgi-hello.service) -p $(systemctl show -p MainPID --value wsgi-notes.service)",
    );
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["wsgi-hello", "wsgi-notes"]
    );
    for (who, file) in [
        ("wsgi-notes", "/etc/wsgi/hello/environment"),
        ("wsgi-hello", "/etc/wsgi/notes/environment"),
        ("wsgi-notes", "/var/log/wsgi/hello.log"),
        ("wsgi-hello", "/var/lib/wsgi/notes"),
    ] {
        let (code, _, err) = m.exec(&[
            "setpriv",
            &format!("--reuid={who}"),
            &format!("--regid={who}"),
            "--init-groups",
            "ls",
            "-l",
            file,
        ]);
        let (code2, _, _) = m.exec(&[
            "setpriv",
            &format!("--reuid={who}"),
            &format!("--regid={who}"),
            "--init-groups",
            "cat",
            file,
        ]);
        assert!(
            code2 != 0 && (code != 0 || !file.starts_with("/var/lib")),
            "{who} read {file}: {err}"
        );
    }
    let pid = m.main_pid(UNIT);
    let (code, _, err) = m.exec(&[
        "setpriv",
        "--reuid=wsgi-notes",
        "--regid=wsgi-notes",
        "--init-groups",
        "kill",
        "-0",
        &pid.to_string(),
    ]);
    assert_ne!(
        code, 0,
        "another app's user may signal hello's gunicorn: {err}"
    );
    drop(other);
    assert_eq!(
        get(PORT, "/").0,
        200,
        "removing the other model's record kept this machine"
    );

    // W2: provision_command ran in a transient unit with the service's
    // sandbox; the daemon it left behind was stopped with its cgroup.
    let (_, procs, _) = m.exec(&["pgrep", "-f", "sleep 1000"]);
    assert!(
        procs.trim().is_empty(),
        "provision left a process behind: {procs}"
    );
    // W7: a task limit by default.
    assert_eq!(
        sh(&m, &format!("systemctl show -p TasksMax --value {UNIT}")).trim(),
        "512"
    );
    // The service's exposure, and that of the units the build and the
    // provision run in (their properties, analysed offline).
    let score = exposure(&sh(
        &m,
        &format!("systemd-analyze security --no-pager {UNIT} 2>&1 || true"),
    ));
    eprintln!("systemd-analyze security: service {score}");
    assert!(score <= 1.6, "service exposure {score}");
    for (what, umask) in [("build", "0022"), ("provision", "0077")] {
        let unit = machine::sandbox::Sandbox {
            name: format!("wsgi-hello-{what}"),
            user: "wsgi-hello".into(),
            dir: "/srv/hello/current/app".into(),
            writable: vec!["/srv/hello/venvs".into()],
            env_files: vec!["/run/wsgi/hello/build.env".into()],
            env: Vec::new(),
            timeout: Duration::from_secs(600),
            umask,
            extra: if what == "provision" {
                vec!["StateDirectory=wsgi/hello".into()]
            } else {
                Vec::new()
            },
        };
        let e = machine::sandbox::exposure(&unit, tmp).unwrap();
        eprintln!("systemd-analyze security: {what} unit {e}");
        assert!(e <= 2.0, "{what} unit exposure {e}");
    }

    // E1: a local build backend runs as the app's user, not root, and
    // cannot write outside the venv and its cache.
    let e1 = tmp.join("backend.tar.gz");
    python(LOCAL_BACKEND, &e1);
    m.ok(&["attach-resource", &format!("app={}", e1.display())]);
    blocked_with(&m, "installing requirements failed");
    let uid = sh(&m, "cat /var/cache/wsgi/hello/.installer/backend-uid");
    let app_uid = sh(&m, "id -u wsgi-hello");
    assert_eq!(
        uid.trim(),
        app_uid.trim(),
        "the build backend ran as uid {uid}"
    );
    assert_ne!(uid.trim(), "0");
    for p in [
        "/etc/pwned-by-backend",
        "/var/lib/pwned-by-backend",
        "/srv/hello/current/app/pwned",
    ] {
        let (code, _, _) = m.exec(&["test", "-e", p]);
        assert_ne!(code, 0, "the build backend wrote {p}");
    }
    assert_eq!(get(PORT, "/").0, 200, "the running release was lost");

    // Requirement lines that choose where code comes from are refused,
    // naming the line; the operator's index option is how.
    let index = app_tarball(
        &hello,
        &[(
            "requirements.txt",
            "flask\n--index-url https://127.0.0.1:9/simple\n",
        )],
        &tmp.join("index.tar.gz"),
    );
    m.ok(&["attach-resource", &format!("app={}", index.display())]);
    blocked_with(
        &m,
        "requirements.txt line 2: --index-url changes where code comes from",
    );
    let shadow = app_tarball(
        &hello,
        &[("requirements.txt", "-r /etc/shadow\n")],
        &tmp.join("shadow.tar.gz"),
    );
    m.ok(&["attach-resource", &format!("app={}", shadow.display())]);
    blocked_with(&m, "-r /etc/shadow leaves the application directory");
    assert!(
        !status(&m).contains("root:"),
        "a shadow line reached the status"
    );

    // E2: a dependency that installs a `setpriv` console script, with
    // provision_command set: root never runs it (nothing runs through a
    // PATH the venv chose).
    let app = tmp.join("setpriv-app");
    std::fs::create_dir_all(app.join("wheels")).unwrap();
    python(
        SETPRIV_WHEEL,
        &app.join("wheels/evilsetpriv-1.0-py3-none-any.whl"),
    );
    let st = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
        .arg(app.join("wheels"))
        .arg("gunicorn==27.0.1")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(hello.join("wsgi.py"), app.join("wsgi.py")).unwrap();
    std::fs::write(
        app.join("requirements.txt"),
        "evilsetpriv==1.0\ngunicorn==27.0.1\n",
    )
    .unwrap();
    m.ok(&[
        "config",
        "pip_cache_dir=wheels",
        "provision_command=python3 -c 'print(1)'",
    ]);
    m.ok(&["attach-resource", &format!("app={}", app.display())]);
    serving(&m);
    sh(&m, "test -x /srv/hello/current/venv/bin/setpriv");
    let (code, _, _) = m.exec(&["test", "-e", "/var/lib/setpriv-ran-as-root"]);
    assert_ne!(code, 0, "root ran the venv's setpriv");

    // E3: loader variables are refused as configuration, naming the option.
    m.ok(&[
        "config",
        "environment_variables=LD_PRELOAD=/srv/hello/current/evil.so",
    ]);
    blocked_with(&m, "environment_variables: LD_PRELOAD is reserved");
    m.ok(&[
        "config",
        "--reset",
        "environment_variables",
        "--reset",
        "pip_cache_dir",
        "--reset",
        "provision_command",
    ]);
    m.ok(&["attach-resource", &format!("app={}", good.display())]);
    serving(&m);

    // E4: a chain of links to /etc/shadow; nothing read, the status clean.
    let e4 = tmp.join("chain.tar.gz");
    python(LINK_CHAIN, &e4);
    m.ok(&["attach-resource", &format!("app={}", e4.display())]);
    blocked_with(&m, "resolves outside the archive");
    assert!(
        !status(&m).contains("root:"),
        "a shadow line reached the status"
    );

    // E5: a PAX size bomb is refused before a byte is written.
    let e5 = tmp.join("bomb.tar.gz");
    python(PAX_BOMB, &e5);
    assert!(std::fs::metadata(&e5).unwrap().len() < 2048);
    m.ok(&["attach-resource", &format!("app={}", e5.display())]);
    blocked_with(&m, "too large");

    // W1: modes from the archive are masked: no group or other write, no
    // set-id bit; the release is root's.
    let ww = tmp.join("world.tar.gz");
    let py = Command::new("python3")
        .args(["-c", WORLD_WRITABLE])
        .arg(&ww)
        .arg(hello.join("wsgi.py"))
        .status()
        .unwrap();
    assert!(py.success());
    m.ok(&["attach-resource", &format!("app={}", ww.display())]);
    serving(&m);
    let modes = sh(
        &m,
        "cd /srv/hello/current/app && stat -c '%a %U %n' . wsgi.py requirements.txt tool",
    );
    assert_eq!(
        modes.lines().collect::<Vec<_>>(),
        [
            "755 root .",
            "644 root wsgi.py",
            "644 root requirements.txt",
            "755 root tool"
        ],
        "{modes}"
    );

    // E7: a log path that is a link (planted by whoever can write its
    // directory): refused, the target untouched.
    sh(
        &m,
        "mkdir -p /var/log/planted && ln -sf /etc/shadow /var/log/planted/app.log",
    );
    let before = sh(&m, "stat -c '%a %U %G' /etc/shadow");
    m.ok(&["config", "wsgi_logfile_path=/var/log/planted/app.log"]);
    blocked_with(&m, "/var/log/planted/app.log");
    assert_eq!(
        sh(&m, "stat -c '%a %U %G' /etc/shadow"),
        before,
        "the link's target changed"
    );
    // Another package's log is never taken over either.
    m.ok(&["config", "wsgi_logfile_path=/var/log/dpkg.log"]);
    blocked_with(&m, "never taken over");
    m.ok(&["config", "--reset", "wsgi_logfile_path"]);
    serving(&m);

    // E8: an apt name that is a pattern, refused before apt runs.
    m.ok(&["config", "apt_dependencies=python3-sphinx."]);
    blocked_with(&m, "no package is named exactly python3-sphinx.");
    let (code, _, _) = m.exec(&["dpkg-query", "-W", "-f=${Status}", "python3-sphinx"]);
    let installed = code == 0
        && sh(
            &m,
            "dpkg-query -W -f='${Status}' python3-sphinx 2>/dev/null || true",
        )
        .contains("install ok installed");
    assert!(!installed, "the pattern installed packages");
    m.ok(&["config", "--reset", "apt_dependencies"]);

    // W3: a secret in the app's environment never reaches the status, even
    // when the app prints it in its traceback.
    let crash = app_tarball(
        &hello,
        &[(
            "wsgi.py",
            "import os\nraise RuntimeError('token ' + os.environ['API_TOKEN'])\n",
        )],
        &tmp.join("crash.tar.gz"),
    );
    m.ok(&[
        "config",
        "environment_variables=API_TOKEN=s3cr3t-t0ken-value",
    ]);
    m.ok(&["attach-resource", &format!("app={}", crash.display())]);
    blocked_with(&m, "RuntimeError: token ***");
    assert!(
        !m.ok(&["status"]).contains("s3cr3t-t0ken-value"),
        "the secret is in the status"
    );
    assert!(
        !m.log().contains("s3cr3t-t0ken-value"),
        "the secret is in juju-log"
    );
}

fn exposure(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.split_once("Overall exposure level for "))
        .and_then(|(_, rest)| rest.split_once(": "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure line: {text}"))
}
