//! The reconcile: from config, code and relation data to a healthy
//! gunicorn, doing only the work whose inputs changed and picking the least
//! disruptive action (nothing, reload, restart).
//!
//! New code never touches what serves. It becomes a release of its own
//! (`machine::release::store`): its source unpacked, its venv built beside
//! the others, and only then `current` switched, the service reloaded or
//! restarted, and the health check run. A release that fails its check is
//! switched back to the last good one; one that cannot be built is never
//! switched to. Either way the old release keeps serving, config and
//! relation changes still apply to it, and the unit is blocked saying why.
//!
//! It is a sequence of named steps. Each returns its result or a [`Stop`].
//! The steps, in order: [`Reconcile::install_apt`],
//! [`Reconcile::refresh_relations`], [`Reconcile::check_databases`],
//! [`Reconcile::candidate`] (resolve the source, build its venv, record the
//! release), then [`Reconcile::serve`] ([`Reconcile::check_port`],
//! [`Reconcile::write_files`], [`Reconcile::provision`], the switch,
//! [`Reconcile::apply`], [`Reconcile::open_ports`], the health check), and
//! on a failed check [`Reconcile::roll_back`].

use std::collections::BTreeMap;
use std::path::Path;

use machine::release::{Health, Release, Source, Store};
use machine::systemd::Systemctl;
use reactive::{Ctx, HandlerResult};

use crate::config::layer_options::LayerOptions;
use crate::config::paths::AppPaths;
use crate::config::{Config, InstallerChoice};
use crate::flags::{ACTIVE, AVAILABLE, SOURCE};
use crate::handlers::{paths, status, unavailable};
use crate::memory::{HealthTarget, LayerMemory};
use crate::relations::{self, RelationView};
use crate::render::{
    Action, DesiredState, Hashes, RelationInputs, Serving, action, charm_env, envfile,
};
use crate::seams::{LayerCtx, ProvisionRun, Status};

/// The gunicorn installed when the app's requirements do not name one.
pub const GUNICORN: &str = "gunicorn==27.0.1";

/// Why the reconcile stopped before the service was reconciled.
#[derive(Debug)]
pub enum Stop {
    /// An operator must act: blocked (or waiting), held until a reconcile
    /// gets past it. The app is not known to serve.
    Hold(Status, String),
    /// An operator must act, but a release serves and answers its health
    /// check (the newer code is what is wrong): blocked, flags kept.
    Serving(String),
    /// The service does not pass its health check, and there is no older
    /// release to go back to: blocked, not held (update-status checks again;
    /// the app may recover, a database come back).
    Unhealthy(String),
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
    // Actions run their own handlers; update-status only checks health
    // (and retries a database that did not answer yet); stop/remove tear down.
    if ctx.hook().starts_with("actions/") {
        return Ok(());
    }
    let mut mem = LayerMemory::load(ctx)?;
    let retry = ctx.hook() == "update-status" && mem.db_waiting.is_some();
    if matches!(ctx.hook(), "update-status" | "stop" | "remove") && !retry {
        return Ok(());
    }
    let outcome = Reconcile {
        ctx: &mut *ctx,
        mem: &mut mem,
        forced: None,
        forced_failed: None,
    }
    .run();
    finish(ctx, &mut mem, outcome)?;
    mem.save(ctx)?;
    Ok(())
}

/// Turns a reconcile's outcome into the unit's status (or a failed hook).
pub(crate) fn finish(
    ctx: &mut Ctx<'_, LayerCtx>,
    mem: &mut LayerMemory,
    outcome: Step<()>,
) -> HandlerResult {
    match outcome {
        Ok(()) => Ok(()),
        Err(Stop::Hold(st, message)) => {
            mem.held = Some((st, message.clone()));
            unavailable(ctx, mem, st, &message)
        }
        Err(Stop::Serving(message)) => {
            mem.held = Some((Status::Blocked, message.clone()));
            status(ctx, mem, Status::Blocked, &message)
        }
        Err(Stop::Unhealthy(message)) => {
            mem.held = None;
            unavailable(ctx, mem, Status::Blocked, &message)
        }
        Err(Stop::Wait(message)) => status(ctx, mem, Status::Waiting, &message),
        Err(Stop::Fail(e)) => Err(e),
    }
}

