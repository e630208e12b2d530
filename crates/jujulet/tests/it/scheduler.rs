//! Scheduler ordering with the `local` runner (commands run on the host
//! under a temp "root") and a fake stand-in: deploy, relate with 3 remote
//! units, stand-in reactions, unrelate, upgrade, config, failure and resolve.

// Closures, not method paths: `Scheduler::deploy` does not fit `with`'s
// higher-ranked lifetimes.
#![allow(clippy::redundant_closure_for_method_calls)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jujulet::install::{self, Paths};
use jujulet::machines::local::LocalMachine;
use jujulet::machines::{Machine, MachineKind};
use jujulet::model::{Agent, Model, Relation, Workload};
use jujulet::scheduler::{SchedError, Scheduler, StandIns};
use jujulet::standin::{RelationSnapshot, RemoteData, StandIn, StandInError};

/// Publishes `hostname` per unit and, as app data, how many keys the charm's
/// unit databag holds (so charm writes cause app-changed hooks).
struct Fake {
    n: usize,
    events: Arc<Mutex<Vec<String>>>,
}

impl StandIn for Fake {
    fn kind(&self) -> jujulet::standin::Kind {
        jujulet::standin::Kind::Haproxy
    }
    fn app(&self) -> &'static str {
        "lb"
    }
    fn units(&self) -> Vec<String> {
        (0..self.n).map(|i| format!("lb/{i}")).collect()
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["http"]
    }
    fn start(&mut self, _: &dyn Fn(&str)) -> Result<(), StandInError> {
        self.events.lock().unwrap().push("start".into());
        Ok(())
    }
    fn is_running(&self) -> bool {
        true
    }
    fn react(&mut self, s: &RelationSnapshot) -> Result<RemoteData, StandInError> {
        let count = s.local_units.values().next().map_or(0, BTreeMap::len);
        self.events.lock().unwrap().push(format!("react {count}"));
        let mut app_data: BTreeMap<String, String> = [("count".to_owned(), count.to_string())]
            .into_iter()
            .collect();
        // Echo `n` back: a charm that rewrites it on every change never settles.
        if let Some(n) = s.local_units.values().next().and_then(|b| b.get("n")) {
            app_data.insert("echo".into(), n.clone());
        }
        Ok(RemoteData {
            app_data,
            secrets: BTreeMap::default(),
            units: self
                .units()
                .into_iter()
                .map(|u| {
                    let bag = [("hostname".to_owned(), u.clone())].into_iter().collect();
                    (u, bag)
                })
                .collect(),
        })
    }
    fn broken(&mut self, s: &RelationSnapshot) -> Result<(), StandInError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("broken {}", s.relation_id));
        Ok(())
    }
    fn stop(&mut self) -> Result<(), StandInError> {
        Ok(())
    }
    fn address(&self) -> Option<SocketAddr> {
        None
    }
    fn status(&self) -> String {
        "fake".into()
    }
}

struct Fakes(Arc<Mutex<Vec<String>>>);

impl StandIns for Fakes {
    fn open(&self, rel: &Relation) -> Result<Box<dyn StandIn>, StandInError> {
        Ok(Box::new(Fake {
            n: rel.n_units,
            events: self.0.clone(),
        }))
    }
}

struct World {
    tmp: tempfile::TempDir,
    machine: LocalMachine,
    events: Arc<Mutex<Vec<String>>>,
    model: Model,
}

const DISPATCH: &str = r#"#!/bin/sh
set -e
OUT=@OUT@
echo "$JUJU_HOOK_NAME $JUJU_REMOTE_UNIT" >> "$OUT/hooks.log"
env | sort > "$OUT/env-$JUJU_HOOK_NAME"
status-set maintenance "in $JUJU_HOOK_NAME"
state-set "last=$JUJU_HOOK_NAME"
if [ -e "$OUT/fail" ]; then exit 1; fi
if [ -s "$OUT/fail-times" ]; then
  n=$(cat "$OUT/fail-times")
  if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$OUT/fail-times"; exit 1; fi
