//! The record of running commands. A hook killed with SIGKILL cannot end
//! what it started (each command has its own process group, so that a
//! timeout stops it whole); a pip or `python -m venv` left running went on
//! writing into the venv the next hook was removing ("Directory not empty",
//! found by the SIGKILL test). So while a [`crate::Cmd`] runs, its group is
//! recorded in a directory, and the next hook ends what is still there.
//!
//! The directory is set once per process with [`record_in`] (the hook
//! runtime does it first thing); before that, nothing is recorded.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::proc::{Proc, signal_group};
use crate::wait::wait_until;

/// Process-wide: every thread's commands are recorded in the same place.
static REGISTRY: Mutex<Option<PathBuf>> = Mutex::new(None);

fn registry() -> Option<PathBuf> {
    REGISTRY.lock().map(|r| r.clone()).unwrap_or_default()
}

/// Records the process group of every command run from now on in `dir`.
pub fn record_in(dir: PathBuf) {
    if let Ok(mut r) = REGISTRY.lock() {
        *r = Some(dir);
    }
}

/// Kills the process groups an earlier, killed hook left running (those
/// recorded whose leader is still the recorded process), waits for each
/// leader to be gone, and clears the records. Returns their PIDs.
pub fn kill_leftovers() -> Vec<u32> {
    registry()
        .map(|d| kill_leftovers_in(&d))
        .unwrap_or_default()
}

/// [`kill_leftovers`] for the records in `dir`.
pub fn kill_leftovers_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for e in entries.flatten() {
        let pid: Option<u32> = e.file_name().to_str().and_then(|n| n.parse().ok());
        let start: Option<u64> = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| t.trim().parse().ok());
        if let (Some(pid), Some(start)) = (pid, start) {
            let recorded = Proc { pid, start };
            if recorded.alive() {
                signal_group(pid, Signal::SIGKILL);
                wait_until(Duration::from_secs(5), || !recorded.alive());
                killed.push(pid);
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
    killed
}

/// The record of one running command's process group, removed on drop.
pub(crate) struct Record(Option<PathBuf>);

impl Record {
    pub(crate) fn new(pid: u32) -> Record {
        Record(registry().and_then(|dir| write_record(&dir, pid)))
    }
}

fn write_record(dir: &Path, pid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let since = Proc::of(pid)?;
    let path = dir.join(pid.to_string());
    // Best effort: without a record the command runs as it always did.
    // 0700 like the state dir it is in (which it may be first to create).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::write(&path, since.start.to_string()))
        .ok()
        .map(|()| path)
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use std::process::Command;

    #[test]
    fn groups_left_by_a_killed_hook_are_killed_by_the_next() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("children");
        // A command that ends normally leaves no record; while it runs, its
        // record is there (written just after the spawn: it waits for it).
        let written = write_record(&registry, std::process::id()).unwrap();
        assert!(written.exists());
        drop(Record(Some(written.clone())));
        assert!(!written.exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&registry).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // What a killed hook leaves: a group still running (a shell and its
        // child), recorded; and a stale record of a PID now someone else's.
        let mut left = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = left.id();
        write_record(&registry, pid).unwrap();
        let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(registry.join(bystander.id().to_string()), "1").unwrap();
        assert_eq!(kill_leftovers_in(&registry), vec![pid]);
        let status = left.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(
            Proc::of(bystander.id()).unwrap().alive(),
            "the bystander lives"
        );
        assert_eq!(std::fs::read_dir(&registry).unwrap().count(), 0);
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }
}