/// One reconcile: the handler's context and the memory it updates.
pub(crate) struct Reconcile<'c, 'a> {
    pub(crate) ctx: &'c mut Ctx<'a, LayerCtx>,
    pub(crate) mem: &'c mut LayerMemory,
    /// The release to serve, chosen by the rollback action.
    pub(crate) forced: Option<u32>,
    /// Set when the forced release failed its health check (the one that
    /// served before is back).
    pub(crate) forced_failed: Option<String>,
}

/// Everything a release is served with.
struct Inputs<'i> {
    config: &'i Config,
    layer: &'i LayerOptions,
    paths: &'i AppPaths,
    relations: &'i RelationInputs,
    store: &'i Store,
}

/// The first part of a failure (the exception line, when the log has
/// one), for a status.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    line.split(" | ").next().unwrap_or(line).trim().to_owned()
}

/// Why a release that failed its health check is not served.
fn rolled_back_message(store: &Store, failed: u32, back: u32) -> String {
    let cause = match store.get(failed) {
        Ok(Some(Release {
            health: Health::Failed { cause, .. },
            ..
        })) => cause,
        _ => "no answer".to_owned(),
    };
    format!("release {failed} failed its health check: {cause}; rolled back to {back}")
}

/// The digest of the files a release was served with.
fn files_digest(h: &Hashes) -> String {
    machine::digest(format!("{h:?}").as_bytes())
}

impl Reconcile<'_, '_> {
    pub(crate) fn run(&mut self) -> Step<()> {
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
        self.install_apt(&config)?;
        let view = self.refresh_relations(&config)?;
        register_secrets(&view);
        let relations = RelationInputs {
            env: view.env(),
            proxies: view.proxy_ips(),
        };
        self.check_databases(&relations.env)?;
        let store = self.ctx.layer.host.store(&paths.app_dir);
        let inputs = Inputs {
            config: &config,
            layer: &layer,
            paths: &paths,
            relations: &relations,
            store: &store,
        };
        let live = match store.live() {
            Some(id) => store.get(id)?,
            None => None,
        };
        let candidate = match self.forced {
            // The operator's choice: what was wrong with newer code is theirs
            // to know (they chose not to serve it).
            Some(id) => match store.get(id)? {
                Some(r) => {
                    self.mem.problem = None;
                    Some(r)
                }
                None => return blocked(format!("there is no release {id}")),
            },
            None => match self.candidate(&inputs) {
                Ok(c) => {
                    self.mem.problem = None;
                    c
                }
                // The newest code cannot be served: the live release goes on.
                Err(Stop::Hold(_, msg)) if live.is_some() => {
                    self.mem.problem = Some(msg);
                    None
                }
                Err(e) => return Err(e),
            },
        };
        let Some(mut target) = candidate.or_else(|| live.clone()) else {
            return blocked("attach the app resource: juju attach-resource <app> app=app.tar.gz");
        };
        let mut desired = Self::render(&inputs, &target)?;
        // Failed its health check with exactly these files: not again.
        if let (Some((id, digest)), Some(l)) = (&self.mem.failed_with, &live)
            && *id == target.id
            && *digest == files_digest(&desired.hashes)
            && l.id != target.id
        {
            self.mem.problem = Some(rolled_back_message(&store, *id, l.id));
            target = l.clone();
            desired = Self::render(&inputs, &target)?;
        }
        let health = self.serve(&inputs, &target, &desired)?;
        match health {
            Ok(()) => self.passed(&inputs, &target),
            Err(why) => self.roll_back(&inputs, &target, &desired, live.as_ref(), &why),
        }
    }

