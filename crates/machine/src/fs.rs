//! Files the agent owns on the machine: written atomically (a reader, or a
//! crash, sees the old file or the new one, never a mix), and only when the
//! content differs, so an idle hook leaves every mtime alone.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use atomic_write_file::AtomicWriteFile;
use std::os::unix::fs::OpenOptionsExt;

use crate::Error;

/// Owner of a file: uid and gid.
pub type Owner = (u32, u32);

/// Writes `content` to `path` with `mode` and `owner` if it differs;
/// returns whether the content was written. Mode and owner are corrected in
/// place when only they differ. Parent directories are created 0755.
pub fn write_if_changed(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<bool, Error> {
    if let Ok(old) = std::fs::read(path)
        && old == content
    {
        fix_mode_owner(path, mode, owner)?;
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    let io = |e| Error::io("write", path, e);
    let mut file = AtomicWriteFile::options()
        .mode(mode)
        .open(path)
        .map_err(io)?;
    // Ownership and mode are set on the temporary file, before the rename:
    // the secret never exists under its name with looser permissions.
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&*file, Some(uid), Some(gid)).map_err(io)?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.write_all(content).map_err(io)?;
    file.commit().map_err(io)?;
    Ok(true)
}

fn fix_mode_owner(path: &Path, mode: u32, owner: Option<Owner>) -> Result<(), Error> {
    let meta = fs_err::metadata(path)?;
    if let Some((uid, gid)) = owner
        && (meta.uid() != uid || meta.gid() != gid)
    {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| Error::io("chown", path, e))?;
    }
    if meta.mode() & 0o7777 != mode {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Creates a directory and its parents (0755) if missing.
pub fn create_dirs(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))
}

/// Creates an empty file with this mode and owner if it is missing, and
/// fixes the owner if it exists (a log file the service appends to).
pub fn ensure_file(path: &Path, mode: u32, owner: Owner) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    drop(file);
    let meta = fs_err::metadata(path)?;
    if meta.uid() != owner.0 || meta.gid() != owner.1 {
        std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
            .map_err(|e| Error::io("chown", path, e))?;
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Removes a file; a missing file is not an error.
pub fn remove_if_exists(path: &Path) -> Result<bool, Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn writes_once_then_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/env");
        assert!(write_if_changed(&p, b"X=1\n", 0o640, None).unwrap());
        let m1 = std::fs::metadata(&p).unwrap();
        assert_eq!(m1.mode() & 0o777, 0o640);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!write_if_changed(&p, b"X=1\n", 0o640, None).unwrap());
        let m2 = std::fs::metadata(&p).unwrap();
        assert_eq!(m1.mtime_nsec(), m2.mtime_nsec());
        assert_eq!(m1.ino(), m2.ino());
        assert!(write_if_changed(&p, b"X=2\n", 0o640, None).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"X=2\n");
        // A mode changed by hand is put back without rewriting.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!write_if_changed(&p, b"X=2\n", 0o640, None).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "x").unwrap();
        assert!(remove_if_exists(&p).unwrap());
        assert!(!remove_if_exists(&p).unwrap());
    }
}
