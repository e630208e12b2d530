//! The HAProxy stand-in in front of real HTTP backends (tiny Python servers
//! that echo the request headers). Needs haproxy and /usr/bin/python3;
//!
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jujulet::standin::{self, RelationSnapshot, StandIn};

const ECHO: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
name = sys.argv[2]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("backend=%s\n%s" % (name, self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// A backend that dies with the test.
struct Backend {
    child: Child,
    port: u16,
}

impl Backend {
    fn start(name: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/python3")
            .args(["-c", ECHO, &port.to_string(), name])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "backend {name} did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Running {
    s: Box<dyn StandIn>,
    _model: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.s.stop() {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A raw HTTP/1.0 GET: (status line, whole response).
fn get(addr: SocketAddr) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    (out.lines().next().unwrap_or("").to_owned(), out)
}

/// Retry until the response contains `want` (health checks, reloads).
fn get_until(addr: SocketAddr, want: &str) -> String {
    let t = Instant::now();
    loop {
        let (_, body) = get(addr);
        if body.contains(want) {
            return body;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "never saw {want:?}; last response:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn snapshot(port: u16) -> RelationSnapshot {
    let bag: BTreeMap<String, String> = [
        ("hostname", "127.0.0.1".to_owned()),
        ("private-address", "127.0.0.1".to_owned()),
        ("port", port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    RelationSnapshot {
        endpoint: "website".into(),
        interface: "http".into(),
        relation_id: 7,
        local_app: "wsgi".into(),
        local_app_data: BTreeMap::new(),
        local_units: [("wsgi/0".to_owned(), bag)].into(),
    }
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn haproxy_forwards_with_forwarded_headers_and_follows_changes() {
    crate::support::require_e2e();
    standin::preflight(standin::Kind::Haproxy).unwrap();
    let one = Backend::start("one");
    let two = Backend::start("two");
    let model = tempfile::Builder::new()
        .prefix("jujulet-haproxy-test-")
        .tempdir()
        .unwrap();
    let dir = model.path().join("standins").join("haproxy");
    let s = standin::open(standin::Kind::Haproxy, &dir, "haproxy", 1).unwrap();
    let mut lb = Running { s, _model: model };
    let t = Instant::now();
    lb.s.start(&|p| eprintln!("start: {p}")).unwrap();
    eprintln!("TIMING haproxy start: {:.2} s", t.elapsed().as_secs_f64());
    let front = lb.s.address().unwrap();

    // No backend yet: HAProxy answers 503 itself.
    assert!(get(front).0.contains("503"), "{:?}", get(front));

    let data = lb.s.react(&snapshot(one.port)).unwrap();
    assert_eq!(data.units["haproxy/0"]["private-address"], "127.0.0.1");
    assert_eq!(data.units["haproxy/0"]["ingress-address"], "127.0.0.1");
    let body = get_until(front, "backend=one");
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    // HAProxy sends header names in lower case (HTTP/1 normalisation).
    let lower = body.to_ascii_lowercase();
    assert!(lower.contains("\nx-forwarded-for: 127.0.0.1\n"), "{body}");
    assert!(lower.contains("\nx-forwarded-proto: http\n"), "{body}");

    // The unit's port changes: HAProxy is reloaded onto the new backend.
    let mut again = standin::open(standin::Kind::Haproxy, &dir, "haproxy", 1).unwrap();
    assert!(again.is_running());
    let t = Instant::now();
    again.react(&snapshot(two.port)).unwrap();
    eprintln!("TIMING haproxy reload: {:.2} s", t.elapsed().as_secs_f64());
    get_until(front, "backend=two");
    assert!(again.status().contains("1 backend"), "{}", again.status());

    // Hostile relation data never reaches the config.
    let mut evil = snapshot(one.port);
    evil.local_units.get_mut("wsgi/0").unwrap().insert(
        "hostname".into(),
        "127.0.0.1:1\n  server evil 127.0.0.1".into(),
    );
    again.react(&evil).unwrap();
    assert!(
        again.status().contains("ignored bad data from wsgi/0"),
        "{}",
        again.status()
    );
    get_until(front, "503");

    // Break: no backends, 503 again.
    again.react(&snapshot(one.port)).unwrap();
    get_until(front, "backend=one");
    again.broken(&snapshot(one.port)).unwrap();
    get_until(front, "503");

    lb.s.stop().unwrap();
    assert!(TcpStream::connect(front).is_err());
    assert!(!dir.exists(), "stand-in dir left behind");
    lb.s.stop().unwrap();
}
