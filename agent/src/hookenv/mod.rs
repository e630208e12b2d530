//! Typed client of the Juju hook tools (to be built: issue 2).
