//! jujulet: a local Juju for one developer machine. It boots real systemd
//! machines, installs a charm there and drives it hook by hook with hook
//! tools that answer as Juju 3.6's do, so a charm is run, tested and
//! measured here as a black box, where no Juju controller can run.
//!
//! # Layout
//!
//! - [`model`]: the model's state, one JSON document (config, relations
//!   with both sides' databags, statuses, ports, the hook queue), and the
//!   charm's metadata and config schema as Juju reads them.
//! - [`scheduler`]: which hooks run in which order (Juju's sequences), and
//!   running one: the context for the tools, Juju's environment, the commit
//!   or discard of its buffered writes.
//! - [`context`]: how the scheduler and the tools talk during a hook.
//! - [`tools`]: the hook tools, one multicall binary (this one, by argv[0]),
//!   with Juju's grammar, formats, exit codes and error text.
//! - [`machines`]: where the charm runs: nspawn (a real systemd under a
//!   tmpfs overlay), the host, or a local directory for tests.
//! - [`install`]: placing the charm, the tools and resources in a machine,
//!   where Juju's machine agent would.
//! - [`standin`]: the remote side of relations, played by real servers.

pub mod context;
pub mod install;
pub mod machines;
pub mod model;
pub mod scheduler;
pub mod standin;
pub mod tools;
