//! Releases of the app: archives unpacked as sources ([`archive`]), and
//! the releases built from them, one of which serves ([`store`]).

pub mod archive;
pub mod store;

pub use archive::{
    Limits, MAX_BYTES, MAX_ENTRIES, Source, existing, pack_dir, unpack, unpack_with,
};
pub use store::{Health, Release, Store};
