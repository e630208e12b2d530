//! The `http` interface, provides side (endpoint `website`): what a load
//! balancer needs to reach this unit, and which proxies gunicorn may trust
//! for `X-Forwarded-For`/`X-Forwarded-Proto` (anchor-layer-wsgi.md §3.1).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::Databag;

/// The keys this unit publishes on every website relation.
pub fn publish(hostname: &str, private_address: &str, port: u16) -> Databag {
    Databag::from([
        ("hostname".to_owned(), hostname.to_owned()),
        ("private-address".to_owned(), private_address.to_owned()),
        ("port".to_owned(), port.to_string()),
    ])
}

/// gunicorn's `forwarded_allow_ips` from the related units' addresses:
/// `ingress-address` (else `private-address`) of each unit, only those that
/// are IP addresses (a hostile value must not reach gunicorn's config),
/// deduplicated and sorted so that unchanged relations render identically.
pub fn forwarded_allow_ips(units: &BTreeMap<String, Databag>) -> Vec<String> {
    let ips: BTreeSet<IpAddr> = units
        .values()
        .filter_map(|bag| {
            bag.get("ingress-address")
                .or_else(|| bag.get("private-address"))
        })
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect();
    ips.into_iter().map(|ip| ip.to_string()).collect()
}
