//! The root of a `cloud-image` machine: a minimal Debian 12 built once with
//! debootstrap from Debian's own packages and kept under
//! `/var/cache/jujulet/images` (`JUJULET_IMAGE_CACHE`), then used as the
//! read-only lower layer of each machine's overlay.
//!
//! It has what a Debian cloud image boots with (systemd, python3,
//! ca-certificates, curl, iproute2, sudo...) and nothing a host used for
//! development tends to add: no python3-venv, no pip, no compiler, no
//! PostgreSQL, empty apt lists. A charm that forgets an install step fails
//! here as it would in a cloud.
//!
//! Built into a temporary directory beside the cache entry and renamed into
//! place when whole, under an exclusive lock, so parallel deploys build it
//! once and a killed build leaves nothing that looks finished.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};

use super::MachineError;

/// The Debian release.
const SUITE: &str = "bookworm";

/// Installed on top of debootstrap's minbase (apt, dpkg, coreutils, util-linux,
/// passwd...): a Debian 12 genericcloud image's runtime, less cloud-init and
/// sshd (nothing here would configure them).
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "python3",
    "ca-certificates",
    "curl",
    "iproute2",
    "procps",
    "sudo",
    "netbase",
    "less",
];

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> MachineError {
    let (what, path) = (what.to_owned(), path.to_owned());
    move |source| MachineError::Io { what, path, source }
}

/// Where images are kept.
fn cache_dir() -> PathBuf {
    std::env::var_os("JUJULET_IMAGE_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/jujulet/images"), PathBuf::from)
}

/// The cache entry's name: the suite and a digest of what is in it, so a
/// changed package list builds a new image instead of reusing an old one.
fn entry_name() -> String {
    // FNV-1a over the recipe: stable across builds of jujulet.
    let mut h: u32 = 0x811c_9dc5;
    for b in SUITE.bytes().chain(PACKAGES.join(",").bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("debian-12-{h:08x}")
}

/// The image's root, built first if it is not in the cache.
pub fn ensure(progress: &dyn Fn(&str)) -> Result<PathBuf, MachineError> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(io_err("creating the image cache", &cache))?;
    let root = cache.join(entry_name());
    if root.join("etc/os-release").is_file() {
        return Ok(root);
    }
    let lock_path = cache.join(format!("{}.lock", entry_name()));
    let lock = File::create(&lock_path).map_err(io_err("locking the image cache", &lock_path))?;
    progress("waiting for the image cache lock");
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| io_err("locking the image cache", &lock_path)(e.into()))?;
    // Another process may have built it while we waited.
    if root.join("etc/os-release").is_file() {
        return Ok(root);
    }
    let building = cache.join(format!("{}.building", entry_name()));
    if building.exists() {
        std::fs::remove_dir_all(&building)
            .map_err(io_err("removing an unfinished image build", &building))?;
    }
    let mirror = std::env::var("JUJULET_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    progress(&format!(
        "building the cloud image once (debootstrap {SUITE} from {mirror}; 1-3 min), cached in {}",
        root.display()
    ));
    let started = Instant::now();
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "--merged-usr"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&building)
        .arg(&mirror)
        .output()
        .map_err(|e| MachineError::Command {
            cmd: "debootstrap".into(),
            code: format!("could not run: {e}"),
            stderr_tail: String::new(),
            hint: "install debootstrap (scripts/lib/install-deps)".into(),
        })?;
    if !out.status.success() {
        // debootstrap reports on stdout; its log is in the target.
        let log = std::fs::read_to_string(building.join("debootstrap/debootstrap.log"))
            .unwrap_or_default();
        let text = format!("{}\n{log}", String::from_utf8_lossy(&out.stdout));
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(MachineError::Command {
            cmd: format!("debootstrap {SUITE} {}", building.display()),
            code: out
                .status
                .code()
                .map_or("killed".into(), |c| format!("exit status {c}")),
            stderr_tail: tail[tail.len().saturating_sub(8)..].join("\n"),
            hint: format!("can this host reach {mirror}? (JUJULET_DEBIAN_MIRROR sets another)"),
        });
    }
    // As a cloud image ships: no downloaded packages, no package lists
    // (apt-get update is the charm's business), no machine identity.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_files(&building.join(dir))?;
    }
    let machine_id = building.join("etc/machine-id");
    std::fs::write(&machine_id, "").map_err(io_err("clearing the machine id", &machine_id))?;
    std::fs::rename(&building, &root).map_err(io_err("putting the image in place", &root))?;
    progress(&format!(
        "cloud image built in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(root)
}

/// Removes the regular files directly in `dir` (its subdirectories stay).
fn clear_files(dir: &Path) -> Result<(), MachineError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading", dir)(e)),
    };
    for e in entries {
        let e = e.map_err(io_err("reading", dir))?;
        if e.file_type().map_err(io_err("reading", dir))?.is_file() {
            std::fs::remove_file(e.path()).map_err(io_err("removing", &e.path()))?;
        }
    }
    Ok(())
}

/// The host's own trust anchors (`/usr/local/share/ca-certificates`, where
/// a site puts the CA of a TLS-inspecting proxy) added to a machine's root
/// before it boots, as an operator's cloud-init `ca_certs` would add them to
/// a cloud image: without them nothing inside reaches the package index
/// through such a proxy. Debian's own bundle is already in the image.
pub fn add_site_cas(root: &Path) -> Result<(), MachineError> {
    let from = Path::new("/usr/local/share/ca-certificates");
    let to = root.join("usr/local/share/ca-certificates");
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    let mut added = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".crt") || !e.path().is_file() {
            continue;
        }
        std::fs::create_dir_all(&to).map_err(io_err("creating", &to))?;
        std::fs::copy(e.path(), to.join(&name)).map_err(io_err("copying a CA", &e.path()))?;
        added += 1;
    }
    if added == 0 {
        return Ok(());
    }
    let out = Command::new("chroot")
        .arg(root)
        .args(["update-ca-certificates", "--fresh"])
        .output()
        .map_err(io_err("running update-ca-certificates in", root))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(MachineError::Command {
            cmd: format!("chroot {} update-ca-certificates", root.display()),
            code: format!("{}", out.status),
            stderr_tail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            hint: "is the image whole? remove it from the cache to rebuild".into(),
        })
    }
}
