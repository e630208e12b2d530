//! The `jujulet` command line; also every hook tool (by argv[0]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use jujulet::machine::{self, MachineKind};
use jujulet::model::charm::Metadata;
use jujulet::model::config::Schema;
use jujulet::model::{Model, Status};
use jujulet::place::{self, Paths};
use jujulet::scheduler::{RealStandIns, Scheduler, StandIns};
use jujulet::standin;

/// println! that ends the process quietly when the reader has gone away
/// (`jujulet status | head`) instead of panicking on a broken pipe.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[derive(Parser)]
#[command(
    name = "jujulet",
    about = "A local Juju: one model, one unit, real hooks"
)]
struct Cli {
    /// The model directory (default: $JUJULET_MODEL, else ./.jujulet).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a machine, place the charm and run install, leader-elected, config-changed, start.
    Deploy {
        charm_dir: PathBuf,
        /// The hook binary, installed as bin/wsgi-agent in the charm (with the
        /// wsgi-dbcheck beside it, if there is one).
        #[arg(long)]
        agent: Option<PathBuf>,
        /// A resource, NAME=PATH (e.g. app=./app.tar.gz).
        #[arg(long)]
        resource: Vec<String>,
        /// A config value, KEY=VALUE.
        #[arg(long)]
        config: Vec<String>,
        #[arg(long, default_value = "nspawn")]
        machine: MachineKind,
        /// The application name (default: the charm's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Set (KEY=VALUE) or reset config; without arguments print it.
    Config {
        settings: Vec<String>,
        #[arg(long)]
        reset: Vec<String>,
    },
    /// Relate ENDPOINT to a stand-in (postgresql, mongodb, haproxy).
    Relate {
        endpoint: String,
        stand_in: String,
        #[arg(long, default_value_t = 1)]
        units: usize,
        /// PostgreSQL: passwords full of URL-hostile characters.
        #[arg(long)]
        hostile_password: bool,
    },
    /// Remove the relation on ENDPOINT (departed, broken).
    Unrelate { endpoint: String },
    /// Run one hook, e.g. update-status.
    Run { hook: String },
    /// Retry the failed hook and carry on.
    Resolve,
    /// The unit, its statuses, ports and relations.
    Status,
    /// Hook output and juju-log lines.
    DebugLog {
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Stop the stand-ins, destroy the machine, remove the model state.
    Destroy,
    /// Attach a new revision of a resource (NAME=PATH); as in Juju, this
    /// runs upgrade-charm (then config-changed).
    AttachResource { resource: String },
    /// Run a command inside the machine as root and print its output
    /// (like `juju exec`); exits with the command's exit code.
    Exec {
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Re-place the charm (and agent), run upgrade-charm and config-changed.
    Upgrade {
        #[arg(long)]
        agent: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    if let Some(code) = jujulet::tools::main_if_tool() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    let model_dir = model_dir(cli.model)?;
    let started = Instant::now();
    let progress = move |m: &str| eprintln!("[{:>4}s] {m}", started.elapsed().as_secs());
    match cli.command {
        Command::Deploy {
            charm_dir,
            agent,
            resource,
            config,
            machine,
            name,
        } => deploy(
            &model_dir,
            &charm_dir,
            agent.as_deref(),
            &resource,
            &config,
            machine,
            name,
            &progress,
        ),
        Command::Config { settings, reset } => {
            let (mut model, m) = open(&model_dir)?;
            if settings.is_empty() && reset.is_empty() {
                let schema = Schema::read(
                    &Paths::new(m.as_ref()).host(&place::charm_dir(&model.unit_tag())),
                )?;
                for (k, v) in schema.effective(&model.config) {
                    out!("{k}: {v}");
                }
                return Ok(());
            }
            let standins = RealStandIns {
                model_dir: model_dir.clone(),
            };
            let s = Scheduler::new(&model_dir, m.as_ref(), &standins, &progress);
            if !s.config(&mut model, &settings, &reset)? {
                eprintln!("no value changed; config-changed not run");
            }
            Ok(())
        }
        Command::Relate {
            endpoint,
            stand_in,
            units,
            hostile_password,
        } => {
            let (mut model, m) = open(&model_dir)?;
            if !standin::KINDS.contains(&stand_in.as_str()) {
                bail!(
                    "unknown stand-in {stand_in:?}; use one of {}",
                    standin::KINDS.join(", ")
                );
            }
            if stand_in == "postgresql" {
                check_traversable(&model_dir)?;
            }
            standin::preflight(&stand_in)?;
            let standins = RealStandIns {
                model_dir: model_dir.clone(),
            };
            let s = Scheduler::new(&model_dir, m.as_ref(), &standins, &progress);
            let id = s.relate(&mut model, &endpoint, &stand_in, units, hostile_password)?;
            progress(&format!("related {endpoint}:{id} to {stand_in}"));
            Ok(())
        }
        Command::Unrelate { endpoint } => with_scheduler(&model_dir, &progress, |s, model| {
            s.unrelate(model, &endpoint).map_err(Into::into)
        }),
        Command::Run { hook } => with_scheduler(&model_dir, &progress, |s, model| {
            s.run_hook_named(model, &hook).map_err(Into::into)
        }),
        Command::Resolve => with_scheduler(&model_dir, &progress, |s, model| {
            s.resolve(model).map_err(Into::into)
        }),
        Command::Status => status(&model_dir),
        Command::DebugLog { tail } => {
            let path = model_dir.join("debug.log");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
            for l in &lines[from..] {
                out!("{l}");
            }
            Ok(())
        }
        Command::Destroy => destroy(&model_dir, &progress),
        Command::AttachResource { resource } => {
            let (mut model, m) = open(&model_dir)?;
            let (name, path) = resource
                .split_once('=')
                .with_context(|| format!("{resource:?}: expected NAME=PATH"))?;
            let path =
                std::fs::canonicalize(path).with_context(|| format!("resource {name}: {path}"))?;
            if !path.is_file() {
                bail!("resource {name}: {} is not a file", path.display());
            }
            let paths = Paths::new(m.as_ref());
            progress(&format!("attaching {name} from {}", path.display()));
            place::place_resource(&paths, &model.unit_tag(), name, &path)?;
            model.resources.insert(name.to_owned(), path);
            model.save(&model_dir)?;
            let standins = RealStandIns {
                model_dir: model_dir.clone(),
            };
            let s = Scheduler::new(&model_dir, m.as_ref(), &standins, &progress);
            s.upgrade(&mut model)?;
            Ok(())
        }
        Command::Exec { command } => {
            let (_, m) = open(&model_dir)?;
            let env = [
                (
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ),
                ("HOME", "/root"),
                ("LANG", "C.UTF-8"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
            let out = m
                .exec(&command, &env, std::path::Path::new("/"))
                .with_context(|| format!("running {command:?} in the machine"))?;
            use std::io::Write;
            std::io::stdout().write_all(&out.stdout)?;
            std::io::stderr().write_all(&out.stderr)?;
            std::process::exit(out.status.code().unwrap_or(1));
        }
        Command::Upgrade { agent } => {
            let (mut model, m) = open(&model_dir)?;
            let paths = Paths::new(m.as_ref());
            progress("placing the charm again");
            place::place_charm(
                &paths,
                &model.unit_tag(),
                &model.charm_dir,
                agent.as_deref(),
            )?;
            place::place_tools(&paths, &model.unit_tag(), &current_exe()?)?;
            let standins = RealStandIns {
                model_dir: model_dir.clone(),
            };
            let s = Scheduler::new(&model_dir, m.as_ref(), &standins, &progress);
            s.upgrade(&mut model)?;
            Ok(())
        }
    }
}

/// `--model`, else $JUJULET_MODEL, else ./.jujulet; made absolute.
fn model_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    let dir = flag
        .or_else(|| std::env::var_os("JUJULET_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".jujulet"));
    Ok(if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .context("finding the current directory")?
            .join(dir)
    })
}

/// The PostgreSQL stand-in runs as the postgres user, which must be able to
/// reach its data dir under the model dir.
fn check_traversable(model_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in model_dir.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o001 == 0
        {
            bail!(
                "{} is not traversable by other users (mode {:o}), and the PostgreSQL stand-in runs as \
                 the postgres user under the model dir {}; put the model under /tmp (e.g. \
                 --model /tmp/jujulet-model) or chmod o+x {}",
                dir.display(),
                meta.permissions().mode() & 0o777,
                model_dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

fn current_exe() -> Result<PathBuf> {
    std::env::current_exe().context("finding the jujulet binary (to install it as the hook tools)")
}

fn open(model_dir: &Path) -> Result<(Model, Box<dyn machine::Machine>)> {
    let model = Model::load(model_dir)?;
    let m = machine::attach(model_dir)?;
    Ok((model, m))
}

fn with_scheduler(
    model_dir: &Path,
    progress: &dyn Fn(&str),
    f: impl FnOnce(&Scheduler<'_>, &mut Model) -> Result<()>,
) -> Result<()> {
    let (mut model, m) = open(model_dir)?;
    let standins = RealStandIns {
        model_dir: model_dir.to_owned(),
    };
    let s = Scheduler::new(model_dir, m.as_ref(), &standins, progress);
    f(&s, &mut model)
}

#[allow(clippy::too_many_arguments)]
fn deploy(
    model_dir: &Path,
    charm_dir: &Path,
    agent: Option<&Path>,
    resources: &[String],
    config: &[String],
    kind: MachineKind,
    name: Option<String>,
    progress: &dyn Fn(&str),
) -> Result<()> {
    if Model::exists(model_dir) {
        bail!(
            "a model is already deployed in {}; run `jujulet destroy` first (or use --model DIR)",
            model_dir.display()
        );
    }
    let charm_dir = charm_dir
        .canonicalize()
        .with_context(|| format!("charm dir {}", charm_dir.display()))?;
    let meta = Metadata::read(&charm_dir)?;
    let app = name.unwrap_or(meta.name.clone());
    // Check everything the user typed before booting anything.
    let schema = Schema::read(&charm_dir)?;
    let mut model = Model::new(&app, &charm_dir, kind);
    for arg in config {
        let (k, v) = schema.parse_assignment(arg)?;
        model.config.insert(k, v);
    }
    let mut res = Vec::new();
    for r in resources {
        let (name, path) = r
            .split_once('=')
            .with_context(|| format!("--resource {r:?}: expected NAME=PATH"))?;
        let path = Path::new(path)
            .canonicalize()
            .with_context(|| format!("resource {name}: {path}"))?;
        if !path.is_file() {
            bail!("resource {name}: {} is not a file", path.display());
        }
        res.push((name.to_owned(), path));
    }
    if let Some(a) = agent
        && !a.is_file()
    {
        bail!(
            "--agent {}: no such file (build it with `cargo build --release -p agent -p dbcheck`)",
            a.display()
        );
    }
    machine::preflight(kind)?;
    std::fs::create_dir_all(model_dir)
        .with_context(|| format!("creating the model dir {}", model_dir.display()))?;
    progress(&format!("creating a {kind} machine"));
    let m = machine::create(kind, model_dir, progress)?;
    model.agent = Status {
        status: "allocating".into(),
        message: String::new(),
    };
    model.save(model_dir)?;
    let paths = Paths::new(m.as_ref());
    let tag = model.unit_tag();
    progress("placing the charm, the agent and the hook tools");
    place::place_charm(&paths, &tag, &charm_dir, agent)?;
    place::place_tools(&paths, &tag, &current_exe()?)?;
    for (name, path) in res {
        place::place_resource(&paths, &tag, &name, &path)?;
        model.resources.insert(name, path);
    }
    model.save(model_dir)?;
    let standins = RealStandIns {
        model_dir: model_dir.to_owned(),
    };
    let s = Scheduler::new(model_dir, m.as_ref(), &standins, progress);
    s.deploy(&mut model)?;
    progress(&format!(
        "deployed {} ({})",
        model.unit, model.workload.status
    ));
    Ok(())
}

fn status(model_dir: &Path) -> Result<()> {
    let model = Model::load(model_dir)?;
    let machine = match machine::attach(model_dir) {
        Ok(m) => m.describe(),
        Err(e) => format!("unavailable: {e}"),
    };
    let ports: Vec<&str> = model.ports.iter().map(String::as_str).collect();
    let rows = vec![
        vec![
            "Unit".to_owned(),
            "Workload".into(),
            "Agent".into(),
            "Message".into(),
            "Ports".into(),
            "Version".into(),
        ],
        vec![
            format!("{}*", model.unit),
            model.workload.status.clone(),
            model.agent.status.clone(),
            if model.agent.status == "error" {
                model.agent.message.clone()
            } else {
                model.workload.message.clone()
            },
            ports.join(","),
            model.version.clone(),
        ],
    ];
    print_table(&rows);
    out!("\nMachine: {machine}");
    if !model.queue.is_empty() {
        let q: Vec<String> = model.queue.iter().map(|h| h.describe()).collect();
        out!("Pending hooks: {}", q.join(", "));
    }
    if !model.relations.is_empty() {
        out!();
        let mut rows = vec![vec![
            "Relation".to_owned(),
            "Interface".into(),
            "Stand-in".into(),
            "Units".into(),
            "Stand-in status".into(),
        ]];
        let standins = RealStandIns {
            model_dir: model_dir.to_owned(),
        };
        for r in &model.relations {
            let detail = match standins.open(r) {
                Ok(s) => {
                    let mut d = s.status();
                    if r.standin_kind == "haproxy"
                        && let Some(a) = s.address()
                    {
                        d = format!("{d} (frontend http://{a}/)");
                    }
                    d
                }
                Err(e) => format!("unavailable: {e}"),
            };
            rows.push(vec![
                format!(
                    "{}:{}{}",
                    r.endpoint,
                    r.id,
                    if r.dying { " (dying)" } else { "" }
                ),
                r.interface.clone(),
                r.remote_app.clone(),
                r.joined.len().to_string(),
                detail,
            ]);
        }
        print_table(&rows);
    }
    if model.agent.status == "error" {
        out!(
            "\nThe unit is in error ({}): see `jujulet debug-log`, fix the cause and run `jujulet resolve`.",
            model.agent.message
        );
    }
    Ok(())
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out!("{}", line.join("  ").trim_end());
    }
}

/// Works whatever state the model is in: each step is tried, errors collected.
fn destroy(model_dir: &Path, progress: &dyn Fn(&str)) -> Result<()> {
    let mut errors = Vec::new();
    progress("stopping stand-ins");
    if let Err(e) = standin::stop_all(model_dir) {
        errors.push(format!("stopping stand-ins: {e}"));
    }
    progress("destroying the machine");
    if let Err(e) = machine::destroy(model_dir) {
        errors.push(format!("destroying the machine: {e}"));
    }
    for f in ["model.json", "debug.log", "nspawn.log"] {
        let _ = std::fs::remove_file(model_dir.join(f));
    }
    for d in ["reacted", "standins"] {
        let p = model_dir.join(d);
        if p.exists()
            && errors.is_empty()
            && let Err(e) = std::fs::remove_dir_all(&p)
        {
            errors.push(format!("removing {}: {e}", p.display()));
        }
    }
    // Only if empty: the model dir may be one the user also uses for other things.
    let _ = std::fs::remove_dir(model_dir);
    if errors.is_empty() {
        progress("destroyed");
        Ok(())
    } else {
        bail!(
            "{}\nrun `jujulet destroy` again once fixed",
            errors.join("\n")
        )
    }
}
