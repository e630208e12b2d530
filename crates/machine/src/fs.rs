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

/// Creates the app's log file (`owner`, `mode`) if it is missing, or takes
/// the one it made before; never anything else. The file is opened without
/// following a link, must be a regular file with one name, and an existing
/// one must already be the owner's: a path that names another package's
/// log, a link to /etc/shadow or a hard link to one is refused, never
/// chowned. Its directory must be root's and writable by root alone
/// (logrotate's own rule), so nobody can plant such a link there.
pub fn ensure_file(path: &Path, mode: u32, owner: Owner) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{} has no directory", path.display())))?;
    create_dirs(dir)?;
    let dmeta = fs_err::symlink_metadata(dir)?;
    if !dmeta.is_dir() || dmeta.uid() != 0 || dmeta.mode() & 0o022 != 0 {
        return Err(Error::Invalid(format!(
            "{} is not a directory of root's that only root may write (mode {:o}, owner {}): put the log in a directory of its own, e.g. /var/log/wsgi",
            dir.display(),
            dmeta.mode() & 0o7777,
            dmeta.uid()
        )));
    }
    let open = |create_new: bool| {
        let mut o = std::fs::OpenOptions::new();
        o.append(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC);
        if create_new {
            o.create_new(true);
        }
        o.open(path)
    };
    let (file, created) = match open(true) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            (open(false).map_err(|e| Error::io("open", path, e))?, false)
        }
        Err(e) => return Err(Error::io("create", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(Error::Invalid(format!(
            "{} is not a plain file of its own (a device, a FIFO or a hard link): refusing to log into it",
            path.display()
        )));
    }
    if !created && meta.uid() != owner.0 {
        return Err(Error::Invalid(format!(
            "{} exists and belongs to uid {}: another package's file is never taken over; choose another wsgi_logfile_path",
            path.display(),
            meta.uid()
        )));
    }
    std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1))
        .map_err(|e| Error::io("chown", path, e))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", path, e))?;
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
    fn log_files_are_made_or_kept_never_taken_over() {
        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let d = tempfile::tempdir().unwrap();
        // tempdir is 0700 of ours; for the owner rule the test must be root.
        if !nix::unistd::geteuid().is_root() {
            let e = ensure_file(&d.path().join("a.log"), 0o640, me).unwrap_err();
            assert!(e.to_string().contains("root's"), "{e}");
            return;
        }
        let log = d.path().join("app.log");
        ensure_file(&log, 0o640, (0, 0)).unwrap();
        ensure_file(&log, 0o640, (0, 0)).unwrap();
        assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o640);
        // A link planted where the log goes: refused, the target untouched.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        let planted = d.path().join("planted.log");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(ensure_file(&planted, 0o640, (4242, 4242)).is_err());
        assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
        // Someone else's file: refused.
        let other = d.path().join("other.log");
        std::fs::write(&other, "").unwrap();
        std::os::unix::fs::chown(&other, Some(4242), Some(4242)).unwrap();
        let e = ensure_file(&other, 0o640, (4343, 4343)).unwrap_err();
        assert!(e.to_string().contains("never taken over"), "{e}");
        // A hard link to a file: refused.
        let hard = d.path().join("hard.log");
        std::fs::hard_link(&victim, &hard).unwrap();
        assert!(ensure_file(&hard, 0o640, (0, 0)).is_err());
        // A directory others may write: refused.
        let open_dir = d.path().join("open");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ensure_file(&open_dir.join("x.log"), 0o640, (0, 0)).is_err());
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
