//! Readiness tables: relation data → ready or not, with the reason.

use std::collections::BTreeMap;

use interfaces::pgsql::{self, Me, Readiness, Request};
use interfaces::{Databag, http, mongodb, postgresql_client};

fn bag(pairs: &[(&str, &str)]) -> Databag {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn units(list: &[(&str, Databag)]) -> BTreeMap<String, Databag> {
    list.iter()
        .map(|(n, b)| ((*n).to_owned(), b.clone()))
        .collect()
}

fn request() -> Request {
    Request {
        database: "notes".into(),
        roles: vec![],
        extensions: vec![],
    }
}

const EGRESS: &[String] = &[];

fn me() -> Me<'static> {
    Me {
        unit: "wsgi/0",
        egress_subnets: EGRESS,
    }
}

fn pg_unit(extra: &[(&str, &str)]) -> Databag {
    let mut b = bag(&[
        ("host", "10.0.0.5"),
        ("port", "5432"),
        ("database", "notes"),
        ("user", "juju_wsgi"),
        ("password", "s3cret"),
        ("state", "standalone"),
        ("allowed-units", "other/0 wsgi/0"),
    ]);
    for (k, v) in extra {
        if v.is_empty() {
            b.remove(*k);
        } else {
            b.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    b
}

fn waiting(r: &Readiness) -> &str {
    match r {
        Readiness::Waiting(w) => w,
        other => panic!("expected waiting, got {other:?}"),
    }
}

#[test]
fn pgsql_ready_when_authorised_and_echoed() {
    let r = pgsql::readiness(&request(), me(), &units(&[("postgresql/0", pg_unit(&[]))]));
    let Readiness::Ready(c) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(c.url(), "postgresql://juju_wsgi:s3cret@10.0.0.5:5432/notes");
    let f = r.flags();
    assert!(f.connected && f.master_available && f.database_available);
}

#[test]
fn pgsql_table() {
    let req = request();
    let cases: Vec<(&str, Databag, &str)> = vec![
        (
            "no credentials yet",
            bag(&[("private-address", "10.0.0.5")]),
            "waiting for PostgreSQL to send credentials",
        ),
        (
            "password missing",
            pg_unit(&[("password", "")]),
            "waiting for PostgreSQL to send credentials",
        ),
        (
            "not yet in allowed-units",
            pg_unit(&[("allowed-units", "other/0")]),
            "waiting for PostgreSQL to authorise this unit",
        ),
        (
            "allowed-units absent",
            pg_unit(&[("allowed-units", "")]),
            "waiting for PostgreSQL to authorise this unit",
        ),
        (
            "unit name is a prefix only",
            pg_unit(&[("allowed-units", "wsgi/01")]),
            "waiting for PostgreSQL to authorise this unit",
        ),
        (
            "database echo mismatch",
            pg_unit(&[("database", "wsgi")]),
            "waiting for PostgreSQL to confirm database \"notes\"",
        ),
        (
            "standby without master",
            pg_unit(&[("state", "hot standby")]),
            "waiting for a PostgreSQL master",
        ),
    ];
    for (what, unit, reason) in cases {
        let r = pgsql::readiness(&req, me(), &units(&[("postgresql/0", unit)]));
        assert_eq!(waiting(&r), reason, "{what}");
        assert!(
            r.flags().connected && !r.flags().database_available,
            "{what}"
        );
    }
    assert_eq!(
        pgsql::readiness(&req, me(), &BTreeMap::new()),
        Readiness::NotRelated
    );
}

#[test]
fn pgsql_roles_and_extensions_must_be_echoed() {
    let req = Request {
        database: "notes".into(),
        roles: vec!["b".into(), "a".into()],
        extensions: vec!["pg_trgm".into()],
    };
    assert_eq!(
        req.databag(),
        bag(&[
            ("database", "notes"),
            ("roles", "a,b"),
            ("extensions", "pg_trgm")
        ])
    );
    let unechoed = pg_unit(&[]);
    assert_eq!(
        waiting(&pgsql::readiness(
            &req,
            me(),
            &units(&[("postgresql/0", unechoed)])
        )),
        "waiting for PostgreSQL to grant the requested roles and extensions"
    );
    let echoed = pg_unit(&[("roles", "b,a"), ("extensions", "pg_trgm")]);
    assert!(matches!(
        pgsql::readiness(&req, me(), &units(&[("postgresql/0", echoed)])),
        Readiness::Ready(_)
    ));
}

#[test]
fn pgsql_allowed_subnets() {
    let mine = vec!["10.0.0.7/32".to_owned()];
    let me = Me {
        unit: "wsgi/0",
        egress_subnets: &mine,
    };
    let inside = pg_unit(&[
        ("allowed-units", ""),
        ("allowed-subnets", "192.168.0.0/16,10.0.0.0/24"),
    ]);
    assert!(matches!(
        pgsql::readiness(&request(), me, &units(&[("postgresql/0", inside)])),
        Readiness::Ready(_)
    ));
    let outside = pg_unit(&[("allowed-subnets", "10.0.1.0/24")]);
    assert_eq!(
        waiting(&pgsql::readiness(
            &request(),
            me,
            &units(&[("postgresql/0", outside)])
        )),
        "waiting for PostgreSQL to authorise this unit",
        "allowed-subnets, when present, decides (allowed-units is ignored)"
    );
}

#[test]
fn pgsql_picks_the_master_and_prefers_the_v2_string() {
    let master = pg_unit(&[("state", "master"), ("host", "10.0.0.5")]);
    let standby = pg_unit(&[("state", "hot standby"), ("host", "10.0.0.6")]);
    let r = pgsql::readiness(
        &request(),
        me(),
        &units(&[
            ("postgresql/0", standby.clone()),
            ("postgresql/1", master.clone()),
        ]),
    );
    let Readiness::Ready(c) = r else {
        panic!("{r:?}")
    };
    assert_eq!(c.host, "10.0.0.5");

    let two = pgsql::readiness(
        &request(),
        me(),
        &units(&[
            ("postgresql/0", master.clone()),
            ("postgresql/1", pg_unit(&[("state", "master")])),
        ]),
    );
    assert_eq!(
        waiting(&two),
        "waiting for PostgreSQL to settle on one master"
    );

    let v2 = pg_unit(&[
        ("state", "hot standby"),
        (
            "master",
            r"dbname=notes host=10.0.0.9 port=5433 user=juju_wsgi password='it\'s \\x'",
        ),
    ]);
    let r = pgsql::readiness(&request(), me(), &units(&[("postgresql/0", v2)]));
    let Readiness::Ready(c) = r else {
        panic!("{r:?}")
    };
    assert_eq!((c.host.as_str(), c.port), ("10.0.0.9", 5433));
    assert_eq!(c.password, r"it's \x");
}

#[test]
fn libpq_quoting() {
    let kv = pgsql::parse_libpq(r"dbname=a host = h password='p w\'q\\' user=u\ x").unwrap();
    assert_eq!(kv["password"], r"p w'q\");
    assert_eq!(kv["host"], "h");
    assert_eq!(kv["user"], "u x");
    assert!(pgsql::parse_libpq("password='open").is_err());
    assert!(pgsql::parse_libpq("novalue").is_err());
}

#[test]
fn postgresql_client_plain_and_secret() {
    let req = postgresql_client::request("notes", &[]);
    assert_eq!(req["database"], "notes");
    assert!(req.contains_key("requested-secrets"));

    let app = bag(&[
        ("database", "notes"),
        ("endpoints", "10.0.0.5:5432,10.0.0.6:5432"),
        ("username", "relation_id_3"),
        ("password", "p@ss"),
        ("version", "16.4"),
    ]);
    let postgresql_client::Readiness::Ready(c) = postgresql_client::readiness("notes", &app) else {
        panic!()
    };
    assert_eq!(
        c.url(),
        "postgresql://relation_id_3:p%40ss@10.0.0.5:5432/notes"
    );

    let mut secret_app = app.clone();
    secret_app.remove("username");
    secret_app.remove("password");
    secret_app.insert("secret-user".into(), "secret:cs1cu2r3t".into());
    secret_app.insert("tls".into(), "True".into());
    assert_eq!(
        postgresql_client::readiness("notes", &secret_app),
        postgresql_client::Readiness::NeedsSecret("secret:cs1cu2r3t".into())
    );
    let secret = bag(&[("username", "u"), ("password", "p")]);
    let postgresql_client::Readiness::Ready(c) =
        postgresql_client::with_secret(&secret_app, &secret)
    else {
        panic!()
    };
    assert_eq!(
        c.url(),
        "postgresql://u:p@10.0.0.5:5432/notes?sslmode=require"
    );

    let v6 = bag(&[
        ("database", "notes"),
        ("endpoints", "[fd00::5]:5432"),
        ("username", "u"),
        ("password", "p"),
    ]);
    let postgresql_client::Readiness::Ready(c) = postgresql_client::readiness("notes", &v6) else {
        panic!()
    };
    assert_eq!(c.url(), "postgresql://u:p@[fd00::5]:5432/notes");

    let other_db = bag(&[("database", "x"), ("endpoints", "h:1")]);
    assert!(matches!(
        postgresql_client::readiness("notes", &other_db),
        postgresql_client::Readiness::Waiting(_)
    ));
    assert_eq!(
        postgresql_client::readiness("notes", &Databag::new()),
        postgresql_client::Readiness::NotRelated
    );
}

#[test]
fn mongodb_table() {
    use mongodb::Readiness as R;
    assert_eq!(mongodb::readiness(&BTreeMap::new()), R::NotRelated);
    assert!(matches!(
        mongodb::readiness(&units(&[(
            "mongodb/0",
            bag(&[("private-address", "10.0.0.7")])
        )])),
        R::Waiting(_)
    ));
    let one = units(&[(
        "mongodb/0",
        bag(&[
            ("hostname", "10.0.0.7"),
            ("port", "27017"),
            ("type", "database"),
        ]),
    )]);
    assert_eq!(
        mongodb::readiness(&one),
        R::Ready("mongodb://10.0.0.7:27017".into())
    );
    let rs = units(&[
        (
            "mongodb/1",
            bag(&[
                ("hostname", "10.0.0.8"),
                ("port", "27017"),
                ("replset", "rs0"),
            ]),
        ),
        (
            "mongodb/0",
            bag(&[
                ("hostname", "10.0.0.7"),
                ("port", "27017"),
                ("replset", "rs0"),
            ]),
        ),
        (
            "mongodb/2",
            bag(&[("hostname", "evil\nhost"), ("port", "27017")]),
        ),
    ]);
    assert_eq!(
        mongodb::readiness(&rs),
        R::Ready("mongodb://10.0.0.7:27017,10.0.0.8:27017/?replicaSet=rs0".into())
    );
}

#[test]
fn http_publish_and_forwarded_ips() {
    insta::assert_yaml_snapshot!(http::publish("10.0.0.3", "10.0.0.3", 8080));
    let lbs = units(&[
        (
            "haproxy/0",
            bag(&[
                ("ingress-address", "10.0.0.20"),
                ("private-address", "10.0.0.21"),
            ]),
        ),
        ("haproxy/1", bag(&[("private-address", "fd00::20")])),
        ("haproxy/2", bag(&[("ingress-address", "10.0.0.20")])),
        ("haproxy/3", bag(&[("ingress-address", "*")])),
        (
            "haproxy/4",
            bag(&[("ingress-address", "1.2.3.4\nbind = evil")]),
        ),
    ]);
    assert_eq!(http::forwarded_allow_ips(&lbs), ["10.0.0.20", "fd00::20"]);
}

#[test]
fn published_requests_snapshot() {
    let req = Request {
        database: "notes".into(),
        roles: vec!["r2".into(), "r1".into()],
        extensions: vec!["citext".into(), "pg_trgm".into()],
    };
    insta::assert_yaml_snapshot!("pgsql_request", req.databag());
    insta::assert_yaml_snapshot!(
        "postgresql_client_request",
        postgresql_client::request("notes", &["CREATEDB".into()])
    );
}
