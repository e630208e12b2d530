//! hookenv against executables standing in for the hook tools: each records
//! its argv and stdin, and prints a canned answer. Proves the exact argument
//! forms and that no value is read twice in one hook.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hookenv::{HookTools, ProcessRunner, Tool, ToolError, WorkloadStatus};

use crate::cases;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Every tool of the contract, from its one list.
        for tool in Tool::ALL.iter().map(|t| t.name()) {
            let script = format!(
                "#!/bin/sh\nd=$(dirname \"$0\")\nprintf '%s' \"{tool}\" >>\"$d/calls\"\nfor a in \"$@\"; do printf ' %s' \"$a\" >>\"$d/calls\"; done\n\
                 if [ ! -t 0 ] && [ -p /dev/stdin ]; then printf ' <<<' >>\"$d/calls\"; cat >>\"$d/calls\"; fi\n\
                 echo >>\"$d/calls\"\n\
                 if [ -f \"$d/fail.{tool}\" ]; then cat \"$d/fail.{tool}\" >&2; exit 1; fi\n\
                 if [ -f \"$d/out.{tool}\" ]; then cat \"$d/out.{tool}\"; else echo null; fi\n"
            );
            let path = dir.path().join(tool);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fake { dir }
    }
    fn answer(&self, tool: &str, out: &str) -> &Self {
        std::fs::write(self.dir.path().join(format!("out.{tool}")), out).unwrap();
        self
    }
    fn fail(&self, tool: &str, stderr: &str) {
        std::fs::write(self.dir.path().join(format!("fail.{tool}")), stderr).unwrap();
    }
    fn tools(&self) -> HookTools {
        HookTools::new(Box::new(ProcessRunner::in_dir(self.dir.path())))
    }
    fn calls(&self) -> Vec<String> {
        read(&self.dir.path().join("calls"))
    }
}

