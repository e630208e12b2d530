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
/// its home (not created: the agent makes the directories it needs).
/// An existing user is left as it is.
pub fn ensure_system_user(name: &str, home: &Path) -> Result<(u32, u32), Error> {
    if let Some(ids) = lookup(name)? {
        return Ok(ids);
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
