//! The MongoDB stand-in: SecantusDB (a real MongoDB-wire-protocol server
//! with WiredTiger storage; GPL, a test tool only, never linked) on a free
//! loopback port, publishing what the classic mongodb charm publishes
//! (anchor-layer-wsgi.md §3.3): `hostname`, `port`, `replset`, `type`.
//!
//! No authentication: the classic interface carries no credentials, so a
//! real deployment of it had none either. The server advertises itself as
//! the single-node replica set `secantus`, which is the `replset` published,
//! so `?replicaSet=<replset>` URLs work as well as plain ones.
//!
//! The server binary: `$WSGI_TEST_SECANTUSD`, else
//! `$WSGI_CHARM_CACHE/venvs/mongo/bin/secantusd-py`, else
//! `/var/cache/wsgi-charm/venvs/mongo/bin/secantusd-py` (all installed by
//! `eval "$(scripts/lib/install-deps)"`).
//!
//! Files: `state.json`, `data/` (WiredTiger), `secantusd.toml` (empty, so
//! no config is picked up from elsewhere), `secantusd.log`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::util::{self, Common};
use super::{RelationSnapshot, RemoteData, StandIn, StandInError};
use machine::proc::Proc;

const INTERFACES: &[&str] = &["mongodb"];
/// The replica-set name SecantusDB advertises.
const REPLSET: &str = "secantus";

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    port: Option<u16>,
    server: Option<Proc>,
    binary: Option<PathBuf>,
}

pub struct MongoDb {
    common: Common,
    st: State,
    /// Set in the process that started the server, to reap it.
    child: Option<Child>,
}

impl MongoDb {
    pub(crate) fn open(mut common: Common) -> Result<Self, StandInError> {
        let st = common.load()?;
        Ok(Self {
            common,
            st,
            child: None,
        })
    }

    fn data(&self) -> PathBuf {
        self.common.dir.join("data")
    }
    fn log(&self) -> PathBuf {
        self.common.dir.join("secantusd.log")
    }
    fn config(&self) -> PathBuf {
        self.common.dir.join("secantusd.toml")
    }

    fn reap(&mut self) {
        if let Some(c) = self.child.as_mut()
            && matches!(c.try_wait(), Ok(Some(_)))
        {
            self.child = None;
        }
    }
}

pub(crate) fn preflight() -> Result<(), StandInError> {
    secantusd().map(|_| ())
}

fn secantusd() -> Result<PathBuf, StandInError> {
    let cache = std::env::var("WSGI_CHARM_CACHE")
        .map(|c| format!("{c}/venvs/mongo/bin/secantusd-py"))
        .unwrap_or_default();
    util::tool(
        "WSGI_TEST_SECANTUSD",
        &[
            cache.as_str(),
            "/var/cache/wsgi-charm/venvs/mongo/bin/secantusd-py",
        ],
    )
    .filter(|p| p.exists())
    .ok_or_else(|| StandInError::Missing {
        tool: "SecantusDB (secantusd-py)".into(),
        detail:
            "not at $WSGI_TEST_SECANTUSD nor /var/cache/wsgi-charm/venvs/mongo/bin/secantusd-py"
                .into(),
    })
}

