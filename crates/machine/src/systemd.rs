//! systemctl and journalctl.

use std::fmt;
use std::time::Duration;

use crate::proc::children;
use crate::{Cmd, Error};

/// The sandbox of the app's service and of every command run for the app
/// (its installer, its provision_command): systemd directives, in the order
/// the unit file lists them. One list, so the transient units are hardened
/// exactly as the service is (reference: a unit measured at exposure 1.4-1.6
/// with gunicorn 27; the directives that break gunicorn are not here).
pub const HARDENING: &[(&str, &str)] = &[
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateIPC", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("RestrictSUIDSGID", "yes"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RemoveIPC", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged @resources"),
    // gunicorn chowns its log files (a @privileged call): EPERM, not SIGSYS.
    ("SystemCallErrorNumber", "EPERM"),
];

/// What `systemctl` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Systemctl {
    /// `daemon-reload` (no unit).
    DaemonReload,
    /// `enable UNIT`
    Enable,
    /// `disable UNIT`
    Disable,
    /// `start UNIT` (waits for readiness, Type=notify)
    Start,
    /// `stop UNIT`
    Stop,
    /// `restart UNIT`
    Restart,
    /// `reload UNIT`
    Reload,
    /// `reset-failed UNIT`
    ResetFailed,
}

impl Systemctl {
    /// The verb on systemctl's command line.
    pub const fn verb(self) -> &'static str {
        match self {
            Systemctl::DaemonReload => "daemon-reload",
            Systemctl::Enable => "enable",
            Systemctl::Disable => "disable",
            Systemctl::Start => "start",
            Systemctl::Stop => "stop",
            Systemctl::Restart => "restart",
            Systemctl::Reload => "reload",
            Systemctl::ResetFailed => "reset-failed",
        }
    }
}

impl fmt::Display for Systemctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// A unit's ActiveState.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ActiveState {
    /// `active`
    Active,
    /// `reloading`
    Reloading,
    /// `inactive`
    #[default]
    Inactive,
    /// `failed`
    Failed,
    /// `activating`
    Activating,
    /// `deactivating`
    Deactivating,
    /// Anything else systemd may say.
    Other(String),
}

impl ActiveState {
    /// From `systemctl show`'s text.
    pub fn parse(s: &str) -> ActiveState {
        match s {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            other => ActiveState::Other(other.to_owned()),
        }
    }

    /// Running: active, or reloading (still serving).
    pub fn is_running(&self) -> bool {
        matches!(self, ActiveState::Active | ActiveState::Reloading)
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Other(s) => s,
        })
    }
}

/// What systemd says about a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// ActiveState.
    pub active: ActiveState,
    /// MainPID, 0 when none.
    pub main_pid: u32,
    /// NRestarts: how often Restart= restarted it since the last start.
    pub restarts: u32,
    /// A socket unit's addresses (`Listen=`), e.g. `0.0.0.0:80 (Stream)`.
    pub listen: Vec<String>,
}

/// `systemctl VERB UNIT`, or `systemctl daemon-reload` (unit ignored).
/// start/restart wait for the unit to report ready (Type=notify), bounded.
pub fn systemctl(verb: Systemctl, unit: &str) -> Result<(), Error> {
    let cmd = Cmd::new("systemctl").arg("--no-ask-password");
    let cmd = if verb == Systemctl::DaemonReload {
        cmd.arg(verb.verb())
    } else {
        cmd.args([verb.verb(), unit])
    };
    cmd.timeout(Duration::from_secs(180)).run().map(drop)
}

/// `systemctl reload UNIT`, then waits (bounded) until every worker the
/// main process had before has exited: gunicorn's HUP starts new workers
/// and retires the old ones gracefully, and until they are gone a request
/// may still be answered by the old code or environment.
pub fn reload_and_wait(unit: &str, limit: Duration) -> Result<(), Error> {
    let main = unit_state(unit)?.main_pid;
    let old = children(main);
    systemctl(Systemctl::Reload, unit)?;
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

/// ActiveState, MainPID, NRestarts and (sockets) Listen of a unit (one
/// systemctl call).
pub fn unit_state(unit: &str) -> Result<UnitState, Error> {
    let out = Cmd::new("systemctl")
        .args([
            "show",
            "--property=ActiveState,MainPID,NRestarts,Listen",
            unit,
        ])
        .timeout(Duration::from_secs(30))
        .run()?;
    Ok(parse_show(&out.stdout))
}

fn parse_show(text: &str) -> UnitState {
    let mut s = UnitState::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => s.active = ActiveState::parse(v),
            Some(("MainPID", v)) => s.main_pid = v.parse().unwrap_or(0),
            Some(("NRestarts", v)) => s.restarts = v.parse().unwrap_or(0),
            Some(("Listen", v)) if !v.is_empty() => s.listen.push(v.to_owned()),
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
    use super::*;

    #[test]
    fn show_output_in_any_order() {
        let s = parse_show("MainPID=42\nNRestarts=3\nActiveState=active\nListen=\n");
        assert_eq!(
            s,
            UnitState {
                active: ActiveState::Active,
                main_pid: 42,
                restarts: 3,
                listen: Vec::new(),
            }
        );
        assert_eq!(
            parse_show("Listen=0.0.0.0:80 (Stream)\n").listen,
            ["0.0.0.0:80 (Stream)"]
        );
        assert_eq!(parse_show("garbage\nMainPID=x\n").main_pid, 0);
        assert_eq!(
            ActiveState::parse("maintenance"),
            ActiveState::Other("maintenance".into())
        );
    }
}
