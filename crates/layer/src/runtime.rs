//! The hook runtime: from the process Juju starts to a committed (or
//! rolled back) hook. A charm's binary calls [`run_hook`] with its own
//! handlers (none for the standalone wsgi charm).
//!
//! 1. Parse the hook context once; read the config once.
//! 2. Load the state; compute the per-hook automatic flags (`config.*`,
//!    `endpoint.<name>.*`).
//! 3. Dispatch the layer's handlers, then the charm's, on the engine.
//! 4. On success commit the state once, atomically, and its generation to
//!    Juju's unit state (state-set commits with the hook's ports and
//!    relation data); on failure log the error chain (juju-log and stderr)
//!    and exit 1, leaving the state as it was, as Juju discards the hook's
//!    relation and port changes. A hook whose commit Juju dropped after it
//!    exited 0 is detected by the next one (Juju holds the generation
//!    before), which starts from that generation's state; update-status
//!    checks only when it has something to commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use hookenv::log::{LogLevel, juju_log};
use hookenv::{HookContext, HookKind, HookTools, ProcessRunner};
use juju_contract::RelationHook;
use reactive::{Engine, PatternError, StateStore, config_flags};
use serde_json::{Map, Value};

use crate::hosts::{HookJuju, SystemHost};
use crate::seams::{Host, LayerCtx};

/// Registers a charm's own handlers, after the layer's.
pub type Extra<'a> = &'a dyn Fn(&mut Engine<LayerCtx>) -> Result<(), PatternError>;

/// Runs the hook named by the environment on the real machine; the exit
/// code Juju sees.
pub fn run_hook(extra: Extra<'_>) -> ExitCode {
    run_hook_on(extra, &|charm_dir| system_host(charm_dir))
}

