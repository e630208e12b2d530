//! Safe releases end to end (issue 15), in a real nspawn machine with real
//! gunicorn and wrk on loopback: new code that cannot install never serves
//! (not after a service restart, not after a reboot), code that crashes is
//! rolled back within health_check_timeout, restarts refuse no connection
//! (systemd holds the socket), rollback is one action, and a stock Django
//! project keeps its SQLite rows in STATE_DIRECTORY across releases and a
//! reboot.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Model, app_tarball, eventually, get, repo};

const UNIT: &str = "wsgi-hello.service";

fn sh(m: &Model, script: &str) -> String {
    let (code, out, err) = m.exec(&["sh", "-c", script]);
    assert_eq!(code, 0, "{script}: {out}{err}");
    out
}

fn hello(m: &Model, name: &str, extra: &[(&str, &str)]) -> std::path::PathBuf {
    app_tarball(
        &repo().join("examples/hello"),
        extra,
        &m.tmp.path().join(name),
    )
}

/// wrk on loopback for `secs`, 16 connections; a generous per-request
/// timeout (a restart queues connections for a moment, it must not fail them).
struct Load(Child);

/// What wrk counted.
#[derive(Debug)]
struct Counted {
    requests: u64,
    failed: u64,
    report: String,
}

impl Load {
    fn start(port: u16, secs: u32) -> Load {
        let child = Command::new("wrk")
            .args([
                "-t2",
                "-c16",
                &format!("-d{secs}s"),
                "--timeout",
                "20s",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Let it reach a steady state before the change.
        std::thread::sleep(Duration::from_secs(2));
        Load(child)
    }

    fn finish(self) -> Counted {
        let out = self.0.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let requests = report
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0);
        // "Socket errors: connect 0, read 3, write 0, timeout 0" and
        // "Non-2xx or 3xx responses: 12".
        let mut failed = 0;
        for line in report.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("Socket errors:") {
                failed += rest
                    .split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>();
            }
            if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                failed += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
        Counted {
            requests,
            failed,
            report,
        }
    }
}

fn release_serving(port: u16) -> String {
    get(port, "/env?name=WSGI_RELEASE").1.trim().to_owned()
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn bad_releases_never_serve_restarts_drop_nothing_and_rollback_is_one_action() {
    crate::support::require_e2e();
    const PORT: u16 = 18800;
    let m = Model::new("wsgi-releases-");
    let good = hello(&m, "good.tar.gz", &[]);
    m.deploy(
        "hello",
        &good,
        &[
            &format!("port={PORT}"),
            "health_check_timeout=8",
            "workers=2",
        ],
    );
    assert_eq!(get(PORT, "/"), (200, "Hello, World!\n".into()));
    assert_eq!(release_serving(PORT), "1");

    // An uninstallable requirement: never switched to, named in the status.
    let bad = hello(
        &m,
        "bad.tar.gz",
        &[(
            "requirements.txt",
            "no-such-package-wsgi-charm-test==9.9.9\n",
        )],
    );
    m.ok(&["attach-resource", &format!("app={}", bad.display())]);
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains("no-such-package-wsgi-charm-test"),
        "{st}"
    );
    let message = st.split("idle").nth(1).unwrap_or("").trim().to_owned();
    assert!(message.chars().count() <= 200, "one short line: {message}");
    assert_eq!(release_serving(PORT), "1");
    // Whatever restarts it, the service runs the release that passed.
    sh(&m, &format!("systemctl restart {UNIT}"));
    assert!(eventually(Duration::from_secs(20), || get(PORT, "/").0 == 200));
    assert_eq!(release_serving(PORT), "1");
    // A config change meanwhile is live on the old release.
    m.ok(&["config", "environment_variables=GREETING=meanwhile"]);
    assert_eq!(get(PORT, "/"), (200, "Hello, meanwhile!\n".into()));
    assert!(m.unit_status().contains("no-such-package-wsgi-charm-test"));
    // And after a reboot (the start hook runs again, as in Juju).
    m.ok(&["reboot"]);
    assert!(eventually(Duration::from_secs(30), || get(PORT, "/").0 == 200));
    assert_eq!(release_serving(PORT), "1");
    assert_eq!(get(PORT, "/"), (200, "Hello, meanwhile!\n".into()));
    let st = m.unit_status();
    assert!(st.contains("no-such-package-wsgi-charm-test"), "{st}");
    // A good release afterwards recovers.
    let v2 = hello(&m, "v2.tar.gz", &[("VERSION", "2\n")]);
    m.ok(&["attach-resource", &format!("app={}", v2.display())]);
    let st = m.unit_status();
    assert!(st.contains("active"), "{st}");
    let v2_id = release_serving(PORT);
    assert_ne!(v2_id, "1");

    // A release that crashes at import, attached under load: rolled back
    // within health_check_timeout; the requests queued meanwhile are
    // served by the release that comes back.
    let crash = hello(
        &m,
        "crash.tar.gz",
        &[("wsgi.py", "raise RuntimeError('crashes at import')\n")],
    );
    let load = Load::start(PORT, 30);
    let started = std::time::Instant::now();
    m.ok(&["attach-resource", &format!("app={}", crash.display())]);
    let took = started.elapsed();
    let counted = load.finish();
    eprintln!(
        "crash at import: rolled back in {:.1} s; wrk: {} requests, {} failed\n{}",
        took.as_secs_f64(),
        counted.requests,
        counted.failed,
        counted.report
    );
    let st = m.unit_status();
    assert!(
        st.contains("blocked")
            && st.contains("failed its health check")
            && st.contains(&format!("rolled back to {v2_id}")),
        "{st}"
    );
    assert_eq!(release_serving(PORT), v2_id);
    assert!(counted.requests > 100, "{}", counted.report);
    assert_eq!(counted.failed, 0, "{}", counted.report);

    // A restart-class change under load: no failed request (systemd keeps
    // the socket; connections wait in its backlog while gunicorn restarts).
    let pid = m.main_pid(UNIT);
    let load = Load::start(PORT, 10);
    m.ok(&["config", "tasks_max=1024"]);
    let counted = load.finish();
    eprintln!(
        "restart under load: wrk {} requests, {} failed\n{}",
        counted.requests, counted.failed, counted.report
    );
    assert_ne!(m.main_pid(UNIT), pid, "it was a restart");
    assert!(counted.requests > 100, "{}", counted.report);
    assert_eq!(counted.failed, 0, "{}", counted.report);
    // And a plain `systemctl restart` under load.
    let load = Load::start(PORT, 8);
    sh(&m, &format!("systemctl restart {UNIT}"));
    let counted = load.finish();
    eprintln!(
        "systemctl restart under load: wrk {} requests, {} failed",
        counted.requests, counted.failed
    );
    assert_eq!(counted.failed, 0, "{}", counted.report);

    // list-releases, then rollback to the previous release under load.
    let out = m.ok(&["run", "hello/0", "list-releases"]);
    assert!(out.starts_with("Running operation "), "{out}");
    assert!(
        out.contains(&format!("live: \"{v2_id}\""))
            || out.contains(&format!("live: '{v2_id}'"))
            || out.contains(&format!("live: {v2_id}")),
        "{out}"
    );
    assert!(out.contains("health: passed"), "{out}");
    assert!(
        out.contains("failed: "),
        "the crashed release is listed: {out}"
    );
    let load = Load::start(PORT, 10);
    let out = m.ok(&["run", "hello/0", "rollback"]);
    let counted = load.finish();
    eprintln!(
        "rollback under load: wrk {} requests, {} failed\n{out}",
        counted.requests, counted.failed
    );
    assert!(
        out.contains("rolled-back-to: \"1\"")
            || out.contains("rolled-back-to: '1'")
            || out.contains("rolled-back-to: 1"),
        "{out}"
    );
    assert!(out.contains("migrations are not undone"), "{out}");
    assert_eq!(release_serving(PORT), "1");
    assert_eq!(counted.failed, 0, "{}", counted.report);
    let out = m.ok(&["run", "hello/0", "list-releases"]);
    assert!(
        out.contains("live: \"1\"") || out.contains("live: '1'") || out.contains("live: 1"),
        "{out}"
    );
    // Juju's strictness: unknown parameters and actions are refused.
    let (ok, _, err) = m.jujulet(&["run", "hello/0", "rollback", "bogus=1"]);
    assert!(
        !ok && err.contains("additional property \"bogus\""),
        "{err}"
    );
    let (ok, _, err) = m.jujulet(&["run", "hello/0", "no-such-action"]);
    assert!(!ok && err.contains("not defined"), "{err}");
    let (ok, out, err) = m.jujulet(&["run", "hello/0", "rollback", "to=99"]);
    assert!(!ok && out.contains("no release 99"), "{out}{err}");
}

/// A stock Django project (as `django-admin startproject mysite` writes
/// it), its database moved to systemd's STATE_DIRECTORY.
const DJANGO: &[(&str, &str)] = &[
    (
        "manage.py",
        "#!/usr/bin/env python\nimport os\nimport sys\n\n\ndef main():\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n    from django.core.management import execute_from_command_line\n    execute_from_command_line(sys.argv)\n\n\nif __name__ == '__main__':\n    main()\n",
    ),
    ("mysite/__init__.py", ""),
    (
        "mysite/settings.py",
        "import os\nfrom pathlib import Path\n\nBASE_DIR = Path(__file__).resolve().parent.parent\nSECRET_KEY = 'django-insecure-test-only'\nDEBUG = False\nALLOWED_HOSTS = ['*']\nINSTALLED_APPS = [\n    'django.contrib.admin',\n    'django.contrib.auth',\n    'django.contrib.contenttypes',\n    'django.contrib.sessions',\n    'django.contrib.messages',\n    'django.contrib.staticfiles',\n]\nMIDDLEWARE = [\n    'django.middleware.security.SecurityMiddleware',\n    'django.contrib.sessions.middleware.SessionMiddleware',\n    'django.middleware.common.CommonMiddleware',\n    'django.middleware.csrf.CsrfViewMiddleware',\n    'django.contrib.auth.middleware.AuthenticationMiddleware',\n    'django.contrib.messages.middleware.MessageMiddleware',\n    'django.middleware.clickjacking.XFrameOptionsMiddleware',\n]\nROOT_URLCONF = 'mysite.urls'\nTEMPLATES = [\n    {\n        'BACKEND': 'django.template.backends.django.DjangoTemplates',\n        'DIRS': [],\n        'APP_DIRS': True,\n        'OPTIONS': {'context_processors': [\n            'django.template.context_processors.request',\n            'django.contrib.auth.context_processors.auth',\n            'django.contrib.messages.context_processors.messages',\n        ]},\n    },\n]\nWSGI_APPLICATION = 'mysite.wsgi.application'\n# The one change to the stock settings: the database lives in the data\n# directory systemd gives the service (and provision_command).\nDATABASES = {\n    'default': {\n        'ENGINE': 'django.db.backends.sqlite3',\n        'NAME': Path(os.environ['STATE_DIRECTORY']) / 'db.sqlite3',\n    }\n}\nLANGUAGE_CODE = 'en-us'\nTIME_ZONE = 'UTC'\nUSE_I18N = True\nUSE_TZ = True\nSTATIC_URL = 'static/'\nDEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'\n",
    ),
    (
        "mysite/urls.py",
        "from django.contrib import admin\nfrom django.urls import path\n\nurlpatterns = [\n    path('admin/', admin.site.urls),\n]\n",
    ),
    (
        "mysite/wsgi.py",
        "import os\n\nfrom django.core.wsgi import get_wsgi_application\n\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n\napplication = get_wsgi_application()\n",
    ),
    ("requirements.txt", "Django>=5.2,<5.3\n"),
];

fn django_tarball(m: &Model, name: &str, extra: &str) -> std::path::PathBuf {
    let stage = m.tmp.path().join(format!("{name}.d"));
    for (path, text) in DJANGO {
        let p = stage.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    std::fs::write(stage.join("RELEASE"), extra).unwrap();
    let out = m.tmp.path().join(name);
    let st = Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(&stage)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn users(m: &Model) -> String {
    sh(
        m,
        "python3 -c \"import sqlite3; print(sqlite3.connect('/var/lib/wsgi/mysite/db.sqlite3').execute('select username from auth_user order by id').fetchall())\"",
    )
    .trim()
    .to_owned()
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_stock_django_project_keeps_its_sqlite_rows_across_releases_and_a_reboot() {
    crate::support::require_e2e();
    const PORT: u16 = 18810;
    let m = Model::new("wsgi-django-");
    let v1 = django_tarball(&m, "v1.tar.gz", "1\n");
    m.deploy(
        "mysite",
        &v1,
        &[
            &format!("port={PORT}"),
            "wsgi_module=mysite.wsgi:application",
            "health_check_path=/admin/login/",
            "provision_command=python manage.py migrate --noinput",
        ],
    );
    let st = m.unit_status();
    assert!(st.contains("active"), "{st}\n{}", m.log());
    assert_eq!(get(PORT, "/admin/login/").0, 200);
    // The data directory: the app's own, 0700, outside the release.
    let ls = sh(&m, "stat -c '%a %U' /var/lib/wsgi/mysite");
    assert_eq!(ls.trim(), "700 wsgi-mysite");
    // A row, written as the app would (its user, its environment).
    sh(
        &m,
        "systemd-run --wait --pipe --collect --uid=wsgi-mysite --gid=wsgi-mysite -p StateDirectory=wsgi/mysite \
         -p WorkingDirectory=/srv/mysite/current/app \
         /srv/mysite/current/venv/bin/python manage.py shell -c \
         \"from django.contrib.auth.models import User; User.objects.create_user('alice')\"",
    );
    assert_eq!(users(&m), "[('alice',)]");
    // The app's environment names where it runs.
    let (_, env, _) = m.exec(&["cat", "/etc/wsgi/mysite/environment"]);
    for want in [
        "WSGI_DATA_DIR=\"/var/lib/wsgi/mysite\"",
        "WSGI_CACHE_DIR=\"/var/cache/wsgi/mysite\"",
        "WSGI_RELEASE=\"1\"",
        "WSGI_APP_DIR=\"/srv/mysite/releases/1/app\"",
    ] {
        assert!(env.contains(want), "{want} not in {env}");
    }

    // A new release: its migrations run, the rows stay.
    let v2 = django_tarball(&m, "v2.tar.gz", "2\n");
    m.ok(&["attach-resource", &format!("app={}", v2.display())]);
    let st = m.unit_status();
    assert!(st.contains("active") && st.contains("release 2"), "{st}");
    assert_eq!(users(&m), "[('alice',)]");
    // Both releases share one venv (the same requirements).
    let venvs = sh(&m, "ls /srv/mysite/venvs | wc -l");
    assert_eq!(venvs.trim(), "1");

    // A reboot: the service comes back on its own, the rows are there.
    m.ok(&["reboot"]);
    assert!(eventually(Duration::from_secs(30), || get(
        PORT,
        "/admin/login/"
    )
    .0 == 200));
    assert_eq!(users(&m), "[('alice',)]");
    assert!(m.unit_status().contains("active"));
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_machine_without_python3_venv_or_pip_deploys_with_the_charms_uv() {
    crate::support::require_e2e();
    const PORT: u16 = 18820;
    let m = Model::new("wsgi-bare-");
    let args = Model::deploy_args("hello", None, &[&format!("port={PORT}")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    m.ok(&args);
    assert!(m.unit_status().contains("attach the app resource"));
    // What a bare cloud image lacks: no venv module, no pip.
    sh(
        &m,
        "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q python3-venv python3-pip python3.11-venv >/dev/null 2>&1; \
         ! python3 -c 'import ensurepip' 2>/dev/null && ! python3 -m pip --version 2>/dev/null",
    );
    let tar = hello(&m, "hello.tar.gz", &[]);
    m.ok(&["attach-resource", &format!("app={}", tar.display())]);
    let st = m.unit_status();
    assert!(st.contains("active"), "{st}\n{}", m.log());
    assert_eq!(get(PORT, "/"), (200, "Hello, World!\n".into()));
    // Built by the charm's uv, without an apt step: python3-venv is still
    // not installed, and the venv has no pip.
    let (code, _, _) = m.exec(&["dpkg", "-s", "python3-venv"]);
    assert_ne!(code, 0, "python3-venv was installed");
    assert!(sh(&m, "test -x /usr/local/lib/wsgi-charm/uv && echo ok").contains("ok"));
    assert!(
        sh(
            &m,
            "test -x /srv/hello/current/venv/bin/gunicorn && echo ok"
        )
        .contains("ok")
    );
    let (code, _, _) = m.exec(&["test", "-e", "/srv/hello/current/venv/bin/pip"]);
    assert_ne!(code, 0, "a pip in the venv: not uv's");
}
