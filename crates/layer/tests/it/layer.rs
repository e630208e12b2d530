//! The layer's decisions, with fakes at its two seams (Juju and the host):
//! what it calls for each situation. The real hook tools and the real
//! machine are exercised end to end in jujulet's nspawn machine.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use interfaces::Databag;
use machine::release::{Source, Store};
use machine::systemd::{ActiveState, Systemctl, UnitState};
use machine::venv::Venv;
use reactive::{Engine, State};
use serde_json::{Map, Value, json};
use wsgi_layer::seams::{ProvisionRun, RelationContext};
use wsgi_layer::{Host, Juju, LayerCtx, Status};

#[derive(Default)]
pub(crate) struct World {
    pub(crate) calls: Vec<String>,
    pub(crate) config: Map<String, Value>,
    pub(crate) resource: Option<PathBuf>,
    pub(crate) relations: BTreeMap<String, BTreeMap<String, Databag>>, // rid -> unit -> data
    pub(crate) context: (Option<String>, Option<String>, Option<String>),
    pub(crate) active: bool,
    pub(crate) main_pid: u32,
    pub(crate) healthy: bool,
    /// Whether check_database succeeds.
    pub(crate) db_down: bool,
    /// Who holds a port (port_holder), by port.
    pub(crate) port_holders: BTreeMap<u16, u32>,
    pub(crate) statuses: Vec<(Status, String)>,
    /// Where the fake's releases live (a real store, in a temporary dir).
    pub(crate) root: Option<PathBuf>,
    /// What the next venv build says: Err(cause) fails it.
    pub(crate) venv_error: Option<String>,
    /// The requirements each built venv was keyed by (the source's hash).
    pub(crate) action_params: Map<String, Value>,
    pub(crate) action_results: BTreeMap<String, String>,
    pub(crate) action_failed: Option<String>,
    /// Releases whose health check fails while `current` names them.
    pub(crate) bad_releases: Vec<u32>,
}

pub(crate) type Shared = Rc<RefCell<World>>;

struct FakeJuju(Shared, PathBuf);
struct FakeHost(Shared);

impl FakeHost {
    /// A machine path under the fake's root.
    fn real(&self, p: &Path) -> PathBuf {
        let root = self.0.borrow().root.clone().expect("the fake has a root");
        root.join(p.strip_prefix("/").unwrap_or(p))
    }
}

fn e(s: &str) -> anyhow::Error {
    anyhow::anyhow!("{s}")
}

