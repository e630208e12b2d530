//! The layer's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

mod fuzz_config;
mod layer;
mod releases;
mod render;
mod upgrade;

/// Cases for property tests: WSGI_FUZZ_CASES (the soak, scripts/soak, sets
/// it) overrides the count CI runs (not PROPTEST_CASES: proptest would apply
/// that to every property alike, the ones that spawn a process per case
/// included).
pub(crate) fn cases(ci: u32) -> u32 {
    std::env::var("WSGI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}
