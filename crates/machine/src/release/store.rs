//! The releases of one application, and which one serves.
//!
//! A release is a source (an unpacked archive) with the venv built for it.
//! Each has a directory of its own holding two links and a record, and the
//! service runs whatever `current` points at, so switching code and venv
//! together is one rename: a reader (a reboot, a restarted service) sees
//! the old release or the new one, never half of each.
//!
//! ```text
//! <app dir>/sources/<id>/       unpacked archives (super::archive)
//!          /venvs/<key>/        venvs, one per set of inputs (crate::venv)
//!          /releases/<n>/app    -> the source's app root
//!                       /venv   -> venvs/<key>
//!                       /release.json
//!          /current             -> releases/<n>
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::archive::Source;
use crate::Error;
use crate::fs::{create_dirs, write_if_changed};

const RECORD: &str = "release.json";
/// The next release number (numbers are never reused, also after a prune).
const NEXT: &str = ".next";

/// What is known of a release's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Health {
    /// Built, not yet checked while serving.
    Untested,
    /// Served and answered its health check.
    Passed {
        /// When (Unix seconds).
        at: u64,
    },
    /// Served and failed its health check (then rolled back).
    Failed {
        /// When (Unix seconds).
        at: u64,
        /// The first line of the cause.
        cause: String,
    },
}

impl Health {
    /// `untested`, `passed` or `failed: <cause>`.
    pub fn describe(&self) -> String {
        match self {
            Health::Untested => "untested".into(),
            Health::Passed { .. } => "passed".into(),
            Health::Failed { cause, .. } => format!("failed: {cause}"),
        }
    }
}

/// One release's record (`release.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Its number, from 1.
    pub id: u32,
    /// When it was built (Unix seconds).
    pub created: u64,
    /// The archive's SHA-256.
    pub source: String,
    /// The digest of its requirements.txt.
    pub requirements: String,
    /// The key of its venv (the digest of the venv's inputs).
    pub venv: String,
    /// Its health.
    pub health: Health,
}

/// The releases under one application directory.
#[derive(Debug, Clone)]
pub struct Store {
    app_dir: PathBuf,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds, for records.
pub fn unix_now() -> u64 {
    now()
}

impl Store {
    /// The store of the application whose directory is `app_dir`.
    pub fn new(app_dir: &Path) -> Self {
        Self {
            app_dir: app_dir.to_owned(),
        }
    }

    /// `sources/`.
    pub fn sources(&self) -> PathBuf {
        self.app_dir.join("sources")
    }

    /// `venvs/`.
    pub fn venvs(&self) -> PathBuf {
        self.app_dir.join("venvs")
    }

    /// `releases/`.
    pub fn releases(&self) -> PathBuf {
        self.app_dir.join("releases")
    }

    /// `current`.
    pub fn current(&self) -> PathBuf {
        self.app_dir.join("current")
    }

    /// `releases/<id>`.
    pub fn dir_of(&self, id: u32) -> PathBuf {
        self.releases().join(id.to_string())
    }

