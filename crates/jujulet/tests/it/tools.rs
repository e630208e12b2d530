//! Hook tool conformance: the built binary, run through symlinks named as
//! the tools, against a context dir written here (JUJULET_CTX_BASE points
//! the tools at it, so no root and no machine are needed).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use juju_contract::WorkloadStatus;
use jujulet::context::{self, Context, CtxRelation, Immediate, Pending};
use jujulet::model::{Status, Workload};
use serde_json::json;

const ID: &str = "wsgi/0-website-relation-changed-0123abcd";

struct Fixture {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    base: PathBuf,
}

impl Fixture {
    fn new(leader: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in juju_contract::Tool::ALL {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_jujulet"), bin.join(tool.name()))
                .unwrap();
        }
        let base = tmp.path().join("ctx");
        let dir = context::dir_for(&base, ID);
        std::fs::create_dir_all(&dir).unwrap();
        let bag = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ctx = Context {
            id: ID.into(),
            model_name: "jujulet".into(),
            unit: "wsgi/0".into(),
            app: "wsgi".into(),
            hook: "website-relation-changed".into(),
            leader,
            relation_id: Some(3),
            remote_unit: Some("haproxy/1".into()),
            remote_app: Some("haproxy".into()),
            config: [
                ("port".to_owned(), json!(8080)),
                ("debug".to_owned(), json!(true)),
                ("ratio".to_owned(), json!(0.5)),
                ("name".to_owned(), json!("12345")),
                ("unset".to_owned(), json!(null)),
            ]
            .into_iter()
            .collect(),
            relations: vec![
                CtxRelation {
                    id: 3,
                    endpoint: "website".into(),
                    remote_app: "haproxy".into(),
                    members: ["haproxy/0".to_owned(), "haproxy/1".to_owned()]
                        .into_iter()
                        .collect(),
                    remote_units: [
                        ("haproxy/0".to_owned(), bag(&[("hostname", "h0")])),
                        (
                            "haproxy/1".to_owned(),
                            bag(&[("hostname", "h1"), ("multi", "a\nb")]),
                        ),
                    ]
                    .into_iter()
                    .collect(),
                    remote_app_data: bag(&[("mode", "http")]),
                    secrets: BTreeMap::default(),
                    broken: false,
                },
                CtxRelation {
                    id: 10,
                    endpoint: "database".into(),
                    remote_app: "postgresql".into(),
                    secrets: [(
                        "secret:d4r7jujulet000000010".to_owned(),
                        bag(&[("username", "u"), ("password", "p w")]),
                    )]
                    .into_iter()
                    .collect(),
                    ..CtxRelation::default()
                },
            ],
            resources: [("app".to_owned(), "/res/app/app.tar.gz".to_owned())]
                .into_iter()
                .collect(),
            status: Status::new(Workload::Active, "ready"),
            app_status: Status::default(),
            private_address: "127.0.0.1".into(),
            endpoints: vec!["website".into(), "database".into()],
            action: None,
        };
        context::write_context(&dir, &ctx).unwrap();
        let pending = Pending {
            unit_data: [
                (3, bag(&[("private-address", "127.0.0.1")])),
                (10, bag(&[])),
            ]
            .into_iter()
            .collect(),
            app_data: [(3, bag(&[])), (10, bag(&[]))].into_iter().collect(),
            ports: ["80/tcp".to_owned()].into_iter().collect(),
            state: bag(&[("flag", "on")]),
        };
        context::write_pending(&dir, &pending).unwrap();
        Self {
            _tmp: tmp,
            bin,
            base,
        }
    }

    fn dir(&self) -> PathBuf {
        context::dir_for(&self.base, ID)
    }

    fn run_stdin(&self, tool: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = Command::new(self.bin.join(tool))
            .args(args)
            .env_clear()
            .env("JUJU_CONTEXT_ID", ID)
            .env(context::CTX_BASE_ENV, &self.base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
        self.run_stdin(tool, args, "")
    }

    /// Exit 0 and this stdout.
    fn ok(&self, tool: &str, args: &[&str], stdout: &str) {
        let (code, out, err) = self.run(tool, args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, stdout, ""),
            "{tool} {args:?}"
        );
    }

