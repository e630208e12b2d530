//! Shared by jujulet's tests: what an end-to-end test needs of this machine,
//! the charm under test as it ships (a packed .charm), a model in a temp dir
//! driven through the jujulet CLI, app tarballs, plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use jujulet::machines::{self, MachineKind};

/// Panics, naming what is missing, unless this machine has what the
/// end-to-end tests need: root, systemd-nspawn, PostgreSQL, HAProxy and the
/// Python test tools. Called by every test that the `e2e` feature enables,
/// so with the feature a missing tool is a failure, never a silent pass.
pub(crate) fn require_e2e() {
    static CHECKED: OnceLock<Vec<String>> = OnceLock::new();
    let missing = CHECKED.get_or_init(|| {
        let mut missing = Vec::new();
        if !nix::unistd::geteuid().is_root() {
            missing.push("root".to_owned());
        }
        if let Err(e) = machines::preflight(MachineKind::Nspawn) {
            missing.push(e.to_string());
        }
        for kind in [
            jujulet::standin::Kind::Postgresql,
            jujulet::standin::Kind::Haproxy,
            jujulet::standin::Kind::Mongodb,
        ] {
            if let Err(e) = jujulet::standin::preflight(kind) {
                missing.push(e.to_string());
            }
        }
        for p in ["/usr/bin/psql", "/usr/bin/python3", "/usr/bin/wrk"] {
            if !Path::new(p).exists() {
                missing.push(p.to_owned());
            }
        }
        missing
    });
    assert!(
        missing.is_empty(),
        "this end-to-end test needs {} (run eval \"$(scripts/lib/install-deps)\")",
        missing.join("; ")
    );
}

/// The repository root (the charm's sources).
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The charm under test, packed as it ships: `$WSGI_TEST_CHARM` (CI packs
/// it once, with the release profile, before the tests), else packed now by
/// scripts/pack with the dev profile into target/test-charm/.
pub(crate) fn charm() -> PathBuf {
    static CHARM: OnceLock<PathBuf> = OnceLock::new();
    CHARM
        .get_or_init(|| {
            if let Some(c) = std::env::var_os("WSGI_TEST_CHARM").filter(|c| !c.is_empty()) {
                let c = PathBuf::from(c);
                assert!(c.is_file(), "WSGI_TEST_CHARM={} is not a file", c.display());
                return c;
            }
            let out = repo().join("target/test-charm/wsgi.charm");
            let st = Command::new(repo().join("scripts/pack"))
                .arg(&out)
                .env("WSGI_PACK_PROFILE", "dev")
                .current_dir(repo())
                .status()
                .unwrap();
            assert!(st.success(), "scripts/pack failed");
            out
        })
        .clone()
}

/// The example charm built on the layer (examples/layered-charm), packed by
/// the same script: `$WSGI_TEST_LAYERED_CHARM`, else packed now (dev profile).
pub(crate) fn layered_charm() -> PathBuf {
    static CHARM: OnceLock<PathBuf> = OnceLock::new();
    CHARM
        .get_or_init(|| {
            if let Some(c) = std::env::var_os("WSGI_TEST_LAYERED_CHARM").filter(|c| !c.is_empty()) {
                return PathBuf::from(c);
            }
            let out = repo().join("target/test-charm/layered.charm");
            let st = Command::new(repo().join("scripts/pack"))
                .args(["--charm", "examples/layered-charm/charm"])
                .args(["--bin", "layered-charm:layered-agent"])
                .arg(&out)
                .env("WSGI_PACK_PROFILE", "dev")
                .current_dir(repo())
                .status()
                .unwrap();
            assert!(st.success(), "scripts/pack of the layered charm failed");
            out
        })
        .clone()
}

/// A gzipped tarball of `dir` plus `extra` files (name, content) overriding it.
pub(crate) fn app_tarball(dir: &Path, extra: &[(&str, &str)], out: &Path) -> PathBuf {
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

/// The machine the end-to-end tests deploy on: a cloud image (minimal
/// Debian 12) unless WSGI_TEST_MACHINE says `nspawn` (the host's OS: faster,
/// but it hides a missing install step).
pub(crate) fn machine_kind() -> String {
    std::env::var("WSGI_TEST_MACHINE").unwrap_or_else(|_| "cloud-image".into())
}

/// A model directory and the jujulet CLI on it; destroyed on drop.
pub(crate) struct Model {
    pub tmp: tempfile::TempDir,
}

impl Model {
    pub(crate) fn new(prefix: &str) -> Self {
        // Under /tmp: the PostgreSQL stand-in (user postgres) must reach it.
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        Model { tmp }
    }

    pub(crate) fn dir(&self) -> PathBuf {
        self.tmp.path().join("model")
    }

    pub(crate) fn jujulet(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_jujulet"))
            .arg("--model")
            .arg(self.dir())
            .args(args)
            .env("JUJULET_MACHINE", machine_kind())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs jujulet and asserts success.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.jujulet(args);
        assert!(ok, "jujulet {args:?} failed:\n{out}\n{err}\n{}", self.log());
        out
    }

    pub(crate) fn log(&self) -> String {
        self.jujulet(&["debug-log", "--tail", "40"]).1
    }

    /// The arguments that deploy the charm under test as `name`.
    pub(crate) fn deploy_args(name: &str, tarball: Option<&Path>, config: &[&str]) -> Vec<String> {
        let mut args = vec![
            "deploy".to_owned(),
            charm().display().to_string(),
            "--name".into(),
            name.into(),
        ];
        if let Some(t) = tarball {
            args.push("--resource".into());
            args.push(format!("app={}", t.display()));
        }
        for c in config {
            args.push("--config".into());
            args.push((*c).to_owned());
        }
        args
    }

    /// Deploys the charm under test with an app tarball.
    pub(crate) fn deploy(&self, name: &str, tarball: &Path, config: &[&str]) -> String {
        let args = Self::deploy_args(name, Some(tarball), config);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args)
    }

    /// The unit's line of `jujulet status`.
    pub(crate) fn unit_status(&self) -> String {
        let out = self.ok(&["status"]);
        out.lines().nth(1).unwrap_or("").to_owned()
    }

    /// Runs a command in the machine; (exit code, stdout, stderr).
    pub(crate) fn exec(&self, argv: &[&str]) -> (i32, String, String) {
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
    pub(crate) fn root(&self) -> PathBuf {
        machines::attach(&self.dir()).unwrap().root().to_owned()
    }

    /// MainPID of a service in the machine.
    pub(crate) fn main_pid(&self, unit: &str) -> u32 {
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
pub(crate) fn get(port: u16, path: &str) -> (u16, String) {
    get_with(port, path, &[])
}

/// GET with extra header lines.
pub(crate) fn get_with(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
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
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
    (code, body)
}

/// Polls `f` until it returns true or `limit` passes.
pub(crate) fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// proptest's seeded generator, so a failing run reproduces from its seed.
pub(crate) struct Rng(proptest::test_runner::TestRng);

impl Rng {
    pub(crate) fn seeded(seed: u64) -> Rng {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Rng(proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &bytes,
        ))
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        use proptest::prelude::Rng as _;
        self.0.next_u64() % n.max(1)
    }
}
