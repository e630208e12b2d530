//! The topology jujulet relies on: a unit inside an nspawn machine reaches
//! a stand-in server on the host's loopback (shared network namespace), and
//! a stand-in load balancer on the host reaches a service inside the
//! machine.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use jujulet::machines::{self, Machine, MachineKind};
use jujulet::standin::{self, RelationSnapshot, StandIn};

/// Tears everything down even when the test panics: stand-ins first, then
/// the machine, then the model dir.
struct World {
    standins: Vec<Box<dyn StandIn>>,
    machine: Option<Box<dyn Machine>>,
    model: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        // As `jujulet destroy` would: whatever the model dir records.
        if let Err(e) = standin::stop_all(self.model.path()) {
            eprintln!("cleanup: {e}");
        }
        for s in &mut self.standins {
            if let Err(e) = s.stop() {
                eprintln!("cleanup: {e}");
            }
        }
        if let Some(m) = self.machine.as_mut()
            && let Err(e) = m.destroy()
        {
            eprintln!("cleanup: {e}");
        }
        if let Err(e) = machines::destroy(self.model.path()) {
            eprintln!("cleanup: {e}");
        }
    }
}

fn sv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn env() -> Vec<(String, String)> {
    vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())]
}

fn bag(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn units_inside_reach_standins_and_back() {
    crate::support::require_e2e();
    let model = tempfile::Builder::new()
        .prefix("jujulet-world-test-")
        .tempdir()
        .unwrap();
    let dir = model.path().canonicalize().unwrap();
    let mut w = World {
        standins: Vec::new(),
        machine: None,
        model,
    };
    w.machine = Some(machines::create(MachineKind::Nspawn, &dir, &|_| ()).unwrap());
    let pg_dir = standin::dir_for(&dir, "postgresql");
    w.standins
        .push(standin::open(standin::Kind::Postgresql, &pg_dir, "postgresql", 1).unwrap());
    w.standins[0].start(&|_| ()).unwrap();
    let data = w.standins[0]
        .react(&RelationSnapshot {
            endpoint: "postgres".into(),
            interface: "pgsql".into(),
            relation_id: 1,
            local_app: "wsgi".into(),
            local_app_data: BTreeMap::new(),
            local_units: [("wsgi/0".to_owned(), bag(&[("database", "notes")]))].into(),
        })
        .unwrap();
    let master = data.units["postgresql/0"]["master"].clone();

    // From inside the machine, with the credentials the charm would get.
    let m = w.machine.as_ref().unwrap();
    let out = m
        .exec(
            &sv(&[
                "psql",
                &master,
                "-XAtc",
                "select current_user || '@' || current_database()",
            ]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "juju_wsgi@notes\n");

    // A service inside the machine, behind the HAProxy stand-in on the host.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(m.root().join("srv/index.html"), "served from the machine\n").unwrap();
    let out = m
        .exec(
            &sv(&[
                "systemd-run",
                "--unit=jujulet-web",
                "--working-directory=/srv",
                "/usr/bin/python3",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ]),
            &env(),
            Path::new("/"),
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lb_dir = standin::dir_for(&dir, "haproxy");
    w.standins
        .push(standin::open(standin::Kind::Haproxy, &lb_dir, "haproxy", 1).unwrap());
    w.standins[1].start(&|_| ()).unwrap();
    w.standins[1]
        .react(&RelationSnapshot {
            endpoint: "website".into(),
            interface: "http".into(),
            relation_id: 2,
            local_app: "wsgi".into(),
            local_app_data: BTreeMap::new(),
            local_units: [(
                "wsgi/0".to_owned(),
                bag(&[("hostname", "127.0.0.1"), ("port", &port.to_string())]),
            )]
            .into(),
        })
        .unwrap();
    let front = w.standins[1].address().unwrap();
    assert_eq!(standin::list(&dir), [lb_dir.clone(), pg_dir.clone()]);
    let t = Instant::now();
    loop {
        let mut s = TcpStream::connect(front).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        if body.contains("served from the machine") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // What `jujulet destroy` does, from the model dir alone.
    standin::stop_all(&dir).unwrap();
    assert!(standin::list(&dir).is_empty());
    assert!(TcpStream::connect(front).is_err());
}
