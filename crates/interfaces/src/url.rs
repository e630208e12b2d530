//! `DATABASE_URL` and `MONGO_URL`: every component percent-encoded, so that
//! any password (`@:/%#?&+ ` included) survives, IPv6 hosts bracketed.
//!
//! Only RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay literal.
//! In particular `%` becomes `%25`: the `url` crate's `set_password` leaves a
//! `%` as it is, so `ab%41` would later be decoded to `abA` by drivers
//! (rust-ecosystem.md §1.11); encoding it ourselves closes that trap.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use thiserror::Error;

/// Everything but the unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The parts of a database URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlParts {
    /// `postgresql` or `mongodb`.
    pub scheme: String,
    /// The user, if any.
    pub user: Option<String>,
    /// The password (only written with a user).
    pub password: Option<String>,
    /// Hosts with optional ports (several for a MongoDB replica set).
    pub hosts: Vec<(String, Option<u16>)>,
    /// The database (the URL's path), if any.
    pub database: Option<String>,
    /// Query parameters, in order (`sslmode=require`, `replicaSet=rs0`).
    pub query: Vec<(String, String)>,
}

fn enc(s: &str) -> Cow<'_, str> {
    utf8_percent_encode(s, COMPONENT).into()
}

fn host_text(host: &str) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl UrlParts {
    /// The URL text.
    pub fn build(&self) -> String {
        let mut out = format!("{}://", self.scheme);
        if let Some(user) = &self.user {
            out.push_str(&enc(user));
            if let Some(pw) = &self.password {
                out.push(':');
                out.push_str(&enc(pw));
            }
            out.push('@');
        }
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(h, p)| match p {
                Some(p) => format!("{}:{p}", host_text(h)),
                None => host_text(h),
            })
            .collect();
        out.push_str(&hosts.join(","));
        if self.database.is_some() || !self.query.is_empty() {
            out.push('/');
        }
        if let Some(db) = &self.database {
            out.push_str(&enc(db));
        }
        if !self.query.is_empty() {
            let q: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect();
            out.push('?');
            out.push_str(&q.join("&"));
        }
        out
    }

    /// Parses a URL built by [`UrlParts::build`] (the inverse, used to prove
    /// round trips; not a general URL parser).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let bad = |why: &'static str| UrlError {
            url: crate::validate::truncate(url),
            why,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad("no scheme"))?;
        let (authority, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let dec = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| bad("not UTF-8"))
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(dec(u)?), Some(dec(p)?)),
                None => (Some(dec(u)?), None),
            },
        };
        let mut hosts = Vec::new();
        for h in hostlist.split(',') {
            let (host, port) = if let Some(v6) = h.strip_prefix('[') {
                let (addr, after) = v6.split_once(']').ok_or(bad("unclosed ["))?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p.parse().map_err(|_| bad("bad port"))?),
                    None if after.is_empty() => None,
                    None => return Err(bad("junk after ]")),
                };
                (addr.to_owned(), port)
            } else {
                match h.rsplit_once(':') {
                    Some((host, p)) => (
                        host.to_owned(),
                        Some(p.parse().map_err(|_| bad("bad port"))?),
                    ),
                    None => (h.to_owned(), None),
                }
            };
            hosts.push((host, port));
        }
        let (database, query) = match tail {
            None => (None, Vec::new()),
            Some(t) => {
                let (path, q) = match t.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (t, None),
                };
                let database = if path.is_empty() {
                    None
                } else {
                    Some(dec(path)?)
                };
                let mut query = Vec::new();
                for pair in q.into_iter().flat_map(|q| q.split('&')) {
                    let (k, v) = pair.split_once('=').ok_or(bad("query pair without ="))?;
                    query.push((dec(k)?, dec(v)?));
                }
                (database, query)
            }
        };
        Ok(UrlParts {
            scheme: scheme.to_owned(),
            user,
            password,
            hosts,
            database,
            query,
        })
    }
}

/// A URL [`UrlParts::parse`] cannot read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a database URL ({why}): {url}")]
pub struct UrlError {
    url: String,
    why: &'static str,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    fn pg(user: &str, pw: &str, host: &str, db: &str) -> UrlParts {
        UrlParts {
            scheme: "postgresql".into(),
            user: Some(user.into()),
            password: Some(pw.into()),
            hosts: vec![(host.into(), Some(5432))],
            database: Some(db.into()),
            query: vec![],
        }
    }

    #[test]
    fn every_reserved_character_is_encoded() {
        let u = pg("juju_app", "p@ss:w/rd%?#&+ [x]", "10.0.0.5", "my db");
        assert_eq!(
            u.build(),
            "postgresql://juju_app:p%40ss%3Aw%2Frd%25%3F%23%26%2B%20%5Bx%5D@10.0.0.5:5432/my%20db"
        );
        assert_eq!(UrlParts::parse(&u.build()).unwrap(), u);
    }

    #[test]
    fn percent_stays_percent() {
        let u = pg("u", "ab%41", "h", "d");
        assert_eq!(u.build(), "postgresql://u:ab%2541@h:5432/d");
        assert_eq!(
            UrlParts::parse(&u.build()).unwrap().password.unwrap(),
            "ab%41"
        );
    }

    #[test]
    fn ipv6_is_bracketed() {
        let u = pg("u", "p", "fd00::1", "d");
        assert_eq!(u.build(), "postgresql://u:p@[fd00::1]:5432/d");
        assert_eq!(UrlParts::parse(&u.build()).unwrap(), u);
    }
}
