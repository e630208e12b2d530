//! The `nspawn` machine (reference/env-probe.md §1 a'): the host's own OS
//! booted by `systemd-nspawn --boot` on an overlay (lower: the host's "/",
//! upper: a tmpfs), so systemd is PID 1 inside and the host is never
//! written. A `cloud-image` machine is the same with a debootstrap root
//! ([`super::image`]) as the lower layer. It shares the host's network namespace: servers on the host's
//! loopback are reachable from inside, and the charm's ports from outside.
//!
//! Layout: `<model>/machine.json` (the record), `<model>/nspawn.log` (kept
//! after destroy, for post-mortems), `<model>/machine/ovl` (the tmpfs) with
//! `upper`, `work` and `merged` (the overlay; the machine's "/").

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::process::{self, Proc};
use super::signals::CreateGuard;
use super::{CreateOptions, CreateStep, Machine, MachineError, MachineKind, State};

/// Host units the image enables that must not start inside: they would
/// take the host's ports (PostgreSQL 5432, nginx 80, HAProxy) in the shared
/// network namespace, or grab the dpkg lock (apt timers) while the charm
/// installs packages.
const MASKED: &[&str] = &[
    "postgresql.service",
    "postgresql@.service",
    "nginx.service",
    "haproxy.service",
    "tinyproxy.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "dpkg-db-backup.timer",
];

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NspawnState {
    /// The machine (and container host) name.
    pub name: String,
    /// `<model>/machine`: everything under it goes on destroy.
    pub dir: PathBuf,
    /// The tmpfs mount point.
    pub tmpfs: PathBuf,
    /// The overlay mount point: the machine's "/".
    pub merged: PathBuf,
    pub log: PathBuf,
    /// systemd-nspawn itself.
    pub nspawn: Option<Proc>,
    /// The container's PID 1 (systemd), as the host sees it.
    pub leader: Option<Proc>,
    pub booted: bool,
    /// The binds it boots with (again after a reboot).
    #[serde(default)]
    pub binds: Vec<super::Bind>,
    /// The overlay's lower layer when it is not the host's "/" (a
    /// cloud-image machine).
    #[serde(default)]
    pub image: Option<PathBuf>,
}

impl NspawnState {
    pub(super) fn planned(model_dir: &Path) -> Self {
        let dir = model_dir.join("machine");
        let tmpfs = dir.join("ovl");
        Self {
            name: machine_name(model_dir),
            merged: tmpfs.join("merged"),
            tmpfs,
            dir,
            log: model_dir.join("nspawn.log"),
            nspawn: None,
            leader: None,
            booted: false,
            binds: Vec::new(),
            image: None,
        }
    }
}

/// `jujulet-<8 hex>`: stable per model dir, a valid hostname.
pub(super) fn machine_name(model_dir: &Path) -> String {
    // FNV-1a: tiny, and stable across Rust versions (unlike DefaultHasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in model_dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    format!("jujulet-{h:08x}")
}

pub(super) struct Nspawn {
    model_dir: PathBuf,
    st: NspawnState,
    /// Set in the process that spawned nspawn, so it can be reaped.
    child: Option<Child>,
}

