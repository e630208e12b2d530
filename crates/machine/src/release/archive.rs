//! An archive unpacked as a source: `sources/<content hash>`, once. A
//! hostile or broken archive is refused whole: nothing written or pointing
//! outside the source directory (every link resolved after unpacking), no
//! devices, hard links or setuid bits, no group or other write, a bounded
//! real size (PAX `size` records counted) and number of entries, and room
//! left on the disk. The tree is root's and read-only to the app.

use std::io::{BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Error;
use crate::fs::create_dirs;

/// Largest unpacked size accepted.
pub const MAX_BYTES: u64 = 4 << 30;
/// Most entries accepted.
pub const MAX_ENTRIES: usize = 200_000;
/// Space that must stay free on the release's file system while unpacking.
const HEADROOM: u64 = 512 << 20;
/// The full SHA-256 of the archive a source came from, inside it.
const ORIGIN: &str = ".wsgi-charm-release";

/// An unpacked archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The archive's full SHA-256, hex.
    pub hash: String,
    /// `sources/<first 12 hex digits>`.
    pub dir: PathBuf,
    /// The app inside: `dir`, or its only top-level directory
    /// (`tar czf app.tar.gz app/`).
    pub root: PathBuf,
}

impl Source {
    /// The short id (12 hex digits), the source directory's name.
    pub fn id(&self) -> &str {
        &self.hash[..12]
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, path, e)
}

fn bad(archive: &Path, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {why}", archive.display()))
}

/// Unpacks `archive` (tar, optionally gzip-compressed) into
/// `sources/<id>` unless it is there already (the id is the first 12 hex
/// digits of its SHA-256, and the full hash is checked).
pub fn unpack(archive: &Path, sources: &Path) -> Result<Source, Error> {
    unpack_with(archive, sources, &Limits::default())
}

/// The source unpacked earlier from the archive whose SHA-256 is `hash`,
/// if it is still there whole.
pub fn existing(sources: &Path, hash: &str) -> Result<Option<Source>, Error> {
    if hash.len() < 12 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let dir = sources.join(&hash[..12]);
    if std::fs::read_to_string(dir.join(ORIGIN)).ok().as_deref() != Some(hash) {
        return Ok(None);
    }
    Ok(Some(Source {
        root: app_root(&dir)?,
        dir,
        hash: hash.to_owned(),
    }))
}

/// How large an archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes written, all entries together.
    pub max_bytes: u64,
    /// Entries.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: MAX_BYTES,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// [`unpack`] with other limits.
pub fn unpack_with(archive: &Path, sources: &Path, limits: &Limits) -> Result<Source, Error> {
    let full = hash_file(archive)?;
    let id = full[..12].to_owned();
    let target = sources.join(&id);
    // A source of the same short id but another archive (12 digits can
    // collide) is unpacked anew, never reused.
    if target.is_dir()
        && std::fs::read_to_string(target.join(ORIGIN)).ok().as_deref() != Some(full.as_str())
    {
        fs_err::remove_dir_all(&target)?;
    }
    if !target.is_dir() {
        create_dirs(sources)?;
        let partial = sources.join(format!(".partial-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        create_dirs(&partial)?;
        if let Err(e) =
            extract(archive, &partial, limits).and_then(|()| check_links(archive, &partial))
        {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
        fs_err::write(partial.join(ORIGIN), &full)?;
        fs_err::rename(&partial, &target)?;
    }
    Ok(Source {
        root: app_root(&target)?,
        dir: target,
        hash: full,
    })
}

fn hash_file(path: &Path) -> Result<String, Error> {
    let mut f = fs_err::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io("read", path))?;
    Ok(hex::encode(h.finalize()))
}

fn extract(archive: &Path, into: &Path, limits: &Limits) -> Result<(), Error> {
    let mut f = fs_err::File::open(archive)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io("read", archive))?;
    if n == 0 {
        return Err(bad(archive, "the archive is empty"));
    }
    f.rewind().map_err(io("read", archive))?;
    let reader: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(false);
    // No group or other write: a world-writable requirements.txt would let
    // any local user choose what the next install runs.
    tar.set_mask(0o022);
    tar.set_preserve_ownerships(false);
    tar.set_unpack_xattrs(false);
    tar.set_overwrite(false);
    let entries = tar
        .entries()
        .map_err(|e| bad(archive, format!("not a tar archive: {e}")))?;
    let (mut count, mut bytes) = (0usize, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(archive, format!("corrupt archive: {e}")))?;
        count += 1;
        // entry.size() is what is written: a PAX `size` record overrides the
        // header's own field, which may say 0.
        bytes = bytes.saturating_add(entry.size());
        if count > limits.max_entries || bytes > limits.max_bytes {
            return Err(bad(
                archive,
                format!(
                    "the archive is too large (over {} MiB or {} entries)",
                    limits.max_bytes >> 20,
                    limits.max_entries
                ),
            ));
        }
        let path = entry
            .path()
            .map_err(|e| bad(archive, format!("corrupt archive: {e}")))?
            .into_owned();
        check_entry(&path, entry.header().entry_type())
            .map_err(|why| bad(archive, format!("{}: {why}", path.display())))?;
        if let Some(target) = entry.link_name().ok().flatten() {
            check_link(&path, &target)
                .map_err(|why| bad(archive, format!("{}: {why}", path.display())))?;
        }
        if count % 256 == 0 || entry.size() > 16 << 20 {
            check_room(archive, into, entry.size())?;
        }
        // unpack_in refuses paths that would land outside `into`, also
        // through a symlink unpacked earlier.
        let placed = entry
            .unpack_in(into)
            .map_err(|e| bad(archive, format!("cannot unpack {}: {e}", path.display())))?;
        if !placed {
            return Err(bad(
                archive,
                format!("{}: outside the archive", path.display()),
            ));
        }
    }
    if count == 0 {
        return Err(bad(archive, "not a tar archive, or an empty one"));
    }
    Ok(())
}

