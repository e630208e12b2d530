//! The PostgreSQL stand-in: a throwaway PostgreSQL cluster on loopback
//! (reference/env-probe.md §2) that answers as the PostgreSQL charm does,
//! on the classic `pgsql` interface (anchor-layer-wsgi.md §3.2) and on
//! `postgresql_client` (juju-hook-contract.md §8, plain credential fields).
//!
//! Its files: `state.json` (mode 0600: it holds passwords), `data/` (the
//! cluster, owned by postgres), `sock/` (the unix socket; only root uses it,
//! as the superuser with local trust), `postgres.log`. The directory and
//! its ancestors inside the model dir are made traversable (o+x, not
//! listable) because the server runs as the postgres user.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::util::{self, Common};
use super::{RelationSnapshot, RemoteData, StandIn, StandInError};

const INTERFACES: &[&str] = &["pgsql", "postgresql_client"];

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    port: Option<u16>,
    /// The PostgreSQL major version whose binaries made the cluster.
    major: Option<String>,
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    server_version: Option<String>,
    /// Relation id → what was granted on it.
    relations: BTreeMap<u64, Grant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    interface: String,
    client_app: String,
    role: String,
    password: String,
    /// Databases created for this relation (the requested one last).
    databases: Vec<String>,
    database: String,
    /// What the client asked for, echoed back verbatim (pgsql).
    roles: Option<String>,
    extensions: Option<String>,
    /// Granted roles and attributes (`extra-user-roles`, `roles`).
    granted_roles: BTreeSet<String>,
}

pub struct PostgreSql {
    common: Common,
    st: State,
}

impl PostgreSql {
    pub(crate) fn open(mut common: Common) -> Result<Self, StandInError> {
        let st = common.load()?;
        Ok(Self { common, st })
    }

