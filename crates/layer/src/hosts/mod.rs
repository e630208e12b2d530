//! The seams' implementations: Juju over the hook tools, the machine over
//! the machine crate, and a sandbox confined to one directory.

mod dbcheck;
mod hook_juju;
mod sandbox;
mod system;

pub use dbcheck::{HELPER as DBCHECK_HELPER, check_with as check_database_with};
pub use hook_juju::HookJuju;
pub use sandbox::SandboxHost;
pub use system::{SystemHost, names_gunicorn};
