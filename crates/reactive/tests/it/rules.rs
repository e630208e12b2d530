//! The dispatch rules of charms.reactive (anchor-layer-wsgi.md §2.5), one by
//! one, through the engine's public API; rollback; determinism.
use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use reactive::trace::{self, Spec, SpecHandler, SpecTrigger};
use reactive::{DispatchError, Edge, Engine, State, StateStore};

type Log = Rc<RefCell<Vec<String>>>;

use crate::cases;

/// A handler body that logs its name, sets then clears flags.
fn body(
    log: &Log,
    name: &str,
    set: &[&str],
    clear: &[&str],
) -> impl Fn(&mut reactive::Ctx<'_, ()>) -> reactive::HandlerResult + 'static {
    let (log, name) = (log.clone(), name.to_owned());
    let set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
    let clear: Vec<String> = clear.iter().map(|s| (*s).to_owned()).collect();
    move |ctx| {
        log.borrow_mut().push(name.clone());
        for f in &set {
            ctx.set_flag(f);
        }
        for f in &clear {
            ctx.clear_flag(f);
        }
        Ok(())
    }
}

fn state(flags: &[&str]) -> State {
    State {
        flags: flags.iter().map(|s| (*s).to_owned()).collect(),
        ..State::default()
    }
}

#[test]
fn a_flag_set_takes_effect_in_the_next_pass() {
    let log = Log::default();
    let mut e = Engine::new();
    // b is registered first but only becomes due after a sets "x", one pass later.
    e.handler("b")
        .when_all(&["x"])
        .run(body(&log, "b", &[], &[]))
        .unwrap();
    e.handler("a").run(body(&log, "a", &["x"], &[])).unwrap();
    e.handler("c")
        .when_not(&["x"])
        .run(body(&log, "c", &[], &[]))
        .unwrap();
    let report = e
        .dispatch("config-changed", &[], &mut State::default(), &mut ())
        .unwrap();
    // c ran in pass 0 although a set x before it: sets wait for the next pass.
    assert_eq!(*log.borrow(), ["a", "c", "b"]);
    assert_eq!(report.passes, 2);
}

#[test]
fn a_cleared_flag_removes_queued_handlers_at_once() {
    let log = Log::default();
    let mut e = Engine::new();
    e.handler("first")
        .when_all(&["go"])
        .run(body(&log, "first", &[], &["go"]))
        .unwrap();
    e.handler("second")
        .when_all(&["go"])
        .run(body(&log, "second", &[], &[]))
        .unwrap();
    e.dispatch("install", &[], &mut state(&["go"]), &mut ())
        .unwrap();
    assert_eq!(*log.borrow(), ["first"]);
}

#[test]
fn clearing_an_unset_flag_re_tests_but_changes_nothing() {
    let log = Log::default();
    let mut e = Engine::new();
    e.handler("first")
        .run(body(&log, "first", &[], &["never-set"]))
        .unwrap();
    e.handler("second")
        .when_not(&["never-set"])
        .run(body(&log, "second", &[], &[]))
        .unwrap();
    let mut s = State::default();
    let report = e.dispatch("install", &[], &mut s, &mut ()).unwrap();
    assert_eq!(*log.borrow(), ["first", "second"]);
    assert_eq!(report.passes, 1, "no change event, so no second pass");
}

#[test]
fn a_handler_re_runs_only_when_its_watched_flags_changed() {
    let log = Log::default();
    let mut e = Engine::new();
    e.handler("steady")
        .when_all(&["ready"])
        .run(body(&log, "steady", &[], &[]))
        .unwrap();
    e.handler("toggler")
        .when_not(&["done"])
        .run(body(&log, "toggler", &["done"], &[]))
        .unwrap();
    e.handler("watcher")
        .when_any(&["ready", "done"])
        .run(body(&log, "watcher", &[], &[]))
        .unwrap();
    e.dispatch("update-status", &[], &mut state(&["ready"]), &mut ())
        .unwrap();
    // pass 0: all three; pass 1: only watcher (it watches "done", which changed).
    assert_eq!(*log.borrow(), ["steady", "toggler", "watcher", "watcher"]);
}

#[test]
fn hook_phase_handlers_run_once_and_only_for_their_hook() {
    let log = Log::default();
    let mut e = Engine::new();
    e.handler("db")
        .hooks(&["{postgres,mongo}-relation-{joined,changed}"])
        .run(body(&log, "db", &["seen"], &[]))
        .unwrap();
    e.handler("after")
        .when_all(&["seen"])
        .run(body(&log, "after", &[], &[]))
        .unwrap();
    e.dispatch(
        "mongo-relation-changed",
        &[],
        &mut State::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!(*log.borrow(), ["db", "after"]);
    log.borrow_mut().clear();
    e.dispatch(
        "website-relation-changed",
        &[],
        &mut State::default(),
        &mut (),
    )
    .unwrap();
    assert!(log.borrow().is_empty());
}

#[test]
fn triggers_fire_on_transitions_only() {
    let log = Log::default();
    let mut e = Engine::new();
    e.trigger("config.changed.port", Edge::Set, &[], &["wsgi.configured"]);
    e.trigger("wsgi.configured", Edge::Cleared, &["needs.render"], &[]);
    e.handler("noop").run(body(&log, "noop", &[], &[])).unwrap();
    // Already set: setting again is no transition, nothing fires.
    let mut s = state(&["config.changed.port", "wsgi.configured"]);
    e.dispatch(
        "config-changed",
        &["config.changed.port".into()],
        &mut s,
        &mut (),
    )
    .unwrap();
    assert!(s.flags.contains("wsgi.configured"));
    // A real transition: set fires the clear, whose own transition fires the set.
    let mut s = state(&["wsgi.configured"]);
    e.dispatch(
        "config-changed",
        &["config.changed.port".into()],
        &mut s,
        &mut (),
    )
    .unwrap();
    assert!(!s.flags.contains("wsgi.configured"));
    assert!(s.flags.contains("needs.render"));
    assert!(
        !s.flags.contains("config.changed.port"),
        "transient flags end with the hook"
    );
}

#[test]
fn transient_flags_are_visible_during_the_hook_only() {
    let log = Log::default();
    let mut e = Engine::new();
    e.handler("cfg")
        .when_all(&["config.changed"])
        .run(body(&log, "cfg", &[], &[]))
        .unwrap();
    let mut s = State::default();
    e.dispatch(
        "config-changed",
        &["config.changed".into()],
        &mut s,
        &mut (),
    )
    .unwrap();
    assert_eq!(*log.borrow(), ["cfg"]);
    assert!(s.flags.is_empty());
}

#[test]
fn a_loop_that_does_not_settle_names_the_toggling_flags() {
    let log = Log::default();
    let mut e = Engine::new();
    e.handler("on")
        .when_not(&["blink"])
        .run(body(&log, "on", &["blink"], &[]))
        .unwrap();
    e.handler("off")
        .when_all(&["blink"])
        .run(body(&log, "off", &[], &["blink"]))
        .unwrap();
    e.handler("quiet")
        .when_all(&["other"])
        .run(body(&log, "quiet", &[], &[]))
        .unwrap();
    let err = e
        .dispatch("install", &[], &mut State::default(), &mut ())
        .unwrap_err();
    match &err {
        DispatchError::NoSettle { flags, handlers } => {
            assert_eq!(flags, &["blink"]);
            assert!(!handlers.contains(&"quiet".to_owned()));
        }
        other => panic!("expected NoSettle, got {other}"),
    }
    assert!(
        err.to_string().contains("flags still changing: blink"),
        "{err}"
    );
}

#[test]
fn data_changed_is_true_once_per_value() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut e = Engine::new();
    let s2 = seen.clone();
    e.handler("h")
        .run(move |ctx| {
            let mut m = std::collections::HashMap::new();
            m.insert("b", 2);
            m.insert("a", 1);
            s2.borrow_mut().push(ctx.data_changed("k", &m)?);
            Ok(())
        })
        .unwrap();
    let mut s = State::default();
    e.dispatch("install", &[], &mut s, &mut ()).unwrap();
    e.dispatch("install", &[], &mut s, &mut ()).unwrap();
    assert_eq!(*seen.borrow(), [true, false]);
}

/// What the runtime does: commit only after a successful dispatch.
fn hook(e: &Engine<()>, store: &StateStore) -> Result<(), DispatchError> {
    let mut s = store.load().unwrap();
    e.dispatch("config-changed", &[], &mut s, &mut ())?;
    store.commit(&s).unwrap();
    Ok(())
}

#[test]
fn a_failing_or_panicking_hook_leaves_the_state_file_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("state.json"));
    let mut ok = Engine::new();
    ok.handler("good")
        .run(|ctx| {
            ctx.set_flag("wsgi.available");
            Ok(())
        })
        .unwrap();
    hook(&ok, &store).unwrap();
    let before = std::fs::read(store.path()).unwrap();

    let mut failing = Engine::new();
    failing
        .handler("sets")
        .run(|ctx| {
            ctx.set_flag("half.done");
            Ok(())
        })
        .unwrap();
    failing
        .handler("fails")
        .when_all(&["half.done"])
        .run(|ctx| {
            ctx.clear_flag("wsgi.available");
            Err(anyhow::anyhow!("pip install failed"))
        })
        .unwrap();
    let err = hook(&failing, &store).unwrap_err();
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        "handler fails failed: pip install failed"
    );
    assert_eq!(std::fs::read(store.path()).unwrap(), before);

    let mut panicking = Engine::new();
    panicking
        .handler("boom")
        .run(|ctx| {
            ctx.set_flag("x");
            panic!("index out of range")
        })
        .unwrap();
    let err = hook(&panicking, &store).unwrap_err();
    assert!(
        matches!(err, DispatchError::Panic { ref handler, .. } if handler == "boom"),
        "{err}"
    );
    assert_eq!(std::fs::read(store.path()).unwrap(), before);
}

