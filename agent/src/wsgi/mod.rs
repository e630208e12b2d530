//! The WSGI layer (to be built: issue 4).

// The layer's desired state, rendered (pure; issue 4).
pub mod config;
pub mod envvars;
pub mod layer_options;
pub mod paths;
pub mod quote;