    fn data(&self) -> PathBuf {
        self.common.dir.join("data")
    }
    fn sock(&self) -> PathBuf {
        self.common.dir.join("sock")
    }
    fn log(&self) -> PathBuf {
        self.common.dir.join("postgres.log")
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn port(&self) -> Result<u16, StandInError> {
        self.st.port.ok_or_else(|| {
            StandInError::Invalid(format!(
                "stand-in {}: not started (no port yet); start it first",
                self.common.meta.app
            ))
        })
    }

    fn pg_ctl(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(args);
        clean_env(&mut cmd);
        cmd
    }

    /// Run SQL as the superuser over the unix socket (local trust).
    fn sql(&self, db: &str, sql: &str) -> Result<String, StandInError> {
        let bin = pg_bin(self.st.major.as_deref())?;
        let port = self.port()?;
        let mut cmd = Command::new(bin.join("psql"));
        cmd.arg("-h")
            .arg(self.sock())
            .args(["-p", &port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        clean_env(&mut cmd);
        let out = util::run(
            &mut cmd,
            &format!(
                "the PostgreSQL stand-in {} refused this; its log: {}",
                self.common.meta.app,
                self.log().display()
            ),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn save(&self) -> Result<(), StandInError> {
        self.common.save(&self.st)
    }

    /// Create (or re-check) the role and databases this relation asks for.
    fn grant(&mut self, snap: &RelationSnapshot) -> Result<Option<Grant>, StandInError> {
        let pgsql = snap.interface == "pgsql";
        let (requested_db, roles, extensions) = if pgsql {
            if snap.local_units.is_empty() {
                return Ok(None);
            }
            // Units agree in practice; the first one that asks wins.
            let first = |key: &str| {
                snap.local_units
                    .values()
                    .filter_map(|bag| bag.get(key))
                    .find(|v| !v.is_empty())
                    .cloned()
            };
            (
                first("database").unwrap_or_else(|| snap.local_app.clone()),
                first("roles"),
                first("extensions"),
            )
        } else {
            match snap
                .local_app_data
                .get("database")
                .filter(|d| !d.is_empty())
            {
                None => return Ok(None),
                Some(db) => (
                    db.clone(),
                    snap.local_app_data
                        .get("extra-user-roles")
                        .filter(|r| !r.is_empty())
                        .cloned(),
                    None,
                ),
            }
        };
        let mut g = match self.st.relations.get(&snap.relation_id) {
            Some(g) => g.clone(),
            None => {
                let role = if pgsql {
                    // As the PostgreSQL charm names it; PostgreSQL's limit is 63.
                    truncate(&format!("juju_{}", snap.local_app), 63)
                } else {
                    format!("relation_id_{}", snap.relation_id)
                };
                Grant {
                    interface: snap.interface.clone(),
                    client_app: snap.local_app.clone(),
                    role,
                    password: util::password(self.common.meta.options.hostile_password)?,
                    databases: Vec::new(),
                    database: String::new(),
                    roles: None,
                    extensions: None,
                    granted_roles: BTreeSet::new(),
                }
            }
        };
        let role_lit = literal(&g.role);
        let exists = self.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = {role_lit}"),
        )? == "1";
        if !exists {
            self.sql(
                "postgres",
                &format!(
                    "CREATE ROLE {} LOGIN PASSWORD {}",
                    ident(&g.role),
                    literal(&g.password)
                ),
            )?;
        }
        let db_exists = self.sql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = {}",
                literal(&requested_db)
            ),
        )? == "1";
        if !db_exists {
            self.sql(
                "postgres",
                &format!(
                    "CREATE DATABASE {} OWNER {}",
                    ident(&requested_db),
                    ident(&g.role)
                ),
            )?;
        }
        if !g.databases.contains(&requested_db) {
            g.databases.push(requested_db.clone());
        }
        if db_exists {
            // Someone else's database (another relation asked for the same
            // name): the charm grants access rather than ownership.
            self.sql(
                "postgres",
                &format!(
                    "GRANT ALL ON DATABASE {} TO {}",
                    ident(&requested_db),
                    ident(&g.role)
                ),
            )?;
        }
        g.database = requested_db.clone();
        for r in roles.iter().flat_map(|r| r.split(',')).map(str::trim) {
            if r.is_empty() || g.granted_roles.contains(r) {
                continue;
            }
            match r.to_ascii_uppercase().as_str() {
                attr @ ("SUPERUSER" | "CREATEDB" | "CREATEROLE") => {
                    self.sql("postgres", &format!("ALTER ROLE {} {attr}", ident(&g.role)))?;
                }
                _ => {
                    self.sql(
                        "postgres",
                        &format!(
                            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) \
                             THEN CREATE ROLE {} NOLOGIN; END IF; END$$",
                            literal(r),
                            ident(r)
                        ),
                    )?;
                    self.sql(
                        "postgres",
                        &format!("GRANT {} TO {}", ident(r), ident(&g.role)),
                    )?;
                }
            }
            g.granted_roles.insert(r.to_owned());
        }
        for ext in extensions.iter().flat_map(|e| e.split(',')).map(str::trim) {
            // `name(schema)` names the schema; the stand-in uses the default.
            let name = ext.split('(').next().unwrap_or(ext).trim();
            if !name.is_empty() {
                self.sql(
                    &requested_db,
                    &format!("CREATE EXTENSION IF NOT EXISTS {}", ident(name)),
                )?;
            }
        }
        if pgsql {
            g.roles = roles;
            g.extensions = extensions;
        }
        self.st.relations.insert(snap.relation_id, g.clone());
        self.save()?;
        Ok(Some(g))
    }

    fn publish(
        &self,
        snap: &RelationSnapshot,
        g: Option<&Grant>,
    ) -> Result<RemoteData, StandInError> {
        let port = self.port()?.to_string();
        let mut data = RemoteData {
            app_data: BTreeMap::new(),
            units: self.common.unit_bags(),
            secrets: BTreeMap::new(),
        };
        let Some(g) = g else {
            return Ok(data);
        };
        let major = self.st.major.clone().unwrap_or_default();
        if snap.interface == "pgsql" {
            let allowed: Vec<&str> = snap.local_units.keys().map(String::as_str).collect();
            let master = libpq(&[
                ("dbname", &g.database),
                ("host", "127.0.0.1"),
                ("port", &port),
                ("user", &g.role),
                ("password", &g.password),
            ]);
            let n = self.common.meta.n_units;
            for (i, bag) in data.units.values_mut().enumerate() {
                let mut put = |k: &str, v: &str| {
                    bag.insert(k.to_owned(), v.to_owned());
                };
                put("host", "127.0.0.1");
                put("port", &port);
                put("database", &g.database);
                put("user", &g.role);
                put("password", &g.password);
                put("schema_user", &g.role);
                put("schema_password", &g.password);
                put("version", &major);
                // One server plays every unit: the first is the master, the
                // others claim to be its standbys (all point at it).
                put(
                    "state",
                    match (n, i) {
                        (1, _) => "standalone",
                        (_, 0) => "master",
                        _ => "hot standby",
                    },
                );
                put("allowed-units", &allowed.join(" "));
                put("master", &master);
                if let Some(r) = &g.roles {
                    put("roles", r);
                }
                if let Some(e) = &g.extensions {
                    put("extensions", e);
                }
            }
        } else {
            let mut put = |k: &str, v: String| {
                data.app_data.insert(k.to_owned(), v);
            };
            put("database", g.database.clone());
            put("endpoints", format!("127.0.0.1:{port}"));
            // As the PostgreSQL charm does: credentials in a Juju secret when
            // the requirer asked for one, else plain fields.
            if requests_secret(&snap.local_app_data) {
                let uri = format!("secret:d4r7jujulet{:09}", snap.relation_id);
                let content = BTreeMap::from([
                    ("username".to_owned(), g.role.clone()),
                    ("password".to_owned(), g.password.clone()),
                ]);
                data.secrets.insert(uri.clone(), content);
                put("secret-user", uri);
            } else {
                put("username", g.role.clone());
                put("password", g.password.clone());
            }
            put(
                "version",
                self.st
                    .server_version
                    .as_deref()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or(&major)
                    .to_owned(),
            );
            let uris = format!(
                "postgresql://{}:{}@127.0.0.1:{port}/{}",
                enc(&g.role),
                enc(&g.password),
                enc(&g.database)
            );
            // With secrets, the URI (it holds the password) is in the secret too.
            match data.secrets.values_mut().next() {
                Some(secret) => {
                    secret.insert("uris".to_owned(), uris);
                }
                None => put("uris", uris),
            }
            put("tls", "False".into());
        }
        Ok(data)
    }
}

impl StandIn for PostgreSql {
    fn kind(&self) -> super::Kind {
        super::Kind::Postgresql
    }
    fn app(&self) -> &str {
        &self.common.meta.app
    }
    fn units(&self) -> Vec<String> {
        self.common.units()
    }
    fn interfaces(&self) -> &'static [&'static str] {
        INTERFACES
    }

