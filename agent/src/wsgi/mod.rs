//! The WSGI layer: config validation and rendering (pure), the handlers
//! (`layer`), and the seams to Juju and the host (`model`).

// The layer's desired state, rendered (pure; issue 4).
pub mod config;
pub mod desired;
pub mod envfile;
pub mod envvars;
pub mod gunicorn_conf;
pub mod layer;
pub mod layer_options;
pub mod logrotate;
pub mod model;
pub mod paths;
pub mod quote;
pub mod relations;
pub mod sandbox;
pub mod system;
pub mod unit;
