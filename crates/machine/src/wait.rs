//! Polling until a condition holds.

use std::time::{Duration, Instant};

/// Polls `f` every 50 ms until it returns true or `limit` passes; returns
/// whether it held.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
