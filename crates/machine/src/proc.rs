//! Processes by PID, from /proc: recorded with their start time so that a
//! recycled PID is never mistaken for them; their children; signals.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::wait::wait_until;

/// A process recorded by PID plus its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// The PID.
    pub pid: u32,
    /// Field 22 of /proc/PID/stat (clock ticks after boot).
    pub start: u64,
}

impl Proc {
    /// The process now running as `pid`, if any.
    pub fn of(pid: u32) -> Option<Self> {
        stat(pid).map(|s| Self {
            pid,
            start: s.start,
        })
    }

    /// Alive, not a zombie, and the same process as recorded.
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.running())
    }

    /// Sends `sig` if it is still the recorded process.
    pub fn signal(&self, sig: Signal) {
        if self.alive() {
            signal(self.pid, sig);
        }
    }
}

/// The fields of /proc/PID/stat that are used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `Z`...).
    pub state: char,
    /// The parent's PID.
    pub ppid: u32,
    /// The process group.
    pub pgrp: u32,
    /// The start time (clock ticks after boot).
    pub start: u64,
}

impl Stat {
    /// Neither a zombie nor dead.
    pub fn running(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Parses a /proc/PID/stat line. The command name is in parentheses and may
/// contain anything, spaces and parentheses included: the fields start after
/// the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// /proc/PID/stat of `pid`, if it exists.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` is a live (not zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.running())
}

/// Live children of `parent`, lowest PID first.
pub fn children(parent: u32) -> Vec<u32> {
    if parent == 0 {
        return Vec::new();
    }
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent && s.running()))
        .collect();
    out.sort_unstable();
    out
}

/// Every live process below `root`, deepest first.
pub fn descendants(root: u32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for c in children(p) {
            if let Some(found) = Proc::of(c) {
                out.push(found);
            }
            frontier.push(c);
        }
    }
    out.reverse();
    out
}

/// Sends `sig` to `pid`, ignoring a process that is already gone (never to
/// PID 0 or 1).
pub fn signal(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid)
        && raw > 1
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig);
    }
}

/// Sends `sig` to the process group `pgid`.
pub fn signal_group(pgid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pgid)
        && raw > 1
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), sig);
    }
}

/// TERM, wait up to `grace`, then KILL; true when the process is gone.
pub fn terminate(pid: u32, grace: Duration) -> bool {
    if !pid_alive(pid) {
        return true;
    }
    signal(pid, Signal::SIGTERM);
    if wait_until(grace, || !pid_alive(pid)) {
        return true;
    }
    signal(pid, Signal::SIGKILL);
    wait_until(Duration::from_secs(5), || !pid_alive(pid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn own_process_is_alive_and_recorded() {
        let me = Proc::of(std::process::id()).unwrap();
        assert!(me.alive());
        let other = Proc {
            start: me.start + 1,
            ..me
        };
        assert!(!other.alive(), "a different start time is another process");
    }

    #[test]
    fn stat_lines_with_hostile_names() {
        let s =
            parse_stat("12 (a) b) S 7 12 12 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 4242 0").unwrap();
        assert_eq!((s.state, s.ppid, s.pgrp, s.start), ('S', 7, 12, 4242));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn children_of_this_process() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = children(std::process::id());
        let _ = c.kill();
        let _ = c.wait();
        assert!(kids.contains(&c.id()), "{kids:?}");
    }
}
