//! Running commands: one place that spawns, bounds the time, stops the
//! whole process group on timeout and keeps the tail of the output for the
//! error. [`Cmd`] is the charm's builder; [`output_within`] serves callers
//! that build a `std::process::Command` themselves (jujulet).

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use wait_timeout::ChildExt;

use crate::Error;
use crate::children;
use crate::proc::signal_group;
use crate::text::last_lines;

/// Lines of output kept for an error message.
const TAIL_LINES: usize = 6;
/// Bytes of output kept in memory per stream (the tail matters, not the rest).
const KEEP_BYTES: usize = 64 * 1024;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// From a `std` exit status.
    pub fn of(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        }
    }

    /// Exited 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
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

impl Output {
    /// The last lines of stderr, or of stdout when stderr is empty, on one line.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        last_lines(text, TAIL_LINES)
    }
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
    /// How a timeout stops it: SIGKILL, or SIGTERM for what must not be
    /// killed mid-write (dpkg).
    stop: Signal,
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
            stop: Signal::SIGKILL,
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

    /// On timeout, ask the group to stop with SIGTERM (and wait for it)
    /// instead of SIGKILL: for programs that must not die mid-write.
    pub fn stop_gently(mut self) -> Self {
        self.stop = Signal::SIGTERM;
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
                let mut c = Command::new("/usr/bin/setpriv");
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
    pub fn run(&self) -> Result<Output, Error> {
        let (exit, out) = self.run_status()?;
        if exit.success() {
            Ok(out)
        } else {
            Err(Error::Failed {
                cmd: self.display(),
                exit,
                tail: out.tail(),
            })
        }
    }

    /// Runs to completion; returns how it exited and the output. Only the
    /// timeout and spawning are errors.
    pub fn run_status(&self) -> Result<(Exit, Output), Error> {
        use std::os::unix::process::CommandExt;
        let mut command = self.command();
        // Its own process group, so a timeout stops what it started too.
        command
            .process_group(0)
            .stdin(match self.stdin {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_err = |source| Error::Spawn {
            cmd: self.display(),
            source,
        };
        let mut child = spawn(&mut command).map_err(spawn_err)?;
        if let (Some(Stdin(data)), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A thread, so a command that does not read cannot block us; a
            // write error (it exited first) is its business, seen in its status.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            });
        }
        // Recorded while it runs: if this hook is killed, the next one ends
        // the group (see children::kill_leftovers); removed when dropped.
        let _record = children::Record::new(child.id());
        let out_reader = child.stdout.take().map(reader);
        let err_reader = child.stderr.take().map(reader);
        let status = child.wait_timeout(self.timeout).map_err(spawn_err)?;
        let status = match status {
            Some(s) => Some(s),
            None => {
                stop_group(&mut child, self.stop);
                None
            }
        };
        let out = Output {
            stdout: out_reader.map(join).unwrap_or_default(),
            stderr: err_reader.map(join).unwrap_or_default(),
        };
        match status {
            None => Err(Error::Timeout {
                cmd: self.display(),
                secs: self.timeout.as_secs(),
                tail: out.tail(),
            }),
            Some(s) => Ok((Exit::of(s), out)),
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Stops the group led by `child`: `sig`, and for a gentle SIGTERM a wait of
/// up to two minutes before SIGKILL; then reaps the leader.
fn stop_group(child: &mut Child, sig: Signal) {
    signal_group(child.id(), sig);
    if sig != Signal::SIGKILL && matches!(child.wait_timeout(Duration::from_secs(120)), Ok(Some(_)))
    {
        return;
    }
    signal_group(child.id(), Signal::SIGKILL);
    let _ = child.wait();
}

/// Spawns, retrying briefly on "Text file busy": a program written just
/// before (a script) is busy while any other thread's fork still holds the
/// write descriptor, until that child's exec closes it.
fn spawn(command: &mut Command) -> std::io::Result<Child> {
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

type Reader = std::thread::JoinHandle<Vec<u8>>;

/// Drains a pipe on a thread (a chatty command must not block on a full
/// pipe), keeping its last [`KEEP_BYTES`] with `keep`, else all of it.
fn drain(mut stream: impl Read + Send + 'static, keep: Option<usize>) -> Reader {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if let Some(k) = keep
                && kept.len() > 2 * k
            {
                kept.drain(..kept.len() - k);
            }
        }
        kept
    })
}

fn reader(stream: impl Read + Send + 'static) -> Reader {
    drain(stream, Some(KEEP_BYTES))
}

fn join(r: Reader) -> String {
    String::from_utf8_lossy(&r.join().unwrap_or_default()).into_owned()
}

/// Runs `cmd` with stdin null and its output captured whole; kills it at
/// `deadline` (then the error kind is `TimedOut`).
pub fn output_within(
    cmd: &mut Command,
    deadline: Duration,
) -> std::io::Result<std::process::Output> {
    let mut child = spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    let out = child.stdout.take().map(|s| drain(s, None));
    let err = child.stderr.take().map(|s| drain(s, None));
    let Some(status) = child.wait_timeout(deadline)? else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("killed after {} s", deadline.as_secs()),
        ));
    };
    let collect = |r: Option<Reader>| r.map(|r| r.join().unwrap_or_default()).unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use std::time::Instant;

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
        let e = Cmd::new("sh").args(["-c", "kill -9 $$"]).run().unwrap_err();
        assert!(
            e.to_string().ends_with("failed (killed by signal 9)"),
            "{e}"
        );
    }

    #[test]
    fn timeout_stops_the_whole_group() {
        let t = Instant::now();
        let e = Cmd::new("sh")
            .args(["-c", "sleep 30 & echo started; wait"])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        // The background sleep held stdout open: had it survived, the
        // reader would have waited 30 s.
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("started"), "{e}");
    }

    #[test]
    fn a_gentle_stop_lets_the_group_finish_its_write() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let script = format!(
            "trap 'echo cleaned > {}; exit 0' TERM; while :; do sleep 0.05; done",
            done.display()
        );
        let e = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300))
            .stop_gently()
            .run()
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&done).unwrap(), "cleaned\n");
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
    fn missing_program_is_a_spawn_error_printed_once() {
        let e = Cmd::new("/nonexistent/prog").run().unwrap_err();
        assert_eq!(e.to_string(), "cannot run /nonexistent/prog");
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert!(cause.contains("No such file"), "{cause}");
    }

    #[test]
    fn output_within_kills_at_the_deadline() {
        let e =
            output_within(Command::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let o = output_within(Command::new("echo").arg("hi"), Duration::from_secs(5)).unwrap();
        assert_eq!(o.stdout, b"hi\n");
    }
}
