//! Debian packages: install what is missing, update the lists when they are
//! empty or do not know a package, wait out another apt holding the lock.
//! Each name must be a package's exact name (apt reads a name it does not
//! know as a pattern: one word once pulled in 268 packages); nothing is
//! removed to make room (`--no-remove`); dpkg is never killed mid-install
//! (a timeout asks it to stop), and one interrupted before is finished
//! first (`dpkg --configure -a`).

use std::path::Path;
use std::time::Duration;

use crate::{Cmd, Error};

/// How long apt itself waits for the dpkg lock on each try.
const LOCK_WAIT_S: u32 = 60;
/// Tries when the lock is still held after that.
const LOCK_TRIES: u32 = 3;

/// Installs the packages that are not installed; returns whether apt ran.
pub fn install(packages: &[String]) -> Result<bool, Error> {
    let missing = missing(packages)?;
    if missing.is_empty() {
        return Ok(false);
    }
    tracing::info!(packages = ?missing, "apt-get install");
    let mut updated = false;
    if lists_empty(Path::new("/var/lib/apt/lists")) {
        update()?;
        updated = true;
    }
    finish_interrupted()?;
    let mut unknown = unknown_names(&missing)?;
    if !unknown.is_empty() && !updated {
        update()?;
        updated = true;
        unknown = unknown_names(&missing)?;
    }
    if !unknown.is_empty() {
        return Err(Error::Invalid(format!(
            "no package is named exactly {} (apt would read it as a pattern)",
            unknown.join(", ")
        )));
    }
    let mut tries = 0;
    loop {
        tries += 1;
        match apt_get(
            &["install", "--yes", "--no-install-recommends", "--no-remove"],
            &missing,
        ) {
            Ok(()) => return Ok(true),
            Err(e) => {
                let text = e.to_string();
                if !updated
                    && (text.contains("Unable to locate package")
                        || text.contains("has no installation candidate")
                        || text.contains("404"))
                {
                    update()?;
                    updated = true;
                } else if is_lock_error(&text) && tries < LOCK_TRIES {
                    std::thread::sleep(Duration::from_secs(5));
                } else {
                    return Err(e);
                }
            }
        }
    }
}

/// The names among `packages` (`name` or `name=version`) that are not a
/// package's exact name in the lists.
fn unknown_names(packages: &[String]) -> Result<Vec<String>, Error> {
    let mut unknown = Vec::new();
    for p in packages {
        let name = p.split('=').next().unwrap_or(p);
        // pkgnames lists the names that start with its argument, never a
        // pattern match.
        let out = Cmd::new("apt-cache")
            .args(["pkgnames", "--", name])
            .timeout(Duration::from_secs(60))
            .run()?;
        if !out.stdout.lines().any(|l| l.trim() == name) {
            unknown.push(name.to_owned());
        }
    }
    Ok(unknown)
}

/// Finishes a dpkg run that was interrupted (a killed apt, a reboot).
fn finish_interrupted() -> Result<(), Error> {
    let (_, audit) = Cmd::new("dpkg")
        .arg("--audit")
        .timeout(Duration::from_secs(60))
        .run_status()?;
    if audit.stdout.trim().is_empty() {
        return Ok(());
    }
    tracing::warn!("dpkg was interrupted before: dpkg --configure -a");
    Cmd::new("dpkg")
        .args(["--force-confold", "--configure", "-a"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(Duration::from_secs(1200))
        .stop_gently()
        .run()
        .map(drop)
}

fn is_lock_error(text: &str) -> bool {
    text.contains("Could not get lock") || text.contains("Unable to acquire the dpkg frontend lock")
}

/// The packages dpkg does not list as installed.
pub fn missing(packages: &[String]) -> Result<Vec<String>, Error> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    // Exit 1 when some package is unknown to dpkg: that is "missing", not an error.
    let (_, out) = Cmd::new("dpkg-query")
        .args([
            "--show",
            "--showformat=${binary:Package} ${db:Status-Abbrev}\n",
        ])
        .args(packages)
        .timeout(Duration::from_secs(60))
        .run_status()?;
    let installed: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let (name, status) = l.split_once(' ')?;
            status
                .starts_with("ii")
                .then(|| name.split(':').next().unwrap_or(name))
        })
        .collect();
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(&p.split(':').next().unwrap_or(p)))
        .cloned()
        .collect())
}

fn lists_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |entries| {
        !entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

/// `apt-get update`, with the lock wait.
pub fn update() -> Result<(), Error> {
    tracing::info!("apt-get update");
    apt_get(&["update"], &[])
}

fn apt_get(args: &[&str], packages: &[String]) -> Result<(), Error> {
    Cmd::new("apt-get")
        .args(["-o", &format!("DPkg::Lock::Timeout={LOCK_WAIT_S}")])
        .args(["-o", "Dpkg::Options::=--force-confold"])
        .args(args)
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(Duration::from_secs(1200))
        // SIGTERM, then a wait: a SIGKILLed dpkg leaves the machine broken
        // for every apt after it.
        .stop_gently()
        .run()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_errors_are_recognised() {
        assert!(is_lock_error(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7"
        ));
        assert!(!is_lock_error("E: Unable to locate package nope"));
    }
}