impl Juju for FakeJuju {
    fn unit_name(&self) -> &'static str {
        "hello/0"
    }
    fn charm_dir(&self) -> &Path {
        &self.1
    }
    fn config(&self) -> anyhow::Result<Map<String, Value>> {
        self.0.borrow_mut().calls.push("config-get".into());
        Ok(self.0.borrow().config.clone())
    }
    fn resource(&self, _: &str) -> anyhow::Result<Option<PathBuf>> {
        self.0.borrow_mut().calls.push("resource-get".into());
        Ok(self.0.borrow().resource.clone())
    }
    fn status(&self, s: Status, m: &str) -> anyhow::Result<()> {
        let mut w = self.0.borrow_mut();
        w.calls.push(format!("status-set {s} {m}"));
        w.statuses.push((s, m.to_owned()));
        Ok(())
    }
    fn open_port(&self, p: u16) -> anyhow::Result<()> {
        self.0.borrow_mut().calls.push(format!("open-port {p}"));
        Ok(())
    }
    fn close_port(&self, p: u16) -> anyhow::Result<()> {
        self.0.borrow_mut().calls.push(format!("close-port {p}"));
        Ok(())
    }
    fn app_version(&self, v: &str) -> anyhow::Result<()> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("application-version-set {v}"));
        Ok(())
    }
    fn is_leader(&self) -> anyhow::Result<bool> {
        Ok(true)
    }
    fn relation_ids(&self, ep: &str) -> anyhow::Result<Vec<String>> {
        self.0.borrow_mut().calls.push(format!("relation-ids {ep}"));
        Ok(self
            .0
            .borrow()
            .relations
            .keys()
            .filter(|r| r.starts_with(&format!("{ep}:")))
            .cloned()
            .collect())
    }
    fn relation_units(&self, rid: &str) -> anyhow::Result<Vec<String>> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("relation-list {rid}"));
        Ok(self
            .0
            .borrow()
            .relations
            .get(rid)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default())
    }
    fn relation_get(&self, rid: &str, who: &str, _app: bool) -> anyhow::Result<Databag> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("relation-get {rid} {who}"));
        Ok(self
            .0
            .borrow()
            .relations
            .get(rid)
            .and_then(|u| u.get(who))
            .cloned()
            .unwrap_or_default())
    }
    fn relation_set(&self, rid: &str, data: &Databag, _app: bool) -> anyhow::Result<()> {
        self.0.borrow_mut().calls.push(format!(
            "relation-set {rid} {}",
            data.keys().cloned().collect::<Vec<_>>().join(",")
        ));
        Ok(())
    }
    fn secret_get(&self, _: &str) -> anyhow::Result<Databag> {
        Err(e("no secrets here"))
    }
    fn ingress_address(&self) -> anyhow::Result<String> {
        Ok("10.0.0.3".into())
    }
    fn relation_context(&self) -> RelationContext<'_> {
        // Leaked for the test's lifetime: the fake's context is fixed per hook.
        let w = self.0.borrow();
        let leak = |s: &Option<String>| s.clone().map(|s| &*Box::leak(s.into_boxed_str()));
        RelationContext {
            relation_id: leak(&w.context.0),
            remote_unit: leak(&w.context.1),
            departing_unit: leak(&w.context.2),
        }
    }
    fn log(&self, m: &str) {
        self.0.borrow_mut().calls.push(format!("log {m}"));
    }
    fn proxy_env(&self) -> Vec<(String, String)> {
        vec![("HTTPS_PROXY".into(), "http://proxy:3128".into())]
    }
    fn action_params(&self) -> anyhow::Result<Map<String, Value>> {
        Ok(self.0.borrow().action_params.clone())
    }
    fn action_set(&self, r: &BTreeMap<String, String>) -> anyhow::Result<()> {
        self.0.borrow_mut().action_results.extend(r.clone());
        Ok(())
    }
    fn action_fail(&self, m: &str) -> anyhow::Result<()> {
        self.0.borrow_mut().action_failed = Some(m.to_owned());
        Ok(())
    }
    fn action_log(&self, m: &str) -> anyhow::Result<()> {
        self.0.borrow_mut().calls.push(format!("action-log {m}"));
        Ok(())
    }
}