fn read(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn bag(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn exact_argument_forms() {
    let f = Fake::new();
    f.answer(
        "config-get",
        r#"{"port": 80, "wsgi_module": "wsgi:application"}"#,
    )
    .answer("relation-ids", r#"["website:2","website:10"]"#)
    .answer("relation-list", r#"["haproxy/0"]"#)
    .answer("relation-get", r#"{"ingress-address": "10.0.0.9"}"#)
    .answer("is-leader", "true")
    .answer("network-get", r#""10.0.0.3""#)
    .answer(
        "resource-get",
        "/var/lib/juju/agents/unit-wsgi-0/resources/app/app.tar.gz",
    )
    .answer("secret-get", r#"{"username": "u", "password": "p"}"#);
    let t = f.tools();
    assert_eq!(t.config().unwrap()["port"], 80);
    assert_eq!(
        t.relation_ids("website").unwrap(),
        ["website:2", "website:10"]
    );
    assert_eq!(t.relation_list("website:2").unwrap(), ["haproxy/0"]);
    assert_eq!(
        t.relation_get("website:2", "haproxy/0", false).unwrap()["ingress-address"],
        "10.0.0.9"
    );
    t.relation_get("database:3", "postgresql", true).unwrap();
    assert!(t.is_leader().unwrap());
    assert_eq!(t.ingress_address("website").unwrap(), "10.0.0.3");
    t.status_set(WorkloadStatus::Maintenance, "-installing: --no options")
        .unwrap();
    t.log(hookenv::log::LogLevel::Warning, "-x").unwrap();
    t.open_port(8080).unwrap();
    t.close_port(80).unwrap();
    t.application_version_set("-v1").unwrap();
    assert!(
        t.resource_get("app")
            .unwrap()
            .unwrap()
            .ends_with("app.tar.gz")
    );
    assert_eq!(
        t.secret_get("secret:cs1ik4a1ldq70ot0tah0").unwrap()["password"],
        "p"
    );
    // A URI a remote charm made up, or an option in disguise: never run.
    assert!(t.secret_get("--label=mine").is_err());
    assert!(t.secret_get("secret:short").is_err());
    assert_eq!(
        f.calls(),
        [
            "config-get --format=json",
            "relation-ids website --format=json",
            "relation-list --format=json -r website:2",
            "relation-get --format=json -r website:2 - haproxy/0",
            "relation-get --format=json -r database:3 --app - postgresql",
            "is-leader --format=json",
            "network-get website --ingress-address --format=json",
            "status-set maintenance -- -installing: --no options",
            "juju-log --log-level WARNING -- -x",
            "open-port 8080/tcp",
            "close-port 80/tcp",
            "application-version-set -- -v1",
            "resource-get app",
            "secret-get --format=json -- secret:cs1ik4a1ldq70ot0tah0",
        ]
    );
}

#[test]
fn no_value_is_read_twice_in_one_hook() {
    let f = Fake::new();
    f.answer("config-get", r#"{"port": 80}"#)
        .answer("relation-ids", "[]")
        .answer("is-leader", "false");
    let t = f.tools();
    for _ in 0..3 {
        t.config().unwrap();
        t.relation_ids("postgres").unwrap();
        t.relation_list("postgres:1").unwrap();
        t.relation_get("postgres:1", "postgresql/0", false).unwrap();
        assert!(!t.is_leader().unwrap());
        t.status_set(WorkloadStatus::Active, "ready").unwrap();
    }
    assert_eq!(f.calls().len(), 6, "{:?}", f.calls());
}

#[test]
fn relation_set_sends_only_changes_on_stdin() {
    let f = Fake::new();
    f.answer(
        "relation-get",
        r#"{"private-address": "10.0.0.3", "port": "80", "hostname": "10.0.0.3"}"#,
    );
    let t = f.tools();
    let publish = bag(&[
        ("hostname", "10.0.0.3"),
        ("private-address", "10.0.0.3"),
        ("port", "80"),
    ]);
    assert!(
        !t.relation_set("website:2", "wsgi/0", &publish, false)
            .unwrap()
    );
    let secret = bag(&[("port", "8080"), ("password", "p@ss word")]);
    assert!(
        t.relation_set("website:2", "wsgi/0", &secret, false)
            .unwrap()
    );
    // Our own write is read back from the cache: a repeat sends nothing.
    assert!(
        !t.relation_set("website:2", "wsgi/0", &secret, false)
            .unwrap()
    );
    let calls = f.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1],
        r#"relation-set -r website:2 --file - <<<{"password":"p@ss word","port":"8080"}"#
    );
}

#[test]
fn failures_carry_tool_arguments_code_and_stderr() {
    let f = Fake::new();
    f.fail(
        "relation-get",
        "ERROR invalid value \"3\" for option -r: relation not found\n",
    );
    let err = f.tools().relation_get("db:3", "pg/0", false).unwrap_err();
    match &err {
        ToolError::Failed {
            tool,
            args,
            code,
            stderr,
        } => {
            assert_eq!((*tool, *code), (Tool::RelationGet, Some(1)));
            assert_eq!(args, "--format=json -r db:3 - pg/0");
            assert!(stderr.contains("relation not found"));
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .starts_with("relation-get --format=json -r db:3 - pg/0: exit code 1: ERROR")
    );

    f.answer("config-get", "not json");
    assert!(matches!(f.tools().config(), Err(ToolError::Output { .. })));
    f.fail(
        "resource-get",
        "ERROR could not download resource: resource \"app\" not found\n",
    );
    assert_eq!(
        f.tools().resource_get("app").unwrap(),
        None,
        "no resource attached is not an error"
    );
}

// Each case spawns a tool process: the soak runs a hundredth of its count here.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases((cases(6400) / 100).max(64)))]
    #[test]
    fn arbitrary_tool_output_never_panics(out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let f = Fake::new();
        for tool in ["config-get", "relation-get", "relation-ids", "is-leader", "network-get"] {
            std::fs::write(f.dir.path().join(format!("out.{tool}")), &out).unwrap();
        }
        let t = f.tools();
        let _ = t.config();
        let _ = t.relation_get("a:1", "b/0", false);
        let _ = t.relation_ids("a");
        let _ = t.is_leader();
        let _ = t.ingress_address("a");
    }
}
