//! The classic `pgsql` interface, requires side (endpoint `postgres`), as the
//! PostgreSQL charm speaks it (anchor-layer-wsgi.md §3.2).
//!
//! The client asks for a database (and roles, extensions); each PostgreSQL
//! unit answers with credentials. A connection is usable only once the
//! server has authorised this unit (`allowed-units`, or `allowed-subnets`
//! covering our egress subnets) and echoed what we asked for, which closes
//! the race in which a client sees credentials before pg_hba lets it in.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::Databag;
use crate::url::UrlParts;
use crate::validate::{self, FieldError};

/// What this unit asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The database name (the option `database_name`, default the app name).
    pub database: String,
    /// Roles for the user.
    pub roles: Vec<String>,
    /// Extensions to enable.
    pub extensions: Vec<String>,
}

impl Request {
    /// The keys to publish in this unit's databag. Lists are sorted and
    /// comma-joined, so that an unchanged request publishes identical data
    /// (no relation-changed ping-pong); empty lists are not published.
    pub fn databag(&self) -> Databag {
        let mut bag = Databag::new();
        bag.insert("database".into(), self.database.clone());
        if let Some(r) = joined(&self.roles) {
            bag.insert("roles".into(), r);
        }
        if let Some(e) = joined(&self.extensions) {
            bag.insert("extensions".into(), e);
        }
        bag
    }
}

fn joined(items: &[String]) -> Option<String> {
    let mut v: Vec<&str> = items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort_unstable();
    v.dedup();
    (!v.is_empty()).then(|| v.join(","))
}

/// Credentials for one database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Host (IP or name, IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
}

impl Connection {
    /// `postgresql://user:password@host:port/database`, every part encoded.
    pub fn url(&self) -> String {
        UrlParts {
            scheme: "postgresql".into(),
            user: Some(self.user.clone()),
            password: Some(self.password.clone()),
            hosts: vec![(self.host.clone(), Some(self.port))],
            database: Some(self.database.clone()),
            query: Vec::new(),
        }
        .build()
    }
}

/// Where the relation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// No PostgreSQL unit in the relation.
    NotRelated,
    /// Related, but not usable yet; the reason is for a status message.
    Waiting(String),
    /// The master's connection.
    Ready(Connection),
}

/// The flags the layer sets from a [`Readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `postgres.connected`: some unit joined.
    pub connected: bool,
    /// `postgres.master.available`.
    pub master_available: bool,
    /// `postgres.database.available`.
    pub database_available: bool,
}

impl Readiness {
    /// The flags that hold.
    pub fn flags(&self) -> Flags {
        match self {
            Readiness::NotRelated => Flags::default(),
            Readiness::Waiting(_) => Flags {
                connected: true,
                ..Flags::default()
            },
            Readiness::Ready(_) => Flags {
                connected: true,
                master_available: true,
                database_available: true,
            },
        }
    }
}

/// Who we are, as the server sees us.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    /// This unit's name, e.g. `wsgi/0`.
    pub unit: &'a str,
    /// This unit's egress subnets (from its own databag), e.g. `10.0.0.7/32`.
    pub egress_subnets: &'a [String],
}

/// The readiness of the relation from the remote units' databags.
pub fn readiness(request: &Request, me: Me<'_>, units: &BTreeMap<String, Databag>) -> Readiness {
    if units.is_empty() {
        return Readiness::NotRelated;
    }
    let mut waiting = None;
    let mut authorised: Vec<(&String, &Databag)> = Vec::new();
    for (name, bag) in units {
        match authorisation(request, me, bag) {
            Ok(()) => authorised.push((name, bag)),
            Err(reason) => {
                waiting.get_or_insert(reason);
            }
        }
    }
    // Authorisation is withheld while any unit that already publishes
    // connection details has not authorised us (the interface's rule).
    if let Some(reason) = waiting.filter(|_| authorised.is_empty()) {
        return Readiness::Waiting(reason);
    }
    // The v2 `master` string, from any authorised unit, wins.
    for (name, bag) in &authorised {
        if let Some(master) = bag.get("master").filter(|m| !m.is_empty()) {
            return match from_libpq(master) {
                Ok(c) => Readiness::Ready(c),
                Err(e) => Readiness::Waiting(format!("{name} published a bad master string: {e}")),
            };
        }
    }
    let masters: Vec<&(&String, &Databag)> = authorised
        .iter()
        .filter(|(_, b)| {
            matches!(
                b.get("state").map(String::as_str),
                Some("master" | "standalone")
            )
        })
        .collect();
    match masters.as_slice() {
        [(name, bag)] => match fields(bag) {
            Ok(c) => Readiness::Ready(c),
            Err(e) => Readiness::Waiting(format!("{name}: {e}")),
        },
        [] if authorised.len() == 1 && !authorised[0].1.contains_key("state") => {
            // Very old servers publish no state: a lone unit is the master.
            match fields(authorised[0].1) {
                Ok(c) => Readiness::Ready(c),
                Err(e) => Readiness::Waiting(format!("{}: {e}", authorised[0].0)),
            }
        }
        [] => Readiness::Waiting("waiting for a PostgreSQL master".into()),
        _ => Readiness::Waiting("waiting for PostgreSQL to settle on one master".into()),
    }
}

