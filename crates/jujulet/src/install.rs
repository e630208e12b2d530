//! Installing the charm, the hook tools and resources inside
//! the machine, where Juju's machine agent would put them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::machines::{Machine, MachineKind};
use crate::model::{ModelError, io_err};
use juju_contract::Tool;

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
    pub fn as_seen_inside(&self, inside: &Path) -> PathBuf {
        if self.is_local() {
            self.host(inside)
        } else {
            inside.to_owned()
        }
    }

    /// The local test runner: "inside" is a plain host directory.
    pub fn is_local(&self) -> bool {
        self.machine.kind() == MachineKind::Local
    }
}

/// Installs the charm into the machine's charm dir, replacing what an
/// earlier deploy put there: the files of a charm directory (a charm
/// as built, with its `bin/`), or the contents of a packed `.charm` (what
/// `juju deploy ./x.charm` takes). jujulet knows nothing of what is inside:
/// Juju runs `dispatch`, and so does jujulet.
pub fn install_charm(
    paths: &Paths<'_>,
    unit_tag: &str,
    source: &Path,
) -> Result<PathBuf, ModelError> {
    let dest = paths.host(&charm_dir(unit_tag));
    // Files a charm made in its own directory (its state) stay, as under
    // Juju, which keeps them across `juju refresh`.
    fs_err::create_dir_all(&dest)?;
    if source.is_file() {
        unzip(source, &dest)?;
    } else {
        copy_charm_dir(source, &dest)?;
    }
    for name in ["metadata.yaml", "dispatch"] {
        if !dest.join(name).exists() {
            return Err(ModelError::Invalid(format!(
                "{} has no {name}: give a charm's directory or a packed .charm",
                source.display()
            )));
        }
    }
    Ok(dest)
}

/// The charm files of a directory: everything but version control, build
/// output and the charm's own state, as charmcraft would pack it.
fn copy_charm_dir(source: &Path, dest: &Path) -> Result<(), ModelError> {
    const SKIP: &[&str] = &[".git", "target", ".wsgi-agent", ".jujulet"];
    for entry in fs_err::read_dir(source)? {
        let entry = entry.map_err(io_err("listing", source))?;
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
            continue;
        }
        copy_entry(&entry.path(), &dest.join(&name))?;
    }
    Ok(())
}

/// A `.charm` (a zip) unpacked, with the modes it stores.
fn unzip(charm: &Path, dest: &Path) -> Result<(), ModelError> {
    let file = fs_err::File::open(charm)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        ModelError::Invalid(format!("{}: not a packed charm ({e})", charm.display()))
    })?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| ModelError::Invalid(format!("{}: corrupt ({e})", charm.display())))?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(ModelError::Invalid(format!(
                "{}: entry {:?} leaves the charm",
                charm.display(),
                entry.name()
            )));
        };
        let out = dest.join(rel);
        if entry.is_dir() {
            fs_err::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs_err::create_dir_all(parent)?;
        }
        // Remove first: a running copy may be the one being replaced (ETXTBSY).
        let _ = std::fs::remove_file(&out);
        let mut f = fs_err::File::create(&out)?;
        std::io::copy(&mut entry, &mut f).map_err(io_err("writing", &out))?;
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o777;
        fs_err::set_permissions(&out, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn install_binary(from: &Path, to: &Path) -> Result<(), ModelError> {
    // Remove first: a running copy may be the one being replaced (ETXTBSY).
    let _ = std::fs::remove_file(to);
    fs_err::copy(from, to)?;
    fs_err::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Copy `jujulet` into the tools dir with one symlink per tool name.
pub fn install_tools(paths: &Paths<'_>, unit_tag: &str, jujulet: &Path) -> Result<(), ModelError> {
    let dir = paths.host(&tools_dir(unit_tag));
    fs_err::create_dir_all(&dir)?;
    install_binary(jujulet, &dir.join("jujulet"))?;
    for tool in Tool::ALL {
        let link = dir.join(tool.name());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("jujulet", &link).map_err(io_err("linking a tool", &link))?;
    }
    Ok(())
}

/// Copy a resource file in; returns the path the charm sees.
pub fn install_resource(
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
        fs_err::create_dir_all(parent)?;
    }
    fs_err::copy(file, &host)?;
    Ok(paths.as_seen_inside(&inside))
}

fn copy_entry(from: &Path, to: &Path) -> Result<(), ModelError> {
    let meta = fs_err::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(from)?;
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
    fs_err::create_dir_all(to)?;
    for entry in fs_err::read_dir(from)? {
        let entry = entry.map_err(io_err("listing", from))?;
        copy_entry(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}