impl Host for FakeHost {
    fn ensure_user(&mut self, name: &str, _: &Path) -> anyhow::Result<()> {
        self.0.borrow_mut().calls.push(format!("useradd {name}"));
        Ok(())
    }
    fn apt_install(&mut self, p: &[String]) -> anyhow::Result<()> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("apt {}", p.join(" ")));
        Ok(())
    }
    fn unpack_source(&mut self, archive: &Path, sources: &Path) -> anyhow::Result<Source> {
        self.0.borrow_mut().calls.push("unpack".into());
        let hash = machine::digest(archive.display().to_string().as_bytes());
        let dir = self.real(sources).join(&hash[..12]);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(".hash"), &hash)?;
        Ok(Source {
            hash,
            root: dir.clone(),
            dir,
        })
    }
    fn import_source(&mut self, dir: &Path, sources: &Path) -> anyhow::Result<Source> {
        self.unpack_source(dir, sources)
    }
    fn existing_source(&mut self, sources: &Path, hash: &str) -> anyhow::Result<Option<Source>> {
        let dir = self.real(sources).join(hash.get(..12).unwrap_or(hash));
        Ok(std::fs::read_to_string(dir.join(".hash"))
            .is_ok_and(|h| h == hash)
            .then(|| Source {
                hash: hash.to_owned(),
                root: dir.clone(),
                dir,
            }))
    }
    fn build_venv(
        &mut self,
        venvs: &Path,
        app: &Path,
        _: Option<&Path>,
        b: &machine::venv::Build,
    ) -> anyhow::Result<Venv> {
        if let Some(cause) = self.0.borrow().venv_error.clone() {
            return Err(anyhow::anyhow!("uv pip install: exit 1: {cause}").context(cause));
        }
        let key = machine::digest(format!("{} {:?}", app.display(), b.index_url).as_bytes());
        let dir = self.real(venvs).join(&key[..16]);
        std::fs::create_dir_all(&dir)?;
        self.0
            .borrow_mut()
            .calls
            .push(format!("venv {}", &key[..8]));
        Ok(Venv {
            requirements: "req".into(),
            key,
            dir,
        })
    }
    fn store(&mut self, app_dir: &Path) -> Store {
        Store::new(&self.real(app_dir))
    }
    fn install_uv(&mut self, _: &Path) -> anyhow::Result<Option<PathBuf>> {
        Ok(Some("/usr/local/lib/wsgi-charm/uv".into()))
    }
    fn write_file(
        &mut self,
        p: &Path,
        _: &str,
        mode: u32,
        _: Option<&str>,
    ) -> anyhow::Result<bool> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("write {} {mode:o}", p.display()));
        Ok(true)
    }
    fn ensure_log_file(&mut self, _: &Path, _: &str) -> anyhow::Result<()> {
        Ok(())
    }
    fn remove_file(&mut self, _: &Path) -> anyhow::Result<()> {
        Ok(())
    }
    fn systemctl(&mut self, verb: Systemctl, _: &str) -> anyhow::Result<()> {
        let mut w = self.0.borrow_mut();
        w.calls.push(format!("systemctl {verb}"));
        if matches!(verb, Systemctl::Start | Systemctl::Restart) {
            w.active = true;
            w.main_pid += 100;
        }
        Ok(())
    }
    fn service_state(&mut self, _: &str) -> anyhow::Result<UnitState> {
        let w = self.0.borrow();
        Ok(UnitState {
            active: if w.active {
                ActiveState::Active
            } else {
                ActiveState::Inactive
            },
            main_pid: w.main_pid,
            restarts: 0,
            listen: Vec::new(),
        })
    }
    fn journal_tail(&mut self, _: &str, _: usize) -> String {
        "ModuleNotFoundError: No module named 'nope'".into()
    }
    fn health(&mut self, _: u16, _: &str, _: u32) -> anyhow::Result<String> {
        self.0.borrow_mut().calls.push("health".into());
        let current = std::fs::read_link(self.real(Path::new("/srv/hello/current")))
            .ok()
            .and_then(|t| t.file_name()?.to_str()?.parse::<u32>().ok());
        if current.is_some_and(|id| self.0.borrow().bad_releases.contains(&id)) {
            return Err(e("connection refused"));
        }
        if self.0.borrow().healthy {
            Ok("HTTP/1.1 200 OK".into())
        } else {
            Err(e("connection refused"))
        }
    }
    fn provision(&mut self, argv: &[String], _: &ProvisionRun<'_>) -> anyhow::Result<()> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("provision {}", argv.join(" ")));
        Ok(())
    }
    fn cpus(&self) -> u32 {
        2
    }
    fn check_database(&mut self, url: &str) -> anyhow::Result<()> {
        let scheme = url.split("://").next().unwrap_or("");
        self.0.borrow_mut().calls.push(format!("check {scheme}"));
        if self.0.borrow().db_down {
            Err(e("connection refused (127.0.0.1:5432)"))
        } else {
            Ok(())
        }
    }
    fn port_holder(&mut self, port: u16) -> Option<u32> {
        self.0.borrow().port_holders.get(&port).copied()
    }
}

pub(crate) struct Unit {
    pub(crate) world: Shared,
    pub(crate) state: State,
    pub(crate) engine: Engine<LayerCtx>,
    charm: tempfile::TempDir,
    _machine: tempfile::TempDir,
}

