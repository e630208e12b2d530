//! The reconcile: from config, source and relation data to a healthy
//! gunicorn, doing only the work whose inputs changed and picking the least
//! disruptive action (nothing, reload, restart).
//!
//! It is a sequence of named steps. Each returns its result or a [`Stop`]:
//! a block to hold (an operator must act), a wait (for a database), or an
//! error that fails the hook. The steps, in order:
//! [`Reconcile::resolve_release`], [`Reconcile::install_apt`],
//! [`Reconcile::refresh_relations`], [`Reconcile::check_databases`],
//! [`Reconcile::ensure_venv`], [`Reconcile::render`],
//! [`Reconcile::check_port`], [`Reconcile::write_files`],
//! [`Reconcile::provision`], [`Reconcile::apply`], [`Reconcile::open_ports`],
//! then [`report_health`].

use std::collections::BTreeMap;

use machine::systemd::Systemctl;
use reactive::{Ctx, HandlerResult};

use crate::config::Config;
use crate::config::layer_options::LayerOptions;
use crate::config::paths::AppPaths;
use crate::flags::{ACTIVE, AVAILABLE, SOURCE};
use crate::handlers::{paths, status, unavailable};
use crate::memory::{HealthTarget, LayerMemory};
use crate::relations::{self, RelationView};
use crate::render::{Action, DesiredState, Hashes, RelationInputs, action, envfile};
use crate::seams::{LayerCtx, ProvisionRun, Status};

/// The gunicorn installed when the app's requirements do not name one.
pub const GUNICORN: &str = "gunicorn==27.0.1";

/// Why the reconcile stopped before the service was reconciled.
#[derive(Debug)]
pub enum Stop {
    /// An operator must act: blocked (or waiting), held until a reconcile
    /// gets past it.
    Hold(Status, String),
    /// Waiting for something outside (a database): not held, retried.
    Wait(String),
    /// The hook fails (Juju retries it); the state is not committed.
    Fail(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Fail(e.into())
    }
}

/// A step's result.
pub type Step<T> = Result<T, Stop>;

fn blocked<T>(message: impl Into<String>) -> Step<T> {
    Err(Stop::Hold(Status::Blocked, message.into()))
}

/// The `wsgi.reconcile` handler.
pub fn reconcile(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    // update-status only checks health (and retries a database that did
    // not answer yet); stop/remove tear down.
    let mut mem = LayerMemory::load(ctx)?;
    let retry = ctx.hook() == "update-status" && mem.db_waiting.is_some();
    if matches!(ctx.hook(), "update-status" | "stop" | "remove") && !retry {
        return Ok(());
    }
    let outcome = Reconcile {
        ctx: &mut *ctx,
        mem: &mut mem,
    }
    .run();
    match outcome {
        Ok(()) => {}
        Err(Stop::Hold(st, message)) => {
            mem.held = Some((st, message.clone()));
            unavailable(ctx, &mut mem, st, &message)?;
        }
        Err(Stop::Wait(message)) => status(ctx, &mut mem, Status::Waiting, &message)?,
        Err(Stop::Fail(e)) => return Err(e),
    }
    mem.save(ctx)?;
    Ok(())
}

/// One reconcile: the handler's context and the memory it updates.
struct Reconcile<'c, 'a> {
    ctx: &'c mut Ctx<'a, LayerCtx>,
    mem: &'c mut LayerMemory,
}

impl Reconcile<'_, '_> {
    fn run(&mut self) -> Step<()> {
        let (layer, paths) = paths(self.ctx)?;
        let cpus = self.ctx.layer.host.cpus();
        let json = serde_json::Value::Object(self.ctx.layer.juju.config()?);
        let config = match Config::from_json(&json, cpus) {
            Ok(c) => c,
            Err(errors) => return blocked(format!("bad config: {errors}")),
        };
        for value in config.environment_variables.values() {
            hookenv::secrets::register(value);
        }
        let release = self.resolve_release(&paths)?;
        self.install_apt(&config)?;
        let view = self.refresh_relations(&config)?;
        register_secrets(&view);
        let inputs = RelationInputs {
            env: view.env(),
            proxies: view.proxy_ips(),
        };
        self.check_databases(&inputs.env)?;
        let venv_inputs = self.ensure_venv(&config, &layer, &paths, &release)?;
        let desired = Self::render(&config, &layer, &paths, &inputs, &venv_inputs, &release)?;
        self.check_port(&paths, config.port)?;
        self.write_files(&config, &layer, &paths, &desired)?;
        let env = envfile::merge(&config.environment_variables, &inputs.env);
        self.provision(&config, &layer, &paths, &release, &env)?;
        self.apply(&paths, &desired.hashes)?;
        self.open_ports(config.port)?;
        self.mem.held = None;
        let target = HealthTarget {
            port: config.port,
            path: config.health_check_path.clone(),
            serving: format!(
                "Serving {} on :{}, {} workers",
                config.wsgi_module, config.port, config.workers
            ),
        };
        self.mem.health_target = Some(target.clone());
        report_health(
            self.ctx,
            self.mem,
            &target,
            config.health_check_timeout,
            &paths,
        )?;
        Ok(())
    }

