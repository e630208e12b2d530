//! The layer's side of its relations: publish what each interface asks of
//! us, read what the other side sent, and turn it into the app's
//! environment (`DATABASE_URL`, `MONGO_URL`) and gunicorn's trusted proxies.
//! The protocol rules themselves are in the `interfaces` crate.
//!
//! Relation data is read only in hooks of that relation (and when nothing
//! is known yet, or after an upgrade); in other hooks the last result,
//! stored in the state, is used. A config-changed reads the databases again
//! only when what is asked of them (name, roles, extensions) changed, and
//! publishes to the load balancers only a new port; update-status reads
//! nothing; a website hook with 100 load-balancer units reads one unit.

use std::collections::BTreeMap;

use interfaces::{Databag, http, mongodb, pgsql, postgresql_client};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::seams::Juju;

/// What the relations give the app, as stored between hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationView {
    /// DATABASE_URL from PostgreSQL (pgsql or postgresql_client).
    pub postgres_url: Option<String>,
    /// MONGO_URL.
    pub mongo_url: Option<String>,
    /// Why a related database is not usable yet.
    pub waiting: Vec<String>,
    /// website units → their address (trusted for X-Forwarded-*).
    pub proxies: BTreeMap<String, String>,
    /// What was last asked of the databases (name, roles, extensions):
    /// a config-changed re-reads them only when this changes.
    #[serde(default)]
    pub db_request: Option<String>,
    /// The port last published on the website relations.
    #[serde(default)]
    pub published_port: Option<u16>,
}

