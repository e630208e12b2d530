//! The layer's actions (actions.yaml): `list-releases` and `rollback`.
//!
//! A rollback serves an older release through the same reconcile as any
//! hook (files, switch, reload or restart, health check), and pins it while
//! the newer source stays attached; attaching another source ends the pin.
//! It does not undo migrations, and says so.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use machine::release::Health;
use reactive::{Ctx, Engine, HandlerResult, PatternError};
use serde_json::Value;

use crate::handlers::paths;
use crate::memory::{LayerMemory, Pin};
use crate::reconcile::{Reconcile, finish};
use crate::seams::LayerCtx;

/// Registers the action handlers.
pub fn register(engine: &mut Engine<LayerCtx>) -> Result<(), PatternError> {
    engine
        .handler("wsgi.action.list-releases")
        .hooks(&["actions/list-releases"])
        .run(list_releases)?;
    engine
        .handler("wsgi.action.rollback")
        .hooks(&["actions/rollback"])
        .run(rollback)?;
    Ok(())
}

fn when(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn list_releases(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let (_, paths) = paths(ctx)?;
    let store = ctx.layer.host.store(&paths.app_dir);
    let live = store.live();
    let mut results = BTreeMap::new();
    for r in store.list()? {
        let key = format!("releases.{}", r.id);
        results.insert(format!("{key}.created"), when(r.created));
        results.insert(format!("{key}.resource"), r.source.clone());
        results.insert(format!("{key}.requirements"), r.requirements.clone());
        results.insert(format!("{key}.health"), r.health.describe());
        results.insert(format!("{key}.live"), (Some(r.id) == live).to_string());
    }
    results.insert(
        "live".into(),
        live.map_or_else(|| "none".to_owned(), |id| id.to_string()),
    );
    ctx.layer.juju.action_set(&results)
}

fn rollback(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let params = ctx.layer.juju.action_params()?;
    // A number (`to=3` reads as one) or a word.
    let to = match params.get("to") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "previous".to_owned(),
    };
    let (_, paths) = paths(ctx)?;
    let store = ctx.layer.host.store(&paths.app_dir);
    let live = store.live();
    let releases = store.list()?;
    let target = if to == "previous" {
        let Some(live) = live else {
            return ctx.layer.juju.action_fail("no release serves yet");
        };
        releases
            .iter()
            .rev()
            .find(|r| r.id < live && matches!(r.health, Health::Passed { .. }))
    } else {
        match to.parse::<u32>() {
            Ok(id) => releases.iter().find(|r| r.id == id),
            Err(_) => {
                return ctx
                    .layer
                    .juju
                    .action_fail(&format!("to={to:?}: not a release number or \"previous\""));
            }
        }
    };
    let Some(target) = target.cloned() else {
        let kept: Vec<String> = releases.iter().map(|r| r.id.to_string()).collect();
        return ctx.layer.juju.action_fail(&format!(
            "no release {to} to roll back to (kept: {})",
            if kept.is_empty() {
                "none".into()
            } else {
                kept.join(", ")
            }
        ));
    };
    if Some(target.id) == live {
        return ctx.layer.juju.action_set(&BTreeMap::from([(
            "result".into(),
            format!("release {} already serves", target.id),
        )]));
    }
    ctx.layer
        .juju
        .action_log(&format!("switching to release {}", target.id))?;
    let mut mem = LayerMemory::load(ctx)?;
    mem.pinned = Some(Pin {
        release: target.id,
        over_source: mem.release.clone(),
    });
    let mut run = Reconcile {
        ctx: &mut *ctx,
        mem: &mut mem,
        forced: Some(target.id),
        forced_failed: None,
    };
    let outcome = run.run();
    let failed = run.forced_failed.take();
    let ok = matches!(outcome, Ok(()) | Err(crate::reconcile::Stop::Serving(_)));
    finish(ctx, &mut mem, outcome)?;
    mem.save(ctx)?;
    if let Some(why) = failed {
        return ctx.layer.juju.action_fail(&why);
    }
    if !ok {
        let st = mem.status.clone().map(|(_, m)| m).unwrap_or_default();
        return ctx
            .layer
            .juju
            .action_fail(&format!("release {}: {st}", target.id));
    }
    ctx.layer.juju.action_set(&BTreeMap::from([
        ("rolled-back-to".into(), target.id.to_string()),
        (
            "from".into(),
            live.map_or_else(|| "none".into(), |l| l.to_string()),
        ),
        (
            "note".into(),
            "migrations are not undone: the database stays as the newer release left it".into(),
        ),
    ]))
}
