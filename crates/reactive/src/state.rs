//! The state store: flags, `data_changed` hashes and the config snapshot in
//! one JSON file, written once per successful hook, atomically.
//!
//! Atomic means: written to a temporary file in the same directory, fsynced,
//! renamed over the old one, and the directory fsynced (the
//! `atomic-write-file` crate), so a hook killed at any moment leaves either
//! the old file or the new one, never a mix. A failed hook simply never calls
//! [`StateStore::commit`], leaving the previous file byte for byte, just as
//! Juju discards that hook's relation-set and port changes.
//!
//! Juju may also drop a hook's changes after the hook exited 0 (its commit
//! fails): the file is then one hook ahead of Juju. Each written state has a
//! generation, and the one before it is kept beside it (`state.prev.json`);
//! the runtime records the generation in Juju's unit state (state-set, which
//! commits with the hook's ports and relation data) and
//! [`StateStore::load_committed`] picks the file Juju committed with.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use atomic_write_file::AtomicWriteFile;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// The on-disk format version; a file of a newer version is refused rather
/// than misread (format 2 added the generation; format 1 reads as generation 0).
const FORMAT: u32 = 2;

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
    #[serde(default)]
    generation: u64,
    #[serde(flatten)]
    state: State,
}

/// A state and the generation it was written as (0: never written, or
/// written before generations).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// The state.
    pub state: State,
    /// Its generation.
    pub generation: u64,
}