impl RelationView {
    /// The variables the app receives from relations. MongoDB also provides
    /// DATABASE_URL when no PostgreSQL is related (layer:wsgi's behaviour).
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let Some(m) = &self.mongo_url {
            env.insert("MONGO_URL".to_owned(), m.clone());
        }
        match (&self.postgres_url, &self.mongo_url) {
            (Some(p), _) => env.insert("DATABASE_URL".to_owned(), p.clone()),
            (None, Some(m)) => env.insert("DATABASE_URL".to_owned(), m.clone()),
            (None, None) => None,
        };
        env
    }

    /// gunicorn's forwarded_allow_ips.
    pub fn proxy_ips(&self) -> Vec<String> {
        let mut v: Vec<String> = self.proxies.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The application of a unit name (`wsgi/0` → `wsgi`).
pub fn app_of(unit: &str) -> &str {
    unit.split('/').next().unwrap_or(unit)
}

/// Which endpoints this hook concerns (all of them when nothing is stored).
fn touches(hook: &str, endpoint: &str) -> bool {
    hook.strip_prefix(endpoint)
        .is_some_and(|rest| rest.starts_with("-relation-"))
}

/// Refreshes `view` from relation data where this hook can have changed it,
/// publishing our side. `first` forces a full read (first hook, upgrade).
pub fn refresh(
    juju: &dyn Juju,
    hook: &str,
    config: &Config,
    port: u16,
    view: &mut RelationView,
    first: bool,
) -> anyhow::Result<()> {
    let unit = juju.unit_name().to_owned();
    let app = app_of(&unit).to_owned();
    let database = config.database_name.clone().unwrap_or_else(|| app.clone());
    let request = format!(
        "{database}\n{:?}\n{:?}",
        config.database_roles, config.database_extensions
    );
    let first = first || hook == "upgrade-charm";
    let db_hooks = first
        || ["postgres", "database", "mongo"]
            .iter()
            .any(|e| touches(hook, e))
        || view.db_request.as_deref() != Some(request.as_str())
        || hook == "leader-elected";
    if db_hooks {
        view.waiting.clear();
        let previous = view.postgres_url.take();
        postgres(juju, config, &database, &unit, view)?;
        if view.postgres_url.is_none() {
            postgresql_client(juju, config, &database, view)?;
        }
        // Still related but not ready (a new database name not yet echoed,
        // new credentials on their way): the app keeps the URL it has until
        // the new one is ready. Only a departed relation takes it away.
        if view.postgres_url.is_none() && !view.waiting.is_empty() {
            view.postgres_url = previous;
        }
        mongo(juju, view)?;
        view.db_request = Some(request);
    }
    website(juju, hook, port, view, first)
}

fn postgres(
    juju: &dyn Juju,
    config: &Config,
    database: &str,
    unit: &str,
    view: &mut RelationView,
) -> anyhow::Result<()> {
    let request = pgsql::Request {
        database: database.to_owned(),
        roles: config.database_roles.clone(),
        extensions: config.database_extensions.clone(),
    };
    for rid in juju.relation_ids("postgres")? {
        juju.relation_set(&rid, &request.databag(), false)?;
        let own = juju.relation_get(&rid, unit, false)?;
        let egress: Vec<String> = own
            .get("egress-subnets")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut units = BTreeMap::new();
        for u in juju.relation_units(&rid)? {
            let bag = juju.relation_get(&rid, &u, false)?;
            units.insert(u, bag);
        }
        match pgsql::readiness(
            &request,
            pgsql::Me {
                unit,
                egress_subnets: &egress,
            },
            &units,
        ) {
            pgsql::Readiness::Ready(c) => view.postgres_url = Some(c.url()),
            pgsql::Readiness::Waiting(w) => view.waiting.push(w),
            pgsql::Readiness::NotRelated => {}
        }
    }
    Ok(())
}

fn postgresql_client(
    juju: &dyn Juju,
    config: &Config,
    database: &str,
    view: &mut RelationView,
) -> anyhow::Result<()> {
    for rid in juju.relation_ids("database")? {
        if juju.is_leader()? {
            let roles: Vec<String> = config.database_roles.clone();
            juju.relation_set(&rid, &postgresql_client::request(database, &roles), true)?;
        }
        let remote_app = match juju.relation_units(&rid)?.first() {
            Some(u) => app_of(u).to_owned(),
            None => continue,
        };
        let app_data = juju.relation_get(&rid, &remote_app, true)?;
        let mut readiness = postgresql_client::readiness(database, &app_data);
        if let postgresql_client::Readiness::NeedsSecret(uri) = &readiness {
            let secret: Databag = juju.secret_get(uri)?;
            readiness = postgresql_client::with_secret(&app_data, &secret);
        }
        match readiness {
            postgresql_client::Readiness::Ready(c) => view.postgres_url = Some(c.url()),
            postgresql_client::Readiness::Waiting(w) => view.waiting.push(w),
            _ => {}
        }
    }
    Ok(())
}

fn mongo(juju: &dyn Juju, view: &mut RelationView) -> anyhow::Result<()> {
    view.mongo_url = None;
    for rid in juju.relation_ids("mongo")? {
        let mut units = BTreeMap::new();
        for u in juju.relation_units(&rid)? {
            let bag = juju.relation_get(&rid, &u, false)?;
            units.insert(u, bag);
        }
        match mongodb::readiness(&units) {
            mongodb::Readiness::Ready(url) => view.mongo_url = Some(url),
            mongodb::Readiness::Waiting(w) => view.waiting.push(w),
            mongodb::Readiness::NotRelated => {}
        }
    }
    Ok(())
}

/// Publishes our address and port on every website relation (hookenv skips
/// keys that did not change), and tracks the load balancers' addresses
/// incrementally: only the joining or departing unit is read.
fn website(
    juju: &dyn Juju,
    hook: &str,
    port: u16,
    view: &mut RelationView,
    full: bool,
) -> anyhow::Result<()> {
    let in_website_hook = touches(hook, "website");
    let republish = view.published_port != Some(port);
    if !full && !in_website_hook && !republish {
        return Ok(());
    }
    let address = juju.ingress_address()?;
    let publish = http::publish(&address, &address, port);
    let ctx = juju.relation_context();
    let (rid, remote, departing) = (ctx.relation_id, ctx.remote_unit, ctx.departing_unit);
    if full || republish {
        // A new port reaches every load balancer; their units are read
        // again only on a full refresh (the proxies are kept in the state).
        if full {
            view.proxies.clear();
        }
        for r in juju.relation_ids("website")? {
            juju.relation_set(&r, &publish, false)?;
            if full {
                for u in juju.relation_units(&r)? {
                    remember(juju, &r, &u, view)?;
                }
            }
        }
        view.published_port = Some(port);
    }
    if !full
        && in_website_hook
        && let Some(rid) = rid
    {
        juju.relation_set(rid, &publish, false)?;
        if hook.ends_with("-relation-broken") {
            let prefix = format!("{rid}/");
            view.proxies.retain(|k, _| !k.starts_with(&prefix));
        } else if let Some(d) = departing {
            view.proxies.remove(&format!("{rid}/{d}"));
        } else if let Some(u) = remote {
            remember(juju, rid, u, view)?;
        }
    }
    Ok(())
}

fn remember(juju: &dyn Juju, rid: &str, unit: &str, view: &mut RelationView) -> anyhow::Result<()> {
    let bag = juju.relation_get(rid, unit, false)?;
    let one = BTreeMap::from([(unit.to_owned(), bag)]);
    match http::forwarded_allow_ips(&one).into_iter().next() {
        Some(ip) => view.proxies.insert(format!("{rid}/{unit}"), ip),
        None => view.proxies.remove(&format!("{rid}/{unit}")),
    };
    Ok(())
}