    /// Every release with a readable record, oldest first.
    pub fn list(&self) -> Result<Vec<Release>, Error> {
        let dir = self.releases();
        let entries = match std::fs::read_dir(&dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &dir, e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            match self.get(id) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!("release {id}: {e}"),
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// The record of release `id`, None when there is no such release.
    pub fn get(&self, id: u32) -> Result<Option<Release>, Error> {
        let path = self.dir_of(id).join(RECORD);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// The release `current` points at, if it is one of this store's.
    pub fn live(&self) -> Option<u32> {
        let target = std::fs::read_link(self.current()).ok()?;
        let parent = target.parent()?;
        if parent != self.releases() {
            return None;
        }
        target.file_name()?.to_str()?.parse().ok()
    }

    /// The release of this source and venv, if one was built.
    pub fn find(&self, source: &str, venv: &str) -> Result<Option<Release>, Error> {
        Ok(self
            .list()?
            .into_iter()
            .rev()
            .find(|r| r.source == source && r.venv == venv))
    }

    /// A new release of `source` with the (complete) venv `venv`.
    pub fn create(
        &self,
        source: &Source,
        venv: &Path,
        venv_key: &str,
        requirements: &str,
    ) -> Result<Release, Error> {
        let dir = self.releases();
        create_dirs(&dir)?;
        let id = self.next_id()?;
        let release = Release {
            id,
            created: now(),
            source: source.hash.clone(),
            requirements: requirements.to_owned(),
            venv: venv_key.to_owned(),
            health: Health::Untested,
        };
        let partial = dir.join(format!(".partial-{id}"));
        let _ = std::fs::remove_dir_all(&partial);
        create_dirs(&partial)?;
        let link = |to: &Path, name: &str| {
            let at = partial.join(name);
            std::os::unix::fs::symlink(to, &at).map_err(|e| Error::io("symlink", &at, e))
        };
        link(&source.root, "app")?;
        link(venv, "venv")?;
        write_record(&partial, &release)?;
        write_if_changed(
            &dir.join(NEXT),
            (id + 1).to_string().as_bytes(),
            0o644,
            None,
        )?;
        fs_err::rename(&partial, self.dir_of(id))?;
        Ok(release)
    }

    fn next_id(&self) -> Result<u32, Error> {
        let stored = std::fs::read_to_string(self.releases().join(NEXT))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .unwrap_or(1);
        let after_max = self.list()?.last().map_or(1, |r| r.id + 1);
        Ok(stored.max(after_max))
    }

    /// Records release `id`'s health.
    pub fn set_health(&self, id: u32, health: Health) -> Result<Release, Error> {
        let mut r = self
            .get(id)?
            .ok_or_else(|| Error::Invalid(format!("there is no release {id}")))?;
        r.health = health;
        write_record(&self.dir_of(id), &r)?;
        Ok(r)
    }

    /// Points `current` at release `id`, atomically.
    pub fn switch(&self, id: u32) -> Result<(), Error> {
        let target = self.dir_of(id);
        if !target.join(RECORD).is_file() {
            return Err(Error::Invalid(format!("there is no release {id}")));
        }
        let current = self.current();
        if std::fs::read_link(&current).is_ok_and(|t| t == target) {
            return Ok(());
        }
        let tmp = self
            .app_dir
            .join(format!(".current-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| Error::io("symlink", &tmp, e))?;
        std::fs::rename(&tmp, &current).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("switch", &current, e)
        })
    }

    /// Keeps the newest `keep` releases and the live one, with their
    /// sources and venvs; removes everything else (older releases, what
    /// interrupted builds left, the layout of charms before releases had
    /// venvs of their own). Returns the releases removed.
    pub fn prune(&self, keep: usize) -> Result<Vec<u32>, Error> {
        let live = self.live();
        let all = self.list()?;
        let cut = all.len().saturating_sub(keep);
        let (old, kept): (Vec<_>, Vec<_>) = all
            .into_iter()
            .enumerate()
            .partition(|(i, r)| *i < cut && Some(r.id) != live);
        let mut removed = Vec::new();
        for (_, r) in &old {
            fs_err::remove_dir_all(self.dir_of(r.id))?;
            removed.push(r.id);
        }
        let kept: Vec<Release> = kept.into_iter().map(|(_, r)| r).collect();
        let sources: Vec<&str> = kept.iter().map(|r| &r.source[..12]).collect();
        let venvs: Vec<&str> = kept.iter().map(|r| venv_dir_name(&r.venv)).collect();
        sweep(&self.sources(), &|name| sources.contains(&name))?;
        sweep(&self.venvs(), &|name| venvs.contains(&name))?;
        if live.is_some() {
            // Before releases: hash-named release dirs and one shared venv.
            sweep(&self.releases(), &|name| {
                name == NEXT || name.parse::<u32>().is_ok()
            })?;
            let legacy = self.app_dir.join("venv");
            if legacy.is_dir() {
                fs_err::remove_dir_all(&legacy)?;
            }
        }
        Ok(removed)
    }
}

/// A venv's directory name from its key.
pub fn venv_dir_name(key: &str) -> &str {
    &key[..key.len().min(16)]
}

fn write_record(dir: &Path, r: &Release) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(r)
        .map_err(|e| Error::Invalid(format!("release record: {e}")))?;
    write_if_changed(&dir.join(RECORD), text.as_bytes(), 0o644, None)?;
    Ok(())
}

/// Removes the entries of `dir` that `keep` does not name.
fn sweep(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<(), Error> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            continue;
        }
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            fs_err::remove_dir_all(&path)?;
        } else {
            fs_err::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn source(root: &Path, n: u8) -> Source {
        let hash = format!("{n:02x}").repeat(32);
        let dir = root.join("sources").join(&hash[..12]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("wsgi.py"), n.to_string()).unwrap();
        Source {
            hash,
            root: dir.clone(),
            dir,
        }
    }

    fn venv(root: &Path, key: &str) -> PathBuf {
        let d = root.join("venvs").join(venv_dir_name(key));
        std::fs::create_dir_all(d.join("bin")).unwrap();
        d
    }

    #[test]
    fn releases_switch_whole_and_are_numbered_once() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        assert_eq!(s.live(), None);
        let first = s
            .create(&source(d.path(), 1), &venv(d.path(), "k1"), "k1", "r")
            .unwrap();
        assert_eq!(first.id, 1);
        s.switch(1).unwrap();
        assert_eq!(s.live(), Some(1));
        let cur = s.current();
        assert_eq!(
            std::fs::read_to_string(cur.join("app/wsgi.py")).unwrap(),
            "1"
        );
        assert!(cur.join("venv/bin").is_dir());
        let second = s
            .create(&source(d.path(), 2), &venv(d.path(), "k1"), "k1", "r")
            .unwrap();
        assert_eq!(second.id, 2);
        assert_eq!(
            s.find(&source(d.path(), 2).hash, "k1").unwrap().unwrap().id,
            2
        );
        s.set_health(
            2,
            Health::Failed {
                at: 1,
                cause: "x".into(),
            },
        )
        .unwrap();
        assert_eq!(s.get(2).unwrap().unwrap().health.describe(), "failed: x");
        assert!(s.switch(9).is_err());
        // Numbers are not reused after a prune.
        s.switch(2).unwrap();
        assert_eq!(s.prune(1).unwrap(), vec![1]);
        let third = s
            .create(&source(d.path(), 3), &venv(d.path(), "k3"), "k3", "r")
            .unwrap();
        assert_eq!(third.id, 3);
    }

    #[test]
    fn prune_keeps_the_newest_the_live_and_what_they_use() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        for n in 1..=6u8 {
            let key = format!("key{n}");
            s.create(&source(d.path(), n), &venv(d.path(), &key), &key, "r")
                .unwrap();
        }
        s.switch(2).unwrap();
        // Left by an interrupted build and by the layout before releases.
        std::fs::create_dir_all(d.path().join("venvs/partial")).unwrap();
        std::fs::create_dir_all(d.path().join("releases/0123456789ab")).unwrap();
        std::fs::create_dir_all(d.path().join("venv/bin")).unwrap();
        let removed = s.prune(3).unwrap();
        assert_eq!(removed, vec![1, 3]);
        let ids: Vec<u32> = s.list().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 4, 5, 6]);
        let mut venvs: Vec<String> = std::fs::read_dir(s.venvs())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        venvs.sort();
        assert_eq!(venvs, ["key2", "key4", "key5", "key6"]);
        assert_eq!(std::fs::read_dir(s.sources()).unwrap().count(), 4);
        assert!(!d.path().join("releases/0123456789ab").exists());
        assert!(!d.path().join("venv").exists());
        assert_eq!(s.live(), Some(2));
    }
}