/// What [`StateStore::load_committed`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The state to run the hook from.
    pub snapshot: Snapshot,
    /// A newer generation whose hook Juju did not commit, now discarded.
    pub discarded: Option<u64>,
    /// Juju holds a generation neither file has (the file is kept).
    pub unknown: Option<u64>,
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
    #[error("state file {path} has format {found}, this agent reads format {FORMAT} and older")]
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

    /// Where the generation before the current one is kept.
    pub fn previous_path(&self) -> PathBuf {
        self.path.with_extension("prev.json")
    }

    /// The stored state; no file yet means the empty state (before install).
    pub fn load(&self) -> Result<State, StateError> {
        Ok(Self::read(&self.path)?.state)
    }

    /// The state of the generation Juju committed (`committed`, None when
    /// Juju holds none): the current file, or the one before it when the
    /// last hook's commit was dropped.
    pub fn load_committed(&self, committed: Option<u64>) -> Result<Loaded, StateError> {
        let current = Self::read(&self.path)?;
        let want = committed.unwrap_or(0);
        if current.generation == want {
            return Ok(Loaded {
                snapshot: current,
                discarded: None,
                unknown: None,
            });
        }
        let previous = Self::read(&self.previous_path())?;
        if previous.generation == want {
            return Ok(Loaded {
                snapshot: previous,
                discarded: Some(current.generation),
                unknown: None,
            });
        }
        Ok(Loaded {
            snapshot: current,
            discarded: None,
            unknown: Some(want),
        })
    }

    /// The current file as it is, without asking which generation Juju
    /// holds (for a hook that checks before it commits instead).
    pub fn load_current(&self) -> Result<Loaded, StateError> {
        Ok(Loaded {
            snapshot: Self::read(&self.path)?,
            discarded: None,
            unknown: None,
        })
    }

    fn read(path: &Path) -> Result<Snapshot, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Snapshot::default()),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let corrupt = |source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        };
        // Check the version before the shape, so a newer file is named as such.
        let format = serde_json::from_slice::<Value>(&bytes)
            .map_err(corrupt)?
            .get("format")
            .and_then(Value::as_u64);
        if let Some(found) = format.filter(|f| *f == 0 || *f > u64::from(FORMAT)) {
            let found = u32::try_from(found).unwrap_or(u32::MAX);
            return Err(StateError::Format {
                path: path.to_owned(),
                found,
            });
        }
        let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(corrupt)?;
        Ok(Snapshot {
            state: on_disk.state,
            generation: on_disk.generation,
        })
    }

    /// Writes `state` as the hook's result after starting from `base`:
    /// nothing when it is unchanged (idle hooks leave the file's mtime
    /// alone); else `base` is kept as the previous generation and `state`
    /// becomes the next. Returns the new generation for Juju's unit state,
    /// None when Juju already holds the right one.
    pub fn commit_after(&self, base: &Loaded, state: &State) -> Result<Option<u64>, StateError> {
        let b = &base.snapshot;
        if *state == b.state {
            if base.discarded.is_some() {
                // The dropped hook changed nothing that is kept: back to
                // the generation Juju has.
                Self::write(&self.path, b)?;
            }
            return Ok(None);
        }
        let next = Snapshot {
            state: state.clone(),
            generation: b.generation + 1,
        };
        Self::write(&self.previous_path(), b)?;
        Self::write(&self.path, &next)?;
        Ok(Some(next.generation))
    }

    /// Writes `state` atomically, keeping the generation the file has
    /// (mode 0600: the config snapshot may hold secrets). Returns false,
    /// writing nothing, when the file already holds exactly this state.
    pub fn commit(&self, state: &State) -> Result<bool, StateError> {
        let generation = Self::read(&self.path).map_or(0, |s| s.generation);
        Self::write(
            &self.path,
            &Snapshot {
                state: state.clone(),
                generation,
            },
        )
    }

    fn write(path: &Path, snapshot: &Snapshot) -> Result<bool, StateError> {
        let io_err = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(&OnDisk {
            format: FORMAT,
            generation: snapshot.generation,
            state: snapshot.state.clone(),
        })
        .map_err(|e| io_err(io::Error::other(e)))?;
        bytes.push(b'\n');
        if std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let mut file = AtomicWriteFile::options()
            .mode(0o600)
            .open(path)
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

    fn flagged(flag: &str) -> State {
        let mut s = State::default();
        s.flags.insert(flag.into());
        s
    }

    #[test]
    fn a_dropped_commit_goes_back_to_the_generation_juju_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(StateStore::default_path(dir.path()));
        // First hook: nothing in Juju, nothing on disk.
        let l0 = store.load_committed(None).unwrap();
        assert_eq!(l0.snapshot.generation, 0);
        assert_eq!(store.commit_after(&l0, &flagged("a")).unwrap(), Some(1));
        // Juju committed generation 1; the next hook writes 2 ...
        let l1 = store.load_committed(Some(1)).unwrap();
        assert_eq!(
            (l1.snapshot.state.clone(), l1.discarded),
            (flagged("a"), None)
        );
        assert_eq!(store.commit_after(&l1, &flagged("b")).unwrap(), Some(2));
        // ... whose commit Juju drops: the next hook starts from 1 again.
        let l = store.load_committed(Some(1)).unwrap();
        assert_eq!(l.snapshot.state, flagged("a"));
        assert_eq!(l.discarded, Some(2));
        // Nothing changes this time: the file goes back to generation 1 and
        // Juju needs no new state-set.
        assert_eq!(store.commit_after(&l, &flagged("a")).unwrap(), None);
        assert_eq!(store.load_committed(Some(1)).unwrap().discarded, None);
        // Idle hooks write nothing.
        let l = store.load_committed(Some(1)).unwrap();
        let mtime = std::fs::metadata(store.path()).unwrap().modified().unwrap();
        assert_eq!(store.commit_after(&l, &flagged("a")).unwrap(), None);
        assert_eq!(
            std::fs::metadata(store.path()).unwrap().modified().unwrap(),
            mtime
        );
    }

    #[test]
    fn the_first_commit_dropped_is_the_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(StateStore::default_path(dir.path()));
        let l0 = store.load_committed(None).unwrap();
        store.commit_after(&l0, &flagged("a")).unwrap();
        let l = store.load_committed(None).unwrap();
        assert_eq!((l.snapshot.state, l.discarded), (State::default(), Some(1)));
    }

    #[test]
    fn a_format_1_file_reads_as_generation_0_and_unknown_generations_keep_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            br#"{"format": 1, "flags": ["x"], "data": {}, "config": null}"#,
        )
        .unwrap();
        let store = StateStore::new(&path);
        let l = store.load_committed(None).unwrap();
        assert_eq!((l.snapshot.state, l.discarded), (flagged("x"), None));
        let l = store.load_committed(Some(9)).unwrap();
        assert_eq!((l.snapshot.state, l.unknown), (flagged("x"), Some(9)));
    }
}
