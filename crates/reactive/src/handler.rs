//! Handlers: a name, the conditions under which they run, and a body.

use std::collections::BTreeSet;

use super::Engine;
use super::ctx::Ctx;
use super::flags::FlagBook;
use super::pattern::{HookPattern, PatternError};

/// What a handler body returns: any error, with its causes, as anyhow
/// carries it; the engine adds the handler's name when it reports it.
pub type HandlerResult = anyhow::Result<()>;

pub(crate) type Body<C> = Box<dyn Fn(&mut Ctx<'_, C>) -> HandlerResult>;

pub(crate) struct Handler<C> {
    pub(crate) name: String,
    hooks: Vec<HookPattern>,
    when_all: Vec<String>,
    when_any: Vec<String>,
    when_not: Vec<String>,
    when_not_all: Vec<String>,
    /// Every flag named in a condition: a change to one of them makes the
    /// handler due again in the next pass (charms.reactive's registered flags).
    pub(crate) watched: BTreeSet<String>,
    pub(crate) body: Body<C>,
}

impl<C> Handler<C> {
    /// Bound to hook names: runs in the hooks phase only.
    pub(crate) fn is_hook_handler(&self) -> bool {
        !self.hooks.is_empty()
    }

    pub(crate) fn matches_hook(&self, hook: &str) -> bool {
        self.hooks.iter().any(|p| p.matches(hook))
    }

    /// The flag conditions, against the current flags.
    pub(crate) fn flags_hold(&self, book: &FlagBook) -> bool {
        self.when_all.iter().all(|f| book.is_set(f))
            && (self.when_any.is_empty() || self.when_any.iter().any(|f| book.is_set(f)))
            && !self.when_not.iter().any(|f| book.is_set(f))
            && (self.when_not_all.is_empty() || !self.when_not_all.iter().all(|f| book.is_set(f)))
    }
}

/// Registers one handler: `engine.handler("name").when_all(&["a"]).run(|ctx| …)`.
/// Conditions stack (AND), as stacked decorators do in charms.reactive.
#[must_use = "a handler is registered only by .run()"]
pub struct HandlerBuilder<'e, C> {
    engine: &'e mut Engine<C>,
    name: String,
    hooks: Vec<String>,
    when_all: Vec<String>,
    when_any: Vec<String>,
    when_not: Vec<String>,
    when_not_all: Vec<String>,
}

fn owned<'a>(flags: &'a [&str]) -> impl Iterator<Item = String> + 'a {
    flags.iter().map(|f| (*f).to_owned())
}

impl<'e, C> HandlerBuilder<'e, C> {
    pub(crate) fn new(engine: &'e mut Engine<C>, name: String) -> Self {
        HandlerBuilder {
            engine,
            name,
            hooks: Vec::new(),
            when_all: Vec::new(),
            when_any: Vec::new(),
            when_not: Vec::new(),
            when_not_all: Vec::new(),
        }
    }

    /// Run in the hooks phase of hooks matching any of these patterns
    /// (`{a,b}` alternation). Flag conditions, if any, must also hold.
    pub fn hooks(mut self, patterns: &[&str]) -> Self {
        self.hooks.extend(owned(patterns));
        self
    }

    /// All of these flags are set.
    pub fn when_all(mut self, flags: &[&str]) -> Self {
        self.when_all.extend(owned(flags));
        self
    }

    /// At least one of these flags is set.
    pub fn when_any(mut self, flags: &[&str]) -> Self {
        self.when_any.extend(owned(flags));
        self
    }

    /// None of these flags is set.
    pub fn when_not(mut self, flags: &[&str]) -> Self {
        self.when_not.extend(owned(flags));
        self
    }

    /// Not all of these flags are set.
    pub fn when_not_all(mut self, flags: &[&str]) -> Self {
        self.when_not_all.extend(owned(flags));
        self
    }

    /// Registers the handler with its body.
    pub fn run<F>(self, body: F) -> Result<(), PatternError>
    where
        F: Fn(&mut Ctx<'_, C>) -> HandlerResult + 'static,
    {
        let hooks = self
            .hooks
            .iter()
            .map(|p| HookPattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let watched = [
            &self.when_all,
            &self.when_any,
            &self.when_not,
            &self.when_not_all,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        self.engine.push(Handler {
            name: self.name,
            hooks,
            when_all: self.when_all,
            when_any: self.when_any,
            when_not: self.when_not,
            when_not_all: self.when_not_all,
            watched,
            body: Box::new(body),
        });
        Ok(())
    }
}
