//! jujulet: a local Juju for one developer machine.

pub mod machine;
pub mod standin;
