//! `wsgi-agent-sandbox`: the charm's handlers on a host confined to the
//! directory `$SANDBOX_ROOT` (files land under it; commands that need root
//! services are recorded in its `commands.log`). The peers benchmark runs
//! every charm this way under a fake Juju, and this crate's tests run real
//! hooks without touching the machine. Never packed into the charm.

use std::path::PathBuf;
use std::process::ExitCode;

use wsgi_layer::hosts::SandboxHost;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "--version") {
        println!("wsgi-agent-sandbox {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(root) = std::env::var_os("SANDBOX_ROOT").filter(|r| !r.is_empty()) else {
        eprintln!("wsgi-agent-sandbox: set SANDBOX_ROOT to the directory to confine the hooks to");
        return ExitCode::from(2);
    };
    let root = PathBuf::from(root);
    wsgi_layer::runtime::run_hook_on(&|_| Ok(()), &|_| Box::new(SandboxHost::new(root.clone())))
}