/// Entry paths must be relative without `..`; only files, directories and
/// symlinks.
fn check_entry(path: &Path, kind: tar::EntryType) -> Result<(), &'static str> {
    use tar::EntryType::{
        Continuous, Directory, GNULongName, Link, Regular, Symlink, XGlobalHeader, XHeader,
    };
    if path.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    }) {
        return Err("absolute path or .. component");
    }
    match kind {
        Regular | Directory | Symlink | Continuous | GNULongName | XHeader | XGlobalHeader => {
            Ok(())
        }
        Link => Err("hard links are not accepted"),
        _ => Err("devices, fifos and other special files are not accepted"),
    }
}

/// A symlink must point inside the archive.
fn check_link(path: &Path, target: &Path) -> Result<(), &'static str> {
    if target.is_absolute() {
        return Err("symlink to an absolute path");
    }
    let mut depth: i64 = path.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err("symlink pointing outside the archive");
        }
    }
    Ok(())
}

/// Refuses to go on when writing `next` more bytes would leave less than
/// [`HEADROOM`] free (or no inodes): a full disk stops PostgreSQL and the
/// journal beside the app.
fn check_room(archive: &Path, dir: &Path, next: u64) -> Result<(), Error> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| Error::io("statvfs", dir, std::io::Error::from(e)))?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < HEADROOM.saturating_add(next) || st.files_available() < 1024 {
        return Err(bad(
            archive,
            format!(
                "unpacking it would fill the disk ({} MiB free, {} MiB kept free)",
                free >> 20,
                HEADROOM >> 20
            ),
        ));
    }
    Ok(())
}

