//! The layer's handlers: a reconcile from config, source and relation data
//! to a healthy gunicorn, doing only the work whose inputs changed and
//! picking the least disruptive action (nothing, reload, restart).
//!
//! Public flags (layer:wsgi's contract): an including charm sets
//! `wsgi.source.available` when its code is in place; the layer sets
//! `wsgi.available` and `wsgi.active` while the service answers its health
//! check. Internal: `wsgi.installed` (user and base packages done).

use std::collections::BTreeMap;

use crate::reactive::{Ctx, Engine, HandlerError, PatternError};

use super::config::Config;
use super::desired::{Action, DesiredState, Hashes, RelationInputs, action};
use super::layer_options::LayerOptions;
use super::model::{LayerCtx, Status};
use super::paths::{AppName, AppPaths};
use super::relations::{self, RelationView};

const INSTALLED: &str = "wsgi.installed";
const SOURCE: &str = "wsgi.source.available";
const AVAILABLE: &str = "wsgi.available";
const ACTIVE: &str = "wsgi.active";

/// Packages every app needs: venvs of the system Python.
const BASE_PACKAGES: &[&str] = &["python3-venv"];

type Result = std::result::Result<(), HandlerError>;

/// Registers the layer's handlers.
pub fn register(engine: &mut Engine<LayerCtx>) -> std::result::Result<(), PatternError> {
    engine
        .handler("wsgi.teardown")
        .hooks(&["stop", "remove"])
        .run(teardown)?;
    engine
        .handler("wsgi.reinstall")
        .hooks(&["upgrade-charm"])
        .run(|ctx| {
            ctx.clear_flag(INSTALLED);
            Ok(())
        })?;
    engine
        .handler("wsgi.update-status")
        .hooks(&["update-status"])
        .run(update_status)?;
    engine
        .handler("wsgi.install")
        .when_not(&[INSTALLED])
        .run(install)?;
    engine
        .handler("wsgi.reconcile")
        .when_all(&[INSTALLED])
        .run(reconcile)?;
    Ok(())
}

/// The app name, layer options and paths of this unit.
fn paths(ctx: &Ctx<'_, LayerCtx>) -> std::result::Result<(LayerOptions, AppPaths), HandlerError> {
    let juju = &ctx.layer.juju;
    let layer = match std::fs::read_to_string(juju.charm_dir().join("layer.yaml")) {
        Ok(text) => LayerOptions::from_yaml(&text)?,
        Err(_) => LayerOptions::default(),
    };
    let unit = juju.unit_name();
    let app = AppName::new(unit.split('/').next().unwrap_or(unit))?;
    let paths = AppPaths::new(&layer.application_root, &app)?;
    Ok((layer, paths))
}

/// Sets the status, calling status-set only when it changed (the last one
/// is kept in the state), so idle hooks make no call.
fn status(ctx: &mut Ctx<'_, LayerCtx>, status: Status, message: &str) -> Result {
    let now = (status, message.to_owned());
    if ctx.stored::<(Status, String)>("status").as_ref() != Some(&now) {
        ctx.layer.juju.status(status, message)?;
        ctx.store("status", &now)?;
    }
    Ok(())
}

/// A block found by the reconcile (bad config, resource, requirements,
/// port, files, provision): kept until a reconcile gets past it, so that
/// update-status, which only checks health, does not cover it with "active"
/// while the old service still answers.
fn hold(ctx: &mut Ctx<'_, LayerCtx>, st: Status, message: &str) -> Result {
    ctx.store("held", &(st, message.to_owned()))?;
    unavailable(ctx, st, message)
}

fn unavailable(ctx: &mut Ctx<'_, LayerCtx>, st: Status, message: &str) -> Result {
    ctx.clear_flag(AVAILABLE);
    ctx.clear_flag(ACTIVE);
    status(ctx, st, message)
}