impl Nspawn {
    pub(super) fn create(
        model_dir: &Path,
        options: &CreateOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Self, MachineError> {
        let guard = CreateGuard::new();
        let mut m = Self {
            model_dir: model_dir.to_owned(),
            st: NspawnState::planned(model_dir),
            child: None,
        };
        for p in [&m.st.dir, &m.st.log] {
            let s = p.to_string_lossy();
            if s.contains([',', ':', '\n', '\\']) {
                return Err(MachineError::Invalid(format!(
                    "{s}: the model dir path must not contain ',', ':', '\\' or newlines (they break overlay mount options); choose another model dir"
                )));
            }
        }
        // A crash before the record was written may have left mounts.
        if !process::mounts_under(&m.st.dir).is_empty() {
            progress("cleaning up mounts left by an earlier run");
            teardown(model_dir, &m.st, None)?;
        }
        match m.bring_up(options, &guard, progress) {
            Ok(()) => Ok(m),
            Err(e) if options.keep_on_failure => Err(e),
            Err(e) => {
                // A terminal's Ctrl-C also kills our mount/systemctl child:
                // report the interrupt, not the child's death.
                let e = if guard.interrupted() {
                    MachineError::Interrupted
                } else {
                    e
                };
                progress("creating the machine failed; cleaning up");
                match teardown(model_dir, &m.st, m.child.as_mut()) {
                    Ok(()) => Err(e),
                    Err(c) => Err(MachineError::CleanupFailed {
                        failure: Box::new(e),
                        cleanup: Box::new(c),
                    }),
                }
            }
        }
    }

    fn save(&self) -> Result<(), MachineError> {
        super::write_state(&self.model_dir, &State::Nspawn(self.st.clone()))
    }

    fn bring_up(
        &mut self,
        options: &CreateOptions,
        guard: &CreateGuard,
        progress: &dyn Fn(&str),
    ) -> Result<(), MachineError> {
        let check = |step: CreateStep| -> Result<(), MachineError> {
            if guard.interrupted() {
                return Err(MachineError::Interrupted);
            }
            if options.fail_after == Some(step) {
                return Err(MachineError::Injected(step));
            }
            Ok(())
        };
        let start = Instant::now();
        // Record first: whatever happens next, destroy knows where to look.
        self.save()?;

        progress(&format!(
            "mounting a {} tmpfs for the machine's writes",
            options.tmpfs_size
        ));
        mkdir(&self.st.tmpfs)?;
        run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={},mode=0755", options.tmpfs_size))
                .arg(format!("{}-tmpfs", self.st.name))
                .arg(&self.st.tmpfs),
            "jujulet needs root (mount) to create nspawn machines",
        )?;
        check(CreateStep::Tmpfs)?;

        let (upper, work) = (self.st.tmpfs.join("upper"), self.st.tmpfs.join("work"));
        for d in [&upper, &work, &self.st.merged] {
            mkdir(d)?;
        }
        self.st.image.clone_from(&options.image);
        self.save()?;
        let lower = self.st.image.clone().unwrap_or_else(|| PathBuf::from("/"));
        if lower.to_string_lossy().contains([',', ':', '\n', '\\']) {
            return Err(MachineError::Invalid(format!(
                "{}: the image path must not contain ',', ':', '\\' or newlines",
                lower.display()
            )));
        }
        progress(&match &self.st.image {
            None => "mounting the host's / as an overlay".to_owned(),
            Some(i) => format!("mounting the image {} as an overlay", i.display()),
        });
        run(
            Command::new("mount")
                .args(["-t", "overlay", "-o"])
                .arg(format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lower.display(),
                    upper.display(),
                    work.display()
                ))
                .arg(format!("{}-overlay", self.st.name))
                .arg(&self.st.merged),
            "the kernel needs overlayfs (modprobe overlay)",
        )?;
        check(CreateStep::Overlay)?;

        run(
            Command::new("systemctl")
                .arg(format!("--root={}", self.st.merged.display()))
                .arg("mask")
                .args(MASKED),
            "is systemd installed on the host image?",
        )?;
        if self.st.image.is_some() {
            super::image::add_site_cas(&self.st.merged)?;
        }
        // The container's hostname is the machine name (nspawn sets it
        // from --machine, but /etc/hostname inside would override it).
        std::fs::write(
            self.st.merged.join("etc/hostname"),
            format!("{}\n", self.st.name),
        )
        .map_err(|source| MachineError::Io {
            what: "writing the machine's hostname".into(),
            path: self.st.merged.join("etc/hostname"),
            source,
        })?;

        self.st.binds.clone_from(&options.binds);
        progress(&format!("booting {} (systemd-nspawn)", self.st.name));
        self.spawn()?;
        check(CreateStep::Spawn)?;