/// Every symbolic link in the unpacked tree must resolve inside it: the
/// lexical check of each entry cannot see a chain (`up -> ..`, then
/// `up2 -> up/..`), the file system can.
fn check_links(archive: &Path, root: &Path) -> Result<(), Error> {
    let root = fs_err::canonicalize(root)?;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs_err::read_dir(&dir)? {
            let e = e?;
            let kind = e.file_type()?;
            let path = e.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                match std::fs::canonicalize(&path) {
                    Ok(to) if to.starts_with(&root) => {}
                    Ok(_) => {
                        return Err(bad(
                            archive,
                            format!("{rel}: the link resolves outside the archive"),
                        ));
                    }
                    Err(_) => {
                        return Err(bad(
                            archive,
                            format!("{rel}: a link to nothing in the archive"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The release directory, or its only top-level directory (`tar czf app.tar.gz app/`).
fn app_root(release: &Path) -> Result<PathBuf, Error> {
    let entries: Vec<_> = fs_err::read_dir(release)?
        .flatten()
        .filter(|e| e.file_name() != ORIGIN)
        .collect();
    match entries.as_slice() {
        [one] if one.file_type().is_ok_and(|t| t.is_dir()) => Ok(one.path()),
        _ => Ok(release.to_owned()),
    }
}

/// Packs the directory `dir` as a tar at `out`, the same bytes for the same
/// tree (sorted names, no times, owners or modes beyond the executable bit):
/// code a charm places as a directory becomes a source like an archive,
/// with the same checks and a content id.
pub fn pack_dir(dir: &Path, out: &Path) -> Result<(), Error> {
    let file = fs_err::File::create(out)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs_err::read_dir(dir.join(&rel))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let full = dir.join(&rel);
            let meta = fs_err::symlink_metadata(&full)?;
            if meta.is_dir() {
                b.append_dir(&rel, &full).map_err(io("pack", &full))?;
                stack.push(rel);
            } else {
                b.append_path_with_name(&full, &rel)
                    .map_err(io("pack", &full))?;
            }
        }
    }
    b.into_inner()
        .map_err(io("pack", out))?
        .into_inner()
        .map_err(|e| Error::io("pack", out, e.into_error()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    fn tarball(dir: &Path, name: &str, files: &[(&str, &str)], gz: bool) -> PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        for (p, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, p, content.as_bytes()).unwrap();
        }
        let raw = b.into_inner().unwrap();
        let bytes = if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&raw).unwrap();
            e.finish().unwrap()
        } else {
            raw
        };
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn unpacks_once_per_content() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("sources");
        let a = tarball(
            d.path(),
            "a.tgz",
            &[("wsgi.py", "A"), ("requirements.txt", "")],
            true,
        );
        let s = unpack(&a, &src).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.root.join("wsgi.py")).unwrap(),
            "A"
        );
        assert_eq!(s.dir, src.join(s.id()));
        assert_eq!(unpack(&a, &src).unwrap(), s);
        assert_eq!(existing(&src, &s.hash).unwrap(), Some(s.clone()));
        assert_eq!(existing(&src, &"0".repeat(64)).unwrap(), None);
        let b = tarball(d.path(), "b.tar", &[("app/wsgi.py", "B")], false);
        let s2 = unpack(&b, &src).unwrap();
        assert_ne!(s.hash, s2.hash);
        // A single top-level directory is the app.
        assert_eq!(s2.root, s2.dir.join("app"));
        assert_eq!(
            std::fs::read_to_string(s2.root.join("wsgi.py")).unwrap(),
            "B"
        );
    }

    #[test]
    fn a_directory_packs_the_same_whatever_its_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("pkg")).unwrap();
        std::fs::write(tree.join("wsgi.py"), "x").unwrap();
        std::fs::write(tree.join("pkg/a.py"), "a").unwrap();
        std::os::unix::fs::symlink("pkg/a.py", tree.join("link.py")).unwrap();
        let (one, two) = (d.path().join("1.tar"), d.path().join("2.tar"));
        pack_dir(&tree, &one).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(tree.join("wsgi.py"), "x").unwrap();
        pack_dir(&tree, &two).unwrap();
        assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
        let s = unpack(&one, &d.path().join("sources")).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.root.join("link.py")).unwrap(),
            "a"
        );
    }

    #[test]
    fn hostile_and_broken_archives_are_refused_whole() {
        let d = tempfile::tempdir().unwrap();
        let rel = d.path().join("sources");
        let good = tarball(d.path(), "g.tgz", &[("wsgi.py", "ok")], true);
        unpack(&good, &rel).unwrap();

        let empty = d.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let junk = d.path().join("junk");
        std::fs::write(&junk, vec![0x1f, 0x8b, 1, 2, 3]).unwrap();
        let text = d.path().join("text");
        std::fs::write(
            &text,
            "this is not a tar archive at all, just words\n".repeat(20),
        )
        .unwrap();
        // Built by hand: tar::Builder refuses `..` itself.
        let mut raw = Vec::new();
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..13].copy_from_slice(b"../escaped.py");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0; 1024]);
        let dotdot = d.path().join("dotdot.tar");
        std::fs::write(&dotdot, raw).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "etc", "/etc").unwrap();
        let link = d.path().join("link.tar");
        std::fs::write(&link, b.into_inner().unwrap()).unwrap();

        for (archive, why) in [
            (&empty, "empty"),
            (&junk, "corrupt"),
            (&text, "tar archive"),
            (&dotdot, ".."),
            (&link, "absolute"),
        ] {
            let e = unpack(archive, &rel).unwrap_err().to_string();
            assert!(e.contains(why), "{archive:?}: {e}");
        }
        assert!(!d.path().join("escaped.py").exists());
        // No partial source left behind.
        assert_eq!(std::fs::read_dir(&rel).unwrap().count(), 1);
    }
}
