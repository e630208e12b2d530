//! SIGINT/SIGTERM during `create`: instead of dying with mounts and a
//! container left behind, `create` notices, tears down what it set up and
//! returns [`super::MachineError::Interrupted`]. Outside `create` both
//! signals keep their default action (terminate).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

struct Flags {
    interrupted: Arc<AtomicBool>,
    /// True outside `create`: the signal then runs its default action.
    passthrough: Arc<AtomicBool>,
    depth: Mutex<usize>,
}

static FLAGS: OnceLock<Option<Flags>> = OnceLock::new();

fn flags() -> Option<&'static Flags> {
    FLAGS
        .get_or_init(|| {
            let f = Flags {
                interrupted: Arc::new(AtomicBool::new(false)),
                passthrough: Arc::new(AtomicBool::new(true)),
                depth: Mutex::new(0),
            };
            for sig in [SIGINT, SIGTERM] {
                // Order matters: the default action must be checked first.
                signal_hook::flag::register_conditional_default(sig, f.passthrough.clone()).ok()?;
                signal_hook::flag::register(sig, f.interrupted.clone()).ok()?;
            }
            Some(f)
        })
        .as_ref()
}

/// While alive, SIGINT/SIGTERM only set a flag ([`interrupted`]).
pub(super) struct CreateGuard(());

impl CreateGuard {
    pub(super) fn new() -> Self {
        if let Some(f) = flags()
            && let Ok(mut depth) = f.depth.lock()
        {
            if *depth == 0 {
                f.interrupted.store(false, Ordering::SeqCst);
                f.passthrough.store(false, Ordering::SeqCst);
            }
            *depth += 1;
        }
        Self(())
    }

    // Asked of the guard: only while one is alive does the flag mean anything.
    #[allow(clippy::unused_self)]
    pub(super) fn interrupted(&self) -> bool {
        flags().is_some_and(|f| f.interrupted.load(Ordering::SeqCst))
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if let Some(f) = flags()
            && let Ok(mut depth) = f.depth.lock()
        {
            *depth = depth.saturating_sub(1);
            if *depth == 0 {
                f.passthrough.store(true, Ordering::SeqCst);
            }
        }
    }
}
