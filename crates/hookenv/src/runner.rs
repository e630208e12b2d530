//! Running one hook tool. The trait lets unit tests answer in-process; the
//! real runner spawns the tool found on PATH, where Juju puts its tools first.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use juju_contract::Tool;

/// What a tool printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Runs hook tools.
pub trait ToolRunner {
    /// Runs `tool` with `args`, feeding `stdin` when given (else /dev/null).
    fn run(&self, tool: Tool, args: &[String], stdin: Option<&[u8]>)
    -> std::io::Result<ToolOutput>;
}

/// The real tools, as processes: found on PATH (where Juju puts its tools
/// first), or in one directory.
#[derive(Debug, Default, Clone)]
pub struct ProcessRunner {
    dir: Option<PathBuf>,
}

impl ProcessRunner {
    /// Tools from PATH.
    pub fn from_path() -> Self {
        ProcessRunner { dir: None }
    }

    /// Tools from `dir` (tests, without touching PATH).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        ProcessRunner {
            dir: Some(dir.into()),
        }
    }
}

impl ToolRunner for ProcessRunner {
    fn run(
        &self,
        tool: Tool,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> std::io::Result<ToolOutput> {
        let mut cmd = match &self.dir {
            Some(d) => Command::new(d.join(tool.name())),
            None => Command::new(tool.name()),
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
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
