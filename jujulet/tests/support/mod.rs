//! Shared by the end-to-end tests of the charm: a model in a temp dir driven
//! through the jujulet CLI, the agent binary, app tarballs, plain HTTP.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jujulet::machine::{self, MachineKind};

/// Whether this machine can run nspawn machines (root, systemd-nspawn);
/// panics instead of skipping when WSGI_REQUIRE_ALL=1.
pub fn can_run(what: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    let why = if !root {
        Some("root".to_owned())
    } else {
        machine::preflight(MachineKind::Nspawn)
            .err()
            .map(|e| e.to_string())
    };
    match why {
        None => true,
        Some(w) => {
            if std::env::var("WSGI_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{what} needs {w} (WSGI_REQUIRE_ALL=1)");
            }
            eprintln!("SKIP: {what} needs {w}");
            false
        }
    }
}

/// The repository root (the charm directory).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The wsgi-agent binary of this build (target/<profile>/wsgi-agent), with
/// wsgi-dbcheck beside it; both built when a `cargo test -p jujulet` did not
/// build them.
pub fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("wsgi-agent");
    if !bin.is_file() || !profile_dir.join("wsgi-dbcheck").is_file() {
        let target = profile_dir.parent().unwrap();
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "agent", "--bin", "wsgi-agent"])
            .args(["-p", "dbcheck", "--bin", "wsgi-dbcheck"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(st.success(), "building wsgi-agent failed");
    }
    bin
}

/// A gzipped tarball of `dir` plus `extra` files (name, content) overriding it.
pub fn app_tarball(dir: &Path, extra: &[(&str, &str)], out: &Path) -> PathBuf {
    let stage = out.with_extension("stage");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).unwrap();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        std::fs::copy(e.path(), stage.join(e.file_name())).unwrap();
    }
    for (name, content) in extra {
        std::fs::write(stage.join(name), content).unwrap();
    }
    let st = Command::new("tar")
        .arg("czf")
        .arg(out)
        .arg("-C")
        .arg(&stage)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    out.to_owned()
}

/// A model directory and the jujulet CLI on it; destroyed on drop.
pub struct Model {
    pub tmp: tempfile::TempDir,
}

impl Model {
    pub fn new(prefix: &str) -> Self {
        // Under /tmp: the PostgreSQL stand-in (user postgres) must reach it.
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        Model { tmp }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("model")
    }

    pub fn jujulet(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_jujulet"))
            .arg("--model")
            .arg(self.dir())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs jujulet and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.jujulet(args);
        assert!(ok, "jujulet {args:?} failed:\n{out}\n{err}\n{}", self.log());
        out
    }

    pub fn log(&self) -> String {
        self.jujulet(&["debug-log", "--tail", "40"]).1
    }

    /// Deploys the repository's charm with the agent and an app tarball.
    pub fn deploy(&self, name: &str, tarball: &Path, config: &[&str]) -> String {
        let agent = agent_bin();
        let repo = repo();
        let res = format!("app={}", tarball.display());
        let mut args = vec![
            "deploy",
            repo.to_str().unwrap(),
            "--agent",
            agent.to_str().unwrap(),
            "--resource",
            &res,
            "--name",
            name,
        ];
        for c in config {
            args.push("--config");
            args.push(c);
        }
        self.ok(&args)
    }

    /// The unit's line of `jujulet status`.
    pub fn unit_status(&self) -> String {
        let out = self.ok(&["status"]);
        out.lines().nth(1).unwrap_or("").to_owned()
    }

    /// Runs a command in the machine; (exit code, stdout, stderr).
    pub fn exec(&self, argv: &[&str]) -> (i32, String, String) {
        let mut args = vec!["exec", "--"];
        args.extend_from_slice(argv);
        let out = Command::new(env!("CARGO_BIN_EXE_jujulet"))
            .arg("--model")
            .arg(self.dir())
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The host path of the machine's root.
    pub fn root(&self) -> PathBuf {
        machine::attach(&self.dir()).unwrap().root().to_owned()
    }

    /// MainPID of a service in the machine.
    pub fn main_pid(&self, unit: &str) -> u32 {
        let (_, out, _) = self.exec(&["systemctl", "show", "--property=MainPID", "--value", unit]);
        out.trim().parse().unwrap_or(0)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.jujulet(&["destroy"]);
    }
}

/// GET http://127.0.0.1:port{path}: (status code, body); 0 when nothing answers.
pub fn get(port: u16, path: &str) -> (u16, String) {
    get_with(port, path, &[])
}

/// GET with extra header lines.
pub fn get_with(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    ) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (code, body)
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// The gunicorn the charm pins.
pub const GUNICORN: &str = agent::host::venv::GUNICORN;
