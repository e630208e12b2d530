//! The state store: flags, `data_changed` hashes and the config snapshot in
//! one JSON file, written once per successful hook, atomically.
//!
//! Atomic means: written to a temporary file in the same directory, fsynced,
//! renamed over the old one, and the directory fsynced (the
//! `atomic-write-file` crate), so a hook killed at any moment leaves either
//! the old file or the new one, never a mix. A failed hook simply never calls
//! [`StateStore::commit`], leaving the previous file byte for byte, just as
//! Juju discards that hook's relation-set and port changes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use atomic_write_file::AtomicWriteFile;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// The on-disk format version; a file of another version is refused rather
/// than misread.
const FORMAT: u32 = 1;

/// What persists from one hook to the next.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The flags set.
    pub flags: BTreeSet<String>,
    /// `data_changed` hashes by key.
    pub data: BTreeMap<String, String>,
    /// The config as read in the last successful hook (for `config.changed.*`).
    pub config: Option<Map<String, Value>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    format: u32,
    #[serde(flatten)]
    state: State,
}

/// Reading or writing the state file failed.
#[derive(Debug, Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("state file {path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a state file this agent can read.
    #[error("state file {path} is corrupt ({source}); move it aside to start from no flags")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file was written by an agent with another format.
    #[error("state file {path} has format {found}, this agent reads format {FORMAT}")]
    Format {
        /// The state file.
        path: PathBuf,
        /// The format found.
        found: u32,
    },
}

/// The state file of one unit.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    /// Where a unit's state lives: `<charm dir>/.wsgi-agent/state.json` (Juju
    /// keeps the charm directory across upgrades, as it keeps charms.reactive's
    /// `.unit-state.db` there).
    pub fn default_path(charm_dir: &Path) -> PathBuf {
        charm_dir.join(".wsgi-agent").join("state.json")
    }

    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateStore { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state; no file yet means the empty state (before install).
    pub fn load(&self) -> Result<State, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        // Check the version before the shape, so a newer file is named as such.
        let format = serde_json::from_slice::<Value>(&bytes)
            .map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })?
            .get("format")
            .and_then(Value::as_u64);
        if let Some(found) = format.filter(|f| *f != u64::from(FORMAT)) {
            let found = u32::try_from(found).unwrap_or(u32::MAX);
            return Err(StateError::Format {
                path: self.path.clone(),
                found,
            });
        }
        let on_disk: OnDisk =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(on_disk.state)
    }

    /// Writes `state` atomically (mode 0600: the config snapshot may hold
    /// secrets). Returns false, writing nothing, when the file already holds
    /// exactly this state, so that idle hooks leave its mtime alone.
    pub fn commit(&self, state: &State) -> Result<bool, StateError> {
        let io_err = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(&OnDisk {
            format: FORMAT,
            state: state.clone(),
        })
        .map_err(|e| io_err(io::Error::other(e)))?;
        bytes.push(b'\n');
        if std::fs::read(&self.path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let mut file = AtomicWriteFile::options()
            .mode(0o600)
            .open(&self.path)
            .map_err(io_err)?;
        file.write_all(&bytes).map_err(io_err)?;
        file.commit().map_err(io_err)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn missing_file_is_the_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s/state.json"));
        assert_eq!(store.load().unwrap(), State::default());
    }

    #[test]
    fn round_trip_and_idle_commit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(StateStore::default_path(dir.path()));
        let mut state = State::default();
        state.flags.insert("wsgi.available".into());
        state.data.insert("k".into(), "h".into());
        assert!(store.commit(&state).unwrap());
        assert_eq!(store.load().unwrap(), state);
        let mtime = std::fs::metadata(store.path()).unwrap().modified().unwrap();
        assert!(!store.commit(&state).unwrap());
        assert_eq!(
            std::fs::metadata(store.path()).unwrap().modified().unwrap(),
            mtime
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn corrupt_and_foreign_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = StateStore::new(&path);
        std::fs::write(&path, b"{\"format\": 1, \"flags\": [").unwrap();
        assert!(matches!(store.load(), Err(StateError::Corrupt { .. })));
        std::fs::write(&path, br#"{"format": 7, "whatever": true}"#).unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("format 7"), "{err}");
    }
}
