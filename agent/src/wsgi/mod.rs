//! The WSGI layer (to be built: issue 4).

// The layer's desired state, rendered (pure; issue 4).
pub mod config;
pub mod desired;
pub mod envfile;
pub mod envvars;
pub mod gunicorn_conf;
pub mod layer_options;
pub mod logrotate;
pub mod paths;
pub mod quote;
pub mod unit;
