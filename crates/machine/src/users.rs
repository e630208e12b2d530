//! The app's system user.

use std::path::Path;
use std::time::Duration;

use crate::{Cmd, Error};

/// uid and gid of a user, or None when it does not exist.
pub fn lookup(name: &str) -> Result<Option<(u32, u32)>, Error> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        Ok(None) => Ok(None),
        Err(e) => Err(Error::Invalid(format!("cannot look up user {name}: {e}"))),
    }
}

/// gid of a group.
pub fn group_id(name: &str) -> Result<u32, Error> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Error::Invalid(format!("group {name} does not exist"))),
        Err(e) => Err(Error::Invalid(format!("cannot look up group {name}: {e}"))),
    }
}

/// Creates a system user with its own group, no login shell and `home` as
/// its home (not created: the agent makes the directories it needs). An
/// existing user is used only if it is what this would have made: a system
/// user, not root, in no group but its own (gunicorn and the installer
/// would get every group it is in: sudo, docker, adm...).
pub fn ensure_system_user(name: &str, home: &Path) -> Result<(u32, u32), Error> {
    if let Some(u) = nix::unistd::User::from_name(name)
        .map_err(|e| Error::Invalid(format!("cannot look up user {name}: {e}")))?
    {
        check_existing(&u)?;
        return Ok((u.uid.as_raw(), u.gid.as_raw()));
    }
    if nix::unistd::Group::from_name(name).ok().flatten().is_some() {
        return Err(Error::Invalid(format!(
            "a group {name} exists without a user {name}: remove it, or name another user in layer.yaml (wsgi.username)"
        )));
    }
    Cmd::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--shell", "/usr/sbin/nologin", "--home-dir"])
        .arg(home)
        .arg(name)
        .timeout(Duration::from_secs(60))
        .run()?;
    lookup(name)?.ok_or_else(|| Error::Invalid(format!("useradd {name} created no user")))
}

/// The most a system user's uid may be (Debian's SYS_UID_MAX).
const SYS_UID_MAX: u32 = 999;

fn check_existing(u: &nix::unistd::User) -> Result<(), Error> {
    let name = &u.name;
    let refuse = |why: String| {
        Err(Error::Invalid(format!(
            "user {name} exists and {why}: the app would run with it; remove it, or name another user in layer.yaml (wsgi.username)"
        )))
    };
    if u.uid.is_root() || u.gid.as_raw() == 0 {
        return refuse("is root or in group root".to_owned());
    }
    if u.uid.as_raw() > SYS_UID_MAX {
        return refuse(format!("is not a system user (uid {})", u.uid));
    }
    let c_name = std::ffi::CString::new(name.as_str())
        .map_err(|_| Error::Invalid(format!("user name {name:?} holds a NUL")))?;
    let groups = nix::unistd::getgrouplist(&c_name, u.gid)
        .map_err(|e| Error::Invalid(format!("cannot list the groups of {name}: {e}")))?;
    let others: Vec<String> = groups
        .iter()
        .filter(|g| **g != u.gid)
        .map(|g| {
            nix::unistd::Group::from_gid(*g)
                .ok()
                .flatten()
                .map_or_else(|| g.to_string(), |g| g.name)
        })
        .collect();
    if !others.is_empty() {
        return refuse(format!("is in other groups ({})", others.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn root_and_human_users_are_refused() {
        let root = nix::unistd::User::from_name("root").unwrap().unwrap();
        let e = check_existing(&root).unwrap_err().to_string();
        assert!(e.contains("user root exists and is root"), "{e}");
        // A system user of the base system in no other group passes.
        if let Some(nobody) = nix::unistd::User::from_name("_apt").unwrap() {
            assert!(check_existing(&nobody).is_ok());
        }
    }
}