fn install(ctx: &mut Ctx<'_, LayerCtx>) -> Result {
    let (layer, paths) = paths(ctx)?;
    status(
        ctx,
        Status::Maintenance,
        "installing system packages and the app user",
    )?;
    let base: Vec<String> = BASE_PACKAGES.iter().map(|s| (*s).to_owned()).collect();
    ctx.layer.host.apt_install(&base)?;
    ctx.layer
        .host
        .ensure_user(&layer.username, &paths.app_dir)?;
    ctx.set_flag(INSTALLED);
    Ok(())
}

fn reconcile(ctx: &mut Ctx<'_, LayerCtx>) -> Result {
    // update-status only checks health (and retries a database that did
    // not answer yet); stop/remove tear down.
    let retry = ctx.hook() == "update-status" && ctx.stored::<String>("db-waiting").is_some();
    if matches!(ctx.hook(), "update-status" | "stop" | "remove") && !retry {
        return Ok(());
    }
    let (layer, paths) = paths(ctx)?;
    let cpus = ctx.layer.host.cpus();
    let config = match Config::from_json(&serde_json::Value::Object(ctx.layer.juju.config()?), cpus)
    {
        Ok(c) => c,
        Err(errors) => return hold(ctx, Status::Blocked, &format!("bad config: {errors}")),
    };

    // Source: the app resource, or code an including charm put in place.
    // resource-get only where a new revision can have arrived (attaching a
    // resource fires upgrade-charm) or when no release exists yet.
    let stored: Option<String> = ctx.stored("release");
    let look = stored.is_none() || matches!(ctx.hook(), "install" | "upgrade-charm");
    // A bad archive stays reported until another one is attached (the
    // hooks in between do not look at the resource again).
    if !look && let Some(msg) = ctx.stored::<String>("resource-error") {
        return hold(ctx, Status::Blocked, &msg);
    }
    let release = match (look, stored) {
        (false, Some(release)) => release,
        (_, stored) => match ctx.layer.juju.resource("app")? {
            Some(archive) => {
                let meta = std::fs::metadata(&archive).ok();
                let identity = (
                    &archive,
                    meta.as_ref().map(|m| (m.len(), m.modified().ok())),
                );
                match stored {
                    Some(release) if !ctx.data_changed("resource", &identity)? => release,
                    _ => {
                        status(ctx, Status::Maintenance, "unpacking the app resource")?;
                        let host = &mut ctx.layer.host;
                        match host.unpack_release(&archive, &paths.releases_dir, &paths.current) {
                            Ok(id) => {
                                ctx.unstore("resource-error");
                                // Remember what was unpacked, so the next
                                // upgrade-charm with the same file is a no-op.
                                ctx.data_changed("resource", &identity)?;
                                ctx.set_flag(SOURCE);
                                ctx.store("release", &id)?;
                                id
                            }
                            Err(e) => {
                                ctx.forget_data("resource");
                                let msg = format!("app resource: {e}");
                                ctx.store("resource-error", &msg)?;
                                return hold(ctx, Status::Blocked, &msg);
                            }
                        }
                    }
                }
            }
            None if ctx.is_set(SOURCE) => "layer".to_owned(),
            None => {
                return hold(
                    ctx,
                    Status::Blocked,
                    "attach the app resource: juju attach-resource <app> app=app.tar.gz",
                );
            }
        },
    };
    if ctx.data_changed("app-version", &release)? {
        ctx.layer.juju.app_version(&release)?;
    }

    if !config.apt_dependencies.is_empty() && ctx.data_changed("apt", &config.apt_dependencies)? {
        status(ctx, Status::Maintenance, "installing apt_dependencies")?;
        if let Err(e) = ctx.layer.host.apt_install(&config.apt_dependencies) {
            ctx.forget_data("apt");
            return hold(ctx, Status::Blocked, &format!("apt_dependencies: {e}"));
        }
    }

    // Relations: read only where this hook can have changed them.
    let first = ctx.stored::<RelationView>("relations").is_none();
    let mut view: RelationView = ctx.stored("relations").unwrap_or_default();
    relations::refresh(
        ctx.layer.juju.as_ref(),
        ctx.hook(),
        &config,
        config.port,
        &mut view,
        first,
    )?;
    ctx.store("relations", &view)?;
    let inputs = RelationInputs {
        env: view.env(),
        proxies: view.proxy_ips(),
    };

    // A new database URL must connect and authenticate before the app is
    // switched to it; until then the app keeps what it has.
    if let Some(why) = unchecked_database(ctx, &inputs.env)? {
        return status(ctx, Status::Waiting, &why);
    }

    let wheels = config.pip_cache_path(&paths.current);
    if ctx.data_changed("venv-request", &(&release, &wheels))? {
        status(
            ctx,
            Status::Maintenance,
            "installing the app's requirements",
        )?;
    }
    let venv_inputs =
        match ctx
            .layer
            .host
            .ensure_venv(&paths.venv, &paths.current, wheels.as_deref())
        {
            Ok(v) => v,
            Err(e) => {
                ctx.forget_data("venv-request");
                return hold(
                    ctx,
                    Status::Blocked,
                    &format!("installing requirements failed: {e}"),
                );
            }
        };

    let desired =
        match DesiredState::render(&config, &layer, &paths, &inputs, &venv_inputs, &release) {
            Ok(d) => d,
            Err(e) => {
                return hold(
                    ctx,
                    Status::Blocked,
                    &format!("cannot render the service: {e}"),
                );
            }
        };
    // A port held by another process: say so instead of a service that
    // cannot bind (and a health check another server might answer).
    let moving = ctx.stored::<u16>("port") != Some(config.port);
    if moving && !port_is_ours_or_free(ctx, &paths.service, config.port)? {
        return hold(
            ctx,
            Status::Blocked,
            &format!(
                "port {} is in use by another process: stop it or choose another port",
                config.port
            ),
        );
    }
    // A file that cannot be written (disk full) leaves the old one whole
    // (atomic writes) and the service as it was; retried on the next hook.
    if let Err(e) = write_files(ctx, &config, &layer, &paths, &desired) {
        return hold(
            ctx,
            Status::Blocked,
            &format!("cannot write the service files: {e}"),
        );
    }

    // Migrations before the new code or database serves requests.
    let env = super::envfile::merge(&config.environment_variables, &inputs.env);
    if !config.provision_command.is_empty() {
        let key = (&release, env.get("DATABASE_URL"), &config.provision_command);
        if ctx.data_changed("provision", &key)? {
            status(ctx, Status::Maintenance, "running provision_command")?;
            if let Err(e) = ctx.layer.host.provision(
                &config.provision_command,
                &layer.username,
                &paths.current,
                &provision_env(&env, &paths),
                config.provision_timeout,
            ) {
                // Retried on the next hook.
                ctx.forget_data("provision");
                return hold(
                    ctx,
                    Status::Blocked,
                    &format!("provision_command failed: {e}"),
                );
            }
        }
    }

    apply(ctx, &paths, &desired.hashes)?;
    ports(ctx, config.port)?;
    ctx.unstore("held");
    let target = HealthTarget {
        port: config.port,
        path: config.health_check_path.clone(),
        serving: format!(
            "Serving {} on :{}, {} workers",
            config.wsgi_module, config.port, config.workers
        ),
    };
    if ctx.stored::<HealthTarget>("health-target").as_ref() != Some(&target) {
        ctx.store("health-target", &target)?;
    }
    health(ctx, &target, config.health_check_timeout, &paths, &view)
}