    fn start(&mut self, progress: &dyn Fn(&str)) -> Result<(), StandInError> {
        if self.is_running() {
            return Ok(());
        }
        let bin = pg_bin(self.st.major.as_deref())?;
        let major = bin
            .parent()
            .and_then(|p| p.file_name())
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.common.dir.clone();
        util::create_dir(&dir)?;
        make_traversable(&dir)?;
        let (uid, gid) = postgres_ids()?;
        if !self.data().join("PG_VERSION").exists() {
            progress(&format!(
                "{}: initdb (PostgreSQL {major})",
                self.common.meta.app
            ));
            util::remove_dir_all(&self.data())?;
            for d in [self.data(), self.sock()] {
                util::create_dir(&d)?;
                chown(&d, uid, gid)?;
            }
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"])
                .arg(bin.join("initdb"))
                .arg("-D")
                .arg(self.data())
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]);
            clean_env(&mut cmd);
            util::run(
                &mut cmd,
                "initdb failed: is the postgresql package installed (scripts/lib/install-deps)?",
            )?;
        }
        // The log is written by the server: it must exist and be postgres'.
        let log = self.log();
        if !log.exists() {
            std::fs::write(&log, b"").map_err(|source| StandInError::Io {
                what: "creating the server log".into(),
                path: log.clone(),
                source,
            })?;
        }
        chown(&log, uid, gid)?;
        let port = match self.st.port {
            Some(p) if !util::port_open(p) => p,
            _ => util::free_port()?,
        };
        self.st.port = Some(port);
        self.st.major = Some(major.clone());
        // Persist the port before starting: if the CLI dies now, stop()
        // still finds the server through the data dir.
        self.save()?;
        progress(&format!(
            "{}: starting PostgreSQL {major} on 127.0.0.1:{port}",
            self.common.meta.app
        ));
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=off",
            self.sock().display()
        );
        let log_s = log.display().to_string();
        util::run(
            &mut self.pg_ctl(
                &bin,
                &["-l", &log_s, "-w", "-t", "60", "-o", &opts, "start"],
            ),
            &format!(
                "PostgreSQL did not start; tail of {}:\n{}",
                log.display(),
                util::tail_file(&log, 10)
            ),
        )?;
        self.st.server_version = Some(self.sql("postgres", "SHOW server_version")?);
        self.save()
    }

    fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(util::pid_alive)
            && self.st.port.is_some_and(util::port_open)
    }

    fn react(&mut self, charm_side: &RelationSnapshot) -> Result<RemoteData, StandInError> {
        self.common
            .check_interface(&charm_side.interface, INTERFACES)?;
        let g = self.grant(charm_side)?;
        self.publish(charm_side, g.as_ref())
    }

    fn broken(&mut self, charm_side: &RelationSnapshot) -> Result<(), StandInError> {
        let Some(g) = self.st.relations.get(&charm_side.relation_id).cloned() else {
            return Ok(());
        };
        if self.is_running() {
            let role = ident(&g.role);
            // End its sessions: a stale password must stop working now,
            // not just for new connections.
            self.sql(
                "postgres",
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = {}",
                    literal(&g.role)
                ),
            )?;
            // The data stays (as with the real charm); ownership passes to
            // postgres so the role can go.
            for db in &g.databases {
                if self.sql(
                    "postgres",
                    &format!(
                        "SELECT count(*) FROM pg_database WHERE datname = {}",
                        literal(db)
                    ),
                )? == "1"
                {
                    self.sql(
                        db,
                        &format!("REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}"),
                    )?;
                }
            }
            self.sql(
                "postgres",
                &format!(
                    "REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"
                ),
            )?;
        }
        self.st.relations.remove(&charm_side.relation_id);
        self.save()
    }

    fn stop(&mut self) -> Result<(), StandInError> {
        if let Some(pid) = self.postmaster_pid().filter(|&p| util::pid_alive(p)) {
            let stopped = pg_bin(self.st.major.as_deref())
                .ok()
                .and_then(|bin| {
                    util::run(
                        &mut self.pg_ctl(&bin, &["-m", "immediate", "-w", "-t", "30", "stop"]),
                        "",
                    )
                    .ok()
                })
                .is_some();
            if !stopped && !util::terminate(pid, Duration::from_secs(10)) {
                return Err(StandInError::Invalid(format!(
                    "stand-in {}: postmaster PID {pid} survived SIGKILL",
                    self.common.meta.app
                )));
            }
        }
        util::remove_dir_all(&self.data())?;
        util::remove_dir_all(&self.sock())?;
        util::remove_file(&self.log())?;
        self.st = State::default();
        self.common.forget()?;
        // The (now empty) stand-in dir itself.
        let _ = std::fs::remove_dir(&self.common.dir);
        Ok(())
    }

    fn address(&self) -> Option<SocketAddr> {
        self.st.port.map(util::loopback)
    }

    fn status(&self) -> String {
        match self.st.port {
            Some(p) if self.is_running() => format!(
                "postgresql {} on 127.0.0.1:{p}, {} relation(s)",
                self.st.major.as_deref().unwrap_or("?"),
                self.st.relations.len()
            ),
            _ => "postgresql (stopped)".into(),
        }
    }
}

