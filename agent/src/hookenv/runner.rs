//! Running one hook tool. The trait lets unit tests answer in-process; the
//! real runner spawns the tool found on PATH, where Juju puts its tools first.

use std::io::Write;
use std::process::{Command, Stdio};

/// What a tool printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Runs hook tools.
pub trait ToolRunner {
    /// Runs `tool` with `args`, feeding `stdin` when given (else /dev/null).
    fn run(&self, tool: &str, args: &[String], stdin: Option<&[u8]>)
    -> std::io::Result<ToolOutput>;
}

/// The real tools, as processes: found on PATH (where Juju puts its tools
/// first), or in one directory.
#[derive(Debug, Default, Clone)]
pub struct ProcessRunner {
    dir: Option<std::path::PathBuf>,
}

impl ProcessRunner {
    /// Tools from PATH.
    pub fn from_path() -> Self {
        ProcessRunner { dir: None }
    }

    /// Tools from `dir` (tests, without touching PATH).
    pub fn in_dir(dir: impl Into<std::path::PathBuf>) -> Self {
        ProcessRunner {
            dir: Some(dir.into()),
        }
    }
}

impl ToolRunner for ProcessRunner {
    fn run(
        &self,
        tool: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> std::io::Result<ToolOutput> {
        let mut cmd = match &self.dir {
            Some(d) => Command::new(d.join(tool)),
            None => Command::new(tool),
        };
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn()?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data)?;
        }
        let out = child.wait_with_output()?;
        Ok(ToolOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