/// What update-status checks, kept from the last reconcile so that it needs
/// no config-get (a config change always comes with config-changed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct HealthTarget {
    port: u16,
    path: String,
    /// The active status message.
    serving: String,
}

/// Checks the database URLs the relations now give that were not checked
/// before (only digests are kept); returns why one is not usable yet.
fn unchecked_database(
    ctx: &mut Ctx<'_, LayerCtx>,
    env: &BTreeMap<String, String>,
) -> std::result::Result<Option<String>, HandlerError> {
    let known: Vec<String> = ctx.stored("db-checked").unwrap_or_default();
    let mut passed = Vec::new();
    for key in ["DATABASE_URL", "MONGO_URL"] {
        let Some(url) = env.get(key) else { continue };
        let digest = super::desired::digest(url.as_bytes());
        if !known.contains(&digest)
            && let Err(e) = ctx.layer.host.check_database(url)
        {
            let why = format!("waiting for the database ({key}): {e}");
            ctx.store("db-waiting", &why)?;
            return Ok(Some(why));
        }
        passed.push(digest);
    }
    passed.dedup();
    ctx.unstore("db-waiting");
    if passed != known {
        ctx.store("db-checked", &passed)?;
    }
    Ok(None)
}

/// Whether nothing listens on `port`, or our own service does (a hook
/// killed after the move, before its state was committed).
fn port_is_ours_or_free(
    ctx: &mut Ctx<'_, LayerCtx>,
    service: &str,
    port: u16,
) -> std::result::Result<bool, HandlerError> {
    let Some(holder) = ctx.layer.host.port_holder(port) else {
        return Ok(true);
    };
    let main = ctx.layer.host.service_state(service)?.main_pid;
    Ok(main != 0 && holder == main)
}

