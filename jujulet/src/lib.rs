//! jujulet: a local Juju for one developer machine.
