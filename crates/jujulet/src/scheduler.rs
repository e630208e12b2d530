//! The scheduler: decides which hooks run in which order (Juju 3.6's
//! sequences) and runs them one at a time. A hook run writes the context
//! dir, execs the charm's `dispatch` in the machine with Juju's environment
//! built from scratch, then commits the buffered writes (exit 0) or discards
//! them and puts the unit in error. After each committed hook every live
//! relation's stand-in reacts to what the charm side committed; its changed
//! data queues `-relation-changed` hooks, until things settle.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::context::{self, Context, CtxRelation, Immediate, Pending};
use crate::machines::Machine;
use crate::model::charm::Metadata;
use crate::model::config::Schema;
use juju_contract::RelationHook;

use crate::install::{self, Paths};
use crate::model::{Agent, Hook, Model, ModelError, Relation, Status, Workload, random_hex};
use crate::standin::{self, RelationSnapshot, StandIn, StandInError};

pub const JUJU_VERSION: &str = "3.6.14";

/// How a hook or an action ran.
struct Ran {
    ok: bool,
    /// Ended by a signal (nothing committed, the unit not in error).
    killed: bool,
    /// By the fault injection.
    injected: bool,
    action: context::ActionRecord,
    code: Option<i32>,
}

/// What `juju run` reports of an action.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub operation: u64,
    pub task: u64,
    pub record: context::ActionRecord,
    /// The exit code of dispatch (None: killed).
    pub code: Option<i32>,
}
/// How many stand-in-triggered hooks one command may cause before the
/// scheduler calls it a loop.
pub const MAX_REACTIONS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    StandIn(#[from] StandInError),
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error("running hook {hook}: {source}")]
    Exec {
        hook: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the unit is in error (hook failed: {hook:?}): fix the cause (see `jujulet debug-log`) and run `jujulet resolve`"
    )]
    InError { hook: String },
    #[error(
        "relation {relation} with {remote} did not settle: {count} -relation-changed hooks in a row (last: {last}); the charm and the stand-in keep changing each other's data"
    )]
    Loop {
        relation: String,
        remote: String,
        count: usize,
        last: String,
    },
    #[error(
        "hook {hook:?} was killed (JUJULET_KILL_HOOK_AFTER_MS); it stays queued and runs again on the next command, as Juju re-queues a killed hook"
    )]
    Killed { hook: String },
    #[error("{0}")]
    Invalid(String),
}

/// Where stand-ins come from (tests give fakes).
pub trait StandIns {
    fn open(&self, rel: &Relation) -> Result<Box<dyn StandIn>, StandInError>;
}

/// The real stand-ins, under `<model_dir>/standins/<app>`.
pub struct RealStandIns {
    pub model_dir: PathBuf,
}

impl StandIns for RealStandIns {
    fn open(&self, rel: &Relation) -> Result<Box<dyn StandIn>, StandInError> {
        standin::open_with(
            rel.standin_kind,
            &standin::dir_for(&self.model_dir, &rel.remote_app),
            &rel.remote_app,
            rel.n_units,
            &standin::Options {
                hostile_password: rel.hostile_password,
            },
        )
    }
}

pub struct Scheduler<'a> {
    pub model_dir: PathBuf,
    pub machine: &'a dyn Machine,
    pub standins: &'a dyn StandIns,
    pub progress: &'a dyn Fn(&str),
    pub hook_timeout: Duration,
    /// Fault injection (JUJULET_KILL_HOOK_AFTER_MS): SIGKILL the first hook
    /// this command runs after that long, as if the unit agent died with
    /// it; the hook stays queued and runs again on the next command.
    kill_after: std::cell::Cell<Option<u64>>,
    /// Fault injection (JUJULET_DROP_COMMIT=HOOK): the first hook of that
    /// name this command runs exits 0 but its commit fails, as Juju's
    /// CommitHookChanges can: its relation data, ports and unit state are
    /// discarded and the unit goes into error (then retried).
    drop_commit: std::cell::RefCell<Option<String>>,
    /// The first retry's delay (Juju: 5 s; JUJULET_RETRY_BASE_MS for tests).
    pub retry_base: Duration,
}

