//! Running commands: one place that spawns, bounds the time, kills the whole
//! process group on timeout and keeps the tail of the output for the error.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Lines of output kept for an error message.
const TAIL_LINES: usize = 6;
/// Bytes of output kept in memory per stream (the tail matters, not the rest).
const KEEP_BYTES: usize = 64 * 1024;

/// A failure on the machine, with what an operator needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The program could not be started.
    #[error("cannot run {cmd}: {source}")]
    Spawn {
        /// The command line (program and arguments, never the environment).
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{cmd} failed ({status}){}", tail_suffix(.tail))]
    Failed {
        /// The command line.
        cmd: String,
        /// `exit code N` or `killed by signal N`.
        status: String,
        /// The last lines of its stdout and stderr.
        tail: String,
    },
    /// It ran longer than allowed and was killed with its children.
    #[error("{cmd} timed out after {secs} s and was killed{}", tail_suffix(.tail))]
    Timeout {
        /// The command line.
        cmd: String,
        /// The limit.
        secs: u64,
        /// The last lines of its output.
        tail: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `read`, `rename`...).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the operator.
    #[error("{0}")]
    Other(String),
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

impl HostError {
    /// An I/O error on a path.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        HostError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// What a command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Standard output (its last 64 KiB).
    pub stdout: String,
    /// Standard error (its last 64 KiB).
    pub stderr: String,
}

/// A command to run on the machine.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Option<Vec<(String, String)>>,
    extra_env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    timeout: Duration,
    as_user: Option<String>,
    stdin: Option<Stdin>,
}

/// Bytes for a command's stdin; shown as their length only (they may be a
/// secret, and a `Cmd` may be printed with `{:?}`).
#[derive(Clone)]
struct Stdin(Vec<u8>);

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl Cmd {
    /// `program` with no arguments, the agent's environment and a 10-minute limit.
    pub fn new(program: impl Into<OsString>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: None,
            extra_env: Vec::new(),
            dir: None,
            timeout: Duration::from_secs(600),
            as_user: None,
            stdin: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs with exactly this environment (nothing inherited).
    pub fn env_clear(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = Some(env.into_iter().collect());
        self
    }

    /// Adds one variable to the environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Working directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Time limit.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Gives the command these bytes on stdin (else it reads /dev/null):
    /// the way to hand it a secret, which arguments would show to everyone.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(Stdin(data.into()));
        self
    }

    /// Runs as this user and its groups (setpriv: no PAM, no shell, the
    /// environment passed as is, no new privileges).
    pub fn as_user(mut self, user: &str) -> Self {
        self.as_user = Some(user.to_owned());
        self
    }

    /// The command line for messages: program and arguments, shell-quoted.
    /// The environment is never shown (it holds secrets).
    pub fn display(&self) -> String {
        let mut words = vec![self.program.to_string_lossy().into_owned()];
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        shell_words::join(words)
    }

    fn command(&self) -> Command {
        let mut c = match &self.as_user {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups")
                    .arg("--no-new-privs")
                    .arg("--")
                    .arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        c.args(&self.args);
        if let Some(env) = &self.env {
            c.env_clear();
            c.envs(env.iter().map(|(k, v)| (k, v)));
        }
        c.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// Runs to completion; a non-zero exit, a signal or the timeout is an error.
    pub fn run(&self) -> Result<Output, HostError> {
        let (status, out) = self.run_status()?;
        match status {
            Some(0) => Ok(out),
            _ => Err(HostError::Failed {
                cmd: self.display(),
                status: describe(status, &out),
                tail: tail(&out),
            }),
        }
    }

    /// Runs to completion; returns the exit code (None when killed by a
    /// signal) and the output. Only the timeout and spawning are errors.
    pub fn run_status(&self) -> Result<(Option<i32>, Output), HostError> {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut command = self.command();
        // Its own process group, so a timeout kills what it started too.
        command
            .process_group(0)
            .stdin(match self.stdin {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut command).map_err(|source| HostError::Spawn {
            cmd: self.display(),
            source,
        })?;
        if let (Some(Stdin(data)), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A thread, so a command that does not read cannot block us; a
            // write error (it exited first) is its business, seen in its status.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            });
        }
        // Recorded while it runs: if this hook is killed, the next one ends
        // the group (see kill_leftovers); removed when dropped.
        let _record = Record::new(child.id());
        let out_reader = child.stdout.take().map(reader);
        let err_reader = child.stderr.take().map(reader);
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if start.elapsed() >= self.timeout => break None,
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(HostError::Spawn {
                        cmd: self.display(),
                        source,
                    });
                }
            }
        };
        if status.is_none() {
            kill_group(child.id());
            let _ = child.wait();
        }
        let out = Output {
            stdout: out_reader.map(join).unwrap_or_default(),
            stderr: err_reader.map(join).unwrap_or_default(),
        };
        match status {
            None => Err(HostError::Timeout {
                cmd: self.display(),
                secs: self.timeout.as_secs(),
                tail: tail(&out),
            }),
            Some(s) => Ok((s.code().or(s.signal().map(|n| -n)), out)),
        }
    }
}