impl Unit {
    pub(crate) fn new() -> Self {
        let world = Shared::default();
        let machine = tempfile::tempdir().unwrap();
        {
            let mut w = world.borrow_mut();
            w.resource = Some("/res/app.tar.gz".into());
            w.healthy = true;
            w.root = Some(machine.path().to_owned());
        }
        let mut engine = Engine::new();
        wsgi_layer::register(&mut engine).unwrap();
        Unit {
            world,
            state: State::default(),
            engine,
            charm: tempfile::tempdir().unwrap(),
            _machine: machine,
        }
    }

    /// Runs a hook; returns the calls it made.
    pub(crate) fn hook(&mut self, name: &str) -> Vec<String> {
        self.world.borrow_mut().calls.clear();
        let mut ctx = LayerCtx {
            juju: Box::new(FakeJuju(self.world.clone(), self.charm.path().to_owned())),
            host: Box::new(FakeHost(self.world.clone())),
        };
        self.engine
            .dispatch(name, &[], &mut self.state, &mut ctx)
            .unwrap();
        self.world.borrow().calls.clone()
    }

    /// Runs an action with these parameters.
    pub(crate) fn action(&mut self, name: &str, params: Value) -> Vec<String> {
        {
            let mut w = self.world.borrow_mut();
            w.action_params = params.as_object().cloned().unwrap_or_default();
            w.action_results.clear();
            w.action_failed = None;
        }
        self.hook(&format!("actions/{name}"))
    }

    /// The release `current` names.
    pub(crate) fn live(&self) -> Option<u32> {
        let root = self.world.borrow().root.clone()?;
        Store::new(&root.join("srv/hello")).live()
    }

    pub(crate) fn status(&self) -> (Status, String) {
        self.world.borrow().statuses.last().cloned().unwrap()
    }

    pub(crate) fn deploy(&mut self) {
        for h in ["install", "leader-elected", "config-changed", "start"] {
            self.hook(h);
        }
    }
}

/// The fakes of a unit, for a dispatch driven by hand.
pub(crate) fn fake_juju(u: &Unit) -> impl Juju + use<> {
    FakeJuju(u.world.clone(), u.charm.path().to_owned())
}

pub(crate) fn fake_host(u: &Unit) -> impl Host + use<> {
    FakeHost(u.world.clone())
}

fn has(calls: &[String], prefix: &str) -> usize {
    calls.iter().filter(|c| c.starts_with(prefix)).count()
}

#[test]
fn deploy_serves_and_opens_the_port() {
    let mut u = Unit::new();
    let calls = u.hook("install");
    // No apt step: the charm's uv needs neither pip nor python3-venv.
    assert!(
        has(&calls, "apt") == 0 && calls.contains(&"useradd wsgi-hello".into()),
        "{calls:?}"
    );
    assert_eq!(has(&calls, "systemctl start"), 1);
    assert!(
        calls.contains(&"write /etc/wsgi/hello/environment 640".into()),
        "{calls:?}"
    );
    assert!(calls.contains(&"open-port 80".into()));
    assert_eq!(
        u.status(),
        (
            Status::Active,
            "Serving wsgi:application (release 1) on :80, 5 workers".into()
        )
    );
    assert!(u.state.flags.contains("wsgi.available") && u.state.flags.contains("wsgi.active"));
}

#[test]
fn nothing_changed_means_no_restart_no_status_no_port_call() {
    let mut u = Unit::new();
    u.deploy();
    for hook in ["config-changed", "start", "leader-settings-changed"] {
        let calls = u.hook(hook);
        for forbidden in [
            "systemctl",
            "status-set",
            "open-port",
            "close-port",
            "relation-set",
            "relation-get",
            "unpack",
            "resource-get",
        ] {
            assert_eq!(
                has(&calls, forbidden),
                0,
                "{hook}: {forbidden} in {calls:?}"
            );
        }
    }
}

#[test]
fn update_status_makes_one_health_check_and_no_other_work() {
    let mut u = Unit::new();
    u.deploy();
    for _ in 0..20 {
        let calls = u.hook("update-status");
        assert_eq!(calls, ["health"], "{calls:?}");
    }
    // A block the reconcile found (here a bad config; the old service still
    // answers) is not covered by update-status's health check.
    u.world
        .borrow_mut()
        .config
        .insert("port".into(), serde_json::json!(0));
    u.hook("config-changed");
    let blocked = u.status();
    assert_eq!(blocked.0, Status::Blocked, "{blocked:?}");
    let calls = u.hook("update-status");
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(u.status(), blocked);
}

