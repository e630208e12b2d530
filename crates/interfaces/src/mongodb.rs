//! The classic `mongodb` interface, requires side (endpoint `mongo`): each
//! MongoDB unit publishes `hostname`, `port` and `replset`
//! (anchor-layer-wsgi.md §3.3). No credentials exist on this interface.

use std::collections::BTreeMap;

use crate::Databag;
use crate::url::UrlParts;
use crate::validate;

/// Where the relation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// No MongoDB unit in the relation.
    NotRelated,
    /// Waiting, with a reason for the status message.
    Waiting(String),
    /// `MONGO_URL`.
    Ready(String),
}

/// `MONGO_URL` from the units' databags: every unit with a valid hostname and
/// port, sorted, and `?replicaSet=` when a replica set is named. Units with
/// invalid data are left out (their problem is reported if none is usable).
pub fn readiness(units: &BTreeMap<String, Databag>) -> Readiness {
    if units.is_empty() {
        return Readiness::NotRelated;
    }
    let mut hosts = Vec::new();
    let mut replset = None;
    let mut problem = None;
    for bag in units.values() {
        let (Some(h), Some(p)) = (bag.get("hostname"), bag.get("port")) else {
            continue;
        };
        match (validate::host("hostname", h), validate::port("port", p)) {
            (Ok(h), Ok(p)) => {
                hosts.push((h, Some(p)));
                if let Some(r) = bag.get("replset").filter(|r| !r.is_empty()) {
                    match validate::text("replset", r) {
                        Ok(r) => replset = Some(r),
                        Err(e) => problem = Some(e.to_string()),
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => problem = Some(e.to_string()),
        }
    }
    if hosts.is_empty() {
        return Readiness::Waiting(
            problem.unwrap_or_else(|| "waiting for MongoDB to send its address".into()),
        );
    }
    hosts.sort();
    hosts.dedup();
    let query = replset
        .into_iter()
        .map(|r| ("replicaSet".to_owned(), r))
        .collect();
    Readiness::Ready(
        UrlParts {
            scheme: "mongodb".into(),
            hosts,
            query,
            ..UrlParts::default()
        }
        .build(),
    )
}
