//! Shared plumbing of the stand-ins: persisted state, ports, processes,
//! passwords, and commands whose failures say what went wrong.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Options, StandInError};

/// What every stand-in persists, whatever its kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub kind: super::Kind,
    pub app: String,
    pub n_units: usize,
    #[serde(default)]
    pub options: Options,
}

/// A stand-in's directory and its persisted state (`state.json`: `meta`
/// plus the kind's own `state`).
#[derive(Debug)]
pub(crate) struct Common {
    pub meta: Meta,
    pub dir: PathBuf,
    saved: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct FileOut<'a, T> {
    meta: &'a Meta,
    state: &'a T,
}

#[derive(Deserialize)]
struct FileIn {
    meta: Meta,
    #[serde(default)]
    state: serde_json::Value,
}

impl Common {
    pub(crate) fn open(
        kind: super::Kind,
        dir: &Path,
        app: &str,
        n_units: usize,
        options: &Options,
    ) -> Result<Self, StandInError> {
        let path = dir.join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: FileIn = serde_json::from_slice(&bytes).map_err(|e| {
                    StandInError::Invalid(format!(
                        "{}: not a stand-in state file ({e}); remove the directory to start afresh",
                        path.display()
                    ))
                })?;
                if file.meta.kind != kind || file.meta.app != app {
                    return Err(StandInError::Invalid(format!(
                        "{} holds stand-in {} ({}), not {app} ({kind}); \
                         stop it and remove the directory first",
                        dir.display(),
                        file.meta.app,
                        file.meta.kind,
                    )));
                }
                // The unit count may change (add-unit on a stand-in): one
                // server plays every unit, so only the published units change.
                let mut meta = file.meta;
                meta.n_units = n_units;
                Ok(Self {
                    meta,
                    dir: dir.to_owned(),
                    saved: Some(file.state),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                meta: Meta {
                    kind,
                    app: app.to_owned(),
                    n_units,
                    options: options.clone(),
                },
                dir: dir.to_owned(),
                saved: None,
            }),
            Err(source) => Err(StandInError::Io {
                what: "reading the stand-in state".into(),
                path,
                source,
            }),
        }
    }

    /// The identity recorded in `dir/state.json`.
    pub(crate) fn peek(dir: &Path) -> Result<Meta, StandInError> {
        let path = dir.join("state.json");
        let bytes = std::fs::read(&path).map_err(|source| StandInError::Io {
            what: "reading the stand-in state".into(),
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice::<FileIn>(&bytes)
            .map(|f| f.meta)
            .map_err(|e| {
                StandInError::Invalid(format!(
                    "{}: not a stand-in state file ({e}); remove the directory to start afresh",
                    path.display()
                ))
            })
    }

    /// The kind's own state as saved by an earlier process, or its default.
    pub(crate) fn load<T: DeserializeOwned + Default>(&mut self) -> Result<T, StandInError> {
        match self.saved.take() {
            None | Some(serde_json::Value::Null) => Ok(T::default()),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                StandInError::Invalid(format!(
                    "{}: unreadable {} state ({e}); stop the stand-in and remove the directory",
                    self.dir.join("state.json").display(),
                    self.meta.kind
                ))
            }),
        }
    }

    /// Write `state.json` atomically (temp file, fsync, rename), so a killed
    /// CLI never leaves half a state behind.
    pub(crate) fn save<T: Serialize>(&self, state: &T) -> Result<(), StandInError> {
        let path = self.dir.join("state.json");
        let io = |what: &str, source| StandInError::Io {
            what: what.into(),
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating the stand-in dir", e))?;
        let json = serde_json::to_vec_pretty(&FileOut {
            meta: &self.meta,
            state,
        })
        .map_err(|e| StandInError::Invalid(format!("serialising stand-in state: {e}")))?;
        let tmp = self.dir.join(".state.json.tmp");
        // 0600: the state holds passwords.
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("writing the stand-in state", e))?
        };
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("writing the stand-in state", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("writing the stand-in state", e))
    }

    /// Remove `state.json` (after `stop`), so the next `open` starts afresh.
    pub(crate) fn forget(&self) -> Result<(), StandInError> {
        remove_file(&self.dir.join("state.json"))
    }

    pub(crate) fn units(&self) -> Vec<String> {
        (0..self.meta.n_units)
            .map(|i| format!("{}/{i}", self.meta.app))
            .collect()
    }

    /// A databag per unit with Juju's address keys, as every unit has.
    pub(crate) fn unit_bags(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.units()
            .into_iter()
            .map(|u| {
                let mut bag = BTreeMap::new();
                bag.insert("private-address".into(), "127.0.0.1".into());
                bag.insert("ingress-address".into(), "127.0.0.1".into());
                bag.insert("egress-subnets".into(), "127.0.0.1/32".into());
                (u, bag)
            })
            .collect()
    }

    pub(crate) fn check_interface(
        &self,
        interface: &str,
        speaks: &'static [&'static str],
    ) -> Result<(), StandInError> {
        if speaks.contains(&interface) {
            Ok(())
        } else {
            Err(StandInError::Interface {
                app: self.meta.app.clone(),
                kind: self.meta.kind,
                interface: interface.to_owned(),
                speaks: speaks.join(", "),
            })
        }
    }
}