        self.wait_booted(options.boot_timeout, guard)?;
        self.st.booted = true;
        self.save()?;
        let failed = self
            .internal(&[
                "systemctl",
                "--failed",
                "--plain",
                "--no-legend",
                "--no-pager",
            ])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let note = if failed.is_empty() {
            String::new()
        } else {
            format!(
                "; failed units: {}",
                failed
                    .lines()
                    .map(|l| l.split_whitespace().next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        progress(&format!(
            "{} is up in {:.1} s{note}",
            self.st.name,
            start.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Starts systemd-nspawn on the overlay (booted by [`Self::wait_booted`]).
    fn spawn(&mut self) -> Result<(), MachineError> {
        // Appended to: a reboot keeps the boots before it.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.st.log)
            .map_err(|source| MachineError::Io {
                what: "creating the nspawn log".into(),
                path: self.st.log.clone(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| MachineError::Io {
            what: "creating the nspawn log".into(),
            path: self.st.log.clone(),
            source,
        })?;
        let mut cmd = Command::new("setsid");
        // setsid(1) does not fork when its caller is not a group leader
        // (never the case for a spawned child), so the PID is nspawn's own;
        // the new session keeps the terminal's Ctrl-C and hangup away.
        cmd.args([
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=passive",
        ])
        .arg(format!("--machine={}", self.st.name))
        .arg("-D")
        .arg(&self.st.merged);
        for b in &self.st.binds {
            cmd.arg(format!(
                "--{}={}:{}",
                if b.read_only { "bind-ro" } else { "bind" },
                b.host.display(),
                b.inside.display()
            ));
        }
        let child = cmd
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| MachineError::Command {
                cmd: "setsid systemd-nspawn …".into(),
                code: format!("could not run: {e}"),
                stderr_tail: String::new(),
                hint: "install systemd-container (scripts/lib/install-deps)".into(),
            })?;
        let pid = child.id();
        self.child = Some(child);
        self.st.nspawn = Proc::of(pid);
        self.save()?;

        Ok(())
    }

    /// Powers the machine off as `systemctl reboot` would, keeps its disk
    /// (the overlay), and boots it again: what a unit sees of a reboot.
    pub(super) fn reboot(&mut self, progress: &dyn Fn(&str)) -> Result<(), MachineError> {
        let guard = CreateGuard::new();
        progress(&format!("rebooting {}", self.st.name));
        power_off(&self.st, self.child.as_mut())?;
        remove_image_lock(&self.st);
        self.child = None;
        self.st.leader = None;
        self.st.nspawn = None;
        self.st.booted = false;
        self.save()?;
        let start = Instant::now();
        self.spawn()?;
        self.wait_booted(Duration::from_secs(120), &guard)?;
        self.st.booted = true;
        self.save()?;
        progress(&format!(
            "{} is up again in {:.1} s",
            self.st.name,
            start.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    fn wait_booted(&mut self, limit: Duration, guard: &CreateGuard) -> Result<(), MachineError> {
        let start = Instant::now();
        let mut last = String::from("nspawn starting");
        loop {
            if guard.interrupted() {
                return Err(MachineError::Interrupted);
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(MachineError::NspawnDied {
                    status: status.to_string(),
                    log: self.st.log.clone(),
                    log_tail: process::tail_file(&self.st.log, 20),
                });
            }
            if self.st.leader.is_none_or(|l| !l.alive())
                && let Some(nspawn) = self.st.nspawn
            {
                self.st.leader = process::container_init(nspawn.pid);
                if self.st.leader.is_some() {
                    self.save()?;
                }
            }
            if self.st.leader.is_some() {
                match self.internal(&["systemctl", "is-system-running"]) {
                    Ok(o) => {
                        let state = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                        if state == "running" || state == "degraded" {
                            return Ok(());
                        }
                        if !state.is_empty() {
                            last = state;
                        }
                    }
                    Err(e) => last = format!("systemctl: {e}"),
                }
            }
            if start.elapsed() >= limit {
                return Err(MachineError::BootTimeout {
                    secs: limit.as_secs(),
                    last,
                    log: self.st.log.clone(),
                    log_tail: process::tail_file(&self.st.log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A jujulet-internal command inside (systemctl …), with a fixed PATH.
    fn internal(&self, argv: &[&str]) -> io::Result<Output> {
        let leader = self.live_leader()?;
        process::output_within(
            Command::new("nsenter")
                .args([
                    "-t",
                    &leader.to_string(),
                    "-a",
                    "/usr/bin/env",
                    "-i",
                    PATH,
                    "LANG=C.UTF-8",
                ])
                .args(argv),
            Duration::from_secs(30),
        )
    }

    fn live_leader(&self) -> io::Result<u32> {
        match self.st.leader {
            Some(l) if l.alive() => Ok(l.pid),
            _ => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "machine {} is not running (run `jujulet destroy`, then deploy again)",
                    self.st.name
                ),
            )),
        }
    }

    pub(super) fn attach(model_dir: &Path, st: NspawnState) -> Result<Self, MachineError> {
        let record = model_dir.join(super::STATE_FILE);
        let gone = |detail: String| MachineError::Gone {
            record: record.clone(),
            detail,
        };
        if !st.booted {
            return Err(gone("its creation never finished".into()));
        }
        match (st.nspawn, st.leader) {
            (Some(n), Some(l)) if n.alive() && l.alive() => {}
            (Some(n), _) if !n.alive() => {
                return Err(gone(format!(
                    "systemd-nspawn (PID {}) has exited; tail of {}:\n{}",
                    n.pid,
                    st.log.display(),
                    process::tail_file(&st.log, 10)
                )));
            }
            _ => return Err(gone("its systemd (PID 1 inside) has exited".into())),
        }
        Ok(Self {
            model_dir: model_dir.to_owned(),
            st,
            child: None,
        })
    }

    fn nsenter(&self, inner: Vec<String>) -> io::Result<Command> {
        let leader = self.live_leader()?;
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader.to_string(), "-a"]).args(inner);
        Ok(cmd)
    }
}

impl Machine for Nspawn {
    fn kind(&self) -> MachineKind {
        if self.st.image.is_some() {
            MachineKind::CloudImage
        } else {
            MachineKind::Nspawn
        }
    }

    fn root(&self) -> &Path {
        &self.st.merged
    }

    fn exec(&self, argv: &[String], env: &[(String, String)], cwd: &Path) -> io::Result<Output> {
        self.nsenter(super::env_argv(argv, env, cwd, None)?)?
            .stdin(Stdio::null())
            .output()
    }

    fn exec_timeout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        timeout: Duration,
    ) -> io::Result<Output> {
        // timeout(1) runs inside, so the command itself is killed; the host
        // side deadline only guards against a stuck nsenter.
        let mut cmd = self.nsenter(super::env_argv(argv, env, cwd, Some(timeout))?)?;
        process::output_within(&mut cmd, timeout + Duration::from_secs(15))
    }

    fn describe(&self) -> String {
        format!(
            "nspawn {} (nspawn PID {}, systemd PID {}, root {})",
            self.st.name,
            self.st.nspawn.map_or(0, |p| p.pid),
            self.st.leader.map_or(0, |p| p.pid),
            self.st.merged.display()
        )
    }

    fn reboot(&mut self, progress: &dyn Fn(&str)) -> Result<(), MachineError> {
        Nspawn::reboot(self, progress)
    }

    fn destroy(&mut self) -> Result<(), MachineError> {
        teardown(&self.model_dir, &self.st, self.child.as_mut())?;
        self.child = None;
        Ok(())
    }
}

/// Undo `create`, from any point: power off (or kill) the container,
/// unmount the overlay and the tmpfs, remove the machine dir and record.
/// Powers the machine off (an orderly shutdown when it booted), then kills
/// what is left; returns when nspawn and its container are gone.
fn power_off(st: &NspawnState, mut child: Option<&mut Child>) -> Result<(), MachineError> {
    let reap = |child: &mut Option<&mut Child>| {
        if let Some(c) = child.as_mut() {
            let _ = c.try_wait();
        }
    };
    let nspawn_alive = |child: &mut Option<&mut Child>| {
        reap(child);
        st.nspawn.is_some_and(|p| p.alive())
    };
    let leader_alive = || st.leader.is_some_and(|p| p.alive());

    // The leader may not be recorded (killed mid-boot): look it up.
    let leader = st.leader.filter(machine::proc::Proc::alive).or_else(|| {
        st.nspawn
            .filter(machine::proc::Proc::alive)
            .and_then(|n| process::container_init(n.pid))
    });
    // A booted machine is powered off properly (units stop, as on a real
    // machine); one whose boot never finished has nothing worth a clean
    // shutdown, and its systemd may not answer yet: it is killed at once.
    let mut grace = Duration::ZERO;
    if st.booted
        && let Some(leader) = leader
    {
        let asked = process::output_within(
            Command::new("nsenter").args([
                "-t",
                &leader.pid.to_string(),
                "-a",
                "/usr/bin/env",
                "-i",
                PATH,
                "systemctl",
                "poweroff",
                "--no-block",
            ]),
            Duration::from_secs(15),
        );
        if !asked.is_ok_and(|o| o.status.success())
            && let Some(n) = st.nspawn
        {
            // nspawn turns SIGTERM into an orderly shutdown of the container.
            n.signal(Signal::SIGTERM);
        }
        grace = Duration::from_secs(30);
    } else if leader.is_none()
        && let Some(n) = st.nspawn
    {
        // Before it forked the container, nspawn just exits on SIGTERM.
        n.signal(Signal::SIGTERM);
        grace = Duration::from_secs(2);
    }
    let all_gone = |child: &mut Option<&mut Child>| {
        !nspawn_alive(child) && !leader_alive() && leader.is_none_or(|l| !l.alive())
    };
    if !process::wait_until(grace, || all_gone(&mut child)) {
        // Everything under nspawn, found now (the tree may have grown since),
        // leaves first; SIGKILL to a PID namespace's init ends all inside it.
        // Killing only nspawn would orphan the container's systemd.
        let mut victims: Vec<Proc> = st
            .nspawn
            .map(|n| process::descendants(n.pid))
            .unwrap_or_default();
        victims.extend(st.leader);
        victims.extend(leader);
        for p in &victims {
            p.signal(Signal::SIGKILL);
        }
        if let Some(n) = st.nspawn {
            n.signal(Signal::SIGKILL);
        }
        if !process::wait_until(Duration::from_secs(10), || {
            all_gone(&mut child) && victims.iter().all(|p| !p.alive())
        }) {
            return Err(MachineError::Invalid(format!(
                "machine {}: systemd-nspawn (PID {:?}) or its container survived SIGKILL; check `ps` and retry `jujulet destroy`",
                st.name,
                st.nspawn.map(|p| p.pid)
            )));
        }
    }
    Ok(())
}

/// nspawn's lock on the image dir, named by its device and inode; a killed
/// nspawn leaves it behind. Read while the overlay is mounted.
fn image_lock(st: &NspawnState) -> Option<PathBuf> {
    process::mounts_under(&st.merged)
        .contains(&st.merged)
        .then(|| std::fs::metadata(&st.merged).ok())
        .flatten()
        .map(|md| {
            use std::os::unix::fs::MetadataExt;
            PathBuf::from(format!(
                "/run/systemd/nspawn/locks/inode-{}:{}",
                md.dev(),
                md.ino()
            ))
        })
}

fn remove_image_lock(st: &NspawnState) {
    if let Some(lock) = image_lock(st) {
        let _ = std::fs::remove_file(lock);
    }
}

pub(super) fn teardown(
    model_dir: &Path,
    st: &NspawnState,
    child: Option<&mut Child>,
) -> Result<(), MachineError> {
    power_off(st, child)?;
    // Read before the overlay goes.
    let image_lock = image_lock(st);
    for m in process::mounts_under(&st.dir) {
        unmount(&m)?;
    }
    if let Some(lock) = image_lock {
        let _ = std::fs::remove_file(lock);
    }
    if process::mounts_under(&st.dir).is_empty() {
        // Only with nothing mounted under it: removing through a live
        // overlay would be wrong (whiteouts), and through a bind worse.
        match std::fs::remove_dir_all(&st.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(MachineError::Io {
                    what: "removing the machine dir".into(),
                    path: st.dir.clone(),
                    source,
                });
            }
        }
    }
    // nspawn's own scratch dirs on the host ("Attempted to remove disk file
    // system …, and we can't allow that" is it failing to remove this one).
    for sub in ["propagate", "unix-export"] {
        let p = Path::new("/run/systemd/nspawn").join(sub).join(&st.name);
        if p.exists() && process::mounts_under(&p).is_empty() {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
    super::remove_state(model_dir)
}

fn unmount(path: &Path) -> Result<(), MachineError> {
    let mut last = None;
    for _ in 0..10 {
        match run(Command::new("umount").arg(path), "") {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        if !process::mounts_under(path).iter().any(|m| m == path) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // Still busy (a shell cd'ed into it?): detach it lazily rather than
    // leave it mounted; the kernel frees it when the last user goes.
    run(
        Command::new("umount").arg("-l").arg(path),
        "check with `findmnt` and `fuser -m` what holds it",
    )
    .map(|_| ())
    .map_err(|e| last.unwrap_or(e))
}

fn mkdir(p: &Path) -> Result<(), MachineError> {
    std::fs::create_dir_all(p).map_err(|source| MachineError::Io {
        what: "creating".into(),
        path: p.to_owned(),
        source,
    })
}

fn run(cmd: &mut Command, hint: &str) -> Result<Output, MachineError> {
    let mut shown = vec![cmd.get_program().to_string_lossy().into_owned()];
    shown.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let shown = shell_words::join(shown);
    let out = process::output_within(cmd, Duration::from_secs(60)).map_err(|e| {
        MachineError::Command {
            cmd: shown.clone(),
            code: format!("could not run: {e}"),
            stderr_tail: String::new(),
            hint: hint.to_owned(),
        }
    })?;
    if out.status.success() {
        return Ok(out);
    }
    Err(MachineError::Command {
        cmd: shown,
        code: out
            .status
            .code()
            .map_or("killed by a signal".into(), |c| format!("exit code {c}")),
        stderr_tail: process::tail(&String::from_utf8_lossy(&out.stderr), 10),
        hint: hint.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_hostnames() {
        let a = machine_name(Path::new("/work/m1"));
        assert_eq!(a, machine_name(Path::new("/work/m1")));
        assert_ne!(a, machine_name(Path::new("/work/m2")));
        assert!(a.len() <= 64 && a.starts_with("jujulet-"));
    }
}