    fn status(&mut self, st: Status, message: &str) -> Step<()> {
        status(self.ctx, self.mem, st, message)?;
        Ok(())
    }

    /// The source: the app resource, or code an including charm put in
    /// place. resource-get only where a new revision can have arrived
    /// (attaching a resource fires upgrade-charm) or when no release exists
    /// yet. Returns the release id.
    fn resolve_release(&mut self, paths: &AppPaths) -> Step<String> {
        let stored = self.mem.release.clone();
        let look = stored.is_none() || matches!(self.ctx.hook(), "install" | "upgrade-charm");
        // A bad archive stays reported until another one is attached (the
        // hooks in between do not look at the resource again).
        if !look && let Some(msg) = self.mem.resource_error.clone() {
            return blocked(msg);
        }
        let release = match (look, stored) {
            (false, Some(release)) => release,
            (_, stored) => match self.ctx.layer.juju.resource("app")? {
                Some(archive) => self.unpack(paths, &archive, stored)?,
                None if self.ctx.is_set(SOURCE) => "layer".to_owned(),
                None => {
                    return blocked(
                        "attach the app resource: juju attach-resource <app> app=app.tar.gz",
                    );
                }
            },
        };
        if self.ctx.data_changed("app-version", &release)? {
            self.ctx.layer.juju.app_version(&release)?;
        }
        Ok(release)
    }

    fn unpack(
        &mut self,
        paths: &AppPaths,
        archive: &std::path::Path,
        stored: Option<String>,
    ) -> Step<String> {
        let meta = std::fs::metadata(archive).ok();
        let identity = (archive, meta.as_ref().map(|m| (m.len(), m.modified().ok())));
        if let Some(release) = stored
            && !self.ctx.data_changed("resource", &identity)?
        {
            return Ok(release);
        }
        self.status(Status::Maintenance, "unpacking the app resource")?;
        let host = &mut self.ctx.layer.host;
        match host.unpack_release(archive, &paths.releases_dir, &paths.current) {
            Ok(id) => {
                self.mem.resource_error = None;
                // Remember what was unpacked, so the next upgrade-charm with
                // the same file is a no-op.
                self.ctx.data_changed("resource", &identity)?;
                self.ctx.set_flag(SOURCE);
                self.mem.release = Some(id.clone());
                Ok(id)
            }
            Err(e) => {
                self.ctx.forget_data("resource");
                let msg = format!("app resource: {e:#}");
                self.mem.resource_error = Some(msg.clone());
                blocked(msg)
            }
        }
    }

    /// `apt_dependencies`, installed when they changed.
    fn install_apt(&mut self, config: &Config) -> Step<()> {
        if config.apt_dependencies.is_empty()
            || !self.ctx.data_changed("apt", &config.apt_dependencies)?
        {
            return Ok(());
        }
        self.status(Status::Maintenance, "installing apt_dependencies")?;
        if let Err(e) = self.ctx.layer.host.apt_install(&config.apt_dependencies) {
            self.ctx.forget_data("apt");
            return blocked(format!("apt_dependencies: {e:#}"));
        }
        Ok(())
    }

    /// Relations: read only where this hook can have changed them.
    fn refresh_relations(&mut self, config: &Config) -> Step<RelationView> {
        let first = self.mem.relations.is_none();
        let mut view = self.mem.relations.clone().unwrap_or_default();
        relations::refresh(
            self.ctx.layer.juju.as_ref(),
            self.ctx.hook(),
            config,
            config.port,
            &mut view,
            first,
        )?;
        self.mem.relations = Some(view.clone());
        Ok(view)
    }

    /// A new database URL must connect and authenticate before the app is
    /// switched to it; until then the app keeps what it has. Only digests of
    /// the URLs that passed are kept.
    fn check_databases(&mut self, env: &BTreeMap<String, String>) -> Step<()> {
        let known = self.mem.db_checked.clone();
        let mut passed = Vec::new();
        for key in ["DATABASE_URL", "MONGO_URL"] {
            let Some(url) = env.get(key) else { continue };
            let digest = machine::digest(url.as_bytes());
            if !known.contains(&digest)
                && let Err(e) = self.ctx.layer.host.check_database(url)
            {
                let why = format!("waiting for the database ({key}): {e:#}");
                self.mem.db_waiting = Some(why.clone());
                return Err(Stop::Wait(why));
            }
            passed.push(digest);
        }
        passed.dedup();
        self.mem.db_waiting = None;
        self.mem.db_checked = passed;
        Ok(())
    }

