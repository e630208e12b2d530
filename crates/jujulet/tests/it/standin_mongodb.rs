//! The MongoDB stand-in (SecantusDB) with a real driver (pymongo). Needs
//! the SecantusDB venv from `eval "$(scripts/lib/install-deps)"`
//! ($WSGI_TEST_SECANTUSD, $WSGI_TEST_MONGO_PYTHON, or their default paths);
//!
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use jujulet::standin::{self, RelationSnapshot, StandIn};

const VENV: &str = "/var/cache/wsgi-charm/venvs/mongo/bin";

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(VENV).join(default), PathBuf::from)
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

const CLIENT: &str = r#"
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000)
db = c["notes"]
db.t.insert_one({"k": 1, "v": "hello"})
doc = db.t.find_one({"k": 1}, {"_id": 0})
print(doc["v"])
"#;

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn mongodb_answers_insert_and_find() {
    crate::support::require_e2e();
    standin::preflight(standin::Kind::Mongodb).unwrap();
    let model = tempfile::Builder::new()
        .prefix("jujulet-mongo-test-")
        .tempdir()
        .unwrap();
    let dir = model.path().join("standins").join("mongodb");
    let s = standin::open(standin::Kind::Mongodb, &dir, "mongodb", 1).unwrap();
    let mut m = Running { s, _model: model };
    let t = Instant::now();
    m.s.start(&|p| eprintln!("start: {p}")).unwrap();
    eprintln!("TIMING mongodb start: {:.2} s", t.elapsed().as_secs_f64());

    let snap = RelationSnapshot {
        endpoint: "mongo".into(),
        interface: "mongodb".into(),
        relation_id: 5,
        local_app: "wsgi".into(),
        local_app_data: BTreeMap::new(),
        local_units: [("wsgi/0".to_owned(), BTreeMap::new())].into(),
    };
    let data = m.s.react(&snap).unwrap();
    let u = &data.units["mongodb/0"];
    assert_eq!(u["hostname"], "127.0.0.1");
    assert_eq!(u["type"], "database");
    assert_eq!(u["port"], m.s.address().unwrap().port().to_string());

    let python = tool("WSGI_TEST_MONGO_PYTHON", "python");
    for url in [
        format!("mongodb://{}:{}/", u["hostname"], u["port"]),
        format!(
            "mongodb://{}:{}/?replicaSet={}",
            u["hostname"], u["port"], u["replset"]
        ),
    ] {
        let out = Command::new(&python)
            .args(["-c", CLIENT, &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    }

    // Rebuilt by a later CLI call from its state.
    let again = standin::open(standin::Kind::Mongodb, &dir, "mongodb", 1).unwrap();
    assert!(again.is_running(), "{}", again.status());

    let addr = m.s.address().unwrap();
    m.s.stop().unwrap();
    // The listener closes as the server exits (it may still be unwinding).
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(5), || {
            std::net::TcpStream::connect(addr).is_err()
        }),
        "{addr} still accepts after stop"
    );
    assert!(!dir.exists(), "stand-in dir left behind");
    m.s.stop().unwrap();
}