#[test]
fn the_example_of_the_issue() {
    let spec: Spec = serde_json::from_str(
        r#"{"hook": "config-changed", "flags": ["a"],
            "handlers": [
              {"name": "h1", "hooks": ["config-changed"], "set": ["b"], "clear": []},
              {"name": "h2", "when_all": ["a"], "when_any": [], "when_not": ["c"], "when_not_all": [],
               "set": ["c"], "clear": ["a"]}],
            "triggers": [{"when": "c", "set": ["d"], "clear": []}, {"when_not": "a", "set": [], "clear": ["b"]}]}"#,
    )
    .unwrap();
    let t = trace::run(&spec).unwrap();
    assert_eq!(t.invoked, ["h1", "h2"]);
    assert_eq!(t.flags, ["c", "d"]);
}

fn flag() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(str::to_owned)
}

fn flags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(flag(), 0..3)
}

prop_compose! {
    fn spec_handler(i: usize)(hook in prop::bool::weighted(0.15), all in flags(), any in flags(),
                              not in flags(), not_all in flags(), set in flags(), clear in flags())
                             -> SpecHandler {
        SpecHandler {
            name: format!("h{i}"),
            hooks: if hook { vec!["{install,config-changed}".into()] } else { vec![] },
            when_all: if hook { vec![] } else { all },
            when_any: if hook { vec![] } else { any },
            when_not: if hook { vec![] } else { not },
            when_not_all: if hook { vec![] } else { not_all },
            set, clear,
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        flags(),
        prop::collection::vec((flag(), any::<bool>(), flags(), flags()), 0..3),
        (0usize..7).prop_flat_map(|n| (0..n).map(spec_handler).collect::<Vec<_>>()),
    )
        .prop_map(|(flags, triggers, handlers)| Spec {
            hook: "config-changed".into(),
            flags,
            handlers,
            triggers: triggers
                .into_iter()
                .map(|(f, on_set, set, clear)| SpecTrigger {
                    when: on_set.then(|| f.clone()),
                    when_not: (!on_set).then_some(f),
                    set,
                    clear,
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(500)))]
    /// Same input state and handlers → same handler sequence and same output state.
    #[test]
    fn dispatch_is_deterministic(spec in spec()) {
        let first = trace::run(&spec);
        let second = trace::run(&spec);
        match (first, second) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "differs: {:?} vs {:?}", a.is_ok(), b.is_ok()),
        }
    }
}