#[test]
fn environment_change_reloads_port_change_restarts_and_moves_the_port() {
    let mut u = Unit::new();
    u.deploy();
    u.world
        .borrow_mut()
        .config
        .insert("environment_variables".into(), json!("GREETING=hi"));
    let calls = u.hook("config-changed");
    assert_eq!(has(&calls, "systemctl reload"), 1, "{calls:?}");
    assert_eq!(has(&calls, "systemctl restart"), 0);

    u.world
        .borrow_mut()
        .config
        .insert("port".into(), json!(8080));
    let calls = u.hook("config-changed");
    assert_eq!(has(&calls, "systemctl restart"), 1, "{calls:?}");
    assert!(calls.contains(&"open-port 8080".into()) && calls.contains(&"close-port 80".into()));
    assert_eq!(
        u.status().1,
        "Serving wsgi:application (release 1) on :8080, 5 workers"
    );
}

#[test]
fn bad_config_and_missing_source_block_with_the_cause() {
    let mut u = Unit::new();
    u.world
        .borrow_mut()
        .config
        .insert("port".into(), json!(70000));
    u.hook("install");
    let (s, m) = u.status();
    assert_eq!(s, Status::Blocked);
    assert!(m.starts_with("bad config: port"), "{m}");
    assert!(!u.state.flags.contains("wsgi.available"));

    let mut u = Unit::new();
    u.world.borrow_mut().resource = None;
    u.hook("install");
    assert_eq!(
        u.status(),
        (
            Status::Blocked,
            "attach the app resource: juju attach-resource <app> app=app.tar.gz".into()
        )
    );
}

#[test]
fn a_failed_health_check_blocks_with_the_log_then_recovers() {
    let mut u = Unit::new();
    u.world.borrow_mut().healthy = false;
    u.hook("install");
    let (s, m) = u.status();
    assert_eq!(s, Status::Blocked);
    assert!(
        m.contains("connection refused") && m.contains("No module named 'nope'"),
        "{m}"
    );
    u.world.borrow_mut().healthy = true;
    u.hook("update-status");
    assert_eq!(u.status().0, Status::Active);
}

#[test]
fn website_hooks_read_only_the_joining_unit() {
    let mut u = Unit::new();
    u.deploy();
    let units: BTreeMap<String, Databag> = (0..100)
        .map(|i| {
            (
                format!("haproxy/{i}"),
                Databag::from([("ingress-address".into(), format!("10.1.0.{i}"))]),
            )
        })
        .collect();
    u.world
        .borrow_mut()
        .relations
        .insert("website:3".into(), units);
    u.world.borrow_mut().context = (Some("website:3".into()), Some("haproxy/99".into()), None);
    let calls = u.hook("website-relation-joined");
    assert_eq!(has(&calls, "relation-get"), 1, "{calls:?}");
    assert_eq!(has(&calls, "relation-list"), 0, "{calls:?}");
    assert_eq!(
        has(&calls, "systemctl reload"),
        1,
        "the new proxy is trusted by gunicorn: {calls:?}"
    );
}

#[test]
fn postgres_waits_for_authorisation_then_serves_database_url() {
    let mut u = Unit::new();
    u.deploy();
    let pg = |allowed: &str| {
        Databag::from([
            ("host".into(), "10.0.0.5".into()),
            ("port".into(), "5432".into()),
            ("database".into(), "hello".into()),
            ("user".into(), "juju_hello".into()),
            ("password".into(), "pw".into()),
            ("state".into(), "master".into()),
            ("allowed-units".into(), allowed.into()),
        ])
    };
    u.world.borrow_mut().relations.insert(
        "postgres:1".into(),
        BTreeMap::from([("postgresql/0".into(), pg(""))]),
    );
    u.world.borrow_mut().context = (Some("postgres:1".into()), Some("postgresql/0".into()), None);
    let calls = u.hook("postgres-relation-changed");
    assert!(
        calls
            .iter()
            .any(|c| c == "relation-set postgres:1 database"),
        "{calls:?}"
    );
    assert_eq!(
        u.status(),
        (
            Status::Waiting,
            "waiting for PostgreSQL to authorise this unit".into()
        )
    );
    u.world.borrow_mut().relations.insert(
        "postgres:1".into(),
        BTreeMap::from([("postgresql/0".into(), pg("hello/0"))]),
    );
    let calls = u.hook("postgres-relation-changed");
    assert_eq!(
        has(&calls, "systemctl reload"),
        1,
        "DATABASE_URL reaches the app by a reload: {calls:?}"
    );
    assert_eq!(u.status().0, Status::Active);
}

