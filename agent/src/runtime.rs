//! The hook runtime: from the process environment to a committed (or rolled
//! back) hook. To be built (issue 2).

/// Runs the hook named by the environment. (Placeholder until the hook
/// runtime lands.)
pub fn run_hook() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
