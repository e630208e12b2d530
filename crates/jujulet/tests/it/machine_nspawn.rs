//! End to end: a real nspawn machine (root, systemd-container).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jujulet::machines::{self, CreateOptions, CreateStep, MachineError, MachineKind};

/// Destroys whatever the model dir records, even when the test panics.
struct Model {
    dir: tempfile::TempDir,
}

impl Model {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("jujulet-machine-test-")
                .tempdir()
                .unwrap(),
        }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        if let Err(e) = machines::destroy(self.dir.path()) {
            eprintln!("cleanup: {e}");
        }
    }
}

fn recorded_pids(model: &Path) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(model.join("machine.json")) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    ["nspawn", "leader"]
        .iter()
        .filter_map(|k| v[k]["pid"].as_u64())
        .map(|p| u32::try_from(p).unwrap())
        .collect()
}

fn recorded_name(model: &Path) -> String {
    let text = std::fs::read_to_string(model.join("machine.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["name"].as_str().unwrap().to_owned()
}

/// Container inits (systemd with `container=systemd-nspawn`) whose hostname
/// is `name`: an nspawn killed alone would leave one orphaned.
fn containers_named(name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if !environ
            .split(|b| *b == 0)
            .any(|v| v == b"container=systemd-nspawn")
        {
            continue;
        }
        let host = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-u", "hostname"])
            .output();
        if let Ok(h) = host
            && String::from_utf8_lossy(&h.stdout).trim() == name
        {
            found.push(pid);
        }
    }
    found
}

fn assert_nothing_left(model: &Path, pids: &[u32], name: &str) {
    let left = containers_named(name);
    assert!(left.is_empty(), "processes of {name} left: {left:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = model.to_string_lossy().into_owned();
    assert!(
        !mountinfo.contains(&needle),
        "mounts left under {needle}:\n{mountinfo}"
    );
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next().unwrap_or('?'));
        assert!(
            stat.is_empty() || state == Some('Z'),
            "process {pid} still alive: {stat}"
        );
    }
    assert!(!model.join("machine").exists(), "machine dir left behind");
    assert!(!model.join("machine.json").exists(), "record left behind");
}

fn env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("FOO".into(), "bar baz".into()),
    ]
}