fi
if [ -e "$OUT/slow-$JUJU_HOOK_NAME" ]; then rm "$OUT/slow-$JUJU_HOOK_NAME"; sleep 5; fi
case "$JUJU_HOOK_NAME" in
  start) open-port 8080; status-set active ready ;;
  *-relation-changed)
    if [ -e "$OUT/flap" ]; then relation-set "n=$(cat /proc/sys/kernel/random/uuid)"; fi
    if [ -n "$JUJU_REMOTE_UNIT" ]; then
      relation-set "seen-$JUJU_REMOTE_UNIT=$(relation-get hostname)"
    fi ;;
esac
juju-log "done $JUJU_HOOK_NAME"
"#;

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let charm = tmp.path().join("charm");
        std::fs::create_dir_all(charm.join("hooks")).unwrap();
        std::fs::write(
            charm.join("metadata.yaml"),
            "name: testapp\nprovides:\n  website:\n    interface: http\nrequires:\n  db:\n    interface: pgsql\n",
        )
        .unwrap();
        std::fs::write(
            charm.join("config.yaml"),
            "options:\n  port:\n    type: int\n    default: 80\n  name:\n    type: string\n",
        )
        .unwrap();
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let dispatch = charm.join("dispatch");
        std::fs::write(&dispatch, DISPATCH.replace("@OUT@", out.to_str().unwrap())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../dispatch", charm.join("hooks/install")).unwrap();

        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let model_dir = tmp.path().join("model");
        std::fs::create_dir(&model_dir).unwrap();
        let machine = LocalMachine::new(&root);
        let model = Model::new("testapp", &charm, MachineKind::Local);
        let paths = Paths::new(&machine);
        install::install_charm(&paths, &model.unit_tag(), &charm).unwrap();
        install::install_tools(
            &paths,
            &model.unit_tag(),
            Path::new(env!("CARGO_BIN_EXE_jujulet")),
        )
        .unwrap();
        model.save(&model_dir).unwrap();
        Self {
            tmp,
            machine,
            events: Arc::default(),
            model,
        }
    }

    fn model_dir(&self) -> PathBuf {
        self.tmp.path().join("model")
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn with<T>(&mut self, f: impl FnOnce(&Scheduler<'_>, &mut Model) -> T) -> T {
        let fakes = Fakes(self.events.clone());
        let progress = |_: &str| {};
        let dir = self.model_dir();
        let mut s = Scheduler::new(&dir, &self.machine, &fakes, &progress);
        s.retry_base = std::time::Duration::from_millis(50);
        let r = f(&s, &mut self.model);
        // What is saved is what the next CLI process sees.
        assert_eq!(Model::load(&dir).unwrap(), self.model);
        r
    }

    /// Hooks run since the last call, as `name remote-unit` lines.
    fn take_hooks(&self) -> Vec<String> {
        let p = self.out().join("hooks.log");
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::remove_file(&p).ok();
        text.lines().map(|l| l.trim_end().to_owned()).collect()
    }

    fn env_of(&self, hook: &str) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.out().join(format!("env-{hook}")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[test]
fn deploy_runs_the_install_sequence() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    assert_eq!(
        w.take_hooks(),
        ["install", "leader-elected", "config-changed", "start"]
    );
    let m = &w.model;
    assert_eq!(m.workload.status, Workload::Active);
    assert_eq!(m.workload.message, "ready");
    assert_eq!(m.agent.status, Agent::Idle);
    assert!(m.ports.contains("8080/tcp"));
    assert_eq!(m.state["last"], "start");
    assert!(m.queue.is_empty());

    let env = w.env_of("install");
    assert_eq!(env["JUJU_DISPATCH_PATH"], "hooks/install");
    assert_eq!(env["JUJU_UNIT_NAME"], "testapp/0");
    assert_eq!(env["JUJU_VERSION"], "3.6.14");
    assert_eq!(env["JUJU_MODEL_NAME"], "jujulet");
    assert_eq!(env["LANG"], "C.UTF-8");
    assert!(!env.contains_key("HOME"), "Juju sets no HOME");
    assert_eq!(env["JUJU_CHARM_DIR"], env["CHARM_DIR"]);
    assert!(env["JUJU_CHARM_DIR"].ends_with("/var/lib/juju/agents/unit-testapp-0/charm"));
    assert!(env["JUJU_CONTEXT_ID"].starts_with("testapp/0-install-"));
    assert!(env["PATH"].contains("/var/lib/juju/tools/unit-testapp-0:/usr/local/sbin"));
    assert!(!env.contains_key("JUJU_RELATION"));
    // Hook output and juju-log lines land in debug.log.
    let log = std::fs::read_to_string(w.model_dir().join("debug.log")).unwrap();
    assert!(log.contains("juju-log done install"), "{log}");
}

#[test]
fn relate_three_units_then_unrelate() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    w.take_hooks();
    let id = w
        .with(|s, m| s.relate(m, "website", jujulet::standin::Kind::Haproxy, 3, false))
        .unwrap();
    assert_eq!(id, 0);
    assert_eq!(
        w.take_hooks(),
        [
            "website-relation-created",
            "website-relation-joined lb/0",
            "website-relation-changed lb/0",
            "website-relation-joined lb/1",
            "website-relation-changed lb/1",
            "website-relation-joined lb/2",
            "website-relation-changed lb/2",
            // The stand-in's app data changed in reaction to the charm's writes.
            "website-relation-changed",
        ]
    );
    let env = w.env_of("website-relation-created");
    assert_eq!(env.get("JUJU_REMOTE_UNIT").map(String::as_str), Some(""));
    assert_eq!(env["JUJU_RELATION"], "website");
    assert_eq!(env["JUJU_RELATION_ID"], "website:0");
    assert_eq!(env["JUJU_REMOTE_APP"], "lb");
    let rel = w.model.relation(0).unwrap().clone();
    assert_eq!(rel.local_unit_data["seen-lb/2"], "lb/2");
    assert_eq!(rel.local_unit_data["private-address"], "127.0.0.1");
    assert_eq!(rel.local_unit_data["egress-subnets"], "127.0.0.1/32");
    assert_eq!(rel.remote_app_data["count"], "6");
    assert_eq!(rel.joined.len(), 3);

    w.with(|s, m| s.unrelate(m, "website")).unwrap();
    assert_eq!(
        w.take_hooks(),
        [
            "website-relation-departed lb/0",
            "website-relation-departed lb/1",
            "website-relation-departed lb/2",
            "website-relation-broken",
        ]
    );
    assert_eq!(
        w.env_of("website-relation-departed")["JUJU_DEPARTING_UNIT"],
        "lb/2"
    );
    assert_eq!(w.env_of("website-relation-broken")["JUJU_REMOTE_UNIT"], "");
    assert!(w.model.relations.is_empty());
    assert_eq!(w.events.lock().unwrap().last().unwrap(), "broken 0");
    // Relation ids are never reused.
    let id = w
        .with(|s, m| s.relate(m, "website", jujulet::standin::Kind::Haproxy, 1, false))
        .unwrap();
    assert_eq!(id, 1);
}

#[test]
fn config_and_upgrade() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    w.take_hooks();
    assert!(
        w.with(|s, m| s.config(m, &["port=8080".into()], &[]))
            .unwrap()
    );
    assert_eq!(w.take_hooks(), ["config-changed"]);
    // The same value again: nothing to tell the charm.
    assert!(
        !w.with(|s, m| s.config(m, &["port=8080".into()], &[]))
            .unwrap()
    );
    assert!(w.take_hooks().is_empty());
    let err = w
        .with(|s, m| s.config(m, &["port=x".into()], &[]))
        .unwrap_err();
    assert_eq!(err.to_string(), "option \"port\" expected int, got \"x\"");
    let err = w
        .with(|s, m| s.config(m, &["k=1".into()], &[]))
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown option \"k\"");
    assert!(w.with(|s, m| s.config(m, &[], &["port".into()])).unwrap());
    assert_eq!(w.take_hooks(), ["config-changed"]);

    w.with(|s, m| s.upgrade(m)).unwrap();
    assert_eq!(w.take_hooks(), ["upgrade-charm", "config-changed"]);
    w.with(|s, m| s.run_hook_named(m, "update-status")).unwrap();
    assert_eq!(w.take_hooks(), ["update-status"]);
}

