//! Placing the charm, the agent binary, the hook tools and resources inside
//! the machine, where Juju's machine agent would put them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::machine::{Machine, MachineKind};
use crate::model::{ModelError, io_err};
use crate::tools;

/// `/var/lib/juju/agents/unit-<app>-0/charm` (inside the machine).
pub fn charm_dir(unit_tag: &str) -> PathBuf {
    PathBuf::from(format!("/var/lib/juju/agents/{unit_tag}/charm"))
}

/// `/var/lib/juju/tools/unit-<app>-0` (inside): the tools, on the hook's PATH.
pub fn tools_dir(unit_tag: &str) -> PathBuf {
    PathBuf::from(format!("/var/lib/juju/tools/{unit_tag}"))
}

pub fn resource_dir(unit_tag: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("/var/lib/juju/agents/{unit_tag}/resources/{name}"))
}

/// How an inside path maps to the host and to what the machine's processes
/// see. For real machines the processes see the inside path as is; for the
/// local test runner (kind host, root not `/`) they see the host path.
pub struct Paths<'a> {
    machine: &'a dyn Machine,
}

impl<'a> Paths<'a> {
    pub fn new(machine: &'a dyn Machine) -> Self {
        Self { machine }
    }

    /// Host-side path of `inside`.
    pub fn host(&self, inside: &Path) -> PathBuf {
        self.machine
            .root()
            .join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// The path processes in the machine use for `inside`.
    pub fn seen(&self, inside: &Path) -> PathBuf {
        if self.is_local() {
            self.host(inside)
        } else {
            inside.to_owned()
        }
    }

    /// The local test runner: "inside" is a host dir that is not `/`.
    pub fn is_local(&self) -> bool {
        self.machine.kind() == MachineKind::Host && self.machine.root() != Path::new("/")
    }
}

/// Copy the charm's files into the machine's charm dir (overwriting what an
/// earlier deploy put there), and `agent` as `bin/wsgi-agent` if given, with
/// the `wsgi-dbcheck` built beside it.
pub fn place_charm(
    paths: &Paths<'_>,
    unit_tag: &str,
    source: &Path,
    agent: Option<&Path>,
) -> Result<PathBuf, ModelError> {
    let dest = paths.host(&charm_dir(unit_tag));
    std::fs::create_dir_all(&dest).map_err(io_err("creating the charm dir", &dest))?;
    for name in ["metadata.yaml", "config.yaml", "layer.yaml", "dispatch"] {
        let from = source.join(name);
        if from.exists() {
            copy_entry(&from, &dest.join(name))?;
        } else if name == "metadata.yaml" || name == "dispatch" {
            return Err(ModelError::Invalid(format!(
                "{} has no {name}; give the charm's root directory",
                source.display()
            )));
        }
    }
    for dir in ["hooks", "bin"] {
        let from = source.join(dir);
        if from.is_dir() {
            copy_tree(&from, &dest.join(dir))?;
        }
    }
    if let Some(agent) = agent {
        let bin = dest.join("bin");
        std::fs::create_dir_all(&bin).map_err(io_err("creating", &bin))?;
        install_binary(agent, &bin.join("wsgi-agent"))?;
        // The database check helper, when built beside the agent (the
        // charm's bin/ holds both, as scripts/pack lays it out).
        let helper = agent.with_file_name(DBCHECK_HELPER);
        if helper.is_file() {
            install_binary(&helper, &bin.join(DBCHECK_HELPER))?;
        }
    }
    Ok(dest)
}

/// The helper the agent runs to check a database URL.
pub const DBCHECK_HELPER: &str = "wsgi-dbcheck";

fn install_binary(from: &Path, to: &Path) -> Result<(), ModelError> {
    // Remove first: a running copy may be the one being replaced (ETXTBSY).
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to).map_err(io_err("copying the binary", from))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err("making the binary executable", to))?;
    Ok(())
}

/// Copy `jujulet` into the tools dir with one symlink per tool name.
pub fn place_tools(paths: &Paths<'_>, unit_tag: &str, jujulet: &Path) -> Result<(), ModelError> {
    let dir = paths.host(&tools_dir(unit_tag));
    std::fs::create_dir_all(&dir).map_err(io_err("creating the tools dir", &dir))?;
    install_binary(jujulet, &dir.join("jujulet"))?;
    for name in tools::NAMES {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("jujulet", &link).map_err(io_err("linking a tool", &link))?;
    }
    Ok(())
}

/// Copy a resource file in; returns the path the charm sees.
pub fn place_resource(
    paths: &Paths<'_>,
    unit_tag: &str,
    name: &str,
    file: &Path,
) -> Result<PathBuf, ModelError> {
    let file_name = file.file_name().ok_or_else(|| {
        ModelError::Invalid(format!("resource {name}: {} is not a file", file.display()))
    })?;
    let inside = resource_dir(unit_tag, name).join(file_name);
    let host = paths.host(&inside);
    if let Some(parent) = host.parent() {
        // A new revision replaces the old one, whatever its file name.
        let _ = std::fs::remove_dir_all(parent);
        std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    std::fs::copy(file, &host).map_err(io_err("copying the resource", file))?;
    Ok(paths.seen(&inside))
}

fn copy_entry(from: &Path, to: &Path) -> Result<(), ModelError> {
    let meta = std::fs::symlink_metadata(from).map_err(io_err("reading", from))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(io_err("reading the link", from))?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(&target, to).map_err(io_err("linking", to))
    } else if meta.is_dir() {
        copy_tree(from, to)
    } else {
        let _ = std::fs::remove_file(to);
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(io_err("copying", from))
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(to).map_err(io_err("creating", to))?;
    for entry in std::fs::read_dir(from).map_err(io_err("listing", from))? {
        let entry = entry.map_err(io_err("listing", from))?;
        copy_entry(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}
