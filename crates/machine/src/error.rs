//! The one error type of the machine crate.

use std::path::PathBuf;

use crate::process::Exit;

/// A failure on the machine, with what an operator needs to act on it.
/// The cause (an I/O error) is its `source()`, printed once in the chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started.
    #[error("cannot run {cmd}")]
    Spawn {
        /// The command line (program and arguments, never the environment).
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{cmd} failed ({exit}){}", tail_suffix(.tail))]
    Failed {
        /// The command line.
        cmd: String,
        /// How it ended.
        exit: Exit,
        /// The last lines of its stdout and stderr.
        tail: String,
    },
    /// It ran longer than allowed and was stopped with its children.
    #[error("{cmd} timed out after {secs} s and was stopped{}", tail_suffix(.tail))]
    Timeout {
        /// The command line.
        cmd: String,
        /// The limit.
        secs: u64,
        /// The last lines of its output.
        tail: String,
    },
    /// A file operation failed.
    #[error("{op} {}", .path.display())]
    Io {
        /// What was being done (`write`, `read`, `rename`...).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file operation through fs-err, whose message names the path.
    #[error(transparent)]
    Fs(#[from] std::io::Error),
    /// Anything else, already phrased for the operator.
    #[error("{0}")]
    Invalid(String),
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

impl Error {
    /// An I/O error on a path.
    pub fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