impl StandIn for MongoDb {
    fn kind(&self) -> super::Kind {
        super::Kind::Mongodb
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
        let bin = secantusd()?;
        util::create_dir(&self.common.dir)?;
        util::create_dir(&self.data())?;
        let cfg = self.config();
        std::fs::write(&cfg, "# Empty on purpose: flags configure this server.\n").map_err(
            |source| StandInError::Io {
                what: "writing the SecantusDB config".into(),
                path: cfg.clone(),
                source,
            },
        )?;
        let port = match self.st.port {
            Some(p) if !util::port_open(p) => p,
            _ => util::free_port()?,
        };
        progress(&format!(
            "{}: starting SecantusDB on 127.0.0.1:{port}",
            self.common.meta.app
        ));
        let log = self.log();
        let open_log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|source| StandInError::Io {
                    what: "opening the server log".into(),
                    path: log.clone(),
                    source,
                })
        };
        let start = Instant::now();
        // setsid(1) does not fork here (a spawned child is no group leader),
        // so the PID is the server's; its own session keeps the terminal's
        // Ctrl-C away, as the stand-in must outlive the CLI call.
        let mut child = Command::new("setsid")
            .arg(&bin)
            .arg("--config")
            .arg(&cfg)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(self.data())
            .args(["--log-level", "WARNING"])
            .current_dir(&self.common.dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", &self.common.dir)
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .spawn()
            .map_err(|e| StandInError::Command {
                cmd: format!("setsid {} …", bin.display()),
                code: format!("could not run: {e}"),
                stderr_tail: String::new(),
                hint: "run `eval \"$(scripts/lib/install-deps)\"`".into(),
            })?;
        self.st.port = Some(port);
        self.st.server = Proc::of(child.id());
        self.st.binary = Some(bin.clone());
        self.common.save(&self.st)?;
        let mut exited = None;
        let up = util::wait_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            util::port_open(port)
        });
        if let Some(status) = exited {
            self.st.server = None;
            self.common.save(&self.st)?;
            return Err(StandInError::Command {
                cmd: format!("{} --port {port}", bin.display()),
                code: status.to_string(),
                stderr_tail: util::tail_file(&log, 15),
                hint: "see the log above; is the port taken?".into(),
            });
        }
        self.child = Some(child);
        if !up {
            return Err(StandInError::Timeout {
                what: format!("SecantusDB on 127.0.0.1:{port}"),
                secs: 60,
                detail: util::tail_file(&log, 10),
            });
        }
        progress(&format!(
            "{}: SecantusDB listening after {:.1} s",
            self.common.meta.app,
            start.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.st.server.is_some_and(|p| p.alive()) && self.st.port.is_some_and(util::port_open)
    }

    fn react(&mut self, charm_side: &RelationSnapshot) -> Result<RemoteData, StandInError> {
        self.common
            .check_interface(&charm_side.interface, INTERFACES)?;
        let port = self.st.port.ok_or_else(|| {
            StandInError::Invalid(format!("stand-in {}: not started", self.common.meta.app))
        })?;
        let mut units = self.common.unit_bags();
        for bag in units.values_mut() {
            bag.insert("hostname".into(), "127.0.0.1".into());
            bag.insert("port".into(), port.to_string());
            bag.insert("replset".into(), REPLSET.into());
            bag.insert("type".into(), "database".into());
        }
        Ok(RemoteData {
            app_data: BTreeMap::new(),
            units,
            ..Default::default()
        })
    }

    fn broken(&mut self, _charm_side: &RelationSnapshot) -> Result<(), StandInError> {
        // No credentials to revoke; the data stays, as with the real charm.
        Ok(())
    }

    fn stop(&mut self) -> Result<(), StandInError> {
        if let Some(p) = self.st.server.filter(machine::proc::Proc::alive)
            && !util::terminate(p.pid, Duration::from_secs(10))
        {
            return Err(StandInError::Invalid(format!(
                "stand-in {}: SecantusDB PID {} survived SIGKILL",
                self.common.meta.app, p.pid
            )));
        }
        self.reap();
        util::remove_dir_all(&self.data())?;
        util::remove_file(&self.log())?;
        util::remove_file(&self.config())?;
        self.st = State::default();
        self.common.forget()?;
        let _ = std::fs::remove_dir(&self.common.dir);
        Ok(())
    }

    fn address(&self) -> Option<SocketAddr> {
        self.st.port.map(util::loopback)
    }

    fn status(&self) -> String {
        match self.st.port {
            Some(p) if self.is_running() => {
                format!("mongodb (SecantusDB, no auth) on 127.0.0.1:{p}, replset {REPLSET}")
            }
            _ => "mongodb (stopped)".into(),
        }
    }
}