#[test]
fn a_database_url_that_does_not_connect_is_not_applied() {
    let mut u = Unit::new();
    u.deploy();
    let pg = Databag::from([
        ("host".into(), "10.0.0.5".into()),
        ("port".into(), "5432".into()),
        ("database".into(), "hello".into()),
        ("user".into(), "juju_hello".into()),
        ("password".into(), "pw".into()),
        ("state".into(), "master".into()),
        ("allowed-units".into(), "hello/0".into()),
    ]);
    u.world.borrow_mut().relations.insert(
        "postgres:1".into(),
        BTreeMap::from([("postgresql/0".into(), pg)]),
    );
    u.world.borrow_mut().context = (Some("postgres:1".into()), Some("postgresql/0".into()), None);
    u.world.borrow_mut().db_down = true;
    let calls = u.hook("postgres-relation-changed");
    assert_eq!(has(&calls, "check postgresql"), 1, "{calls:?}");
    assert_eq!(
        has(&calls, "write /etc/wsgi/hello/environment"),
        0,
        "{calls:?}"
    );
    assert_eq!(
        has(&calls, "systemctl"),
        0,
        "the running app was touched: {calls:?}"
    );
    let (st, msg) = u.status();
    assert_eq!(st, Status::Waiting);
    assert!(
        msg.contains("DATABASE_URL") && msg.contains("connection refused"),
        "{msg}"
    );
    assert!(!msg.contains("pw"), "{msg}");
    // update-status retries while waiting, and keeps waiting.
    let calls = u.hook("update-status");
    assert_eq!(has(&calls, "check postgresql"), 1, "{calls:?}");
    assert_eq!(u.status().0, Status::Waiting);
    // The server answers: the next hook applies the URL by a reload.
    u.world.borrow_mut().db_down = false;
    let calls = u.hook("update-status");
    assert_eq!(has(&calls, "systemctl reload"), 1, "{calls:?}");
    assert_eq!(u.status().0, Status::Active);
    // Checked once: later hooks do not connect again.
    let calls = u.hook("config-changed");
    assert_eq!(has(&calls, "check"), 0, "{calls:?}");
}

#[test]
fn a_port_held_by_another_process_blocks_and_our_own_does_not() {
    let mut u = Unit::new();
    u.deploy();
    let pid = u.world.borrow().main_pid;
    // Another process holds 8080: blocked, naming it, nothing restarted.
    u.world.borrow_mut().port_holders.insert(8080, 4242);
    u.world
        .borrow_mut()
        .config
        .insert("port".into(), json!(8080));
    let calls = u.hook("config-changed");
    assert_eq!(has(&calls, "systemctl"), 0, "{calls:?}");
    assert_eq!(has(&calls, "open-port"), 0, "{calls:?}");
    assert_eq!(
        u.status(),
        (
            Status::Blocked,
            "port 8080 is in use by another process: stop it or choose another port".into()
        )
    );
    assert!(!u.state.flags.contains("wsgi.available"));
    // Our own service on it (a killed hook moved it, its state was lost)
    // is not a conflict: the move completes.
    u.world.borrow_mut().port_holders.insert(8080, pid);
    let calls = u.hook("config-changed");
    assert!(calls.contains(&"open-port 8080".into()), "{calls:?}");
    assert_eq!(u.status().0, Status::Active);
}