    /// The app's requirements in its venv; returns the venv's inputs.
    fn ensure_venv(
        &mut self,
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        release: &str,
    ) -> Step<String> {
        let wheels = config.pip_cache_path(&paths.current);
        if self.ctx.data_changed("venv-request", &(release, &wheels))? {
            self.status(Status::Maintenance, "installing the app's requirements")?;
        }
        let build = machine::venv::Build {
            unit: format!("wsgi-{}-build", paths.app),
            user: layer.username.clone(),
            cache_dir: paths.cache_dir.clone(),
            run_dir: paths.run_dir.clone(),
            index_url: config.index_url.clone(),
            extra_index_url: config.extra_index_url.clone(),
            trusted_host: config.trusted_host.clone(),
            env: Vec::new(),
        };
        let host = &mut self.ctx.layer.host;
        match host.ensure_venv(&paths.venv, &paths.current, wheels.as_deref(), &build) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.ctx.forget_data("venv-request");
                blocked(format!("installing requirements failed: {e:#}"))
            }
        }
    }

    fn render(
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        inputs: &RelationInputs,
        venv_inputs: &str,
        release: &str,
    ) -> Step<DesiredState> {
        DesiredState::render(config, layer, paths, inputs, venv_inputs, release)
            .or_else(|e| blocked(format!("cannot render the service: {e}")))
    }

    /// A port held by another process: say so instead of a service that
    /// cannot bind (and a health check another server might answer).
    fn check_port(&mut self, paths: &AppPaths, port: u16) -> Step<()> {
        if self.mem.port == Some(port) {
            return Ok(());
        }
        let Some(holder) = self.ctx.layer.host.port_holder(port) else {
            return Ok(());
        };
        // Our own service (a hook killed after the move, before its state
        // was committed) is not another process.
        let main = self.ctx.layer.host.service_state(&paths.service)?.main_pid;
        if main != 0 && holder == main {
            return Ok(());
        }
        blocked(format!(
            "port {port} is in use by another process: stop it or choose another port"
        ))
    }

    /// A file that cannot be written (disk full) leaves the old one whole
    /// (atomic writes) and the service as it was; retried on the next hook.
    fn write_files(
        &mut self,
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        desired: &DesiredState,
    ) -> Step<()> {
        let mut write = || -> anyhow::Result<()> {
            let host = &mut self.ctx.layer.host;
            if let Some(log) = config.log_file(paths) {
                host.ensure_log_file(&log, &layer.username)?;
            }
            // Secrets live only here: 0640 root:<app user>.
            host.write_file(
                &paths.env_file,
                &desired.env_file,
                0o640,
                Some(&layer.username),
            )?;
            host.write_file(&paths.gunicorn_conf, &desired.gunicorn_conf, 0o644, None)?;
            host.write_file(&paths.unit_file, &desired.unit, 0o644, None)?;
            match &desired.logrotate {
                Some(text) => {
                    host.write_file(&paths.logrotate, text, 0o644, None)?;
                }
                None => host.remove_file(&paths.logrotate)?,
            }
            Ok(())
        };
        write().or_else(|e| blocked(format!("cannot write the service files: {e:#}")))
    }

    /// Migrations, before the new code or database serves requests: once
    /// per (release, database URL, command).
    fn provision(
        &mut self,
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        release: &str,
        env: &BTreeMap<String, String>,
    ) -> Step<()> {
        if config.provision_command.is_empty() {
            return Ok(());
        }
        let key = (release, env.get("DATABASE_URL"), &config.provision_command);
        if !self.ctx.data_changed("provision", &key)? {
            return Ok(());
        }
        self.status(Status::Maintenance, "running provision_command")?;
        let run = ProvisionRun {
            unit: format!("wsgi-{}-provision", paths.app),
            user: &layer.username,
            dir: &paths.current,
            env_file: &paths.env_file,
            env: provision_env(paths),
            writable: Vec::new(),
            timeout_s: config.provision_timeout,
        };
        if let Err(e) = self
            .ctx
            .layer
            .host
            .provision(&config.provision_command, &run)
        {
            // Retried on the next hook.
            self.ctx.forget_data("provision");
            return blocked(format!("provision_command failed: {e:#}"));
        }
        Ok(())
    }

    /// Starts, reloads or restarts the service as the hashes say.
    fn apply(&mut self, paths: &AppPaths, new: &Hashes) -> Step<()> {
        let old = self.mem.hashes.clone();
        let svc = paths.service.clone();
        let state = self.ctx.layer.host.service_state(&svc)?;
        let running = state.active.is_running();
        let unit_changed = old.as_ref().is_none_or(|o| o.unit != new.unit);
        let host = &mut self.ctx.layer.host;
        if unit_changed {
            host.systemctl(Systemctl::DaemonReload, &svc)?;
            host.systemctl(Systemctl::Enable, &svc)?;
        }
        let act = match &old {
            Some(o) if running => action(o, new),
            _ => Action::Restart,
        };
        match act {
            Action::Nothing => {}
            // Graceful (no request refused) and quick: no maintenance status,
            // which would flicker on every proxy joining the website relation.
            Action::Reload => host.systemctl(Systemctl::Reload, &svc)?,
            Action::Restart => {
                self.status(Status::Maintenance, "restarting the service")?;
                let host = &mut self.ctx.layer.host;
                if state.active == machine::systemd::ActiveState::Failed {
                    // After repeated crashes systemd refuses to start the unit
                    // (start limit) until its failed state is reset.
                    if let Err(e) = host.systemctl(Systemctl::ResetFailed, &svc) {
                        tracing::info!("{e:#}");
                    }
                }
                let verb = if running {
                    Systemctl::Restart
                } else {
                    Systemctl::Start
                };
                // A service that will not start (the app fails at import) is
                // a state to report, not a failed hook: the health check finds
                // it down and blocks with its log; the next hook retries.
                if let Err(e) = host.systemctl(verb, &svc) {
                    self.ctx.layer.juju.log(&format!("{e:#}"));
                }
            }
        }
        self.mem.old_main_pid = (act == Action::Restart && running).then_some(state.main_pid);
        self.mem.hashes = Some(new.clone());
        Ok(())
    }

    /// Opens the configured port and closes the one opened before, if different.
    fn open_ports(&mut self, port: u16) -> Step<()> {
        let old = self.mem.port;
        if old != Some(port) {
            self.ctx.layer.juju.open_port(port)?;
            if let Some(o) = old {
                self.ctx.layer.juju.close_port(o)?;
            }
            self.mem.port = Some(port);
        }
        Ok(())
    }
}