pub(crate) fn preflight() -> Result<(), StandInError> {
    let bin = pg_bin(None)?;
    postgres_ids()?;
    for tool in ["pg_ctl", "psql"] {
        if !bin.join(tool).exists() {
            return Err(StandInError::Missing {
                tool: tool.into(),
                detail: format!("not in {}", bin.display()),
            });
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(StandInError::Invalid(
            "the PostgreSQL stand-in needs root (it runs the server as the postgres user)".into(),
        ));
    }
    Ok(())
}

/// The newest `/usr/lib/postgresql/<major>/bin`, or the one that made the
/// cluster.
fn pg_bin(major: Option<&str>) -> Result<PathBuf, StandInError> {
    let root = Path::new("/usr/lib/postgresql");
    if let Some(m) = major {
        let p = root.join(m).join("bin");
        if p.join("postgres").exists() {
            return Ok(p);
        }
    }
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            e.path()
                .join("bin/initdb")
                .exists()
                .then_some((v, e.path()))
        })
        .max();
    newest
        .map(|(_, p)| p.join("bin"))
        .ok_or_else(|| StandInError::Missing {
            tool: "PostgreSQL server (initdb, pg_ctl)".into(),
            detail: "nothing under /usr/lib/postgresql/*/bin".into(),
        })
}