#[test]
fn failure_discards_buffered_writes_and_resolve_retries() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    w.take_hooks();
    std::fs::write(w.out().join("fail"), "").unwrap();
    let err = w
        .with(|s, m| s.run_hook_named(m, "update-status"))
        .unwrap_err();
    assert!(matches!(err, SchedError::InError { .. }));
    assert!(err.to_string().contains("jujulet resolve"), "{err}");
    assert_eq!(w.take_hooks(), ["update-status"]);
    let m = &w.model;
    assert_eq!(m.agent.status, Agent::Error);
    assert_eq!(m.agent.message, "hook failed: \"update-status\"");
    // Immediate writes stay, buffered ones are gone.
    assert_eq!(m.workload.message, "in update-status");
    assert_eq!(m.state["last"], "start");

    // Nothing else runs while in error.
    let err = w
        .with(|s, m| s.config(m, &["port=81".into()], &[]))
        .unwrap_err();
    assert!(matches!(err, SchedError::InError { .. }));
    assert!(w.take_hooks().is_empty());

    // Still failing: resolve retries and fails again.
    assert!(w.with(|s, m| s.resolve(m)).is_err());
    assert_eq!(w.take_hooks(), ["update-status"]);

    std::fs::remove_file(w.out().join("fail")).unwrap();
    w.with(|s, m| s.resolve(m)).unwrap();
    assert_eq!(w.take_hooks(), ["update-status", "config-changed"]);
    assert_eq!(w.model.agent.status, Agent::Idle);
    assert_eq!(w.model.state["last"], "config-changed");
    let log = std::fs::read_to_string(w.model_dir().join("debug.log")).unwrap();
    assert!(
        log.contains(
            "hook \"update-status\" (via hook dispatching script: dispatch) failed: exit status 1"
        ),
        "{log}"
    );
    // No hook context dirs are left behind.
    let ctx = w.machine.root().join("var/lib/juju/jujulet/ctx");
    assert_eq!(std::fs::read_dir(ctx).unwrap().count(), 0);
}

