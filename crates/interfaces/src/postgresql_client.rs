//! The `postgresql_client` interface, requires side (endpoint `database`):
//! the current PostgreSQL charm (juju-hook-contract.md §8). The request is
//! application-level (written by the leader); the answer is in the
//! provider's application databag, with credentials either as plain fields
//! or as a Juju secret the agent reads with `secret-get`.

use crate::Databag;
use crate::pgsql::Connection;
use crate::validate::{self, FieldError};

/// The leader's request, to publish in this application's databag.
pub fn request(database: &str, extra_user_roles: &[String]) -> Databag {
    let mut bag = Databag::new();
    bag.insert("database".into(), database.to_owned());
    let roles: Vec<&str> = extra_user_roles
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    if !roles.is_empty() {
        bag.insert("extra-user-roles".into(), roles.join(","));
    }
    // Opting in to secrets: the provider then sends `secret-user` instead of
    // plain fields (providers without secret support ignore this).
    bag.insert(
        "requested-secrets".into(),
        r#"["username","password","tls","tls-ca","uris"]"#.into(),
    );
    bag
}

/// Where the relation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Nothing from the provider yet.
    NotRelated,
    /// Waiting, with a reason for the status message.
    Waiting(String),
    /// The credentials are in this Juju secret: read it (`secret-get URI`)
    /// and call [`with_secret`].
    NeedsSecret(String),
    /// Usable.
    Ready(Client),
}

/// A usable connection, with TLS when the provider requires it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Host, port, database, user, password.
    pub connection: Connection,
    /// The provider said TLS is on.
    pub tls: bool,
}

impl Client {
    /// `DATABASE_URL`, with `?sslmode=require` when TLS is on.
    pub fn url(&self) -> String {
        let mut url = self.connection.url();
        if self.tls {
            url.push_str("?sslmode=require");
        }
        url
    }
}

/// Readiness from the provider's application databag.
pub fn readiness(requested_database: &str, app: &Databag) -> Readiness {
    if app.is_empty() {
        return Readiness::NotRelated;
    }
    if app.get("database").map(String::as_str) != Some(requested_database) {
        return Readiness::Waiting(format!(
            "waiting for PostgreSQL to create database {requested_database:?}"
        ));
    }
    if app.get("endpoints").is_none_or(String::is_empty) {
        return Readiness::Waiting("waiting for PostgreSQL to publish its endpoints".into());
    }
    if let Some(uri) = app.get("secret-user").filter(|s| !s.is_empty()) {
        return Readiness::NeedsSecret(uri.clone());
    }
    match (app.get("username"), app.get("password")) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => build(app, u, p),
        _ => Readiness::Waiting("waiting for PostgreSQL to send credentials".into()),
    }
}

/// Readiness once the secret named by [`Readiness::NeedsSecret`] was read
/// (its content: `username`, `password`).
pub fn with_secret(app: &Databag, secret: &Databag) -> Readiness {
    match (secret.get("username"), secret.get("password")) {
        (Some(u), Some(p)) => build(app, u, p),
        _ => Readiness::Waiting("the PostgreSQL secret holds no username/password".into()),
    }
}

fn build(app: &Databag, user: &str, password: &str) -> Readiness {
    let result = (|| -> Result<Client, FieldError> {
        let endpoints = app.get("endpoints").map_or("", String::as_str);
        let first = endpoints.split(',').next().unwrap_or("").trim();
        let (host, port) = split_host_port(first).ok_or_else(|| FieldError {
            key: "endpoints".into(),
            problem: format!("{:?} is not host:port", validate::truncate(first)),
        })?;
        let connection = Connection {
            host: validate::host("endpoints", host)?,
            port: validate::port("endpoints", port)?,
            database: validate::database(
                "database",
                app.get("database").map_or("", String::as_str),
            )?,
            user: validate::text("username", user)?,
            password: validate::text("password", password)?,
        };
        let tls = app
            .get("tls")
            .is_some_and(|t| t.eq_ignore_ascii_case("true"));
        Ok(Client { connection, tls })
    })();
    match result {
        Ok(c) => Readiness::Ready(c),
        Err(e) => Readiness::Waiting(e.to_string()),
    }
}

/// `host:port`, `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        return Some((h, rest.strip_prefix(':')?));
    }
    s.rsplit_once(':')
}