pub(crate) fn remove_file(path: &Path) -> Result<(), StandInError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StandInError::Io {
            what: "removing".into(),
            path: path.to_owned(),
            source,
        }),
    }
}

pub(crate) fn remove_dir_all(path: &Path) -> Result<(), StandInError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StandInError::Io {
            what: "removing".into(),
            path: path.to_owned(),
            source,
        }),
    }
}

pub(crate) fn create_dir(path: &Path) -> Result<(), StandInError> {
    std::fs::create_dir_all(path).map_err(|source| StandInError::Io {
        what: "creating".into(),
        path: path.to_owned(),
        source,
    })
}

/// A loopback port nobody listens on now. (Racy by nature: another process
/// may take it before the server binds; the server then fails loudly.)
pub(crate) fn free_port() -> Result<u16, StandInError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|source| StandInError::Io {
        what: "finding a free loopback port".into(),
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| StandInError::Io {
            what: "finding a free loopback port".into(),
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

pub(crate) use machine::proc::{pid_alive, terminate};
pub(crate) use machine::text::{tail, tail_file};
pub(crate) use machine::wait::wait_until;

pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    shell_words::join(parts)
}

/// How long a stand-in's command may run (initdb, pg_ctl, haproxy -c...).
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// Run `cmd` to completion (at most [`COMMAND_LIMIT`]); a non-zero exit is
/// an error with the command, its exit code, the tail of its stderr and
/// `hint` (what to do next).
pub(crate) fn run(cmd: &mut Command, hint: &str) -> Result<Output, StandInError> {
    let shown = describe(cmd);
    let out =
        machine::process::output_within(cmd, COMMAND_LIMIT).map_err(|e| StandInError::Command {
            cmd: shown.clone(),
            code: format!("could not run: {e}"),
            stderr_tail: String::new(),
            hint: hint.to_owned(),
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        Err(StandInError::Command {
            cmd: shown,
            code: out
                .status
                .code()
                .map_or("killed by a signal".into(), |c| format!("exit code {c}")),
            stderr_tail: tail(&text, 15),
            hint: hint.to_owned(),
        })
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, StandInError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| StandInError::Io {
            what: "reading random bytes".into(),
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    Ok(buf)
}

/// `len` random characters from `alphabet` (rejection sampling: no bias).
pub(crate) fn random_from(alphabet: &[u8], len: usize) -> Result<String, StandInError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len * 2)? {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Every character that breaks a naively built URL or libpq string.
pub(crate) const HOSTILE: &[u8] = b"@:/%#?&+ '\"\\=;aZ9";

/// A password as the PostgreSQL charm makes them (alphanumerics), or, with
/// the test knob, one that starts with every hostile character once.
pub(crate) fn password(hostile: bool) -> Result<String, StandInError> {
    if hostile {
        let mut p = String::from_utf8_lossy(HOSTILE).into_owned();
        p.push_str(&random_from(HOSTILE, 23)?);
        Ok(p)
    } else {
        random_from(ALNUM, 40)
    }
}

/// Where an outside tool is: `$env_var` if set, else the first existing
/// `defaults` entry; None when neither exists.
pub(crate) fn tool(env_var: &str, defaults: &[&str]) -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v));
    }
    defaults.iter().map(PathBuf::from).find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn passwords_have_the_promised_shape() {
        let p = password(false).unwrap();
        assert_eq!(p.len(), 40);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        // Random: two never repeat (40 characters of 62 make a collision
        // as likely as guessing either), nor do hostile ones after their prefix.
        assert_ne!(p, password(false).unwrap());
        let h = password(true).unwrap();
        for c in "@:/%#?&+ ".chars() {
            assert!(h.contains(c), "{h:?} lacks {c:?}");
        }
        let prefix = HOSTILE.len();
        assert_ne!(h[prefix..], password(true).unwrap()[prefix..]);
    }

    #[test]
    fn state_round_trips_and_guards_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pg");
        let c = Common::open(
            crate::standin::Kind::Postgresql,
            &d,
            "postgresql",
            2,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(c.units(), ["postgresql/0", "postgresql/1"]);
        c.save(&vec![1u16, 2]).unwrap();
        let mut again = Common::open(
            crate::standin::Kind::Postgresql,
            &d,
            "postgresql",
            2,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(again.load::<Vec<u16>>().unwrap(), [1, 2]);
        let e = Common::open(
            crate::standin::Kind::Mongodb,
            &d,
            "postgresql",
            2,
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("remove the directory"), "{e}");
        assert!(
            Common::open(
                crate::standin::Kind::Postgresql,
                &d,
                "pg",
                2,
                &Options::default()
            )
            .is_err()
        );
        let scaled = Common::open(
            crate::standin::Kind::Postgresql,
            &d,
            "postgresql",
            3,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(scaled.units().len(), 3);
        again.forget().unwrap();
        let fresh = Common::open(
            crate::standin::Kind::Mongodb,
            &d,
            "m",
            1,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(fresh.meta.kind, crate::standin::Kind::Mongodb);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
