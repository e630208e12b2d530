//! systemctl and journalctl.

use std::time::Duration;

use super::{Cmd, HostError};

/// What systemd says about a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// ActiveState (`active`, `failed`, `activating`...).
    pub active_state: String,
    /// MainPID, 0 when none.
    pub main_pid: u32,
    /// NRestarts: how often Restart= restarted it since the last start.
    pub restarts: u32,
}

/// `systemctl VERB UNIT`, or `systemctl daemon-reload` (unit ignored).
/// start/restart wait for the unit to report ready (Type=notify), bounded.
pub fn systemctl(verb: &str, unit: &str) -> Result<(), HostError> {
    let cmd = Cmd::new("systemctl").arg("--no-ask-password");
    let cmd = if verb == "daemon-reload" {
        cmd.arg(verb)
    } else {
        cmd.args([verb, unit])
    };
    cmd.timeout(Duration::from_secs(180)).run().map(drop)
}

/// `systemctl reload UNIT`, then waits (bounded) until every worker the
/// main process had before has exited: gunicorn's HUP starts new workers
/// and retires the old ones gracefully, and until they are gone a request
/// may still be answered by the old code or environment.
pub fn reload_and_wait(unit: &str, limit: Duration) -> Result<(), HostError> {
    let main = unit_state(unit)?.main_pid;
    let old = children(main);
    systemctl("reload", unit)?;
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        // A master that died on the reload (the app fails at import) has
        // no workers to wait for: the health check reports it.
        if main == 0 || !std::path::Path::new(&format!("/proc/{main}")).exists() {
            return Ok(());
        }
        let now = children(main);
        if !now.is_empty() && now.iter().all(|p| !old.contains(p)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!(
        unit,
        "old workers still running {} s after reload",
        limit.as_secs()
    );
    Ok(())
}

/// The pids whose parent is `parent` (from /proc).
pub fn children(parent: u32) -> Vec<u32> {
    if parent == 0 {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parent_of(&s))
                == Some(parent)
        })
        .collect()
}

/// The ppid field of /proc/PID/stat (after the parenthesised command name,
/// which may itself contain spaces and parentheses).
fn parent_of(stat: &str) -> Option<u32> {
    super::process::stat_fields(stat)?.nth(1)?.parse().ok()
}

/// ActiveState, MainPID and NRestarts of a unit (one systemctl call).
pub fn unit_state(unit: &str) -> Result<UnitState, HostError> {
    let out = Cmd::new("systemctl")
        .args(["show", "--property=ActiveState,MainPID,NRestarts", unit])
        .timeout(Duration::from_secs(30))
        .run()?;
    Ok(parse_show(&out.stdout))
}

fn parse_show(text: &str) -> UnitState {
    let mut s = UnitState::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => s.active_state = v.to_owned(),
            Some(("MainPID", v)) => s.main_pid = v.parse().unwrap_or(0),
            Some(("NRestarts", v)) => s.restarts = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    s
}

/// The last `lines` lines the unit logged in the journal, message text only.
pub fn journal_tail(unit: &str, lines: usize) -> String {
    Cmd::new("journalctl")
        .args(["--no-pager", "--output=cat", "--unit", unit, "--lines"])
        .arg(lines.to_string())
        .timeout(Duration::from_secs(30))
        .run()
        .map(|o| o.stdout)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn show_output_in_any_order() {
        let s = parse_show("MainPID=42\nNRestarts=3\nActiveState=active\n");
        assert_eq!(
            s,
            UnitState {
                active_state: "active".into(),
                main_pid: 42,
                restarts: 3
            }
        );
        assert_eq!(parse_show("garbage\nMainPID=x\n").main_pid, 0);
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
        assert_eq!(parent_of("12 (a) b) S 7 12"), Some(7));
    }
}