/// No PG* variables or locale surprises from the caller's environment.
fn clean_env(cmd: &mut Command) {
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8");
}

fn postgres_ids() -> Result<(u32, u32), StandInError> {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| StandInError::Missing {
            tool: "the postgres user".into(),
            detail: "the postgresql package creates it".into(),
        })?;
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), StandInError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| StandInError::Io {
        what: "chown to postgres (jujulet's stand-ins need root)".into(),
        path: path.to_owned(),
        source,
    })
}

/// The server runs as postgres and needs to reach its data dir: give o+x
/// (enter, not list) to `dir` and its ancestors that lack it, up to the
/// model dir (`dir`'s grandparent: `<model>/standins/<name>`); above it, a
/// closed directory is an error that names it.
fn make_traversable(dir: &Path) -> Result<(), StandInError> {
    let model = dir.parent().and_then(Path::parent).unwrap_or(dir);
    for a in dir.ancestors() {
        let meta = std::fs::metadata(a).map_err(|source| StandInError::Io {
            what: "checking access".into(),
            path: a.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode();
        if mode & 0o001 != 0 {
            continue;
        }
        if a.starts_with(model) {
            std::fs::set_permissions(a, std::fs::Permissions::from_mode((mode & 0o7777) | 0o001))
                .map_err(|source| StandInError::Io {
                what: "making the stand-in dir traversable for postgres".into(),
                path: a.to_owned(),
                source,
            })?;
        } else {
            return Err(StandInError::Invalid(format!(
                "{} is closed to other users (mode {:o}), so the postgres user cannot reach {}; \
                 `chmod o+x` it or put the model elsewhere",
                a.display(),
                mode & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// An SQL string literal (standard_conforming_strings is on: only quotes
/// need doubling).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An SQL identifier, always quoted (names from relation data are data).
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A libpq `key=value …` string; values with spaces, quotes or
/// backslashes (or empty) are single-quoted with `\'` and `\\` escapes.
pub fn libpq(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
                format!("{k}={v}")
            } else {
                format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether the requirer opted in to secrets (`requested-secrets` naming
/// `username` and `password`, a JSON list).
fn requests_secret(app: &BTreeMap<String, String>) -> bool {
    app.get("requested-secrets")
        .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
        .is_some_and(|l| l.iter().any(|s| s == "username") && l.iter().any(|s| s == "password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_quotes_only_what_needs_it() {
        assert_eq!(
            libpq(&[("dbname", "app"), ("password", "a b'c\\d"), ("user", "")]),
            r"dbname=app password='a b\'c\\d' user=''"
        );
    }

    #[test]
    fn sql_quoting() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(truncate(&"x".repeat(70), 63).len(), 63);
    }
}
