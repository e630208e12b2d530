//! The PostgreSQL stand-in against a real cluster and a real client (psql).
//! Needs root and the postgresql package;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use jujulet::standin::{self, Options, RelationSnapshot, StandIn};

/// Stops the stand-in even when the test panics.
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

fn start(options: &Options) -> (Running, std::path::PathBuf) {
    let model = tempfile::Builder::new()
        .prefix("jujulet-pg-test-")
        .tempdir()
        .unwrap();
    let dir = model.path().join("standins").join("postgresql");
    let s = standin::open_with(standin::Kind::Postgresql, &dir, "postgresql", 1, options).unwrap();
    let mut r = Running { s, _model: model };
    let t = Instant::now();
    r.s.start(&|p| eprintln!("start: {p}")).unwrap();
    eprintln!(
        "TIMING postgresql start: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    (r, dir)
}

fn bag(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pgsql_snapshot(units: &[(&str, &[(&str, &str)])]) -> RelationSnapshot {
    RelationSnapshot {
        endpoint: "postgres".into(),
        interface: "pgsql".into(),
        relation_id: 3,
        local_app: "wsgi".into(),
        local_app_data: BTreeMap::new(),
        local_units: units
            .iter()
            .map(|(u, kv)| ((*u).to_owned(), bag(kv)))
            .collect(),
    }
}

/// psql with nothing from our environment (no PGPASSWORD, no PGHOST).
fn psql(conninfo: &str) -> Result<String, String> {
    let out = Command::new("/usr/bin/psql")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args([
            conninfo,
            "-XAtc",
            "select current_user || '@' || current_database()",
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn pgsql_and_postgresql_client_credentials_really_log_in() {
    crate::support::require_e2e();
    standin::preflight(standin::Kind::Postgresql).unwrap();
    let (mut pg, dir) = start(&Options::default());
    assert!(pg.s.is_running());
    assert!(pg.s.interfaces().contains(&"pgsql"));

    // pgsql: the unit asks for a database, a role and an extension.
    let snap = pgsql_snapshot(&[
        (
            "wsgi/0",
            &[
                ("database", "notes"),
                ("roles", "reporting"),
                ("extensions", "pg_trgm"),
                ("private-address", "127.0.0.1"),
            ],
        ),
        ("wsgi/1", &[("private-address", "127.0.0.1")]),
    ]);
    let t = Instant::now();
    let data = pg.s.react(&snap).unwrap();
    eprintln!(
        "TIMING react (role + database): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert!(data.app_data.is_empty());
    let u = &data.units["postgresql/0"];
    let port = pg.s.address().unwrap().port().to_string();
    assert_eq!(u["host"], "127.0.0.1");
    assert_eq!(u["port"], port);
    assert_eq!(u["database"], "notes");
    assert_eq!(u["user"], "juju_wsgi");
    assert_eq!(u["schema_user"], "juju_wsgi");
    assert_eq!(u["schema_password"], u["password"]);
    assert_eq!(u["password"].len(), 40);
    assert!(u["password"].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(u["version"], "15");
    assert_eq!(u["state"], "standalone");
    assert_eq!(u["allowed-units"], "wsgi/0 wsgi/1");
    assert_eq!(u["roles"], "reporting");
    assert_eq!(u["extensions"], "pg_trgm");
    assert_eq!(u["private-address"], "127.0.0.1");
    assert_eq!(
        u["master"],
        format!(
            "dbname=notes host=127.0.0.1 port={port} user=juju_wsgi password={}",
            u["password"]
        )
    );
    assert_eq!(psql(&u["master"]).unwrap(), "juju_wsgi@notes");
    let url = format!(
        "postgresql://juju_wsgi:{}@127.0.0.1:{port}/notes",
        enc(&u["password"])
    );
    assert_eq!(psql(&url).unwrap(), "juju_wsgi@notes");
    let wrong = format!("postgresql://juju_wsgi:not-the-password@127.0.0.1:{port}/notes");
    let err = psql(&wrong).unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");

    // A later CLI process rebuilds the stand-in from its state: same server,
    // same password.
    let mut again = standin::open(standin::Kind::Postgresql, &dir, "postgresql", 1).unwrap();
    assert!(again.is_running());
    again.start(&|_| ()).unwrap();
    assert_eq!(again.react(&snap).unwrap(), data);
    assert!(again.status().contains(&port), "{}", again.status());
    let mode = std::fs::metadata(dir.join("state.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // postgresql_client: nothing until the leader asks, then app data.
    let mut client = RelationSnapshot {
        endpoint: "database".into(),
        interface: "postgresql_client".into(),
        relation_id: 4,
        local_app: "wsgi".into(),
        local_app_data: BTreeMap::new(),
        local_units: [(
            "wsgi/0".to_owned(),
            bag(&[("private-address", "127.0.0.1")]),
        )]
        .into(),
    };
    let empty = again.react(&client).unwrap();
    assert!(empty.app_data.is_empty());
    client.local_app_data = bag(&[("database", "appdb")]);
    let app = again.react(&client).unwrap().app_data;
    assert_eq!(app["database"], "appdb");
    assert_eq!(app["endpoints"], format!("127.0.0.1:{port}"));
    assert_eq!(app["username"], "relation_id_4");
    assert!(app["version"].starts_with("15."), "{}", app["version"]);
    let url = format!(
        "postgresql://{}:{}@{}/{}",
        app["username"],
        enc(&app["password"]),
        app["endpoints"],
        app["database"]
    );
    assert_eq!(psql(&url).unwrap(), "relation_id_4@appdb");
    assert_eq!(psql(&app["uris"]).unwrap(), "relation_id_4@appdb");

    // Break: the role goes, so the old password stops working.
    let master = u["master"].clone();
    again.broken(&snap).unwrap();
    let err = psql(&master).unwrap_err();
    assert!(
        err.contains("password authentication failed") || err.contains("does not exist"),
        "{err}"
    );
    again.broken(&snap).unwrap();
    again.broken(&client).unwrap();
    assert!(psql(&url).is_err());

    // Stop: server gone, data gone; idempotent.
    let t = Instant::now();
    pg.s.stop().unwrap();
    eprintln!("TIMING postgresql stop: {:.2} s", t.elapsed().as_secs_f64());
    assert!(!pg.s.is_running());
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
    assert!(!dir.exists(), "stand-in dir left behind");
    pg.s.stop().unwrap();
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn hostile_password_logs_in_when_encoded() {
    crate::support::require_e2e();
    standin::preflight(standin::Kind::Postgresql).unwrap();
    let (mut pg, _dir) = start(&Options {
        hostile_password: true,
    });
    let snap = pgsql_snapshot(&[("wsgi/0", &[("database", "hostile db")])]);
    let u = pg.s.react(&snap).unwrap().units["postgresql/0"].clone();
    let pw = &u["password"];
    for c in "@:/%#?&+ '\"\\".chars() {
        assert!(pw.contains(c), "{pw:?} lacks {c:?}");
    }
    let port = &u["port"];
    let url = format!(
        "postgresql://juju_wsgi:{}@127.0.0.1:{port}/{}",
        enc(pw),
        enc("hostile db")
    );
    assert_eq!(psql(&url).unwrap(), "juju_wsgi@hostile db");
    // The libpq string is quoted properly too.
    assert_eq!(psql(&u["master"]).unwrap(), "juju_wsgi@hostile db");
    // Unencoded, the URL does not work: the test really is hostile.
    let raw = format!("postgresql://juju_wsgi:{pw}@127.0.0.1:{port}/notes");
    assert!(psql(&raw).is_err());
}