    fn fails(&self, tool: &str, args: &[&str], code: i32, stderr: &str) {
        let (c, out, err) = self.run(tool, args);
        assert_eq!(
            (c, out.as_str(), err.as_str()),
            (code, "", stderr),
            "{tool} {args:?}"
        );
    }

    fn pending(&self) -> Pending {
        context::read_pending(&self.dir()).unwrap()
    }
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn config_get_formats() {
    let f = Fixture::new(true);
    f.ok("config-get", &["port"], "8080\n");
    f.ok("config-get", &["port", "--format=json"], "8080\n");
    f.ok("config-get", &["port", "--format", "yaml"], "8080\n");
    f.ok("config-get", &["debug"], "True\n");
    f.ok("config-get", &["debug", "--format=json"], "true\n");
    f.ok("config-get", &["debug", "--format=yaml"], "true\n");
    f.ok("config-get", &["ratio", "--format=json"], "0.5\n");
    // Strings that read as numbers stay strings.
    f.ok("config-get", &["name"], "12345\n");
    f.ok("config-get", &["name", "--format=yaml"], "\"12345\"\n");
    f.ok("config-get", &["name", "--format=json"], "\"12345\"\n");
    // Unset and unknown: nothing / null, never an error.
    f.ok("config-get", &["unset"], "");
    f.ok("config-get", &["nope"], "");
    f.ok("config-get", &["nope", "--format=json"], "null\n");
    f.ok("config-get", &["nope", "--format=yaml"], "");
    // All: nulls omitted unless --all.
    f.ok(
        "config-get",
        &["--format=json"],
        "{\"debug\":true,\"name\":\"12345\",\"port\":8080,\"ratio\":0.5}\n",
    );
    f.ok(
        "config-get",
        &[],
        "debug: true\nname: \"12345\"\nport: 8080\nratio: 0.5\n",
    );
    let (code, out, _) = f.run("config-get", &["--all", "--format=json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"unset\":null"), "{out}");
    let (code, _, err) = f.run("config-get", &["--all", "port"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("ERROR "), "{err}");
    f.fails(
        "config-get",
        &["--bogus"],
        2,
        "ERROR flag provided but not defined: --bogus\n",
    );
}

#[test]
fn relation_reads() {
    let f = Fixture::new(true);
    f.ok("relation-ids", &[], "website:3\n");
    f.ok(
        "relation-ids",
        &["website", "--format=json"],
        "[\"website:3\"]\n",
    );
    f.ok("relation-ids", &["mongo", "--format=json"], "[]\n");
    f.ok("relation-ids", &["mongo"], "");
    f.ok("relation-list", &[], "haproxy/0\nhaproxy/1\n");
    f.ok(
        "relation-list",
        &["-r", "website:3", "--format=json"],
        "[\"haproxy/0\",\"haproxy/1\"]\n",
    );
    f.ok("relation-list", &["-r", "10", "--format=json"], "[]\n");
    f.ok(
        "relation-list",
        &["--app", "--format=json"],
        "\"haproxy\"\n",
    );
    // Default unit: JUJU_REMOTE_UNIT.
    f.ok("relation-get", &["hostname"], "h1\n");
    f.ok("relation-get", &["-", "haproxy/0"], "hostname: h0\n");
    f.ok(
        "relation-get",
        &["-r", "3", "hostname", "haproxy/0"],
        "h0\n",
    );
    f.ok(
        "relation-get",
        &["-r", "website:3", "hostname", "haproxy/0"],
        "h0\n",
    );
    f.ok(
        "relation-get",
        &["--format=json", "-"],
        "{\"hostname\":\"h1\",\"multi\":\"a\\nb\"}\n",
    );
    f.ok(
        "relation-get",
        &["-"],
        "hostname: h1\nmulti: |-\n  a\n  b\n",
    );
    // Missing keys are not errors.
    f.ok("relation-get", &["nope"], "");
    f.ok("relation-get", &["nope", "--format=json"], "null\n");
    // App data.
    f.ok("relation-get", &["--app", "mode"], "http\n");
    f.ok("relation-get", &["--app", "-", "haproxy"], "mode: http\n");
    f.ok(
        "relation-get",
        &["-", "haproxy/0", "--app", "--format=json"],
        "{\"mode\":\"http\"}\n",
    );
    // Own databag.
    f.ok(
        "relation-get",
        &["private-address", "wsgi/0"],
        "127.0.0.1\n",
    );
    f.ok("relation-get", &["--app", "-", "wsgi"], "{}\n");
    f.fails(
        "relation-get",
        &["-", "haproxy"],
        2,
        "ERROR expected unit name, got application name \"haproxy\"\n",
    );
}

#[test]
fn relation_id_errors() {
    let f = Fixture::new(true);
    f.fails(
        "relation-list",
        &["-r", "7"],
        2,
        "ERROR invalid value \"7\" for option -r: relation not found\n",
    );
    f.fails(
        "relation-get",
        &["-r", "3x", "-"],
        2,
        "ERROR invalid value \"3x\" for option -r: invalid relation id\n",
    );
    f.fails(
        "relation-set",
        &["-r", "website:9", "a=b"],
        2,
        "ERROR invalid value \"website:9\" for option -r: relation not found\n",
    );
}

#[test]
fn relation_set_buffers_and_reads_back() {
    let f = Fixture::new(true);
    f.ok("relation-set", &["a=1", "b=x y"], "");
    f.ok(
        "relation-get",
        &["-", "wsgi/0", "--format=json"],
        "{\"a\":\"1\",\"b\":\"x y\",\"private-address\":\"127.0.0.1\"}\n",
    );
    // Empty value deletes; args override the file.
    let (code, _, err) = f.run_stdin(
        "relation-set",
        &["-r", "website:3", "--file", "-", "b=", "c=args"],
        "{\"c\": \"file\", \"d\": \"from json\"}",
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let bag = &f.pending().unit_data[&3];
    assert_eq!(bag.get("b"), None);
    assert_eq!(bag["c"], "args");
    assert_eq!(bag["d"], "from json");
    // YAML file, app databag as leader.
    let file = f.dir().join("in.yaml");
    std::fs::write(&file, "url: http://x:1/\nport: 80\n").unwrap();
    f.ok(
        "relation-set",
        &["--app", "--file", file.to_str().unwrap()],
        "",
    );
    assert_eq!(f.pending().app_data[&3]["url"], "http://x:1/");
    assert_eq!(f.pending().app_data[&3]["port"], "80");
    f.ok("relation-get", &["--app", "port", "wsgi"], "80\n");
    f.fails(
        "relation-set",
        &["=x"],
        2,
        "ERROR expected \"key=value\", got \"=x\"\n",
    );
    f.fails(
        "relation-set",
        &["a=1", "a=2"],
        2,
        "ERROR key \"a\" specified more than once\n",
    );
}

#[test]
fn non_leader_cannot_write_app_data() {
    let f = Fixture::new(false);
    f.fails(
        "relation-set",
        &["--app", "a=b"],
        1,
        "ERROR cannot write relation settings\n",
    );
    assert!(f.pending().app_data[&3].is_empty());
    f.ok("is-leader", &[], "False\n");
    f.ok("is-leader", &["--format=json"], "false\n");
    f.fails(
        "status-set",
        &["--application", "active"],
        1,
        "ERROR this unit is not the leader\n",
    );
}

#[test]
fn status_and_immediate_writes() {
    let f = Fixture::new(true);
    f.fails(
        "status-set",
        &["x"],
        2,
        "ERROR invalid status \"x\", expected one of [maintenance blocked waiting active]\n",
    );
    f.ok("status-set", &["maintenance", "installing"], "");
    f.ok(
        "status-set",
        &["--application=False", "active", "--", "-ready"],
        "",
    );
    f.ok("juju-log", &["-l", "WARNING", "--", "hello", "world"], "");
    f.ok("application-version-set", &["1.2.3"], "");
    let items = context::read_immediate(&f.dir());
    assert_eq!(
        items,
        vec![
            Immediate::Status {
                application: false,
                status: WorkloadStatus::Maintenance,
                message: "installing".into()
            },
            Immediate::Status {
                application: false,
                status: WorkloadStatus::Active,
                message: "-ready".into()
            },
            Immediate::Log {
                level: "WARNING".into(),
                message: "website:3: hello world".into()
            },
            Immediate::Version {
                version: "1.2.3".into()
            },
        ]
    );
    // status-get answers from the snapshot taken at hook start.
    f.ok("status-get", &[], "active\n");
    f.ok(
        "status-get",
        &["--include-data", "--format=json"],
        "{\"message\":\"ready\",\"status\":\"active\",\"status-data\":{}}\n",
    );
    f.ok("is-leader", &[], "True\n");
}

#[test]
fn ports_and_state_are_buffered_but_visible() {
    let f = Fixture::new(true);
    f.ok("opened-ports", &[], "80/tcp\n");
    f.ok("open-port", &["8000-8010/UDP"], "");
    f.ok("open-port", &["443"], "");
    f.ok("close-port", &["80/tcp"], "");
    f.ok(
        "opened-ports",
        &["--format=json"],
        "[\"443/tcp\",\"8000-8010/udp\"]\n",
    );
    let (code, _, _) = f.run("open-port", &["http"]);
    assert_eq!(code, 2);
    // Nothing immediate was recorded for buffered writes.
    assert!(!exists(&f.dir().join(context::IMMEDIATE_FILE)));

    f.ok("state-get", &["flag"], "on\n");
    f.ok("state-set", &["k=v"], "");
    f.ok("state-get", &["k"], "v\n");
    f.ok("state-delete", &["flag"], "");
    f.ok("state-get", &["flag", "--format=json"], "\"\"\n");
    f.ok("state-get", &["--format=json"], "{\"k\":\"v\"}\n");
    f.fails(
        "state-get",
        &["flag", "--strict"],
        1,
        "ERROR \"flag\" not found\n",
    );
    let (code, _, _) = f.run_stdin("state-set", &["--file", "-"], "big: data\n");
    assert_eq!(code, 0);
    assert_eq!(f.pending().state["big"], "data");
}

#[test]
fn misc_tools() {
    let f = Fixture::new(true);
    f.ok("unit-get", &["private-address"], "127.0.0.1\n");
    f.ok(
        "unit-get",
        &["private-address", "--format=json"],
        "\"127.0.0.1\"\n",
    );
    f.fails("unit-get", &["x"], 2, "ERROR unknown setting \"x\"\n");
    f.ok(
        "network-get",
        &["website", "--ingress-address"],
        "127.0.0.1\n",
    );
    let (code, out, _) = f.run("network-get", &["website", "--format=json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ingress-addresses"], json!(["127.0.0.1"]));
    f.fails(
        "network-get",
        &["nope"],
        1,
        "ERROR no network config found for binding \"nope\"\n",
    );
    f.ok("resource-get", &["app"], "/res/app/app.tar.gz\n");
    let (code, _, _) = f.run("resource-get", &["other"]);
    assert_eq!(code, 1);
    f.fails("action-get", &[], 1, "ERROR not running an action\n");
    let (code, _, err) = f.run("secret-get", &["secret:abc"]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"));
    // A secret granted on a relation: its content, yaml by default.
    f.ok(
        "secret-get",
        &["secret:d4r7jujulet000000010", "--format=json"],
        "{\"password\":\"p w\",\"username\":\"u\"}\n",
    );
    f.ok(
        "secret-get",
        &["secret:d4r7jujulet000000010"],
        "password: p w\nusername: u\n",
    );
    // The URI after `--`, as the charm passes one from relation data.
    f.ok(
        "secret-get",
        &["--format=json", "--", "secret:d4r7jujulet000000010"],
        "{\"password\":\"p w\",\"username\":\"u\"}\n",
    );
}

#[test]
fn without_context_id() {
    let f = Fixture::new(true);
    let out = Command::new(f.bin.join("config-get"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR JUJU_CONTEXT_ID not set\n"
    );
}
