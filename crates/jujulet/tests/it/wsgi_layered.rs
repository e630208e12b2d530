//! The layer as a layer: examples/layered-charm, a charm with a binary of
//! its own that registers the WSGI layer's handlers plus two of its own
//! (one places the app it ships and sets wsgi.source.available, one reacts
//! to wsgi.available), packed by scripts/pack and deployed as a .charm.

use crate::support::{Model, eventually, get, layered_charm};

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn a_charm_built_on_the_layer_deploys_serves_and_runs_its_own_handler() {
    crate::support::require_e2e();
    let m = Model::new("wsgi-layered-");
    let charm = layered_charm();
    m.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "--config",
        "port=18500",
        "--config",
        "workers=2",
    ]);
    let st = m.unit_status();
    assert!(
        st.contains("layered-hello/0")
            && st.contains("active")
            && st.contains("Serving wsgi:application (release 1) on :18500, 2 workers"),
        "{st}\n{}",
        m.log()
    );
    assert!(
        eventually(std::time::Duration::from_secs(10), || get(18500, "/")
            == (200, "Hello from a charm built on the WSGI layer\n".into())),
        "{:?}",
        get(18500, "/")
    );
    // The charm's own wsgi.available handler ran, once.
    let (code, marker, _) = m.exec(&["cat", "/var/lib/layered-charm/available"]);
    assert_eq!(code, 0, "the charm's wsgi.available handler did not run");
    assert!(marker.starts_with("layered-hello/0 in hook "), "{marker}");
    let log = m.ok(&["debug-log"]);
    assert_eq!(
        log.matches("layered: wsgi.available is set, the app serves")
            .count(),
        1,
        "{log}"
    );
    // The layer options it set: its own user.
    let pid = m.main_pid("wsgi-layered-hello.service");
    let (_, user, _) = m.exec(&["ps", "-o", "user=", "-p", &pid.to_string()]);
    assert_eq!(user.trim(), "layered");
    // Its own code, no resource: the release is built from what the charm
    // placed in the layer's source directory.
    let (_, current, _) = m.exec(&["readlink", "/srv/layered-hello/current"]);
    assert_eq!(current.trim(), "/srv/layered-hello/releases/1");
    let (code, _, err) = m.exec(&[
        "cmp",
        "/srv/layered-hello/source/wsgi.py",
        "/srv/layered-hello/current/app/wsgi.py",
    ]);
    assert_eq!(code, 0, "{err}");
}