    /// A release served and answered: recorded, old releases pruned, the
    /// status says it serves (or what is wrong with newer code).
    fn passed(&mut self, inputs: &Inputs<'_>, target: &Release) -> Step<()> {
        if !matches!(target.health, Health::Passed { .. }) {
            inputs.store.set_health(
                target.id,
                Health::Passed {
                    at: machine::release::store::unix_now(),
                },
            )?;
        }
        if self
            .mem
            .failed_with
            .as_ref()
            .is_some_and(|(id, _)| *id == target.id)
        {
            self.mem.failed_with = None;
        }
        match inputs.store.prune(inputs.config.release_history as usize) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!("removed old releases {removed:?}");
            }
            Ok(_) => {}
            Err(e) => self.ctx.layer.juju.log(&format!("pruning releases: {e:#}")),
        }
        self.mem.held = None;
        if let Some(problem) = self.mem.problem.clone() {
            self.ctx.set_flag(AVAILABLE);
            self.ctx.set_flag(ACTIVE);
            return Err(Stop::Serving(problem));
        }
        let target = self.mem.health_target.clone().unwrap_or(HealthTarget {
            port: inputs.config.port,
            path: inputs.config.health_check_path.clone(),
            serving: String::new(),
        });
        report_serving(self.ctx, self.mem, &target)?;
        Ok(())
    }

    /// A release failed its health check. One that never passed is
    /// switched back to the newest release that did (the live one first);
    /// one that passed before (the database is down, the config breaks it)
    /// is not: it stays, blocked with the cause.
    fn roll_back(
        &mut self,
        inputs: &Inputs<'_>,
        failed: &Release,
        desired: &DesiredState,
        live: Option<&Release>,
        why: &str,
    ) -> Step<()> {
        let cause = first_line(why);
        if self.forced.is_some() {
            // The operator's choice failed: the release that served before
            // serves again, and the action says so.
            self.mem.pinned = None;
            let Some(back) = live.filter(|l| l.id != failed.id) else {
                return Err(Stop::Unhealthy(format!("health check failed: {why}")));
            };
            self.forced_failed = Some(format!(
                "release {} failed its health check: {cause}; release {} serves again",
                failed.id, back.id
            ));
            let desired = Self::render(inputs, back)?;
            return match self.serve(inputs, back, &desired)? {
                Ok(()) => self.passed(inputs, back),
                Err(again) => blocked(format!(
                    "release {} fails its health check too: {}",
                    back.id,
                    first_line(&again)
                )),
            };
        }
        let back = if matches!(failed.health, Health::Passed { .. }) {
            None
        } else {
            let all = inputs.store.list()?;
            let passed =
                |r: &&Release| r.id != failed.id && matches!(r.health, Health::Passed { .. });
            live.filter(|l| passed(l))
                .cloned()
                .or_else(|| all.iter().rev().find(passed).cloned())
        };
        inputs.store.set_health(
            failed.id,
            Health::Failed {
                at: machine::release::store::unix_now(),
                cause: cause.clone(),
            },
        )?;
        self.mem.failed_with = Some((failed.id, files_digest(&desired.hashes)));
        let Some(back) = back else {
            return Err(Stop::Unhealthy(format!("health check failed: {why}")));
        };
        self.ctx.layer.juju.log(&format!(
            "release {} failed its health check ({why}); rolling back to {}",
            failed.id, back.id
        ));
        let message = format!(
            "release {} failed its health check: {cause}; rolled back to {}",
            failed.id, back.id
        );
        self.mem.problem = Some(message.clone());
        let desired = Self::render(inputs, &back)?;
        match self.serve(inputs, &back, &desired)? {
            Ok(()) => self.passed(inputs, &back),
            Err(again) => blocked(format!(
                "{message}, which fails too: {}",
                first_line(&again)
            )),
        }
    }

    fn status(&mut self, st: Status, message: &str) -> Step<()> {
        status(self.ctx, self.mem, st, message)?;
        Ok(())
    }

    /// The attached code as a release: its source (unpacked once), its venv
    /// (built beside the others, or shared with a release of the same
    /// inputs) and its record. None when there is no code at all.
    fn candidate(&mut self, inputs: &Inputs<'_>) -> Step<Option<Release>> {
        let Some(source) = self.resolve_source(inputs.paths, inputs.store)? else {
            return Ok(None);
        };
        if let Some(pin) = self.mem.pinned.clone() {
            if pin.over_source.as_deref() == Some(source.hash.as_str())
                && let Some(r) = inputs.store.get(pin.release)?
            {
                return Ok(Some(r));
            }
            // Another source was attached since the rollback: it wins.
            self.mem.pinned = None;
        }
        let config = inputs.config;
        let installer = self.installer(config)?;
        let build = machine::venv::Build {
            unit: format!("wsgi-{}-build", inputs.paths.app),
            user: inputs.layer.username.clone(),
            cache_dir: inputs.paths.cache_dir.clone(),
            run_dir: inputs.paths.run_dir.clone(),
            index_url: config.index_url.clone(),
            extra_index_url: config.extra_index_url.clone(),
            trusted_host: config.trusted_host.clone(),
            installer,
            // Behind the model's proxy, as every download must be.
            env: self.ctx.layer.juju.proxy_env(),
        };
        let wheels = config.pip_cache_path(&source.root);
        let request = (
            &source.hash,
            &wheels,
            &config.index_url,
            &config.extra_index_url,
            &config.trusted_host,
            config.installer == InstallerChoice::Pip,
        );
        if self.ctx.data_changed("venv-request", &request)? {
            self.status(
                Status::Maintenance,
                &format!("installing the requirements of {}", &source.hash[..12]),
            )?;
        }
        let host = &mut self.ctx.layer.host;
        let venv = match host.build_venv(
            &inputs.store.venvs(),
            &source.root,
            wheels.as_deref(),
            &build,
        ) {
            Ok(v) => v,
            Err(e) => {
                self.ctx.forget_data("venv-request");
                self.ctx
                    .layer
                    .juju
                    .log(&format!("installing requirements failed: {e:#}"));
                return blocked(format!("installing requirements failed: {e}"));
            }
        };
        let release = match inputs.store.find(&source.hash, &venv.key)? {
            Some(r) => r,
            None => inputs
                .store
                .create(&source, &venv.dir, &venv.key, &venv.requirements)?,
        };
        Ok(Some(release))
    }

    /// The installer the config asks for.
    fn installer(&mut self, config: &Config) -> Step<machine::venv::Installer> {
        match config.installer {
            InstallerChoice::Pip => Ok(machine::venv::Installer::Pip),
            InstallerChoice::Uv => match self.mem.uv.clone().or_else(|| machine::which("uv")) {
                Some(uv) => Ok(machine::venv::Installer::Uv(uv)),
                None => blocked(
                    "installer=uv, but this charm carries no uv and none is installed: pack the charm with scripts/pack, or set installer=pip",
                ),
            },
        }
    }

    /// The source: the app resource, or code an including charm put in
    /// place. resource-get only where a new revision can have arrived
    /// (attaching a resource fires upgrade-charm) or when none was taken yet.
    fn resolve_source(&mut self, paths: &AppPaths, store: &Store) -> Step<Option<Source>> {
        let look =
            self.mem.release.is_none() || matches!(self.ctx.hook(), "install" | "upgrade-charm");
        if !look {
            // A bad archive stays reported until another one is attached.
            if let Some(msg) = self.mem.resource_error.clone() {
                return blocked(msg);
            }
            if let Some(hash) = self.mem.release.clone()
                && let Some(s) = self
                    .ctx
                    .layer
                    .host
                    .existing_source(&store.sources(), &hash)?
            {
                return Ok(Some(s));
            }
        }
        match self.ctx.layer.juju.resource("app")? {
            Some(archive) => self.unpack(store, &archive).map(Some),
            None if self.ctx.is_set(SOURCE) => {
                let dir = paths.source_dir.clone();
                match self.ctx.layer.host.import_source(&dir, &store.sources()) {
                    Ok(s) => {
                        self.mem.release = Some(s.hash.clone());
                        self.mem.resource_error = None;
                        Ok(Some(s))
                    }
                    Err(e) => blocked(format!("the code in {}: {e:#}", dir.display())),
                }
            }
            None => Ok(None),
        }
    }

    fn unpack(&mut self, store: &Store, archive: &Path) -> Step<Source> {
        let meta = std::fs::metadata(archive).ok();
        let identity = (archive, meta.as_ref().map(|m| (m.len(), m.modified().ok())));
        if let Some(hash) = self.mem.release.clone()
            && self.mem.resource_error.is_none()
            && !self.ctx.data_changed("resource", &identity)?
            && let Some(s) = self
                .ctx
                .layer
                .host
                .existing_source(&store.sources(), &hash)?
        {
            return Ok(s);
        }
        self.status(Status::Maintenance, "unpacking the app resource")?;
        match self.ctx.layer.host.unpack_source(archive, &store.sources()) {
            Ok(s) => {
                self.mem.resource_error = None;
                // The same file on the next upgrade-charm is a no-op.
                self.ctx.data_changed("resource", &identity)?;
                self.ctx.set_flag(SOURCE);
                self.mem.release = Some(s.hash.clone());
                Ok(s)
            }
            Err(e) => {
                self.ctx.forget_data("resource");
                let msg = format!("app resource: {e:#}");
                self.mem.resource_error = Some(msg.clone());
                blocked(msg)
            }
        }
    }

    /// `apt_dependencies` (and python3-venv for installer=pip), installed
    /// when they changed.
    fn install_apt(&mut self, config: &Config) -> Step<()> {
        let mut packages = config.apt_dependencies.clone();
        if config.installer == InstallerChoice::Pip && !packages.iter().any(|p| p == "python3-venv")
        {
            packages.push("python3-venv".into());
        }
        if packages.is_empty() || !self.ctx.data_changed("apt", &packages)? {
            return Ok(());
        }
        self.status(Status::Maintenance, "installing apt_dependencies")?;
        if let Err(e) = self.ctx.layer.host.apt_install(&packages) {
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

    fn render(inputs: &Inputs<'_>, release: &Release) -> Step<DesiredState> {
        let serving = Serving {
            id: release.id,
            venv: release.venv.clone(),
            source: release.source.clone(),
        };
        DesiredState::render(
            inputs.config,
            inputs.layer,
            inputs.paths,
            inputs.relations,
            &serving,
        )
        .or_else(|e| blocked(format!("cannot render the service: {e}")))
    }

    /// Puts `release` live with `desired`: files, provision, the switch, the
    /// service, the port; then the health check. Ok(Err(why)) when the
    /// check failed.
    fn serve(
        &mut self,
        inputs: &Inputs<'_>,
        release: &Release,
        desired: &DesiredState,
    ) -> Step<Result<(), String>> {
        let (config, paths) = (inputs.config, inputs.paths);
        self.check_port(paths, config.port, &desired.hashes)?;
        self.write_files(config, inputs.layer, paths, desired)?;
        let mut env = envfile::merge(&config.environment_variables, &inputs.relations.env);
        env.extend(charm_env(paths, release.id));
        self.provision(config, inputs.layer, paths, release, &env)?;
        if inputs.store.live() != Some(release.id) {
            inputs.store.switch(release.id)?;
        }
        self.apply(paths, &desired.hashes)?;
        self.open_ports(config.port)?;
        let version = &release.source[..12.min(release.source.len())];
        if self.ctx.data_changed("app-version", &version)? {
            self.ctx.layer.juju.app_version(version)?;
        }
        let target = HealthTarget {
            port: config.port,
            path: config.health_check_path.clone(),
            serving: format!(
                "Serving {} (release {}) on :{}, {} workers",
                config.wsgi_module, release.id, config.port, config.workers
            ),
        };
        self.mem.health_target = Some(target.clone());
        Ok(health_verdict(
            self.ctx,
            self.mem,
            &target,
            config.health_check_timeout,
            paths,
        )?)
    }

    /// A port held by another process: say so instead of a service that
    /// cannot bind (and a health check another server might answer).
    fn check_port(&mut self, paths: &AppPaths, port: u16, desired: &Hashes) -> Step<()> {
        if self.mem.port == Some(port) {
            return Ok(());
        }
        let Some(holder) = self.ctx.layer.host.port_holder(port) else {
            return Ok(());
        };
        // Our own socket or service (a hook killed after the move, before
        // its state was committed) is not another process: systemd (PID 1)
        // holding it for our socket unit, or our gunicorn.
        let _ = desired;
        let ours_socket = holder == 1 && {
            let socket = self.ctx.layer.host.service_state(&paths.socket)?;
            socket.active.is_running()
                && socket
                    .listen
                    .iter()
                    .any(|l| l == &format!("0.0.0.0:{port} (Stream)"))
        };
        let main = self.ctx.layer.host.service_state(&paths.service)?.main_pid;
        if ours_socket || (main != 0 && holder == main) {
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
            host.write_file(&paths.socket_file, &desired.socket, 0o644, None)?;
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
    /// per (source, database URL, command), in the release's directory with
    /// its venv, the service's data directory and environment.
    fn provision(
        &mut self,
        config: &Config,
        layer: &LayerOptions,
        paths: &AppPaths,
        release: &Release,
        env: &BTreeMap<String, String>,
    ) -> Step<()> {
        if config.provision_command.is_empty() {
            return Ok(());
        }
        let source = &release.source[..12.min(release.source.len())];
        let key = (source, env.get("DATABASE_URL"), &config.provision_command);
        if !self.ctx.data_changed("provision", &key)? {
            return Ok(());
        }
        self.status(Status::Maintenance, "running provision_command")?;
        let dir = paths.release_app(release.id);
        let dirs = &paths.systemd_dir_name;
        let run = ProvisionRun {
            unit: format!("wsgi-{}-provision", paths.app),
            user: &layer.username,
            dir: &dir,
            env_file: &paths.env_file,
            env: provision_env(paths, release.id),
            writable: Vec::new(),
            properties: vec![
                format!("StateDirectory={dirs}"),
                "StateDirectoryMode=0700".into(),
                format!("CacheDirectory={dirs}"),
                "CacheDirectoryMode=0700".into(),
            ],
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
            self.ctx
                .layer
                .juju
                .log(&format!("provision_command failed: {e:#}"));
            // The command's last words (an exception line) name the cause.
            let text = format!("{e:#}");
            let last = text.rsplit(" | ").next().unwrap_or(&text).trim();
            return blocked(format!("provision_command failed: {last}"));
        }
        Ok(())
    }

    /// Starts, reloads or restarts the service as the hashes say; a new
    /// socket (another port) is put in place while the service is stopped.
    fn apply(&mut self, paths: &AppPaths, new: &Hashes) -> Step<()> {
        let old = self.mem.hashes.clone();
        let svc = paths.service.clone();
        let state = self.ctx.layer.host.service_state(&svc)?;
        let was_running = state.active.is_running();
        let mut running = was_running;
        let unit_changed = old.as_ref().is_none_or(|o| o.unit != new.unit);
        let socket_changed = old.as_ref().is_none_or(|o| o.socket != new.socket);
        let host = &mut self.ctx.layer.host;
        if unit_changed || socket_changed {
            host.systemctl(Systemctl::DaemonReload, &svc)?;
        }
        if unit_changed {
            host.systemctl(Systemctl::Enable, &svc)?;
        }
        if socket_changed {
            // The service holds the old socket: it lets go first, then
            // systemd listens on the new port.
            if running {
                host.systemctl(Systemctl::Stop, &svc)?;
                running = false;
            }
            host.systemctl(Systemctl::Enable, &paths.socket)?;
            host.systemctl(Systemctl::Restart, &paths.socket)?;
        }
        let mut act = match &old {
            Some(o) if running => action(o, new),
            _ => Action::Restart,
        };
        if act == Action::Reload {
            // Graceful (no request refused) and quick: no maintenance status,
            // which would flicker on every proxy joining the website relation.
            if let Err(e) = self.ctx.layer.host.systemctl(Systemctl::Reload, &svc) {
                // A crashing master (systemd restarting it) went away since
                // its state was read: start it instead.
                if self.ctx.layer.host.service_state(&svc)?.active.is_running() {
                    return Err(e.into());
                }
                self.ctx
                    .layer
                    .juju
                    .log(&format!("{e:#}; starting it instead"));
                act = Action::Restart;
                running = false;
            }
        }
        match act {
            Action::Nothing | Action::Reload => {}
            Action::Restart => {
                self.status(Status::Maintenance, "restarting the service")?;
                let host = &mut self.ctx.layer.host;
                // A socket systemd gave up on (its service hit the start
                // limit) listens again first.
                if !socket_changed && !host.service_state(&paths.socket)?.active.is_running() {
                    if let Err(e) = host.systemctl(Systemctl::ResetFailed, &paths.socket) {
                        tracing::info!("{e:#}");
                    }
                    host.systemctl(Systemctl::Start, &paths.socket)?;
                }
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
        // Only a master that was serving can wrongly answer the check (one
        // still starting, left by a killed hook, is what the restart merges
        // into).
        self.mem.old_main_pid = (act == Action::Restart && was_running).then_some(state.main_pid);
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
fn provision_env(paths: &AppPaths, release: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("HOME".into(), paths.data_dir.display().to_string()),
        (
            "PATH".into(),
            format!(
                "{}/bin:/usr/bin:/bin",
                paths.release_venv(release).display()
            ),
        ),
        ("LANG".into(), "C.UTF-8".into()),
    ])
}

/// The health check: the service answers on its port and is the process
/// systemd runs (not an old master still answering after a restart).
/// None when healthy; else why, with the service's last log lines.
pub(crate) fn health_verdict(
    ctx: &mut Ctx<'_, LayerCtx>,
    mem: &mut LayerMemory,
    target: &HealthTarget,
    timeout_s: u32,
    paths: &AppPaths,
) -> anyhow::Result<Result<(), String>> {
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
    let Some(why) = failed else {
        return Ok(Ok(()));
    };
    let tail = ctx.layer.host.journal_tail(&svc, 5);
    let tail = tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    // The exception line first: it is the cause a status can name.
    Ok(Err(if tail.is_empty() {
        why
    } else {
        format!("{tail}; {why}")
    }))
}

/// Serving: the public flags and an active status (or waiting, for a
/// database).
pub(crate) fn report_serving(
    ctx: &mut Ctx<'_, LayerCtx>,
    mem: &mut LayerMemory,
    target: &HealthTarget,
) -> HandlerResult {
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