/// Spawns, retrying briefly on "Text file busy": a program written just
/// before (a script) is busy while any other thread's fork still holds the
/// write descriptor, until that child's exec closes it.
fn spawn(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

thread_local! {
    /// Where running commands' process groups are recorded. Per thread: a
    /// hook runs its commands on its one thread, and tests stay apart.
    static REGISTRY: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

fn registry() -> Option<PathBuf> {
    REGISTRY.with(|r| r.borrow().clone())
}

/// Records the process group of every command run from now on in `dir`,
/// for [`kill_leftovers`]. A hook killed with SIGKILL cannot end what it
/// started (each command has its own group so that a timeout can kill it
/// whole); a pip or `python -m venv` left running went on writing into the
/// venv the next hook was removing ("Directory not empty", found by the
/// SIGKILL test).
pub fn record_children_in(dir: PathBuf) {
    REGISTRY.with(|r| *r.borrow_mut() = Some(dir));
}

/// Kills the process groups an earlier, killed hook left running (those
/// recorded whose leader still has the recorded start time), waits for
/// each leader to be gone, and clears the records. Returns their PIDs.
pub fn kill_leftovers() -> Vec<u32> {
    let Some(dir) = registry() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for e in entries.flatten() {
        let pid: Option<u32> = e.file_name().to_str().and_then(|n| n.parse().ok());
        let recorded = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(pid) = pid
            && !recorded.is_empty()
            && running_since(pid).as_deref() == Some(recorded.trim())
        {
            kill_group(pid);
            let deadline = Instant::now() + Duration::from_secs(5);
            while running_since(pid).as_deref() == Some(recorded.trim())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            killed.push(pid);
        }
        let _ = std::fs::remove_file(e.path());
    }
    killed
}

/// A process's start time (clock ticks since boot, /proc/PID/stat field 22),
/// which tells it from a later process given the same PID; None when it is
/// gone or a zombie.
fn running_since(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat_fields(&stat)?;
    if rest.next()? == "Z" {
        return None;
    }
    rest.nth(18).map(str::to_owned)
}

/// The fields of a /proc/PID/stat line after the parenthesised command name
/// (which may itself contain spaces and parentheses): state, ppid, pgrp...
pub(super) fn stat_fields(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat.get(stat.rfind(')')? + 1..)?.split_whitespace())
}

/// The record of one running command's process group.
struct Record(Option<PathBuf>);

impl Record {
    fn new(pid: u32) -> Record {
        use std::os::unix::fs::DirBuilderExt;
        let Some(dir) = registry() else {
            return Record(None);
        };
        let Some(since) = running_since(pid) else {
            return Record(None);
        };
        let path = dir.join(pid.to_string());
        // Best effort: without a record the command runs as it always did.
        // 0700 like the state dir it is in (which it may be first to create).
        let written = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| std::fs::write(&path, since));
        Record(written.is_ok().then_some(path))
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn kill_group(pid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

pub(super) fn describe(code: Option<i32>, _: &Output) -> String {
    match code {
        Some(c) if c < 0 => format!("killed by signal {}", -c),
        Some(c) => format!("exit code {c}"),
        None => "killed".into(),
    }
}

type Reader = std::thread::JoinHandle<String>;

fn reader(mut stream: impl Read + Send + 'static) -> Reader {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * KEEP_BYTES {
                kept.drain(..kept.len() - KEEP_BYTES);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

fn join(r: Reader) -> String {
    r.join().unwrap_or_default()
}

/// The last lines of stderr, or of stdout when stderr is empty, on one line.
pub fn tail(out: &Output) -> String {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    last_lines(text, TAIL_LINES)
}

/// The last `n` non-empty lines joined with ` | `, control characters removed.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .collect::<Vec<_>>()
        .join(" | ")
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The registry is per thread: this test's records are its own.
    #[test]
    fn groups_left_by_a_killed_hook_are_killed_by_the_next() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("children");
        record_children_in(registry.clone());
        // A command that ends normally leaves no record. (It waits for its
        // record: the record is written just after the spawn.)
        let out = Cmd::new("sh")
            .args([
                "-c",
                "while [ ! -e \"$0/$$\" ]; do sleep 0.01; done; ls \"$0\"",
                registry.to_str().unwrap(),
            ])
            .timeout(Duration::from_secs(10))
            .run()
            .unwrap();
        assert!(out.stdout.trim().parse::<u32>().is_ok(), "{out:?}");
        assert_eq!(std::fs::read_dir(&registry).unwrap().count(), 0);
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
        let since = running_since(pid).unwrap();
        std::fs::write(registry.join(pid.to_string()), &since).unwrap();
        let bystander = Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(registry.join(bystander.id().to_string()), "1").unwrap();
        assert_eq!(kill_leftovers(), vec![pid]);
        let status = left.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(
            running_since(bystander.id()).is_some(),
            "the bystander lives"
        );
        assert_eq!(std::fs::read_dir(&registry).unwrap().count(), 0);
        let mut bystander = bystander;
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }

    #[test]
    fn failure_names_command_code_and_tail() {
        let e = Cmd::new("sh")
            .args(["-c", "echo one; echo two >&2; exit 3"])
            .run()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "sh -c 'echo one; echo two >&2; exit 3' failed (exit code 3): two"
        );
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let t = Instant::now();
        let e = Cmd::new("sh")
            .args(["-c", "sleep 30 & echo started; wait"])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(matches!(e, HostError::Timeout { .. }), "{e}");
        // The background sleep held stdout open: had it survived, the
        // reader would have waited 30 s.
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("started"), "{e}");
    }

    #[test]
    fn env_clear_passes_only_what_is_given() {
        let out = Cmd::new("/usr/bin/env")
            .env_clear([("ONLY".to_string(), "x y".to_string())])
            .run()
            .unwrap();
        assert_eq!(out.stdout, "ONLY=x y\n");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = Cmd::new("/nonexistent/prog").run().unwrap_err();
        assert!(
            e.to_string().starts_with("cannot run /nonexistent/prog"),
            "{e}"
        );
    }
}
