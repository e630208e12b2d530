//! Hostile relation data never panics, and URLs round-trip for any input.

use std::collections::BTreeMap;

use interfaces::pgsql::{self, Me, Request};
use interfaces::url::UrlParts;
use interfaces::{Databag, http, mongodb, postgresql_client};
use proptest::prelude::*;

use crate::cases;

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[@:/%#?&+ \\[\\]'\"\\\\\n\r\t\u{0}]{0,20}",
        Just("x".repeat(10_000)),
        Just("10.0.0.5".to_owned()),
        Just("5432".to_owned()),
        Just("master".to_owned()),
        Just("wsgi/0".to_owned()),
        Just("notes".to_owned()),
    ]
}

fn hostile_bag() -> impl Strategy<Value = Databag> {
    let keys = prop::sample::select(vec![
        "host",
        "port",
        "database",
        "user",
        "password",
        "state",
        "allowed-units",
        "allowed-subnets",
        "master",
        "roles",
        "extensions",
        "hostname",
        "replset",
        "endpoints",
        "username",
        "secret-user",
        "tls",
        "ingress-address",
        "private-address",
    ]);
    prop::collection::btree_map(keys.prop_map(str::to_owned), hostile_value(), 0..12)
}

fn hostile_units() -> impl Strategy<Value = BTreeMap<String, Databag>> {
    prop::collection::btree_map("[a-z]{1,8}/[0-9]", hostile_bag(), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn no_protocol_function_panics(units in hostile_units(), app in hostile_bag(), secret in hostile_bag(),
                                   db in hostile_value(), libpq in hostile_value()) {
        let subnets = vec!["10.0.0.7/32".to_owned()];
        let req = Request { database: db.clone(), roles: vec![db.clone()], extensions: vec![] };
        let r = pgsql::readiness(&req, Me { unit: "wsgi/0", egress_subnets: &subnets }, &units);
        if let pgsql::Readiness::Ready(c) = &r {
            // Whatever got through is free of control characters.
            for v in [&c.user, &c.password, &c.database, &c.host] {
                prop_assert!(!v.chars().any(char::is_control));
            }
            let _ = c.url();
        }
        let _ = pgsql::parse_libpq(&libpq);
        let _ = postgresql_client::readiness(&db, &app);
        let _ = postgresql_client::with_secret(&app, &secret);
        if let mongodb::Readiness::Ready(url) = mongodb::readiness(&units) {
            prop_assert!(!url.chars().any(char::is_control));
        }
        for ip in http::forwarded_allow_ips(&units) {
            prop_assert!(ip.parse::<std::net::IpAddr>().is_ok());
        }
    }

    /// Any user, password and database survive our URL and our parser.
    #[test]
    fn url_round_trips(user in "\\PC{1,30}", password in "\\PC{1,40}", database in "\\PC{1,30}".prop_filter("dot segments are refused", |d| d != "." && d != ".."),
                       v6 in any::<bool>(), port in 1u16..) {
        let host = if v6 { "fd00::1".to_owned() } else { "10.0.0.5".to_owned() };
        let parts = UrlParts {
            scheme: "postgresql".into(), user: Some(user.clone()), password: Some(password.clone()),
            hosts: vec![(host.clone(), Some(port))], database: Some(database.clone()),
            query: vec![("sslmode".into(), "require".into())],
        };
        let url = parts.build();
        prop_assert_eq!(UrlParts::parse(&url).unwrap(), parts);

        // A second, independent reading: the url crate plus percent-decoding.
        let parsed = url::Url::parse(&url).unwrap();
        let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned();
        prop_assert_eq!(dec(parsed.username()), user);
        prop_assert_eq!(dec(parsed.password().unwrap()), password);
        prop_assert_eq!(dec(parsed.path().trim_start_matches('/')), database);
        prop_assert_eq!(parsed.port(), Some(port));
        let h = parsed.host_str().unwrap();
        prop_assert_eq!(h.trim_start_matches('[').trim_end_matches(']'), host);
    }

    /// The printable ASCII that breaks naive URLs, character by character.
    #[test]
    fn ascii_passwords_round_trip(password in "[ -~]{1,40}") {
        let c = pgsql::Connection {
            host: "h".into(), port: 5432, database: "d".into(), user: "u".into(), password: password.clone(),
        };
        prop_assert_eq!(UrlParts::parse(&c.url()).unwrap().password.unwrap(), password);
    }
}
