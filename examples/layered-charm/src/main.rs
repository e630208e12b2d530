//! `layered-agent`: a charm built on the WSGI layer the way a charm author
//! builds on layer:wsgi. It registers the layer's handlers (through the
//! layer's runtime) and two of its own:
//!
//! - `layered.place-code`: the app is not a resource here, it ships inside
//!   the charm (`app/`); the handler copies it into the layer's source
//!   directory and sets `wsgi.source.available`, which is what the layer
//!   waits for (it builds a release from that directory, as from a resource);
//! - `layered.announce`: when the layer sets `wsgi.available`, records it
//!   (a file under /var/lib/layered-charm and a juju-log line).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use reactive::{Ctx, Engine, HandlerResult, PatternError};
use wsgi_layer::LayerCtx;
use wsgi_layer::flags::{AVAILABLE, SOURCE};

/// Set once the charm has announced that the app serves.
const ANNOUNCED: &str = "layered.announced";
/// Where the announcement goes.
const MARKER: &str = "/var/lib/layered-charm/available";

fn main() -> ExitCode {
    wsgi_layer::runtime::run_hook(&register)
}

fn register(engine: &mut Engine<LayerCtx>) -> Result<(), PatternError> {
    engine
        .handler("layered.place-code")
        .when_not(&[SOURCE])
        .run(place_code)?;
    engine
        .handler("layered.announce")
        .when_all(&[AVAILABLE])
        .when_not(&[ANNOUNCED])
        .run(announce)?;
    Ok(())
}

/// Copies the charm's `app/` into `<application_root>/<app>/source`, then
/// tells the layer the code is there.
fn place_code(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let charm_dir = ctx.layer.juju.charm_dir().to_owned();
    let app = wsgi_layer::relations::app_of(ctx.layer.juju.unit_name()).to_owned();
    let layer_yaml =
        std::fs::read_to_string(charm_dir.join("layer.yaml")).context("reading layer.yaml")?;
    let app_name = wsgi_layer::config::paths::AppName::new(&app)?;
    let options =
        wsgi_layer::config::layer_options::LayerOptions::from_yaml(&layer_yaml, &app_name)?;
    let paths = wsgi_layer::config::paths::AppPaths::new(&options.application_root, &app_name)?;
    copy_dir(&charm_dir.join("app"), &paths.source_dir)?;
    ctx.set_flag(SOURCE);
    Ok(())
}

fn announce(ctx: &mut Ctx<'_, LayerCtx>) -> HandlerResult {
    let marker = Path::new(MARKER);
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(
        marker,
        format!("{} in hook {}\n", ctx.layer.juju.unit_name(), ctx.hook()),
    )
    .with_context(|| format!("writing {MARKER}"))?;
    ctx.layer
        .juju
        .log("layered: wsgi.available is set, the app serves");
    ctx.set_flag(ANNOUNCED);
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