fn provision_env(env: &BTreeMap<String, String>, paths: &AppPaths) -> BTreeMap<String, String> {
    let mut env = env.clone();
    env.insert("HOME".into(), paths.app_dir.display().to_string());
    env.insert(
        "PATH".into(),
        format!("{}/bin:/usr/bin:/bin", paths.venv.display()),
    );
    env.insert("LANG".into(), "C.UTF-8".into());
    env
}

fn write_files(
    ctx: &mut Ctx<'_, LayerCtx>,
    config: &Config,
    layer: &LayerOptions,
    paths: &AppPaths,
    desired: &DesiredState,
) -> Result {
    let host = &mut ctx.layer.host;
    if let Some(log) = &config.wsgi_logfile_path {
        host.ensure_log_file(log, &layer.username)?;
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
    match (&desired.logrotate, config.wsgi_logfile_path.is_some()) {
        (Some(text), true) => {
            host.write_file(&paths.logrotate, text, 0o644, None)?;
        }
        _ => host.remove_file(&paths.logrotate)?,
    }
    Ok(())
}

/// Starts, reloads or restarts the service as the hashes say.
fn apply(ctx: &mut Ctx<'_, LayerCtx>, paths: &AppPaths, new: &Hashes) -> Result {
    let old: Option<Hashes> = ctx.stored("hashes");
    let svc = paths.service.clone();
    let state = ctx.layer.host.service_state(&svc)?;
    let running = state.active_state == "active" || state.active_state == "reloading";
    let unit_changed = old.as_ref().is_none_or(|o| o.unit != new.unit);
    if unit_changed {
        ctx.layer.host.systemctl("daemon-reload", &svc)?;
        ctx.layer.host.systemctl("enable", &svc)?;
    }
    let act = match &old {
        _ if !running => Action::Restart,
        None => Action::Restart,
        Some(o) => action(o, new),
    };
    match act {
        Action::Nothing => {}
        Action::Reload => {
            // Graceful (no request refused) and quick: no maintenance status,
            // which would flicker on every proxy joining the website relation.
            ctx.layer.host.systemctl("reload", &svc)?;
        }
        Action::Restart => {
            status(ctx, Status::Maintenance, "restarting the service")?;
            let verb = if running { "restart" } else { "start" };
            if state.active_state == "failed" {
                // After repeated crashes systemd refuses to start the unit
                // (start limit) until its failed state is reset.
                let _ = ctx.layer.host.systemctl("reset-failed", &svc);
            }
            // A service that will not start (the app fails at import) is a
            // state to report, not a failed hook: the health check below
            // finds it down and blocks with its log; the next hook retries.
            if let Err(e) = ctx.layer.host.systemctl(verb, &svc) {
                ctx.layer.juju.log(&format!("{e}"));
            }
        }
    }
    ctx.store(
        "old-main-pid",
        &(act == Action::Restart && running).then_some(state.main_pid),
    )?;
    ctx.store("hashes", new)?;
    Ok(())
}

/// Opens the configured port and closes the one opened before, if different.
fn ports(ctx: &mut Ctx<'_, LayerCtx>, port: u16) -> Result {
    let old: Option<u16> = ctx.stored("port");
    if old != Some(port) {
        ctx.layer.juju.open_port(port)?;
        if let Some(o) = old {
            ctx.layer.juju.close_port(o)?;
        }
        ctx.store("port", &port)?;
    }
    Ok(())
}

fn health(
    ctx: &mut Ctx<'_, LayerCtx>,
    target: &HealthTarget,
    timeout_s: u32,
    paths: &AppPaths,
    view: &RelationView,
) -> Result {
    let svc = paths.service.clone();
    let answer = ctx.layer.host.health(target.port, &target.path, timeout_s);
    let state = ctx.layer.host.service_state(&svc)?;
    let old_pid: Option<u32> = ctx.stored::<Option<u32>>("old-main-pid").flatten();
    let failed = match &answer {
        Err(e) => Some(e.to_string()),
        Ok(_) if state.active_state != "active" => {
            Some(format!("service is {}", state.active_state))
        }
        // An old master still answering after a restart would be a false positive.
        Ok(_) if old_pid.is_some_and(|p| p == state.main_pid) => {
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
            Status::Blocked,
            &format!("health check failed: {why}; log: {tail}"),
        );
    }
    ctx.set_flag(AVAILABLE);
    ctx.set_flag(ACTIVE);
    if let Some(w) = view.waiting.first() {
        return status(ctx, Status::Waiting, w);
    }
    if let Some(w) = ctx.stored::<String>("db-waiting") {
        return status(ctx, Status::Waiting, &w);
    }
    status(ctx, Status::Active, &target.serving)
}

/// update-status: one health request and one systemctl call, no hook tool
/// (none at all while nothing changes); a block the reconcile found stays.
fn update_status(ctx: &mut Ctx<'_, LayerCtx>) -> Result {
    if ctx.stored::<(Status, String)>("held").is_some() {
        return Ok(());
    }
    let Some(target) = ctx.stored::<HealthTarget>("health-target") else {
        return Ok(()); // never served yet
    };
    let (_, paths) = paths(ctx)?;
    let view: RelationView = ctx.stored("relations").unwrap_or_default();
    // No restart happened in this hook: do not compare MainPIDs.
    if ctx
        .stored::<Option<u32>>("old-main-pid")
        .flatten()
        .is_some()
    {
        ctx.store("old-main-pid", &None::<u32>)?;
    }
    // A short deadline: this is a check, not a wait for a start.
    health(ctx, &target, 2, &paths, &view)
}

fn teardown(ctx: &mut Ctx<'_, LayerCtx>) -> Result {
    let (_, paths) = paths(ctx)?;
    let svc = paths.service.clone();
    let host = &mut ctx.layer.host;
    // Best effort for stop/disable: the unit may never have been written.
    let _ = host.systemctl("stop", &svc);
    let _ = host.systemctl("disable", &svc);
    for f in [
        &paths.unit_file,
        &paths.env_file,
        &paths.gunicorn_conf,
        &paths.logrotate,
    ] {
        host.remove_file(f)?;
    }
    host.systemctl("daemon-reload", &svc)?;
    if let Some(port) = ctx.stored::<u16>("port") {
        ctx.layer.juju.close_port(port)?;
        ctx.unstore("port");
    }
    ctx.unstore("hashes");
    ctx.unstore("status");
    ctx.unstore("health-target");
    ctx.clear_flag(AVAILABLE);
    ctx.clear_flag(ACTIVE);
    Ok(())
}
