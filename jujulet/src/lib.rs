//! jujulet: a local Juju for one developer machine.

pub mod context;
pub mod local;
pub mod machine;
pub mod model;
pub mod place;
pub mod scheduler;
pub mod standin;
pub mod tools;