/// Juju's retry of a failed hook: `base` (5 s), doubling, at most 5 min.
fn retry_delay(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<'a> Scheduler<'a> {
    pub fn new(
        model_dir: &Path,
        machine: &'a dyn Machine,
        standins: &'a dyn StandIns,
        progress: &'a dyn Fn(&str),
    ) -> Self {
        Self {
            model_dir: model_dir.to_owned(),
            machine,
            standins,
            progress,
            hook_timeout: Duration::from_secs(3600),
            kill_after: std::cell::Cell::new(
                std::env::var("JUJULET_KILL_HOOK_AFTER_MS")
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok()),
            ),
            drop_commit: std::cell::RefCell::new(
                std::env::var("JUJULET_DROP_COMMIT")
                    .ok()
                    .filter(|h| !h.is_empty()),
            ),
            retry_base: Duration::from_millis(
                std::env::var("JUJULET_RETRY_BASE_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5000),
            ),
        }
    }

    /// Fault injection: SIGKILL the next hook after `ms` milliseconds.
    pub fn kill_next_hook_after(&self, ms: u64) {
        self.kill_after.set(Some(ms));
    }

    /// Runs what the agent has due: hooks still queued, the automatic
    /// retry of a failed hook, then update-status if its timer fired.
    pub fn tick(&self, model: &mut Model) -> Result<(), SchedError> {
        if model.removed {
            return Ok(());
        }
        let now = now_ms();
        // Hooks left queued (their command died with them) run first.
        if model.error_hook.is_none() && !model.queue.is_empty() {
            self.run_queue(model)?;
        }
        if model.error_hook.is_some()
            && let Some((attempt, at)) = model.retry
            && at <= now
        {
            (self.progress)(&format!(
                "retrying the failed hook (attempt {attempt}, automatically-retry-hooks)"
            ));
            model.error_hook = None;
            model.agent = Status::new(Agent::Idle, "");
            self.run_queue(model)?;
        }
        if model.error_hook.is_none()
            && model.queue.is_empty()
            && model.next_update_status.is_some_and(|t| t <= now)
        {
            model.queue.push_back(Hook::plain("update-status"));
            self.run_queue(model)?;
        }
        Ok(())
    }

    /// Lets `time` pass in the model: the retries and timers that fall due
    /// meanwhile run at their times (what a controller does while nobody
    /// types). A hook that fails again is reported, not an error.
    pub fn wait(&self, model: &mut Model, time: Duration) -> Result<(), SchedError> {
        let deadline = now_ms().saturating_add(u64::try_from(time.as_millis()).unwrap_or(u64::MAX));
        loop {
            match self.tick(model) {
                Ok(()) | Err(SchedError::InError { .. }) => {}
                Err(e) => return Err(e),
            }
            let retry = model.error_hook.as_ref().and(model.retry).map(|(_, at)| at);
            let next = [retry, model.next_update_status]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX)
                .min(deadline);
            let now = now_ms();
            if now >= deadline && next >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(next.saturating_sub(now).max(10)));
        }
    }

    /// Arms the update-status timer: Juju's period ±20 %.
    fn arm_update_status(model: &mut Model) {
        model.next_update_status = model.update_status_interval().map(|d| {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let jitter = (now_ms() % 401) as f64 / 1000.0 - 0.2;
            now_ms().saturating_add((ms as f64 * (1.0 + jitter)) as u64)
        });
    }

    fn paths(&self) -> Paths<'_> {
        Paths::new(self.machine)
    }

    /// The charm as placed in the machine (host side).
    fn charm_host(&self, model: &Model) -> PathBuf {
        self.paths().host(&install::charm_dir(&model.unit_tag()))
    }

    pub fn debug_log_path(&self) -> PathBuf {
        self.model_dir.join("debug.log")
    }

    /// Queue the install sequence and run it.
    pub fn deploy(&self, model: &mut Model) -> Result<(), SchedError> {
        for name in ["install", "leader-elected", "config-changed", "start"] {
            model.queue.push_back(Hook::plain(name));
        }
        model.agent = Status::new(Agent::Idle, "");
        model.workload = Status::new(Workload::Maintenance, "installing charm software");
        model.save(&self.model_dir)?;
        self.run_queue(model)
    }

    /// Set config values (`k=v`) and reset keys; config-changed only when a
    /// value the charm sees changed.
    pub fn config(
        &self,
        model: &mut Model,
        set: &[String],
        reset: &[String],
    ) -> Result<bool, SchedError> {
        let schema = Schema::read(&self.charm_host(model))?;
        let before = schema.effective(&model.config);
        for key in reset {
            schema.check_key(key)?;
            model.config.remove(key);
        }
        for arg in set {
            let (k, v) = schema.parse_assignment(arg)?;
            model.config.insert(k, v);
        }
        let changed = schema.effective(&model.config) != before;
        if changed {
            model.queue.push_back(Hook::plain("config-changed"));
        }
        model.save(&self.model_dir)?;
        self.run_queue(model)?;
        Ok(changed)
    }

    /// upgrade-charm then config-changed (the charm is already re-placed).
    pub fn upgrade(&self, model: &mut Model) -> Result<(), SchedError> {
        model.queue.push_back(Hook::plain("upgrade-charm"));
        model.queue.push_back(Hook::plain("config-changed"));
        model.save(&self.model_dir)?;
        self.run_queue(model)
    }

    /// Run one named hook (e.g. update-status) after whatever is queued.
    pub fn run_hook_named(&self, model: &mut Model, name: &str) -> Result<(), SchedError> {
        // ENDPOINT-relation-changed re-runs for the first remote unit of the
        // relation on ENDPOINT (Juju runs it when the remote data changes;
        // here it proves a hook with nothing new does nothing). Other
        // relation hooks come from relate/unrelate.
        let hook = match name.split_once("-relation-") {
            None => Hook::plain(name),
            Some((endpoint, "changed")) => {
                let rel = model
                    .relations
                    .iter()
                    .find(|r| r.endpoint == endpoint && !r.dying)
                    .ok_or_else(|| {
                        SchedError::Invalid(format!("no relation on endpoint {endpoint:?}"))
                    })?;
                let unit = rel.joined.iter().next().cloned();
                Hook::relation(rel, RelationHook::Changed, unit.as_deref())
            }
            Some(_) => {
                return Err(SchedError::Invalid(format!(
                    "{name} runs through relate/unrelate; `run` takes plain hooks and ENDPOINT-relation-changed"
                )));
            }
        };
        model.queue.push_back(hook);
        model.save(&self.model_dir)?;
        self.run_queue(model)
    }

    /// Retry the failed hook, then carry on with the queue.
    pub fn resolve(&self, model: &mut Model) -> Result<(), SchedError> {
        if model.error_hook.take().is_none() {
            return Err(SchedError::Invalid(
                "the unit is not in error; nothing to resolve".into(),
            ));
        }
        model.agent = Status::new(Agent::Idle, "");
        model.save(&self.model_dir)?;
        self.run_queue(model)
    }

    /// Relate `endpoint` to a new stand-in of `kind` with `n_units` units.
    pub fn relate(
        &self,
        model: &mut Model,
        endpoint: &str,
        kind: standin::Kind,
        n_units: usize,
        hostile_password: bool,
    ) -> Result<u64, SchedError> {
        let meta = Metadata::read(&self.charm_host(model))?;
        let interface = meta.interface(endpoint)?.to_owned();
        if model.relations.iter().any(|r| r.endpoint == endpoint) {
            return Err(SchedError::Invalid(format!(
                "endpoint {endpoint:?} is already related; run `jujulet unrelate {endpoint}` first"
            )));
        }
        let mut rel = Relation {
            id: model.next_relation_id,
            endpoint: endpoint.to_owned(),
            interface: interface.clone(),
            standin_kind: kind,
            remote_app: kind.as_str().to_owned(),
            n_units,
            hostile_password,
            local_unit_data: Relation::default_unit_data(),
            ..Relation::default()
        };
        let mut s = self.standins.open(&rel)?;
        if !s.interfaces().contains(&interface.as_str()) {
            return Err(StandInError::Interface {
                app: s.app().to_owned(),
                kind,
                interface,
                speaks: s.interfaces().join(", "),
            }
            .into());
        }
        rel.remote_app = s.app().to_owned();
        (self.progress)(&format!("starting stand-in {kind}"));
        s.start(self.progress)?;
        // A real remote unit has its addresses from the start: react before joined.
        let snap = snapshot(model, &rel);
        let remote = s.react(&snap)?;
        rel.remote_units = remote.units;
        rel.remote_app_data = remote.app_data;
        rel.secrets = remote.secrets;
        model.next_relation_id += 1;
        let units: Vec<String> = s.units();
        model
            .queue
            .push_back(Hook::relation(&rel, RelationHook::Created, None));
        for u in &units {
            model
                .queue
                .push_back(Hook::relation(&rel, RelationHook::Joined, Some(u)));
            model
                .queue
                .push_back(Hook::relation(&rel, RelationHook::Changed, Some(u)));
        }
        let id = rel.id;
        model.relations.push(rel);
        model.save(&self.model_dir)?;
        self.last_snapshots_store(id, &snap)?;
        self.run_queue(model)?;
        Ok(id)
    }

    /// departed for each remote unit, then broken, then the stand-in's `broken`.
    pub fn unrelate(&self, model: &mut Model, endpoint: &str) -> Result<(), SchedError> {
        let rel = model
            .relations
            .iter_mut()
            .find(|r| r.endpoint == endpoint && !r.dying)
            .ok_or_else(|| {
                SchedError::Invalid(format!(
                    "endpoint {endpoint:?} is not related; `jujulet status` lists the relations"
                ))
            })?;
        rel.dying = true;
        let rel = rel.clone();
        // Hooks still queued for it would talk about a relation that is going away.
        model.queue.retain(|h| h.relation_id != Some(rel.id));
        for u in &rel.joined {
            model
                .queue
                .push_back(Hook::relation(&rel, RelationHook::Departed, Some(u)));
        }
        model
            .queue
            .push_back(Hook::relation(&rel, RelationHook::Broken, None));
        model.save(&self.model_dir)?;
        self.run_queue(model)
    }

    /// Run queued hooks until the queue is empty or a hook fails.
    pub fn run_queue(&self, model: &mut Model) -> Result<(), SchedError> {
        let mut reactions = 0usize;
        let mut requeued = 0u32;
        while let Some(hook) = model.queue.front().cloned() {
            if let Some(failed) = &model.error_hook {
                return Err(SchedError::InError {
                    hook: failed.name.clone(),
                });
            }
            let ran = self.execute(model, &hook)?;
            if ran.killed {
                if ran.injected {
                    // As when the unit agent dies with its hook: the hook
                    // stays queued and runs again when the agent is back.
                    model.save(&self.model_dir)?;
                    return Err(SchedError::Killed { hook: hook.name });
                }
                // Juju re-queues a hook killed by a signal and runs it again.
                requeued += 1;
                if requeued <= 3 {
                    continue;
                }
            }
            if !ran.ok {
                if model.setting("automatically-retry-hooks") == "true" {
                    let attempt = model.retry.map_or(1, |(n, _)| n + 1);
                    let delay = retry_delay(self.retry_base, attempt);
                    model.retry = Some((
                        attempt + 1,
                        now_ms()
                            .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
                    ));
                    model.save(&self.model_dir)?;
                    (self.progress)(&format!(
                        "{} failed; Juju retries it in {} s (automatically-retry-hooks; `jujulet wait` lets the time pass)",
                        hook.name,
                        delay.as_secs()
                    ));
                }
                return Err(SchedError::InError { hook: hook.name });
            }
            model.retry = None;
            requeued = 0;
            model.queue.pop_front();
            if hook.name.ends_with("-relation-broken")
                && let Some(id) = hook.relation_id
            {
                self.finish_broken(model, id)?;
            }
            let queued = self.react_all(model)?;
            reactions += queued;
            if reactions > MAX_REACTIONS {
                // Keep what ran; the queued hooks stay for the next command.
                model.save(&self.model_dir)?;
                let last = model.queue.back().cloned().unwrap_or(hook);
                let rel = last
                    .relation_id
                    .and_then(|id| model.relation(id))
                    .cloned()
                    .unwrap_or_default();
                return Err(SchedError::Loop {
                    relation: format!("{}:{}", rel.endpoint, rel.id),
                    remote: rel.remote_app,
                    count: reactions,
                    last: last.describe(),
                });
            }
            model.save(&self.model_dir)?;
        }
        Ok(())
    }

    fn finish_broken(&self, model: &mut Model, id: u64) -> Result<(), SchedError> {
        if let Some(rel) = model.relation(id).cloned() {
            let snap = snapshot(model, &rel);
            self.standins.open(&rel)?.broken(&snap)?;
            model.relations.retain(|r| r.id != id);
            let _ = std::fs::remove_file(self.snapshot_path(id));
            model.save(&self.model_dir)?;
        }
        Ok(())
    }

    fn snapshot_path(&self, id: u64) -> PathBuf {
        self.model_dir.join("reacted").join(format!("{id}.json"))
    }

    fn last_snapshots_store(&self, id: u64, snap: &RelationSnapshot) -> Result<(), SchedError> {
        let bytes = serde_json::to_vec(snap).map_err(|e| SchedError::Invalid(e.to_string()))?;
        crate::model::write_atomic(&self.snapshot_path(id), &bytes)?;
        Ok(())
    }

    /// Let every live relation's stand-in react to newly committed charm-side
    /// data; queue changed hooks for what its answer changed. Returns how many.
    fn react_all(&self, model: &mut Model) -> Result<usize, SchedError> {
        let mut queued = 0;
        let ids: Vec<u64> = model
            .relations
            .iter()
            .filter(|r| !r.dying)
            .map(|r| r.id)
            .collect();
        for id in ids {
            let Some(rel) = model.relation(id).cloned() else {
                continue;
            };
            let snap = snapshot(model, &rel);
            let last: Option<RelationSnapshot> = std::fs::read(self.snapshot_path(id))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            // Stand-ins act only on the charm side's data: unchanged data, no reaction.
            if last.as_ref() == Some(&snap) {
                continue;
            }
            let remote = self.standins.open(&rel)?.react(&snap)?;
            self.last_snapshots_store(id, &snap)?;
            let mut hooks = Vec::new();
            if remote.app_data != rel.remote_app_data {
                hooks.push(Hook::relation(&rel, RelationHook::Changed, Some("")));
            }
            for unit in &rel.joined {
                if remote.units.get(unit) != rel.remote_units.get(unit) {
                    hooks.push(Hook::relation(&rel, RelationHook::Changed, Some(unit)));
                }
            }
            if let Some(r) = model.relation_mut(id) {
                r.remote_units = remote.units;
                r.remote_app_data = remote.app_data;
                r.secrets = remote.secrets;
            }
            for h in hooks {
                if !model.queue.contains(&h) {
                    model.queue.push_back(h);
                    queued += 1;
                }
            }
        }
        Ok(queued)
    }

    /// Run the action `name` with validated `params` after whatever is
    /// queued, as `juju run` does: its outcome. A failed action (action-fail
    /// or a non-zero exit) does not put the unit in error.
    pub fn run_action(
        &self,
        model: &mut Model,
        name: &str,
        params: serde_json::Map<String, serde_json::Value>,
    ) -> Result<ActionOutcome, SchedError> {
        self.run_queue(model)?;
        if let Some(failed) = &model.error_hook {
            return Err(SchedError::InError {
                hook: failed.name.clone(),
            });
        }
        model.last_task_id += 2;
        let task = model.last_task_id;
        let hook = Hook::action(name, task, params);
        let ran = self.execute(model, &hook)?;
        // What the action changed (relation data) may make stand-ins react.
        if ran.ok {
            self.react_all(model)?;
            self.run_queue(model)?;
        }
        Ok(ActionOutcome {
            operation: task - 1,
            task,
            record: ran.action,
            code: ran.code,
        })
    }

    fn execute(&self, model: &mut Model, hook: &Hook) -> Result<Ran, SchedError> {
        // Membership changes as the hook starts (relation-list in joined shows
        // the joining unit, in departed no longer the departing one).
        if let Some(id) = hook.relation_id
            && let Some(rel) = model.relation_mut(id)
        {
            if hook.name.ends_with("-relation-joined")
                && let Some(u) = &hook.remote_unit
            {
                rel.joined.insert(u.clone());
            }
            if let Some(u) = &hook.departing_unit {
                rel.joined.remove(u);
            }
        }
        let started = Instant::now();
        (self.progress)(&format!("running {}", hook.describe()));
        let paths = self.paths();
        let context_id = format!("{}-{}-{}", model.unit, hook.name, random_hex(16));
        let ctx_base_inside = PathBuf::from(context::CTX_BASE);
        let ctx_dir = context::dir_for(&paths.host(&ctx_base_inside), &context_id);
        std::fs::create_dir_all(&ctx_dir)
            .map_err(crate::model::io_err("creating the hook context", &ctx_dir))?;
        let ctx = self.context(model, hook, &context_id)?;
        context::write_context(&ctx_dir, &ctx)?;
        context::write_pending(&ctx_dir, &pending_of(model))?;

        model.agent = Status::new(Agent::Executing, format!("running {} hook", hook.name));
        // The statuses Juju's uniter sets itself around these hooks
        // (runhook.go beforeHook).
        if hook.action.is_none() {
            match hook.name.as_str() {
                "stop" => {
                    model.workload = Status::new(Workload::Maintenance, "stopping charm software");
                }
                "remove" => {
                    model.workload =
                        Status::new(Workload::Maintenance, "cleaning up prior to charm deletion");
                }
                _ => {}
            }
        }
        model.save(&self.model_dir)?;

        let charm_seen = paths.as_seen_inside(&install::charm_dir(&model.unit_tag()));
        let env = self.env(model, hook, &context_id, &charm_seen);
        let mut argv = vec![charm_seen.join("dispatch").to_string_lossy().into_owned()];
        // Fault injection for crash-consistency tests: SIGKILL the hook's
        // whole process group after this many milliseconds.
        let injected = self.kill_after.get().is_some();
        if let Some(ms) = self.kill_after.take() {
            let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
            argv.splice(0..0, ["timeout".into(), "--signal=KILL".into(), secs]);
        }
        let result = self
            .machine
            .exec_timeout(&argv, &env, &charm_seen, self.hook_timeout);

        let mut log = Self::log_lines(model, hook, &ctx_dir);
        self.keep_calls(hook, &ctx_dir);
        let output = match result {
            Ok(o) => o,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&ctx_dir);
                model.agent = Status::new(Agent::Error, format!("hook failed: {:?}", hook.name));
                model.error_hook = Some(hook.clone());
                model.save(&self.model_dir)?;
                return Err(SchedError::Exec {
                    hook: hook.name.clone(),
                    source,
                });
            }
        };
        let tag = model.unit_tag();
        // As Juju's runner: stdout at DEBUG, stderr at WARNING.
        for (level, stream) in [("DEBUG", &output.stdout), ("WARNING", &output.stderr)] {
            for line in String::from_utf8_lossy(stream).lines() {
                log.push(format!(
                    "{tag}: {} {level} unit.{}.{} {line}",
                    clock(),
                    model.unit,
                    hook.name
                ));
            }
        }
        let drop_commit = output.status.success()
            && hook.action.is_none()
            && self.drop_commit.borrow().as_deref() == Some(hook.name.as_str());
        if drop_commit {
            self.drop_commit.replace(None);
        }
        let ok = output.status.success() && !drop_commit;
        // timeout(1) reports the KILL it sent as exit 137.
        let killed =
            output.status.code().is_none() || (injected && output.status.code() == Some(137));
        let action = context::read_action(&ctx_dir);
        for line in &action.log {
            log.push(format!(
                "{tag}: {} INFO unit.{}.juju-log action {}: {line}",
                clock(),
                model.unit,
                hook.name
            ));
            (self.progress)(&format!("{}: {line}", hook.name));
        }
        if ok {
            let pending = context::read_pending(&ctx_dir)?;
            commit(model, &pending);
            model.agent = Status::new(Agent::Idle, "");
            if hook.action.is_none() {
                Self::after_hook(model, &hook.name);
            }
        } else if killed && hook.action.is_none() {
            // Nothing committed; Juju runs the hook again.
            model.agent = Status::new(Agent::Idle, "");
            log.push(format!(
                "{tag}: {} WARNING juju.worker.uniter.operation hook {:?} was killed by a signal; re-queued",
                clock(),
                hook.name
            ));
        } else if hook.action.is_some() {
            // A failed action is the action's failure, not the unit's.
            model.agent = Status::new(Agent::Idle, "");
            log.push(format!(
                "{tag}: {} ERROR juju.worker.uniter.operation action {:?} failed: {}",
                clock(),
                hook.name,
                output.status
            ));
        } else if drop_commit {
            log.push(format!(
                "{tag}: {} ERROR juju.worker.uniter.operation committing hook {:?}: cannot commit hook changes (JUJULET_DROP_COMMIT); its relation data, ports and unit state are discarded",
                clock(),
                hook.name
            ));
            model.agent = Status::new(Agent::Error, format!("hook failed: {:?}", hook.name));
            model.error_hook = Some(hook.clone());
        } else {
            let code = output
                .status
                .code()
                .map_or("killed by a signal".to_owned(), |c| {
                    format!("exit status {c}")
                });
            log.push(format!(
                "{tag}: {} ERROR juju.worker.uniter.operation hook {:?} (via hook dispatching script: dispatch) failed: {code}",
                clock(),
                hook.name
            ));
            model.agent = Status::new(Agent::Error, format!("hook failed: {:?}", hook.name));
            model.error_hook = Some(hook.clone());
        }
        self.append_log(&log)?;
        let _ = std::fs::remove_dir_all(&ctx_dir);
        model.save(&self.model_dir)?;
        (self.progress)(&format!(
            "{} {} ({} s)",
            hook.describe(),
            if ok { "done" } else { "FAILED" },
            started.elapsed().as_secs()
        ));
        if ok && hook.action.is_none() && matches!(hook.name.as_str(), "start" | "update-status") {
            Self::arm_update_status(model);
            model.save(&self.model_dir)?;
        }
        Ok(Ran {
            ok,
            killed,
            injected,
            action,
            code: output.status.code(),
        })
    }

    /// What Juju's uniter sets after a hook that committed (runhook.go
    /// afterHook): `unknown` after start if the charm set no status,
    /// `maintenance` after stop, `terminated` after remove.
    fn after_hook(model: &mut Model, hook: &str) {
        match hook {
            "start" => {
                model.started = true;
                if model.workload == Status::new(Workload::Maintenance, "installing charm software")
                {
                    model.workload = Status::new(Workload::Unknown, "");
                }
            }
            "stop" => model.workload = Status::new(Workload::Maintenance, ""),
            "remove" => {
                model.workload = Status::new(Workload::Terminated, "");
                model.removed = true;
                model.next_update_status = None;
                model.retry = None;
            }
            _ => {}
        }
    }

    /// `juju remove-application`: every relation departs and breaks, then
    /// stop and remove run; the unit ends terminated.
    pub fn remove_application(&self, model: &mut Model) -> Result<(), SchedError> {
        model.queue.clear();
        for rel in model.relations.iter_mut().filter(|r| !r.dying) {
            rel.dying = true;
            for u in &rel.joined {
                model
                    .queue
                    .push_back(Hook::relation(rel, RelationHook::Departed, Some(u)));
            }
            model
                .queue
                .push_back(Hook::relation(rel, RelationHook::Broken, None));
        }
        model.queue.push_back(Hook::plain("stop"));
        model.queue.push_back(Hook::plain("remove"));
        model.save(&self.model_dir)?;
        self.run_queue(model)
    }

    /// Appends the hook's tool calls to `tool-calls.log` in the model dir,
    /// one `HOOK<TAB>tool args` line each.
    fn keep_calls(&self, hook: &Hook, ctx_dir: &Path) {
        use std::io::Write;
        let calls =
            std::fs::read_to_string(ctx_dir.join(crate::tools::CALLS_LOG)).unwrap_or_default();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.model_dir.join("tool-calls.log"))
        {
            let _ = writeln!(f, "# {}", hook.describe());
            for line in calls.lines() {
                let _ = writeln!(f, "{}\t{line}", hook.name);
            }
        }
    }

    /// Apply the immediate effects (status, version) and turn them and the
    /// juju-log lines into debug-log lines.
    fn log_lines(model: &mut Model, hook: &Hook, ctx_dir: &Path) -> Vec<String> {
        let tag = model.unit_tag();
        let mut out = vec![format!(
            "{tag}: {} INFO juju.worker.uniter.operation ran {:?} hook",
            clock(),
            hook.name
        )];
        for item in context::read_immediate(ctx_dir) {
            match item {
                Immediate::Status {
                    application,
                    status,
                    message,
                } => {
                    let s = Status::new(Workload::from(status), message);
                    if application {
                        model.app_status = s;
                    } else {
                        model.workload = s;
                    }
                }
                Immediate::Version { version } => model.version = version,
                Immediate::Log { level, message } => out.push(format!(
                    "{tag}: {} {level} unit.{}.juju-log {message}",
                    clock(),
                    model.unit
                )),
            }
        }
        out
    }

    fn append_log(&self, lines: &[String]) -> Result<(), SchedError> {
        let path = self.debug_log_path();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(crate::model::io_err("appending to the debug log", &path))?;
        Ok(())
    }

    fn context(&self, model: &Model, hook: &Hook, id: &str) -> Result<Context, SchedError> {
        let charm = self.charm_host(model);
        let schema = Schema::read(&charm)?;
        let meta = Metadata::read(&charm)?;
        let paths = self.paths();
        let broken_id = hook
            .name
            .ends_with("-relation-broken")
            .then_some(hook.relation_id)
            .flatten();
        let relations = model
            .relations
            .iter()
            .map(|r| CtxRelation {
                id: r.id,
                endpoint: r.endpoint.clone(),
                remote_app: r.remote_app.clone(),
                members: r.joined.clone(),
                remote_units: r.remote_units.clone(),
                remote_app_data: r.remote_app_data.clone(),
                secrets: r.secrets.clone(),
                broken: Some(r.id) == broken_id,
            })
            .collect();
        let resources: BTreeMap<String, String> = model
            .resources
            .iter()
            .filter_map(|(name, host_file)| {
                let file = host_file.file_name()?;
                let inside = install::resource_dir(&model.unit_tag(), name).join(file);
                Some((
                    name.clone(),
                    paths.as_seen_inside(&inside).to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let rel = hook.relation_id.and_then(|id| model.relation(id));
        Ok(Context {
            id: id.to_owned(),
            model_name: model.name.clone(),
            unit: model.unit.clone(),
            app: model.app.clone(),
            hook: hook.name.clone(),
            leader: model.leader,
            relation_id: hook.relation_id,
            remote_unit: hook.remote_unit.clone(),
            remote_app: rel.map(|r| r.remote_app.clone()),
            config: schema.effective(&model.config),
            relations,
            resources,
            status: model.workload.clone(),
            app_status: model.app_status.clone(),
            private_address: "127.0.0.1".into(),
            endpoints: meta
                .provides
                .keys()
                .chain(meta.requires.keys())
                .chain(meta.peers.keys())
                .cloned()
                .collect(),
            action: hook.action.as_ref().map(|a| context::CtxAction {
                name: hook.name.clone(),
                params: a.params.clone(),
            }),
        })
    }

    /// Juju's hook environment, from scratch.
    fn env(
        &self,
        model: &Model,
        hook: &Hook,
        context_id: &str,
        charm_seen: &Path,
    ) -> Vec<(String, String)> {
        let paths = self.paths();
        let tag = model.unit_tag();
        let tools = paths.as_seen_inside(&install::tools_dir(&tag));
        let charm = charm_seen.to_string_lossy().into_owned();
        let mut env: Vec<(&str, String)> = match &hook.action {
            None => vec![
                ("JUJU_DISPATCH_PATH", format!("hooks/{}", hook.name)),
                ("JUJU_HOOK_NAME", hook.name.clone()),
            ],
            Some(a) => vec![
                ("JUJU_DISPATCH_PATH", format!("actions/{}", hook.name)),
                ("JUJU_ACTION_NAME", hook.name.clone()),
                ("JUJU_ACTION_UUID", a.id.to_string()),
            ],
        };
        env.extend([
            ("JUJU_UNIT_NAME", model.unit.clone()),
            ("JUJU_MODEL_NAME", model.name.clone()),
            ("JUJU_MODEL_UUID", model.uuid.clone()),
            ("JUJU_VERSION", JUJU_VERSION.into()),
            ("JUJU_CHARM_DIR", charm.clone()),
            ("CHARM_DIR", charm),
            ("JUJU_CONTEXT_ID", context_id.into()),
            (
                "JUJU_AGENT_SOCKET_ADDRESS",
                format!("@/var/lib/juju/agents/{tag}/agent.socket"),
            ),
            ("JUJU_AGENT_SOCKET_NETWORK", "unix".into()),
            ("JUJU_API_ADDRESSES", "127.0.0.1:17070".into()),
            ("JUJU_MACHINE_ID", "0".into()),
            ("JUJU_PRINCIPAL_UNIT", String::new()),
            ("JUJU_AVAILABILITY_ZONE", String::new()),
            ("CLOUD_API_VERSION", String::new()),
            ("JUJU_SLA", "unsupported".into()),
            // Exported even when empty, from the model's juju-*-proxy.
            ("JUJU_CHARM_HTTP_PROXY", model.setting("juju-http-proxy")),
            ("JUJU_CHARM_HTTPS_PROXY", model.setting("juju-https-proxy")),
            ("JUJU_CHARM_FTP_PROXY", model.setting("juju-ftp-proxy")),
            ("JUJU_CHARM_NO_PROXY", model.setting("juju-no-proxy")),
            (
                "PATH",
                format!(
                    "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    tools.display()
                ),
            ),
            // No HOME: Juju does not set one.
            ("LANG", "C.UTF-8".into()),
            ("DEBIAN_FRONTEND", "noninteractive".into()),
            ("APT_LISTCHANGES_FRONTEND", "none".into()),
            ("TERM", "tmux-256color".into()),
        ]);
        if let Some(rel) = hook.relation_id.and_then(|id| model.relation(id)) {
            env.push(("JUJU_RELATION", rel.endpoint.clone()));
            env.push(("JUJU_RELATION_ID", format!("{}:{}", rel.endpoint, rel.id)));
            env.push(("JUJU_REMOTE_APP", rel.remote_app.clone()));
            // Exported even when empty (created, broken, app-changed): ops requires it.
            env.push((
                "JUJU_REMOTE_UNIT",
                hook.remote_unit.clone().unwrap_or_default(),
            ));
            if let Some(d) = &hook.departing_unit {
                env.push(("JUJU_DEPARTING_UNIT", d.clone()));
            }
        }
        if paths.is_local() {
            env.push((
                context::CTX_BASE_ENV,
                paths
                    .host(Path::new(context::CTX_BASE))
                    .to_string_lossy()
                    .into_owned(),
            ));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// What the charm side of `rel` has committed, for its stand-in.
pub fn snapshot(model: &Model, rel: &Relation) -> RelationSnapshot {
    RelationSnapshot {
        endpoint: rel.endpoint.clone(),
        interface: rel.interface.clone(),
        relation_id: rel.id,
        local_app: model.app.clone(),
        local_app_data: rel.local_app_data.clone(),
        local_units: [(model.unit.clone(), rel.local_unit_data.clone())]
            .into_iter()
            .collect(),
    }
}

fn pending_of(model: &Model) -> Pending {
    Pending {
        unit_data: model
            .relations
            .iter()
            .map(|r| (r.id, r.local_unit_data.clone()))
            .collect(),
        app_data: model
            .relations
            .iter()
            .map(|r| (r.id, r.local_app_data.clone()))
            .collect(),
        ports: model.ports.clone(),
        state: model.state.clone(),
    }
}

fn commit(model: &mut Model, pending: &Pending) {
    for rel in &mut model.relations {
        if let Some(bag) = pending.unit_data.get(&rel.id) {
            rel.local_unit_data = bag.clone();
        }
        if let Some(bag) = pending.app_data.get(&rel.id) {
            rel.local_app_data = bag.clone();
        }
    }
    model.ports = pending.ports.clone();
    model.state = pending.state.clone();
}

/// `HH:MM:SS` UTC, as debug-log shows it.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
