//! The hook runtime: from the process environment Juju builds to a
//! committed (or rolled back) hook.
//!
//! 1. Parse the hook context once; read the config once.
//! 2. Load the state; compute the per-hook automatic flags (`config.*`,
//!    `endpoint.<name>.*`).
//! 3. Dispatch the layer's handlers on the engine.
//! 4. On success commit the state once, atomically; on failure log the
//!    error chain (juju-log and stderr) and exit 1, leaving the state as it
//!    was, as Juju discards the hook's relation and port changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use interfaces::Databag;
use serde_json::{Map, Value};
use tracing::Level;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, filter::LevelFilter};

use crate::hookenv::{HookContext, HookKind, HookTools, ProcessRunner};
use crate::reactive::{Engine, StateStore, config_flags};
use crate::wsgi::model::{Host, Juju, LayerCtx, SeamError, Status};

/// Runs the hook named by the environment; the exit code Juju sees.
pub fn run_hook() -> ExitCode {
    install_panic_hook();
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("hook failed: {e}");
            juju_log("ERROR", &message);
            eprintln!("wsgi-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Any failure of the hook as a whole.
type HookError = Box<dyn std::error::Error + Send + Sync>;

fn run() -> Result<(), HookError> {
    let ctx = HookContext::from_env()?;
    let HookKind::Hook(hook) = ctx.kind.clone() else {
        // This charm defines no actions.
        return Err(format!("unknown action {:?}", ctx.kind).into());
    };
    tracing::debug!("dispatching {hook} for {}", ctx.unit);
    let tools = HookTools::new(Box::new(ProcessRunner::from_path()));
    let store = StateStore::new(StateStore::default_path(&ctx.charm_dir));
    let mut state = store.load()?;

    // update-status reads no config: Juju announces every config change
    // with config-changed, so the config last seen is the config.
    let config = match (hook.as_str(), state.config.clone()) {
        ("update-status", Some(seen)) => seen,
        _ => tools.config()?,
    };
    let mut transient = config_flags(
        state.config.as_ref(),
        &config,
        &config_defaults(&ctx.charm_dir),
    );
    transient.extend(endpoint_flags(&ctx, &hook, &mut state.flags));
    state.config = Some(config);

    let mut engine = Engine::new();
    crate::wsgi::layer::register(&mut engine)?;
    let host = host(&ctx.charm_dir);
    let mut layer = LayerCtx {
        juju: Box::new(HookJuju { ctx, tools }),
        host,
    };
    let report = engine.dispatch(&hook, &transient, &mut state, &mut layer)?;
    tracing::debug!("ran {}", report.invoked.join(", "));
    store.commit(&state)?;
    Ok(())
}

/// The machine, or a sandbox directory when `SANDBOX_ROOT` is set (the
/// peers benchmark's contract, also used by this binary's own tests).
fn host(charm_dir: &Path) -> Box<dyn Host> {
    match std::env::var_os("SANDBOX_ROOT").filter(|r| !r.is_empty()) {
        Some(root) => Box::new(crate::wsgi::sandbox::SandboxHost::new(PathBuf::from(root))),
        None => {
            // Hooks of a unit run one at a time: a command still running from
            // an earlier hook is one that hook, killed, could not end.
            let store = StateStore::default_path(charm_dir);
            let dir = store.parent().unwrap_or(charm_dir).join("children");
            crate::host::process::record_children_in(dir);
            let killed = crate::host::process::kill_leftovers();
            if !killed.is_empty() {
                tracing::warn!("ended commands a killed hook left running: PIDs {killed:?}");
            }
            Box::new(crate::wsgi::system::SystemHost::default())
        }
    }
}

/// The declared defaults, from the charm's config.yaml (Juju reads the same
/// file; config-get gives the values).
fn config_defaults(charm_dir: &Path) -> Map<String, Value> {
    #[derive(serde::Deserialize)]
    struct File {
        options: BTreeMap<String, Opt>,
    }
    #[derive(serde::Deserialize)]
    struct Opt {
        #[serde(default)]
        default: Value,
    }
    std::fs::read_to_string(charm_dir.join("config.yaml"))
        .ok()
        .and_then(|text| serde_saphyr::from_str::<File>(&text).ok())
        .map(|f| f.options.into_iter().map(|(k, o)| (k, o.default)).collect())
        .unwrap_or_default()
}

/// `endpoint.<name>.joined` (kept while the relation lasts),
/// `endpoint.<name>.changed` and `.departed` (this hook only), derived from
/// the hook's name alone: no hook-tool call.
fn endpoint_flags(
    ctx: &HookContext,
    hook: &str,
    flags: &mut std::collections::BTreeSet<String>,
) -> Vec<String> {
    let Some(ep) = &ctx.relation else {
        return Vec::new();
    };
    let Some(kind) = hook.strip_prefix(&format!("{ep}-relation-")) else {
        return Vec::new();
    };
    let joined = format!("endpoint.{ep}.joined");
    match kind {
        "joined" | "changed" => {
            flags.insert(joined);
            vec![format!("endpoint.{ep}.changed")]
        }
        "departed" => vec![format!("endpoint.{ep}.departed")],
        "broken" => {
            flags.remove(&joined);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The layer's view of Juju, over the hook tools.
struct HookJuju {
    ctx: HookContext,
    tools: HookTools,
}

impl Juju for HookJuju {
    fn unit_name(&self) -> &str {
        &self.ctx.unit
    }
    fn charm_dir(&self) -> &Path {
        &self.ctx.charm_dir
    }
    fn config(&self) -> Result<Map<String, Value>, SeamError> {
        Ok(self.tools.config()?)
    }
    fn resource(&self, name: &str) -> Result<Option<PathBuf>, SeamError> {
        Ok(self.tools.resource_get(name)?)
    }
    fn status(&self, status: Status, message: &str) -> Result<(), SeamError> {
        Ok(self.tools.status_set(status.as_str(), message)?)
    }
    fn open_port(&self, port: u16) -> Result<(), SeamError> {
        Ok(self.tools.open_port(port)?)
    }
    fn close_port(&self, port: u16) -> Result<(), SeamError> {
        Ok(self.tools.close_port(port)?)
    }
    fn app_version(&self, version: &str) -> Result<(), SeamError> {
        Ok(self.tools.application_version_set(version)?)
    }
    fn is_leader(&self) -> Result<bool, SeamError> {
        Ok(self.tools.is_leader()?)
    }
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>, SeamError> {
        Ok(self.tools.relation_ids(endpoint)?)
    }
    fn relation_units(&self, relation_id: &str) -> Result<Vec<String>, SeamError> {
        Ok(self.tools.relation_list(relation_id)?)
    }
    fn relation_get(&self, rid: &str, who: &str, app: bool) -> Result<Databag, SeamError> {
        Ok(self.tools.relation_get(rid, who, app)?)
    }
    fn relation_set(&self, rid: &str, data: &Databag, app: bool) -> Result<(), SeamError> {
        let own = if app { &self.ctx.app } else { &self.ctx.unit };
        self.tools.relation_set(rid, own, data, app)?;
        Ok(())
    }
    fn secret_get(&self, uri: &str) -> Result<Databag, SeamError> {
        Ok(self.tools.secret_get(uri)?)
    }
    fn ingress_address(&self) -> Result<String, SeamError> {
        match self.tools.ingress_address("website") {
            Ok(a) if !a.is_empty() => Ok(a),
            _ => Ok(self.tools.private_address()?),
        }
    }
    fn relation_context(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            self.ctx.relation_id.as_deref(),
            self.ctx.remote_unit.as_deref(),
            self.ctx.departing_unit.as_deref(),
        )
    }
    fn log(&self, message: &str) {
        tracing::info!("{message}");
    }
}

/// One juju-log call; failures are ignored (logging must not fail a hook).
fn juju_log(level: &str, message: &str) {
    let _ = Command::new("juju-log")
        .args(["--log-level", level, "--", message])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A panic in a handler is caught by the engine and fails the hook; this
/// makes sure its message and place reach `juju debug-log` too.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("panic: {info}");
        juju_log("ERROR", &message);
        eprintln!("wsgi-agent: {message}");
    }));
}

/// Tracing goes to juju-log at the level `WSGI_AGENT_LOG` names (trace,
/// debug, info, warn, error, off); quiet by default: warnings and errors
/// only, since every line is a tool call and lands in the controller's log.
fn init_logging() {
    let level = match std::env::var("WSGI_AGENT_LOG").as_deref() {
        Ok("trace") => LevelFilter::TRACE,
        Ok("debug") => LevelFilter::DEBUG,
        Ok("info") => LevelFilter::INFO,
        Ok("error") => LevelFilter::ERROR,
        Ok("off") => LevelFilter::OFF,
        _ => LevelFilter::WARN,
    };
    let subscriber = tracing_subscriber::registry().with(JujuLog.with_filter(level));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct JujuLog;

impl<S: tracing::Subscriber> Layer<S> for JujuLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        juju_log(level, &m.0);
    }
}
