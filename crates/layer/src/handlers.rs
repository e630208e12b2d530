//! The layer's handlers on the engine: install, the reconcile (see
//! [`crate::reconcile`]), update-status, teardown, and the helpers they
//! share for statuses and paths.

use machine::systemd::Systemctl;
use reactive::{Ctx, Engine, HandlerResult, PatternError};

use crate::config::layer_options::LayerOptions;
use crate::config::paths::{AppName, AppPaths};
use crate::flags::{ACTIVE, AVAILABLE, INSTALLED};
use crate::memory::LayerMemory;
use crate::relations::app_of;
use crate::seams::{LayerCtx, Status};

/// Registers the layer's handlers, in the order they run within a pass.
pub fn register(engine: &mut Engine<LayerCtx>) -> Result<(), PatternError> {
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
        .run(crate::reconcile::reconcile)?;
    crate::actions::register(engine)?;
    Ok(())
}

/// The layer options (layer.yaml in the charm directory; none is the
/// defaults) and the paths of this unit's application.
pub(crate) fn paths(ctx: &Ctx<'_, LayerCtx>) -> anyhow::Result<(LayerOptions, AppPaths)> {
    let juju = &ctx.layer.juju;
    let app = AppName::new(app_of(juju.unit_name()))?;
    let file = juju.charm_dir().join("layer.yaml");
    let layer = match std::fs::read_to_string(&file) {
        Ok(text) => LayerOptions::from_yaml(&text, &app)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LayerOptions::for_app(&app),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", file.display()))),
    };
    let paths = AppPaths::new(&layer.application_root, &app)?;
    Ok((layer, paths))
}

/// Sets the status, calling status-set only when it changed (the last one
/// is kept in the memory), so idle hooks make no call.
pub(crate) fn status(
    ctx: &mut Ctx<'_, LayerCtx>,
    mem: &mut LayerMemory,
    status: Status,
    message: &str,
) -> HandlerResult {
    let now = (status, message.to_owned());
    if mem.status.as_ref() != Some(&now) {
        let (line, cut) = short_status(message);
        if cut {
            ctx.layer.juju.log(&format!("{status}: {message}"));
        }
        ctx.layer.juju.status(status, &line)?;
        mem.status = Some(now);
    }
    Ok(())
}

/// The longest status message.
pub const MAX_STATUS: usize = 160;
const MORE: &str = "… (juju debug-log)";

/// A status message as one line of at most [`MAX_STATUS`] characters, and
/// whether it was cut (then the whole text goes to juju-log, and the line
/// says where to look).
pub fn short_status(message: &str) -> (String, bool) {
    let flat: String = message
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if flat.chars().count() <= MAX_STATUS && !message.contains('\n') {
        return (flat, false);
    }
    if flat.chars().count() <= MAX_STATUS {
        return (flat, true);
    }
    let keep = MAX_STATUS - MORE.chars().count();
    let head: String = flat.chars().take(keep).collect();
    (format!("{}{MORE}", head.trim_end()), true)
}

/// Not serving: the public flags go, the status says why.
pub(crate) fn unavailable(
    ctx: &mut Ctx<'_, LayerCtx>,
    mem: &mut LayerMemory,
    st: Status,
    message: &str,
) -> HandlerResult {
    ctx.clear_flag(AVAILABLE);
    ctx.clear_flag(ACTIVE);
    status(ctx, mem, st, message)
}

fn install(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let (layer, paths) = paths(ctx)?;
    let mut mem = LayerMemory::load(ctx)?;
    status(
        ctx,
        &mut mem,
        Status::Maintenance,
        "installing the app user",
    )?;
    // No apt step: the charm's uv makes venvs without python3-venv or pip
    // (installer=pip adds python3-venv to the packages it installs).
    let charm_dir = ctx.layer.juju.charm_dir().to_owned();
    mem.uv = ctx.layer.host.install_uv(&charm_dir)?;
    ctx.layer
        .host
        .ensure_user(&layer.username, &paths.app_dir)?;
    ctx.set_flag(INSTALLED);
    mem.save(ctx)?;
    Ok(())
}

/// update-status: one health request and one systemctl call, no hook tool
/// (none at all while nothing changes); a block the reconcile found stays.
fn update_status(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let mut mem = LayerMemory::load(ctx)?;
    if mem.held.is_some() {
        return Ok(());
    }
    let Some(target) = mem.health_target.clone() else {
        return Ok(()); // never served yet
    };
    let (_, paths) = paths(ctx)?;
    if let Some(view) = &mem.relations {
        crate::reconcile::register_secrets(view);
    }
    // No restart happened in this hook: do not compare MainPIDs.
    mem.old_main_pid = None;
    // A short deadline: this is a check, not a wait for a start.
    match crate::reconcile::health_verdict(ctx, &mut mem, &target, 2, &paths)? {
        Ok(()) => crate::reconcile::report_serving(ctx, &mut mem, &target)?,
        Err(why) => unavailable(
            ctx,
            &mut mem,
            Status::Blocked,
            &format!("health check failed: {why}"),
        )?,
    }
    mem.save(ctx)?;
    Ok(())
}

fn teardown(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let (_, paths) = paths(ctx)?;
    let mut mem = LayerMemory::load(ctx)?;
    let svc = paths.service.clone();
    let host = &mut ctx.layer.host;
    // Best effort for stop/disable: the unit may never have been written.
    if let Err(e) = host.systemctl(Systemctl::Stop, &svc) {
        tracing::info!("stopping {svc}: {e:#}");
    }
    if let Err(e) = host.systemctl(Systemctl::Disable, &svc) {
        tracing::info!("disabling {svc}: {e:#}");
    }
    for unit in [Systemctl::Stop, Systemctl::Disable] {
        if let Err(e) = host.systemctl(unit, &paths.socket) {
            tracing::info!("{} {}: {e:#}", unit.verb(), paths.socket);
        }
    }
    for f in [
        &paths.unit_file,
        &paths.socket_file,
        &paths.env_file,
        &paths.gunicorn_conf,
        &paths.logrotate,
    ] {
        host.remove_file(f)?;
    }
    host.systemctl(Systemctl::DaemonReload, &svc)?;
    if let Some(port) = mem.port.take() {
        ctx.layer.juju.close_port(port)?;
    }
    mem.hashes = None;
    mem.status = None;
    mem.health_target = None;
    ctx.clear_flag(AVAILABLE);
    ctx.clear_flag(ACTIVE);
    mem.save(ctx)?;
    Ok(())
}