/// [`run_hook`] with the machine given by `host` (the sandbox binary's seam).
pub fn run_hook_on(extra: Extra<'_>, host: &dyn Fn(&Path) -> Box<dyn Host>) -> ExitCode {
    hookenv::log::init();
    match run(extra, host) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("hook failed: {e:#}");
            juju_log(LogLevel::Error, &message);
            eprintln!("wsgi-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(extra: Extra<'_>, host: &dyn Fn(&Path) -> Box<dyn Host>) -> anyhow::Result<()> {
    let ctx = HookContext::from_env()?;
    // Handlers of an action match the hook name `actions/<name>`.
    let hook = match ctx.kind.clone() {
        HookKind::Hook(h) => h,
        HookKind::Action(a) => format!("actions/{a}"),
    };
    tracing::debug!("dispatching {hook} for {}", ctx.unit);
    let tools = HookTools::new(Box::new(ProcessRunner::from_path()));
    let store = StateStore::new(StateStore::default_path(&ctx.charm_dir));
    // update-status, the most frequent hook, never follows a dropped
    // commit (Juju retries the failed hook first) but after `juju resolved
    // --no-retry`: it reads Juju's generation only if it has something to
    // commit (an idle one makes no hook-tool call).
    let lazy = hook == "update-status";
    let loaded = if lazy {
        store.load_current()?
    } else {
        store.load_committed(held_generation(&tools)?)?
    };
    if let Some(g) = loaded.discarded {
        tracing::info!(
            "Juju did not commit the hook that wrote state generation {g}; starting again from generation {}",
            loaded.snapshot.generation
        );
    }
    if let Some(g) = loaded.unknown {
        tracing::warn!(
            "Juju holds state generation {g}, the state files {} and before; keeping {}",
            loaded.snapshot.generation,
            store.path().display()
        );
    }
    let mut state = loaded.snapshot.state.clone();

    // update-status reads no config: Juju announces every config change
    // with config-changed, so the config last seen is the config.
    let config = match (hook.as_str(), state.config.clone()) {
        ("update-status", Some(seen)) => seen,
        _ => tools.config()?,
    };
    let mut transient = config_flags(
        state.config.as_ref(),
        &config,
        &config_defaults(&ctx.charm_dir)?,
    );
    transient.extend(endpoint_flags(&ctx, &hook, &mut state.flags));
    state.config = Some(config);

    let mut engine = Engine::new();
    crate::register(&mut engine)?;
    extra(&mut engine)?;
    let host = host(&ctx.charm_dir);
    let mut layer = LayerCtx {
        juju: Box::new(HookJuju::new(ctx, tools)),
        host,
    };
    let report = engine.dispatch(&hook, &transient, &mut state, &mut layer)?;
    tracing::debug!("ran {}", report.invoked.join(", "));
    // Its own client: the hook's was handed to the layer.
    let tools = HookTools::new(Box::new(ProcessRunner::from_path()));
    if lazy && state != loaded.snapshot.state {
        let held = held_generation(&tools)?.unwrap_or(0);
        if held != loaded.snapshot.generation {
            tracing::warn!(
                "Juju holds state generation {held}, not {}: this update-status keeps nothing; the next hook starts from Juju's",
                loaded.snapshot.generation
            );
            return Ok(());
        }
    }
    if let Some(g) = store.commit_after(&loaded, &state)? {
        tools.state_set(GENERATION, &g.to_string())?;
    }
    Ok(())
}

/// The generation of the state Juju committed (its unit state), None when
/// it holds none.
fn held_generation(tools: &HookTools) -> anyhow::Result<Option<u64>> {
    tools
        .state_get(GENERATION)?
        .map(|g| {
            g.parse::<u64>().with_context(|| {
                format!("Juju's unit state {GENERATION}={g:?} is not a generation number")
            })
        })
        .transpose()
}

/// The unit-state key that holds the generation of the committed state.
const GENERATION: &str = "wsgi-agent.generation";

/// The real machine. Hooks of a unit run one at a time: a command still
/// running from an earlier hook is one that hook, killed, could not end.
fn system_host(charm_dir: &Path) -> Box<dyn Host> {
    let store = StateStore::default_path(charm_dir);
    let dir = store.parent().unwrap_or(charm_dir).join("children");
    machine::children::record_in(dir);
    let killed = machine::children::kill_leftovers();
    if !killed.is_empty() {
        tracing::warn!("ended commands a killed hook left running: PIDs {killed:?}");
    }
    Box::new(SystemHost::default())
}

/// The declared defaults, from the charm's config.yaml (Juju reads the same
/// file; config-get gives the values). A charm without one has none; one
/// that does not parse is an error (its `config.default.*` flags would be
/// wrong).
fn config_defaults(charm_dir: &Path) -> anyhow::Result<Map<String, Value>> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        options: BTreeMap<String, Opt>,
    }
    #[derive(serde::Deserialize)]
    struct Opt {
        #[serde(default)]
        default: Value,
    }
    let path = charm_dir.join("config.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let file: File = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not a charm's config.yaml", path.display()))?;
    Ok(file
        .options
        .into_iter()
        .map(|(k, o)| (k, o.default))
        .collect())
}

/// `endpoint.<name>.joined` (kept while the relation lasts),
/// `endpoint.<name>.changed` and `.departed` (this hook only), derived from
/// the hook's name alone: no hook-tool call.
fn endpoint_flags(ctx: &HookContext, hook: &str, flags: &mut BTreeSet<String>) -> Vec<String> {
    let Some(ep) = &ctx.relation else {
        return Vec::new();
    };
    let Some((endpoint, kind)) = RelationHook::parse_hook(hook) else {
        return Vec::new();
    };
    if endpoint != ep {
        return Vec::new();
    }
    let joined = format!("endpoint.{ep}.joined");
    match kind {
        RelationHook::Joined | RelationHook::Changed => {
            flags.insert(joined);
            vec![format!("endpoint.{ep}.changed")]
        }
        RelationHook::Departed => vec![format!("endpoint.{ep}.departed")],
        RelationHook::Broken => {
            flags.remove(&joined);
            Vec::new()
        }
        RelationHook::Created => Vec::new(),
    }
}
