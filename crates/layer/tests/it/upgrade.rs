//! An upgrade of the charm from a state file written by the release before
//! the layer's memory became one typed struct: a591085, deployed for real
//! (examples/notes under jujulet, related to PostgreSQL and HAProxy; the
//! stand-in's throwaway password replaced). Its memory reads back with the
//! same meaning, is rewritten in the new format once, and nothing is redone.

use std::cell::RefCell;
use std::rc::Rc;

use reactive::StateStore;
use wsgi_layer::Status;
use wsgi_layer::memory::LayerMemory;

use crate::layer::Unit;

const OLD_STATE: &str = include_str!("fixtures/state-a591085.json");

#[test]
fn a_state_file_of_the_previous_release_keeps_its_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, OLD_STATE).unwrap();
    let store = StateStore::new(&path);
    let mut u = Unit::new();
    u.state = store.load().unwrap();
    u.world.borrow_mut().main_pid = 4242;
    u.world.borrow_mut().active = true;
    let seen: Rc<RefCell<Option<LayerMemory>>> = Rc::default();
    let probe = seen.clone();
    u.engine
        .handler("test.probe")
        .run(move |ctx| {
            *probe.borrow_mut() = Some(LayerMemory::load(ctx)?);
            Ok(())
        })
        .unwrap();

    // update-status: the remembered status is the one shown, so nothing is
    // set again; only the health check runs.
    let calls = u.hook("update-status");
    assert_eq!(calls, ["health"], "{calls:?}");
    let mem = seen.borrow().clone().unwrap();
    assert_eq!(mem.version, wsgi_layer::memory::VERSION);
    let serving = "Serving wsgi:application on :18990, 5 workers";
    assert_eq!(mem.status, Some((Status::Active, serving.to_owned())));
    assert_eq!(mem.held, None);
    assert_eq!(mem.port, Some(18990));
    assert_eq!(mem.release.as_deref(), Some("0b01a0b169af"));
    assert_eq!(mem.old_main_pid, None);
    let target = mem.health_target.clone().unwrap();
    assert_eq!(
        (target.port, target.path.as_str(), target.serving.as_str()),
        (18990, "/", serving)
    );
    let hashes = mem.hashes.clone().unwrap();
    assert_eq!(
        hashes.unit,
        "6f3016f302ea085fda14890f0c50e79c5f7c106e2442e66d8a782c89eae3e328"
    );
    assert_eq!(
        mem.db_checked,
        ["403c37497dd3b5c1570136bed44f89115ffa9d87f7e19564a4abcc2d86b1f602"]
    );
    let view = mem.relations.clone().unwrap();
    assert!(
        view.postgres_url
            .as_deref()
            .unwrap()
            .starts_with("postgresql://juju_notes:")
    );
    assert_eq!(view.proxy_ips(), ["127.0.0.1"]);
    assert_eq!(view.published_port, Some(18990));

    // Rewritten once in the new format: one key, the old ones gone.
    let data = &u.state.data;
    assert!(data.contains_key("store:wsgi.memory"), "{data:?}");
    for old in [
        "store:status",
        "store:port",
        "store:hashes",
        "store:relations",
    ] {
        assert!(!data.contains_key(old), "{old} still there");
    }
    assert!(store.commit(&u.state).unwrap());
    // The next idle hook changes nothing: the file is left alone.
    u.hook("update-status");
    assert!(
        !store.commit(&u.state).unwrap(),
        "an idle hook rewrote the state"
    );
    assert_eq!(seen.borrow().clone().unwrap(), mem);
}

#[test]
fn a_memory_value_that_does_not_read_back_is_an_error_naming_it() {
    let mut u = Unit::new();
    u.state
        .data
        .insert("store:port".into(), "\"not a port\"".into());
    let mut ctx = wsgi_layer::LayerCtx {
        juju: Box::new(crate::layer::fake_juju(&u)),
        host: Box::new(crate::layer::fake_host(&u)),
    };
    let err = u
        .engine
        .dispatch("update-status", &[], &mut u.state, &mut ctx)
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("\"port\""), "{chain}");
    assert!(chain.contains("does not read back"), "{chain}");
}