/// The relations' URLs and their passwords (as given and decoded) never
/// leave the agent in a status or a log line.
pub(crate) fn register_secrets(view: &RelationView) {
    for url in view.env().values() {
        hookenv::secrets::register(url);
        if let Some(pw) = dbcheck_protocol::password_of(url) {
            hookenv::secrets::register(&pw);
            let decoded = percent_encoding::percent_decode_str(&pw).decode_utf8_lossy();
            hookenv::secrets::register(&decoded);
        }
    }
}

/// What provision_command gets beside the environment file: no secret.
fn provision_env(paths: &AppPaths) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("HOME".into(), paths.app_dir.display().to_string()),
        (
            "PATH".into(),
            format!("{}/bin:/usr/bin:/bin", paths.venv.display()),
        ),
        ("LANG".into(), "C.UTF-8".into()),
    ])
}

/// The health check: the service answers on its port and is the process
/// systemd runs (not an old master still answering after a restart); then
/// the public flags and an active status (or waiting, for a database).
pub(crate) fn report_health(
    ctx: &mut Ctx<'_, LayerCtx>,
    mem: &mut LayerMemory,
    target: &HealthTarget,
    timeout_s: u32,
    paths: &AppPaths,
) -> HandlerResult {
    let svc = paths.service.clone();
    let answer = ctx.layer.host.health(target.port, &target.path, timeout_s);
    let state = ctx.layer.host.service_state(&svc)?;
    let failed = match &answer {
        Err(e) => Some(format!("{e:#}")),
        Ok(_) if state.active != machine::systemd::ActiveState::Active => {
            Some(format!("service is {}", state.active))
        }
        Ok(_) if mem.old_main_pid.is_some_and(|p| p == state.main_pid) => {
            Some("the service did not restart (same main PID)".into())
        }
        Ok(_) => None,
    };
    if let Some(why) = failed {
        let tail = ctx.layer.host.journal_tail(&svc, 5);
        let tail = tail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        return unavailable(
            ctx,
            mem,
            Status::Blocked,
            &format!("health check failed: {why}; log: {tail}"),
        );
    }
    ctx.set_flag(AVAILABLE);
    ctx.set_flag(ACTIVE);
    let waiting = mem
        .relations
        .as_ref()
        .and_then(|v| v.waiting.first().cloned())
        .or_else(|| mem.db_waiting.clone());
    match waiting {
        Some(w) => status(ctx, mem, Status::Waiting, &w),
        None => status(ctx, mem, Status::Active, &target.serving),
    }
}