fn sv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn nspawn_machine_boots_runs_and_goes_away() {
    crate::support::require_e2e();
    let model = Model::new();
    // A live, writable host dir inside (the overlay's lower layer is not
    // meant for files that change after boot): e.g. for hook-tool traffic.
    let shared = model.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("from-host"), "before boot\n").unwrap();
    let opts = CreateOptions {
        binds: vec![machines::Bind {
            host: shared.clone(),
            inside: "/var/lib/jujulet-shared".into(),
            read_only: false,
        }],
        ..CreateOptions::default()
    };
    let t = Instant::now();
    let mut m = machines::create_with(MachineKind::Nspawn, &model.path(), &opts, &|p| {
        eprintln!("create: {p}");
    })
    .unwrap();
    eprintln!("TIMING boot: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(m.kind(), MachineKind::Nspawn);

    let st = m
        .exec(
            &sv(&["systemctl", "is-system-running"]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    let st = String::from_utf8_lossy(&st.stdout).trim().to_owned();
    assert!(st == "running" || st == "degraded", "state {st:?}");

    // Services really run under that systemd; the host's database and
    // proxies that would take ports are masked.
    let out = m
        .exec(
            &sv(&["systemd-run", "--unit=jujulet-probe", "/bin/sleep", "300"]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = m
        .exec(
            &sv(&["systemctl", "is-active", "jujulet-probe"]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "active\n");
    let out = m
        .exec(
            &sv(&[
                "systemctl",
                "is-enabled",
                "postgresql.service",
                "haproxy.service",
            ]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "masked\nmasked\n");

    // Exactly the given environment, the given cwd.
    let out = m.exec(&sv(&["env"]), &env(), Path::new("/etc")).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nFOO=bar baz\n"
    );
    let out = m.exec(&sv(&["pwd"]), &env(), Path::new("/etc")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/etc\n");
    // PID 1 inside is systemd: we really are in the container.
    let out = m
        .exec(&sv(&["cat", "/proc/1/comm"]), &env(), Path::new("/"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "systemd\n");
    let out = m
        .exec(
            &sv(&["sh", "-c", "echo oops >&2; exit 3"]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    // A file placed through root() is there inside, and the host's own
    // /root is untouched.
    let name = format!("jujulet-test-{}.txt", std::process::id());
    std::fs::write(m.root().join("root").join(&name), "placed from the host\n").unwrap();
    assert!(!Path::new("/root").join(&name).exists());
    let out = m
        .exec(
            &sv(&["cat", &format!("/root/{name}")]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "placed from the host\n"
    );

    std::fs::write(shared.join("from-host"), "after boot\n").unwrap();
    let out = m
        .exec(
            &sv(&[
                "sh",
                "-c",
                "cat from-host; echo from-machine > from-machine",
            ]),
            &env(),
            Path::new("/var/lib/jujulet-shared"),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "after boot\n",
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("from-machine")).unwrap(),
        "from-machine\n"
    );

    // The timeout variant kills a command that runs too long.
    let t = Instant::now();
    let out = m
        .exec_timeout(
            &sv(&["sleep", "30"]),
            &env(),
            Path::new("/"),
            Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    assert!(t.elapsed() < Duration::from_secs(10));

    // Another CLI process re-attaches from machine.json.
    let again = machines::attach(&model.path()).unwrap();
    let out = again
        .exec(&sv(&["hostname"]), &env(), Path::new("/"))
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("jujulet-"));
    assert!(matches!(
        machines::create(MachineKind::Nspawn, &model.path(), &|_| ()),
        Err(MachineError::Exists(_))
    ));

    let pids = recorded_pids(&model.path());
    let name = recorded_name(&model.path());
    assert_eq!(pids.len(), 2, "nspawn and leader recorded");
    assert!(
        !containers_named(&name).is_empty(),
        "the probe finds the container"
    );
    let t = Instant::now();
    m.destroy().unwrap();
    eprintln!("TIMING destroy: {:.2} s", t.elapsed().as_secs_f64());
    assert_nothing_left(&model.path(), &pids, &name);
    m.destroy().unwrap();
    machines::destroy(&model.path()).unwrap();
    assert!(matches!(
        machines::attach(&model.path()),
        Err(MachineError::NoMachine(_))
    ));
    assert!(model.path().join("nspawn.log").exists());
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn failed_create_cleans_up_after_itself() {
    crate::support::require_e2e();
    let model = Model::new();
    let opts = CreateOptions {
        fail_after: Some(CreateStep::Spawn),
        ..CreateOptions::default()
    };
    let e = machines::create_with(MachineKind::Nspawn, &model.path(), &opts, &|_| ())
        .err()
        .unwrap();
    assert!(
        matches!(e, MachineError::Injected(CreateStep::Spawn)),
        "{e}"
    );
    assert_nothing_left(&model.path(), &[], &machines::nspawn_name(&model.path()));
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn destroy_cleans_up_a_half_created_machine() {
    crate::support::require_e2e();
    // As if the CLI had been killed: after the overlay, and after nspawn
    // was started but before the boot finished.
    for step in [CreateStep::Tmpfs, CreateStep::Overlay, CreateStep::Spawn] {
        let model = Model::new();
        let opts = CreateOptions {
            fail_after: Some(step),
            keep_on_failure: true,
            ..CreateOptions::default()
        };
        let e = machines::create_with(MachineKind::Nspawn, &model.path(), &opts, &|_| ())
            .err()
            .unwrap();
        assert!(matches!(e, MachineError::Injected(s) if s == step), "{e}");
        assert!(
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(&*model.path().to_string_lossy()),
            "{step:?}: the simulated crash should leave mounts"
        );
        let pids = recorded_pids(&model.path());
        let name = recorded_name(&model.path());
        assert_eq!(name, machines::nspawn_name(&model.path()));
        // attach refuses a machine whose creation never finished.
        assert!(matches!(
            machines::attach(&model.path()),
            Err(MachineError::Gone { .. })
        ));
        machines::destroy(&model.path()).unwrap();
        assert_nothing_left(&model.path(), &pids, &name);
    }
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn ctrl_c_during_deploy_removes_what_was_set_up() {
    use std::io::BufRead;
    crate::support::require_e2e();
    let model = Model::new();
    // The smallest charm: the deploy is interrupted long before a hook.
    let charm = model.dir.path().join("charm");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(charm.join("metadata.yaml"), "name: tiny\n").unwrap();
    std::fs::write(charm.join("dispatch"), "#!/bin/sh\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jujulet"))
        .arg("--model")
        .arg(model.path())
        .arg("deploy")
        .arg(&charm)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut out = String::new();
    let mut sent = false;
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        // Ctrl-C while the overlay is being mounted: create must notice at
        // its next check, tear down and report.
        if !sent && line.contains("mounting the host's /") {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
                nix::sys::signal::Signal::SIGINT,
            )
            .unwrap();
            sent = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(sent, "the deploy never mounted: {out}");
    assert!(!status.success(), "{status}\n{out}");
    assert!(
        out.contains("interrupted; what was set up has been removed"),
        "{out}"
    );
    assert_nothing_left(&model.path(), &[], &machines::nspawn_name(&model.path()));
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_machine_that_died_is_reported_and_destroyed() {
    crate::support::require_e2e();
    let model = Model::new();
    let m = machines::create(MachineKind::Nspawn, &model.path(), &|_| ()).unwrap();
    let pids = recorded_pids(&model.path());
    let name = recorded_name(&model.path());
    // The container's systemd dies (SIGKILL to a PID namespace's init ends
    // it all); nspawn then exits by itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pids[1]).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t = Instant::now();
    loop {
        match machines::attach(&model.path()) {
            Err(MachineError::Gone { .. }) => break,
            Err(e) => panic!("{e}"),
            Ok(_) => {
                assert!(t.elapsed() < Duration::from_secs(20), "still attached");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let e = m.exec(&sv(&["true"]), &env(), Path::new("/")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e}");
    drop(m);
    machines::destroy(&model.path()).unwrap();
    assert_nothing_left(&model.path(), &pids, &name);
}