#[test]
fn a_relation_that_never_settles_is_reported() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    std::fs::write(w.out().join("flap"), "").unwrap();
    let err = w
        .with(|s, m| s.relate(m, "website", jujulet::standin::Kind::Haproxy, 1, false))
        .map(|_| w.take_hooks())
        .unwrap_err();
    assert!(matches!(err, SchedError::Loop { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("relation website:0 with lb did not settle"),
        "{msg}"
    );
    let changed = w
        .take_hooks()
        .iter()
        .filter(|h| h.as_str() == "website-relation-changed")
        .count();
    assert!(changed > 50 && changed < 150, "{changed}");
}

#[test]
fn the_hook_environment_is_jujus_no_home_and_the_models_proxies() {
    let mut w = World::new();
    w.model
        .model_config
        .insert("juju-https-proxy".into(), "http://127.0.0.1:3128".into());
    w.with(|s, m| s.deploy(m)).unwrap();
    let env = w.env_of("install");
    assert!(!env.contains_key("HOME"), "Juju sets no HOME: {env:?}");
    assert_eq!(env["JUJU_SLA"], "unsupported");
    assert_eq!(env["JUJU_CHARM_HTTPS_PROXY"], "http://127.0.0.1:3128");
    assert_eq!(env["JUJU_CHARM_HTTP_PROXY"], "");
    assert!(env["JUJU_CHARM_NO_PROXY"].contains("127.0.0.1"));
}

#[test]
fn a_failed_hook_is_retried_by_itself_with_back_off() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    w.take_hooks();
    std::fs::write(w.out().join("fail-times"), "2").unwrap();
    let err = w
        .with(|s, m| s.run_hook_named(m, "update-status"))
        .unwrap_err();
    assert!(matches!(err, SchedError::InError { .. }));
    assert_eq!(w.model.agent.status, Agent::Error);
    assert!(w.model.retry.is_some());
    // 50 ms, then 100 ms: both retries fall within the wait.
    w.with(|s, m| s.wait(m, std::time::Duration::from_millis(600)))
        .unwrap();
    assert_eq!(
        w.take_hooks(),
        ["update-status", "update-status", "update-status"]
    );
    assert_eq!(w.model.agent.status, Agent::Idle);
    assert_eq!(w.model.retry, None);

    // Off: the unit stays in error until resolved.
    w.model
        .model_config
        .insert("automatically-retry-hooks".into(), "false".into());
    w.model.save(&w.model_dir()).unwrap();
    std::fs::write(w.out().join("fail-times"), "1").unwrap();
    assert!(w.with(|s, m| s.run_hook_named(m, "update-status")).is_err());
    w.with(|s, m| s.wait(m, std::time::Duration::from_millis(300)))
        .unwrap();
    assert_eq!(w.take_hooks(), ["update-status"]);
    assert_eq!(w.model.agent.status, Agent::Error);
    w.with(|s, m| s.resolve(m)).unwrap();
}

