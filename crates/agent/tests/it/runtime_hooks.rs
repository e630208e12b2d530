//! The built binary run as Juju runs it: cwd the charm dir, an environment
//! built from scratch, stand-in hook tools first on PATH (each records its
//! argv), side effects confined by SANDBOX_ROOT.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_wsgi-agent-sandbox");

struct Unit {
    dir: tempfile::TempDir,
}

impl Unit {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let charm = dir.path().join("charm");
        std::fs::create_dir_all(&charm).unwrap();
        for f in ["config.yaml", "layer.yaml", "metadata.yaml"] {
            std::fs::copy(root.join(f), charm.join(f)).unwrap();
        }
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        // Every tool of the contract, from its one list.
        for tool in juju_contract::Tool::ALL.iter().map(|t| t.name()) {
            let script = format!(
                "#!/bin/sh\nd=$(dirname \"$0\")\nprintf '%s' \"{tool}\" >>\"$d/calls\"\n\
                 for a in \"$@\"; do printf ' %s' \"$a\" >>\"$d/calls\"; done\necho >>\"$d/calls\"\n\
                 if [ -f \"$d/fail.{tool}\" ]; then echo \"ERROR $(cat \"$d/fail.{tool}\")\" >&2; exit 1; fi\n\
                 if [ -f \"$d/out.{tool}\" ]; then cat \"$d/out.{tool}\"; else echo null; fi\n"
            );
            // Juju's unit state, kept across hooks (state-set KEY=VALUE;
            // state-get KEY --format=json), as the agent's generation needs.
            let script = match tool {
                "state-set" => format!(
                    "{script}for kv in \"$@\"; do printf '%s' \"${{kv#*=}}\" >\"$d/state.${{kv%%=*}}\"; done\n"
                ),
                "state-get" => "#!/bin/sh\nd=$(dirname \"$0\")\nprintf 'state-get' >>\"$d/calls\"\n\
                     for a in \"$@\"; do printf ' %s' \"$a\" >>\"$d/calls\"; done\necho >>\"$d/calls\"\n\
                     if [ -f \"$d/state.$1\" ]; then printf '\"%s\"\\n' \"$(cat \"$d/state.$1\")\"; else echo '\"\"'; fi\n"
                .to_owned(),
                _ => script,
            };
            std::fs::write(tools.join(tool), script).unwrap();
            std::fs::set_permissions(tools.join(tool), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::create_dir_all(dir.path().join("sandbox")).unwrap();
        std::fs::write(dir.path().join("app.tar.gz"), b"not really a tarball").unwrap();
        let u = Unit { dir };
        u.answer("config-get", &defaults(&root.join("config.yaml")));
        u.answer(
            "resource-get",
            &u.dir.path().join("app.tar.gz").display().to_string(),
        );
        u.answer("is-leader", "true");
        u.answer("network-get", "\"10.0.0.3\"");
        u.answer("relation-ids", "[]");
        u
    }

    fn answer(&self, tool: &str, out: &str) {
        std::fs::write(
            self.dir.path().join("tools").join(format!("out.{tool}")),
            out,
        )
        .unwrap();
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("charm/.wsgi-agent/state.json")
    }

    /// Runs a hook; returns its exit code and the tool calls it made.
    fn hook(&self, name: &str) -> (i32, Vec<String>) {
        let calls = self.dir.path().join("tools/calls");
        let _ = std::fs::remove_file(&calls);
        let charm = self.dir.path().join("charm");
        let out = Command::new(AGENT)
            .current_dir(&charm)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.path().join("tools").display()),
            )
            .env("JUJU_DISPATCH_PATH", format!("hooks/{name}"))
            .env("JUJU_HOOK_NAME", name)
            .env("JUJU_UNIT_NAME", "hello/0")
            .env("JUJU_CHARM_DIR", &charm)
            .env("JUJU_MODEL_NAME", "test")
            .env("JUJU_VERSION", "3.6.14")
            .env("SANDBOX_ROOT", self.dir.path().join("sandbox"))
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(calls).unwrap_or_default();
        (
            out.status.code().unwrap_or(-1),
            calls.lines().map(str::to_owned).collect(),
        )
    }
}

/// config-get's answer: every option at its default, as Juju gives it.
fn defaults(config_yaml: &Path) -> String {
    #[derive(serde::Deserialize)]
    struct F {
        options: std::collections::BTreeMap<String, O>,
    }
    #[derive(serde::Deserialize)]
    struct O {
        default: serde_json::Value,
    }
    let f: F = serde_saphyr::from_str(&std::fs::read_to_string(config_yaml).unwrap()).unwrap();
    let m: serde_json::Map<String, serde_json::Value> =
        f.options.into_iter().map(|(k, o)| (k, o.default)).collect();
    serde_json::Value::Object(m).to_string()
}

#[test]
fn a_deploy_commits_state_and_reports_active() {
    let u = Unit::new();
    let (code, calls) = u.hook("install");
    assert_eq!(code, 0, "{calls:?}");
    assert!(calls.contains(&"open-port 80/tcp".to_owned()), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c
                .starts_with("status-set active -- Serving wsgi:application (release 1) on :80")),
        "{calls:?}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(u.state_file()).unwrap()).unwrap();
    let flags: Vec<&str> = state["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"wsgi.available") && flags.contains(&"wsgi.installed"),
        "{flags:?}"
    );
    let log = std::fs::read_to_string(u.dir.path().join("sandbox/commands.log")).unwrap();
    assert!(log.contains("systemctl start wsgi-hello.service"), "{log}");
    let env = u.dir.path().join("sandbox/etc/wsgi/hello/environment");
    assert_eq!(
        std::fs::metadata(env).unwrap().permissions().mode() & 0o777,
        0o640
    );

    for hook in ["leader-elected", "config-changed", "start"] {
        assert_eq!(u.hook(hook).0, 0);
    }
    // An idle update-status: one health request, no hook tool at all (the
    // config last seen is the config; the status has not changed; with
    // nothing to commit it need not ask which state Juju committed).
    let before = std::fs::read(u.state_file()).unwrap();
    let (code, calls) = u.hook("update-status");
    assert_eq!(code, 0);
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(std::fs::read(u.state_file()).unwrap(), before);
}

#[test]
fn a_failing_hook_exits_1_and_leaves_the_state_file_unchanged() {
    let u = Unit::new();
    assert_eq!(u.hook("install").0, 0);
    let before = std::fs::read(u.state_file()).unwrap();
    u.answer("config-get", r#"{"port": 8080}"#);
    std::fs::write(
        u.dir.path().join("tools/fail.open-port"),
        "port range conflicts",
    )
    .unwrap();
    let (code, calls) = u.hook("config-changed");
    assert_eq!(code, 1, "{calls:?}");
    assert_eq!(std::fs::read(u.state_file()).unwrap(), before);
    let logged = calls
        .iter()
        .find(|c| c.starts_with("juju-log --log-level ERROR"))
        .unwrap();
    assert!(
        logged.contains("open-port 8080/tcp: exit code 1: ERROR port range conflicts"),
        "{logged}"
    );
}

#[test]
fn a_bad_environment_fails_with_the_variable_named() {
    // The shipped binary itself: a bad environment fails before any host.
    let out = Command::new(env!("CARGO_BIN_EXE_wsgi-agent"))
        .env_clear()
        .env("JUJU_DISPATCH_PATH", "hooks/install")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JUJU_UNIT_NAME: not set"));
}
