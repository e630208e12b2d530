//! Releases with fakes at the seams (a real release store in a temporary
//! directory): new code never replaces what serves until it is built and
//! healthy, a failed check rolls back, and the actions list and roll back.

use serde_json::json;
use wsgi_layer::Status;

use crate::layer::Unit;

fn attach(u: &mut Unit, name: &str) -> Vec<String> {
    u.world.borrow_mut().resource = Some(format!("/res/{name}.tar.gz").into());
    u.hook("upgrade-charm")
}

#[test]
fn code_that_cannot_install_never_serves_and_config_still_applies() {
    let mut u = Unit::new();
    u.deploy();
    assert_eq!(u.live(), Some(1));
    u.world.borrow_mut().venv_error = Some(
        "Because nosuchpkg-xyz was not found in the package registry, your requirements are unsatisfiable".into(),
    );
    attach(&mut u, "v2");
    let (st, msg) = u.status();
    assert_eq!(st, Status::Blocked);
    assert!(msg.contains("nosuchpkg-xyz"), "{msg}");
    assert!(msg.chars().count() <= 160, "{msg}");
    assert_eq!(u.live(), Some(1), "the old release keeps serving");
    assert!(u.state.flags.contains("wsgi.available"));
    // A config change meanwhile is applied to the release that serves.
    u.world
        .borrow_mut()
        .config
        .insert("environment_variables".into(), json!("GREETING=meanwhile"));
    let calls = u.hook("config-changed");
    assert!(calls.iter().any(|c| c == "systemctl reload"), "{calls:?}");
    assert_eq!(u.status().0, Status::Blocked, "still saying why");
    assert_eq!(u.live(), Some(1));
    // A good archive afterwards recovers.
    u.world.borrow_mut().venv_error = None;
    attach(&mut u, "v3");
    assert_eq!(u.status().0, Status::Active, "{:?}", u.status());
    assert_eq!(u.live(), Some(2));
}

#[test]
fn a_release_that_fails_its_health_check_is_rolled_back() {
    let mut u = Unit::new();
    u.deploy();
    u.world.borrow_mut().bad_releases = vec![2];
    attach(&mut u, "crashes");
    let (st, msg) = u.status();
    assert_eq!(st, Status::Blocked);
    assert!(
        msg.starts_with("release 2 failed its health check:") && msg.ends_with("rolled back to 1"),
        "{msg}"
    );
    assert_eq!(u.live(), Some(1));
    assert!(u.state.flags.contains("wsgi.available"));
    // Not tried again on the next hooks while nothing changed.
    let calls = u.hook("config-changed");
    assert_eq!(
        calls.iter().filter(|c| *c == "systemctl restart").count(),
        0,
        "{calls:?}"
    );
    assert_eq!(u.live(), Some(1));
    assert!(u.status().1.contains("rolled back to 1"));
}

#[test]
fn list_releases_and_rollback_to_previous() {
    let mut u = Unit::new();
    u.deploy();
    attach(&mut u, "v2");
    assert_eq!(u.live(), Some(2));
    u.action("list-releases", json!({}));
    let r = u.world.borrow().action_results.clone();
    assert_eq!(r["live"], "2");
    assert_eq!(r["releases.1.health"], "passed");
    assert_eq!(r["releases.2.live"], "true");
    assert_eq!(r["releases.1.live"], "false");
    assert!(r["releases.1.created"].ends_with('Z'), "{r:?}");

    u.action("rollback", json!({"to": "previous"}));
    assert_eq!(u.world.borrow().action_failed, None);
    let r = u.world.borrow().action_results.clone();
    assert_eq!(r["rolled-back-to"], "1");
    assert!(r["note"].contains("migrations are not undone"));
    assert_eq!(u.live(), Some(1));
    // The pin holds while v2 stays attached ...
    u.hook("config-changed");
    u.hook("upgrade-charm");
    assert_eq!(u.live(), Some(1));
    assert_eq!(u.status().0, Status::Active);
    // ... and ends when another archive is attached.
    attach(&mut u, "v3");
    assert_eq!(u.live(), Some(3));

    u.action("rollback", json!({"to": "9"}));
    let failed = u.world.borrow().action_failed.clone().unwrap();
    assert!(failed.contains("no release 9"), "{failed}");
    u.action("rollback", json!({"to": "x"}));
    assert!(u.world.borrow().action_failed.is_some());
}

#[test]
fn a_rollback_to_a_release_that_fails_now_serves_the_live_one_again() {
    let mut u = Unit::new();
    u.deploy();
    attach(&mut u, "v2");
    u.world.borrow_mut().bad_releases = vec![1];
    u.action("rollback", json!({}));
    let failed = u.world.borrow().action_failed.clone().unwrap();
    assert!(failed.contains("release 2 serves again"), "{failed}");
    assert_eq!(u.live(), Some(2));
    assert_eq!(u.status().0, Status::Active);
}

#[test]
fn long_statuses_are_one_line_and_say_where_the_rest_is() {
    let long = format!("installing requirements failed: {}", "x".repeat(300));
    let (line, cut) = wsgi_layer::handlers::short_status(&long);
    assert!(cut && line.chars().count() <= 160, "{line}");
    assert!(line.ends_with("(juju debug-log)"), "{line}");
    let (line, cut) = wsgi_layer::handlers::short_status("a\nb");
    assert_eq!((line.as_str(), cut), ("a | b", true));
    let (line, cut) = wsgi_layer::handlers::short_status("short");
    assert_eq!((line.as_str(), cut), ("short", false));
}
