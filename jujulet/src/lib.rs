//! jujulet: a local Juju for one developer machine.

pub mod context;
pub mod machine;
pub mod model;
pub mod standin;
pub mod tools;