fn authorisation(request: &Request, me: Me<'_>, bag: &Databag) -> Result<(), String> {
    let has = |k: &str| bag.get(k).is_some_and(|v| !v.is_empty());
    if !["host", "port", "database", "user", "password"]
        .iter()
        .all(|k| has(k))
    {
        return Err("waiting for PostgreSQL to send credentials".into());
    }
    let allowed = match bag.get("allowed-subnets").filter(|s| !s.trim().is_empty()) {
        Some(subnets) => {
            let allowed: Vec<&str> = subnets.split(',').map(str::trim).collect();
            !me.egress_subnets.is_empty()
                && me
                    .egress_subnets
                    .iter()
                    .all(|mine| allowed.iter().any(|a| covers(a, mine)))
        }
        None => bag
            .get("allowed-units")
            .is_some_and(|u| u.split_whitespace().any(|u| u == me.unit)),
    };
    if !allowed {
        return Err("waiting for PostgreSQL to authorise this unit".into());
    }
    if bag.get("database").map(String::as_str) != Some(request.database.as_str()) {
        return Err(format!(
            "waiting for PostgreSQL to confirm database {:?}",
            request.database
        ));
    }
    let echo = |key: &str, wanted: &[String]| match joined(wanted) {
        None => true,
        Some(w) => bag.get(key).and_then(|v| joined(&split(v))) == Some(w),
    };
    if !echo("roles", &request.roles) || !echo("extensions", &request.extensions) {
        return Err("waiting for PostgreSQL to grant the requested roles and extensions".into());
    }
    Ok(())
}

fn split(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_owned()).collect()
}

/// Whether CIDR `outer` contains CIDR (or address) `inner`.
fn covers(outer: &str, inner: &str) -> bool {
    let parse = |s: &str| -> Option<(IpAddr, u8)> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a.parse().ok()?, l.parse().ok()?),
            None => {
                let a: IpAddr = s.parse().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        Some((addr, len))
    };
    let (Some((o, ol)), Some((i, il))) = (parse(outer), parse(inner)) else {
        return false;
    };
    let bits = |a: IpAddr| -> (u128, u8) {
        match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((ob, ow), (ib, iw)) = (bits(o), bits(i));
    if ow != iw || ol > ow || il > iw || il < ol {
        return false;
    }
    let shift = u32::from(ow - ol);
    let (ob, ib) = (
        ob.checked_shr(shift).unwrap_or(0),
        ib.checked_shr(shift).unwrap_or(0),
    );
    ob == ib
}

fn fields(bag: &Databag) -> Result<Connection, FieldError> {
    let get = |k: &str| bag.get(k).map_or("", String::as_str);
    Ok(Connection {
        host: validate::host("host", get("host"))?,
        port: validate::port("port", get("port"))?,
        database: validate::database("database", get("database"))?,
        user: validate::text("user", get("user"))?,
        password: validate::text("password", get("password"))?,
    })
}

/// Parses a libpq key=value connection string (`dbname=app host=10.0.0.5
/// port=5432 user=u password='it''s'`): values may be single-quoted, with
/// `\'` and `\\` escapes inside quotes.
pub fn parse_libpq(s: &str) -> Result<BTreeMap<String, String>, FieldError> {
    let bad = |p: &str| FieldError {
        key: "master".into(),
        problem: p.into(),
    };
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad("expected key=value"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(bad("unterminated quote")),
                    Some('\'') => break,
                    Some('\\') => {
                        value.push(chars.next().ok_or_else(|| bad("dangling backslash"))?);
                    }
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or_else(|| bad("dangling backslash"))?);
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        out.insert(key, value);
    }
}

fn from_libpq(s: &str) -> Result<Connection, FieldError> {
    let kv = parse_libpq(s)?;
    let mut bag = Databag::new();
    for (from, to) in [
        ("host", "host"),
        ("port", "port"),
        ("dbname", "database"),
        ("user", "user"),
        ("password", "password"),
    ] {
        if let Some(v) = kv.get(from) {
            bag.insert(to.into(), v.clone());
        }
    }
    bag.entry("port".into()).or_insert_with(|| "5432".into());
    fields(&bag)
}
