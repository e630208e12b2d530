//! The HAProxy stand-in: a real HAProxy on a loopback frontend port that
//! balances over the charm units named in the `website` (http) relation
//! data (`hostname` or `private-address`, and `port`), reloading (`-sf`,
//! no dropped connections) whenever that data changes. It adds
//! `X-Forwarded-For` (option forwardfor) and `X-Forwarded-Proto: http`, as a
//! real load balancer in front of gunicorn would.
//!
//! Files: `state.json`, `haproxy.cfg`, `haproxy.pid`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::util::{self, Common};
use super::{RelationSnapshot, RemoteData, StandIn, StandInError};
use machine::proc::Proc;

const INTERFACES: &[&str] = &["http"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Backend {
    unit: String,
    host: String,
    port: u16,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    port: Option<u16>,
    /// Relation id → the charm units that published an address and port.
    backends: BTreeMap<u64, Vec<Backend>>,
    /// Units whose data could not be used (bad port or host), for status.
    #[serde(default)]
    rejected: BTreeMap<String, String>,
    /// Every HAProxy process started (old ones drain after a reload), so
    /// stop() ends them all.
    #[serde(default)]
    procs: Vec<Proc>,
}

pub struct HaProxy {
    common: Common,
    st: State,
}

impl HaProxy {
    pub(crate) fn open(mut common: Common) -> Result<Self, StandInError> {
        let st = common.load()?;
        Ok(Self { common, st })
    }

    /// Where to send requests: `http://<this>/`.
    pub fn frontend(&self) -> Option<SocketAddr> {
        self.st.port.map(util::loopback)
    }

    fn cfg(&self) -> PathBuf {
        self.common.dir.join("haproxy.cfg")
    }
    fn pidfile(&self) -> PathBuf {
        self.common.dir.join("haproxy.pid")
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pidfile())
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    fn render(&self, port: u16) -> String {
        let mut servers = String::new();
        for (rel, list) in &self.st.backends {
            for b in list {
                let host = if b.host.contains(':') {
                    format!("[{}]", b.host)
                } else {
                    b.host.clone()
                };
                servers.push_str(&format!(
                    "  server r{rel}-{} {host}:{} check inter 2s\n",
                    b.unit.replace('/', "-"),
                    b.port
                ));
            }
        }
        format!(
            "# Written by jujulet's HAProxy stand-in {app}; rewritten on every change.\n\
             global\n  pidfile {pid}\n  daemon\n  maxconn 256\n\n\
             defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  option forwardfor\n\n\
             frontend web\n  bind 127.0.0.1:{port}\n  http-request set-header X-Forwarded-Proto http\n  default_backend app\n\n\
             backend app\n  balance roundrobin\n{servers}",
            app = self.common.meta.app,
            pid = self.pidfile().display(),
        )
    }

    /// Write the config, check it, and start HAProxy or hand over to a new
    /// one (`-sf`: the old process finishes its connections, then exits).
    fn apply(&mut self) -> Result<(), StandInError> {
        let port = self.st.port.ok_or_else(|| {
            StandInError::Invalid(format!("stand-in {}: not started", self.common.meta.app))
        })?;
        let bin = haproxy_bin()?;
        let cfg = self.cfg();
        std::fs::write(&cfg, self.render(port)).map_err(|source| StandInError::Io {
            what: "writing the HAProxy config".into(),
            path: cfg.clone(),
            source,
        })?;
        util::run(
            Command::new(&bin).arg("-c").arg("-q").arg("-f").arg(&cfg),
            "the generated HAProxy config is invalid: a bug in the stand-in",
        )?;
        let old = self.pid().filter(|&p| util::pid_alive(p));
        let mut cmd = Command::new(&bin);
        cmd.arg("-f").arg(&cfg);
        if let Some(p) = old {
            cmd.arg("-sf").arg(p.to_string());
        }
        util::run(&mut cmd, "HAProxy did not start; is the port taken?")?;
        let started = util::wait_until(Duration::from_secs(10), || {
            self.pid()
                .is_some_and(|p| Some(p) != old && util::pid_alive(p))
                && util::port_open(port)
        });
        if let Some(p) = self.pid().and_then(Proc::of) {
            self.st.procs.retain(Proc::alive);
            self.st.procs.push(p);
        }
        if !started {
            return Err(StandInError::Timeout {
                what: format!("HAProxy on 127.0.0.1:{port}"),
                secs: 10,
                detail: format!("pid file {}", self.pidfile().display()),
            });
        }
        self.common.save(&self.st)
    }
}

impl StandIn for HaProxy {
    fn kind(&self) -> super::Kind {
        super::Kind::Haproxy
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
        util::create_dir(&self.common.dir)?;
        let port = match self.st.port {
            Some(p) if !util::port_open(p) => p,
            _ => util::free_port()?,
        };
        self.st.port = Some(port);
        progress(&format!(
            "{}: starting HAProxy on 127.0.0.1:{port}",
            self.common.meta.app
        ));
        self.apply()
    }

    fn is_running(&self) -> bool {
        self.pid().is_some_and(util::pid_alive) && self.st.port.is_some_and(util::port_open)
    }

    fn react(&mut self, charm_side: &RelationSnapshot) -> Result<RemoteData, StandInError> {
        self.common
            .check_interface(&charm_side.interface, INTERFACES)?;
        let mut list = Vec::new();
        for (unit, bag) in &charm_side.local_units {
            let Some(port) = bag.get("port").filter(|p| !p.is_empty()) else {
                continue; // not configured yet: not a backend
            };
            let host = bag
                .get("hostname")
                .or_else(|| bag.get("private-address"))
                .cloned()
                .unwrap_or_default();
            self.st.rejected.remove(unit);
            match (port.parse::<u16>(), valid_host(&host)) {
                (Ok(p), true) if p > 0 => list.push(Backend {
                    unit: unit.clone(),
                    host,
                    port: p,
                }),
                _ => {
                    // Relation data is untrusted: never let it into the config.
                    self.st
                        .rejected
                        .insert(unit.clone(), format!("host {host:?} port {port:?}"));
                }
            }
        }
        let changed = self.st.backends.get(&charm_side.relation_id) != Some(&list);
        if changed {
            if list.is_empty() {
                self.st.backends.remove(&charm_side.relation_id);
            } else {
                self.st.backends.insert(charm_side.relation_id, list);
            }
            if self.st.port.is_some() {
                self.apply()?;
            }
        }
        self.common.save(&self.st)?;
        Ok(RemoteData {
            app_data: BTreeMap::new(),
            units: self.common.unit_bags(),
            ..Default::default()
        })
    }

    fn broken(&mut self, charm_side: &RelationSnapshot) -> Result<(), StandInError> {
        if self.st.backends.remove(&charm_side.relation_id).is_some() && self.is_running() {
            self.apply()?;
        }
        for u in charm_side.local_units.keys() {
            self.st.rejected.remove(u);
        }
        self.common.save(&self.st)
    }

    fn stop(&mut self) -> Result<(), StandInError> {
        let mut pids: Vec<u32> = self
            .st
            .procs
            .iter()
            .filter(|p| p.alive())
            .map(|p| p.pid)
            .collect();
        pids.extend(self.pid().filter(|&p| util::pid_alive(p)));
        for pid in pids {
            if !util::terminate(pid, Duration::from_secs(10)) {
                return Err(StandInError::Invalid(format!(
                    "stand-in {}: HAProxy PID {pid} survived SIGKILL",
                    self.common.meta.app
                )));
            }
        }
        if let Some(port) = self.st.port
            && !util::wait_until(Duration::from_secs(5), || !util::port_open(port))
        {
            return Err(StandInError::Invalid(format!(
                "stand-in {}: 127.0.0.1:{port} still answers after HAProxy stopped; check `ss -ltnp`",
                self.common.meta.app
            )));
        }
        util::remove_file(&self.pidfile())?;
        util::remove_file(&self.cfg())?;
        self.st = State::default();
        self.common.forget()?;
        let _ = std::fs::remove_dir(&self.common.dir);
        Ok(())
    }

    fn address(&self) -> Option<SocketAddr> {
        self.frontend()
    }

    fn status(&self) -> String {
        match self.st.port {
            Some(p) if self.is_running() => {
                let n: usize = self.st.backends.values().map(Vec::len).sum();
                let mut s = format!("haproxy on http://127.0.0.1:{p}/ -> {n} backend(s)");
                if !self.st.rejected.is_empty() {
                    let bad: Vec<String> = self
                        .st
                        .rejected
                        .iter()
                        .map(|(u, why)| format!("{u}: {why}"))
                        .collect();
                    s.push_str(&format!("; ignored bad data from {}", bad.join(", ")));
                }
                s
            }
            _ => "haproxy (stopped)".into(),
        }
    }
}

/// A hostname or IP literal, nothing that could add config.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
}

pub(crate) fn preflight() -> Result<(), StandInError> {
    haproxy_bin().map(|_| ())
}

fn haproxy_bin() -> Result<PathBuf, StandInError> {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| StandInError::Missing {
            tool: "haproxy".into(),
            detail: "not in /usr/sbin or /usr/local/sbin".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_relation_data_are_checked() {
        assert!(valid_host("10.0.0.1"));
        assert!(valid_host("fe80::1"));
        assert!(valid_host("unit-0.lxd"));
        assert!(!valid_host("1.2.3.4\n  server evil 6.6.6.6:80"));
        assert!(!valid_host("a b"));
        assert!(!valid_host(""));
    }
}
