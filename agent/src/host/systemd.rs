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
}