#[test]
fn update_status_runs_on_its_timer() {
    let mut w = World::new();
    w.model
        .model_config
        .insert("update-status-hook-interval".into(), "150ms".into());
    w.with(|s, m| s.deploy(m)).unwrap();
    w.take_hooks();
    assert!(w.model.next_update_status.is_some(), "armed by start");
    w.with(|s, m| s.wait(m, std::time::Duration::from_millis(700)))
        .unwrap();
    let ran = w.take_hooks();
    assert!(
        ran.len() >= 2 && ran.iter().all(|h| h == "update-status"),
        "{ran:?}"
    );
    // Off: nothing runs.
    w.model
        .model_config
        .insert("update-status-hook-interval".into(), "0".into());
    w.model.next_update_status = None;
    w.model.save(&w.model_dir()).unwrap();
    w.with(|s, m| s.wait(m, std::time::Duration::from_millis(300)))
        .unwrap();
    assert!(w.take_hooks().is_empty());
}

#[test]
fn a_hook_killed_mid_way_runs_again() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    w.take_hooks();
    std::fs::write(w.out().join("slow-config-changed"), "").unwrap();
    let err = w
        .with(|s, m| {
            s.kill_next_hook_after(300);
            s.config(m, &["port=81".into()], &[])
        })
        .unwrap_err();
    assert!(matches!(err, SchedError::Killed { .. }), "{err}");
    // Not in error: the hook stays queued and runs on the next command.
    assert_ne!(w.model.agent.status, Agent::Error);
    assert_eq!(
        w.model.queue.front().map(|h| h.name.as_str()),
        Some("config-changed")
    );
    w.with(|s, m| s.run_queue(m)).unwrap();
    assert_eq!(w.take_hooks(), ["config-changed", "config-changed"]);
    assert!(w.model.queue.is_empty());
    assert_eq!(w.model.agent.status, Agent::Idle);
}

#[test]
fn remove_application_breaks_relations_then_stops_and_removes() {
    let mut w = World::new();
    w.with(|s, m| s.deploy(m)).unwrap();
    w.with(|s, m| s.relate(m, "website", jujulet::standin::Kind::Haproxy, 2, false))
        .unwrap();
    w.take_hooks();
    w.with(|s, m| s.remove_application(m)).unwrap();
    let hooks = w.take_hooks();
    assert_eq!(
        hooks,
        [
            "website-relation-departed lb/0",
            "website-relation-departed lb/1",
            "website-relation-broken",
            "stop",
            "remove",
        ],
        "{hooks:?}"
    );
    let m = &w.model;
    assert_eq!(m.workload.status, Workload::Terminated);
    assert!(m.removed);
    assert!(m.relations.is_empty());
    assert_eq!(m.next_update_status, None);
    // No timer brings the removed unit back.
    w.with(|s, m| s.tick(m)).unwrap();
    assert!(w.take_hooks().is_empty());
}
