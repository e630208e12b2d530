//! The dispatch loop (charms.reactive's `bus.dispatch`).

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};

use thiserror::Error;

use super::Engine;
use super::ctx::Ctx;
use super::flags::FlagBook;
use super::handler::Handler;
use super::state::State;

/// Passes of the flag loop before a loop counts as not settling (the bound
/// charms.reactive uses, where it stops silently).
pub const MAX_PASSES: usize = 100;

/// What a dispatch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Handler names, in the order they ran (a handler may run more than once).
    pub invoked: Vec<String>,
    /// Passes of the flag loop that ran handlers.
    pub passes: usize,
}

/// Why a dispatch failed. The state handed to it must then not be committed.
#[derive(Debug, Error)]
pub enum DispatchError {
    /// A handler returned an error.
    #[error("handler {handler} failed")]
    Handler {
        /// The handler's name.
        handler: String,
        /// The error and its causes.
        #[source]
        source: anyhow::Error,
    },
    /// A handler panicked.
    #[error("handler {handler} panicked: {message}")]
    Panic {
        /// The handler's name.
        handler: String,
        /// The panic's message.
        message: String,
    },
    /// The flag loop did not settle.
    #[error(
        "the flag loop did not settle after {MAX_PASSES} passes; flags still changing: {}; handlers still due: {}",
        .flags.join(", "), .handlers.join(", ")
    )]
    NoSettle {
        /// Flags that changed in the last pass.
        flags: Vec<String>,
        /// Handlers due in the pass after the last.
        handlers: Vec<String>,
    },
    /// Triggers that set each other without end.
    #[error("triggers on flag {flag} re-trigger each other without end")]
    TriggerLoop {
        /// The flag at which the chain was cut.
        flag: String,
    },
}

#[derive(Clone, Copy)]
enum Phase {
    Hooks,
    Pass(usize),
}

impl<C> Engine<C> {
    /// Dispatches `hook`: sets the per-hook `transient` flags (e.g. the
    /// automatic `config.*` flags; triggers fire), runs the hooks phase and the
    /// flag loop, then clears the transient flags again. `state` holds the
    /// result; commit it only if this returns `Ok`.
    pub fn dispatch(
        &self,
        hook: &str,
        transient: &[String],
        state: &mut State,
        layer: &mut C,
    ) -> Result<Report, DispatchError> {
        let mut book = FlagBook::new(std::mem::take(&mut state.flags), self.triggers.clone());
        let result = self.run(hook, transient, &mut book, &mut state.data, layer);
        state.flags = std::mem::take(&mut book.flags);
        let report = result?;
        match book.trigger_overflow {
            Some(flag) => Err(DispatchError::TriggerLoop { flag }),
            None => Ok(report),
        }
    }

    fn run(
        &self,
        hook: &str,
        transient: &[String],
        book: &mut FlagBook,
        data: &mut BTreeMap<String, String>,
        layer: &mut C,
    ) -> Result<Report, DispatchError> {
        for flag in transient {
            book.set(flag);
        }
        // Changes made before dispatch do not gate passes (FlagWatch.reset).
        book.reset_watch();
        let mut report = Report::default();

        let due = self.due(Phase::Hooks, hook, book, 0..self.handlers.len());
        self.run_batch(due, Phase::Hooks, hook, book, data, layer, &mut report)?;

        let mut settled = false;
        for pass in 0..MAX_PASSES {
            let due = self.due(Phase::Pass(pass), hook, book, 0..self.handlers.len());
            if due.is_empty() {
                settled = true;
                break;
            }
            report.passes += 1;
            self.run_batch(due, Phase::Pass(pass), hook, book, data, layer, &mut report)?;
        }
        if !settled {
            let due = self.due(Phase::Pass(MAX_PASSES), hook, book, 0..self.handlers.len());
            if !due.is_empty() {
                return Err(DispatchError::NoSettle {
                    flags: book.last_changes().iter().cloned().collect(),
                    handlers: due.iter().map(|&i| self.handlers[i].name.clone()).collect(),
                });
            }
        }
        for flag in transient {
            book.clear(flag);
        }
        Ok(report)
    }

    /// The handlers among `candidates` that should run now, in order.
    fn due(
        &self,
        phase: Phase,
        hook: &str,
        book: &FlagBook,
        candidates: impl IntoIterator<Item = usize>,
    ) -> Vec<usize> {
        candidates
            .into_iter()
            .filter(|&i| is_due(&self.handlers[i], phase, hook, book))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &self,
        due: Vec<usize>,
        phase: Phase,
        hook: &str,
        book: &mut FlagBook,
        data: &mut BTreeMap<String, String>,
        layer: &mut C,
        report: &mut Report,
    ) -> Result<(), DispatchError> {
        let mut queue: VecDeque<usize> = due.into();
        'batch: while !queue.is_empty() {
            book.removed = false;
            while let Some(i) = queue.pop_front() {
                let handler = &self.handlers[i];
                report.invoked.push(handler.name.clone());
                invoke(handler, Ctx::new(&mut *book, &mut *data, hook, &mut *layer))?;
                if book.removed {
                    // A cleared flag may have made queued handlers ineligible.
                    queue = self.due(phase, hook, book, queue).into();
                    continue 'batch;
                }
            }
        }
        book.commit_watch();
        Ok(())
    }
}

fn is_due<C>(h: &Handler<C>, phase: Phase, hook: &str, book: &FlagBook) -> bool {
    match phase {
        Phase::Hooks => h.is_hook_handler() && h.matches_hook(hook) && h.flags_hold(book),
        Phase::Pass(pass) => {
            // A handler watching no flag runs in the first pass only
            // (charms.reactive would re-run it every pass until its cap).
            let gate = pass == 0 || (!h.watched.is_empty() && book.changed_last_pass(&h.watched));
            !h.is_hook_handler() && gate && h.flags_hold(book)
        }
    }
}

fn invoke<C>(handler: &Handler<C>, mut ctx: Ctx<'_, C>) -> Result<(), DispatchError> {
    match catch_unwind(AssertUnwindSafe(|| (handler.body)(&mut ctx))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(DispatchError::Handler {
            handler: handler.name.clone(),
            source,
        }),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".to_owned());
            Err(DispatchError::Panic {
                handler: handler.name.clone(),
                message,
            })
        }
    }
}

impl<C> Engine<C> {
    /// Sets `flags` (firing triggers) outside any dispatch, as a charm's code
    /// calling `set_flag` before `main()` would.
    pub(crate) fn dispatch_setting(
        &self,
        flags: &[String],
        state: &mut State,
    ) -> Result<(), DispatchError> {
        let mut book = FlagBook::new(std::mem::take(&mut state.flags), self.triggers.clone());
        for f in flags {
            book.set(f);
        }
        state.flags = std::mem::take(&mut book.flags);
        match book.trigger_overflow {
            Some(flag) => Err(DispatchError::TriggerLoop { flag }),
            None => Ok(()),
        }
    }
}
