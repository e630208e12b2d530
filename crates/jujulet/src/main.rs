//! The `jujulet` command line; also every hook tool (by argv[0]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

use jujulet::install::{self, Paths};
use jujulet::machines::{self, Machine, MachineKind};
use jujulet::model::charm::Metadata;
use jujulet::model::config::Schema;
use jujulet::model::{Agent, Model, Status};
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
    about = "A local Juju: one model, real systemd machines, real hooks"
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
    /// Boot a machine, install the charm and run install, leader-elected, config-changed, start.
    Deploy(Deploy),
    /// Set (KEY=VALUE) or reset config; without arguments print it.
    Config {
        settings: Vec<String>,
        #[arg(long)]
        reset: Vec<String>,
    },
    /// Relate ENDPOINT to a stand-in.
    Relate {
        endpoint: String,
        stand_in: standin::Kind,
        #[arg(long, default_value_t = 1)]
        units: usize,
        /// PostgreSQL: passwords full of URL-hostile characters.
        #[arg(long)]
        hostile_password: bool,
    },
    /// Remove the relation on ENDPOINT (departed, broken).
    Unrelate { endpoint: String },
    /// Run one hook, e.g. update-status (jujulet's own: Juju runs hooks by itself).
    Hook { hook: String },
    /// Run an action on the unit, as `juju run UNIT ACTION [key=value...]`
    /// does (values read as YAML scalars, dotted keys nest).
    Run {
        unit: String,
        action: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        params: Vec<String>,
    },
    /// Reboot the machine (its disk kept); Juju then runs the start hook.
    Reboot,
    /// Set (KEY=VALUE) or show the model's config, as `juju model-config`:
    /// automatically-retry-hooks, update-status-hook-interval,
    /// juju-http-proxy, juju-https-proxy, juju-ftp-proxy, juju-no-proxy.
    ModelConfig { settings: Vec<String> },
    /// Let time pass (e.g. 30s, 5m): the hook retries and the update-status
    /// timer that fall due meanwhile run, as under a controller.
    Wait { time: String },
    /// Remove the application, as `juju remove-application NAME`: its
    /// relations depart and break, then stop and remove run.
    RemoveApplication { name: String },
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
    /// Attach a new revision of a resource (NAME=PATH, a file or a directory
    /// to pack); as in Juju, this runs upgrade-charm (then config-changed).
    AttachResource {
        #[arg(value_parser = parse_resource)]
        resource: (String, PathBuf),
    },
    /// Run a command inside the machine as root and print its output
    /// (like `juju exec`); exits with the command's exit code.
    Exec {
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Install the charm again (a new build), run upgrade-charm and config-changed.
    Upgrade {
        /// The charm directory or .charm (default: the one deployed).
        charm: Option<PathBuf>,
    },
}

#[derive(Args)]
struct Deploy {
    /// The charm: a directory (as built, with its binaries) or a packed .charm.
    charm: PathBuf,
    /// A resource, NAME=PATH: a file, or a directory, which jujulet packs
    /// into a tar.gz as `juju attach-resource` would get it.
    #[arg(long, value_parser = parse_resource)]
    resource: Vec<(String, PathBuf)>,
    /// A config value, KEY=VALUE (typed by the charm's config.yaml).
    #[arg(long)]
    config: Vec<String>,
    /// The machine: `nspawn` (the host's OS under an overlay: fast, has
    /// whatever the host has) or `cloud-image` (a minimal Debian 12 built
    /// once with debootstrap: what a cloud gives a Juju machine).
    #[arg(long, value_enum, env = "JUJULET_MACHINE", default_value_t = MachineKind::Nspawn)]
    machine: MachineKind,
    /// The application name (default: the charm's name).
    #[arg(long)]
    name: Option<String>,
    /// Deploy onto the machine of the model in this dir (as `juju deploy
    /// --to` an existing machine: two applications on one machine).
    #[arg(long, value_name = "MODEL_DIR")]
    to: Option<PathBuf>,
}

/// `NAME=PATH`, with PATH made absolute and checked to exist.
fn parse_resource(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected NAME=PATH"))?;
    if name.is_empty() {
        return Err(format!("{arg:?}: the resource name is empty"));
    }
    let path = std::fs::canonicalize(path).map_err(|e| format!("resource {name}: {path}: {e}"))?;
    Ok((name.to_owned(), path))
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
        Command::Deploy(d) => deploy(&model_dir, d, &progress),
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
        Command::Exec { command } => {
            let session = Session::open(&model_dir)?;
            let env = [
                (
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ),
                ("HOME", "/root"),
                ("LANG", "C.UTF-8"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
            let out = session
                .machine
                .exec(&command, &env, Path::new("/"))
                .with_context(|| format!("running {command:?} in the machine"))?;
            use std::io::Write;
            std::io::stdout().write_all(&out.stdout)?;
            std::io::stderr().write_all(&out.stderr)?;
            std::process::exit(out.status.code().unwrap_or(1));
        }
        command => {
            let mut session = Session::open(&model_dir)?;
            session.run(command, &progress)
        }
    }
}

/// An open model: its state, its machine and its stand-ins.
struct Session {
    model_dir: PathBuf,
    model: Model,
    machine: Box<dyn Machine>,
    standins: RealStandIns,
}

impl Session {
    fn open(model_dir: &Path) -> Result<Session> {
        Ok(Session {
            model: Model::load(model_dir)?,
            machine: machines::attach(model_dir)?,
            standins: RealStandIns {
                model_dir: model_dir.to_owned(),
            },
            model_dir: model_dir.to_owned(),
        })
    }

    /// The commands that drive hooks.
    fn run(&mut self, command: Command, progress: &dyn Fn(&str)) -> Result<()> {
        let s = Scheduler::new(
            &self.model_dir,
            self.machine.as_ref(),
            &self.standins,
            progress,
        );
        let model = &mut self.model;
        if model.removed {
            bail!(
                "{} was removed (remove-application); `jujulet status`, `debug-log`, `exec` and `destroy` remain",
                model.unit
            );
        }
        // What Juju's timers made due since the last command runs first.
        if !matches!(
            command,
            Command::ModelConfig { .. } | Command::Wait { .. } | Command::Resolve
        ) {
            match s.tick(model) {
                Ok(()) | Err(jujulet::scheduler::SchedError::InError { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match command {
            Command::ModelConfig { settings } if settings.is_empty() => {
                for (k, _) in jujulet::model::MODEL_CONFIG {
                    out!("{k}: {}", model.setting(k));
                }
            }
            Command::ModelConfig { settings } => {
                for arg in &settings {
                    let (k, v) = arg
                        .split_once('=')
                        .with_context(|| format!("{arg:?}: expected KEY=VALUE"))?;
                    jujulet::model::check_model_config(k, v)?;
                    model.model_config.insert(k.to_owned(), v.to_owned());
                }
                if model.update_status_interval().is_none() {
                    model.next_update_status = None;
                } else if settings
                    .iter()
                    .any(|a| a.starts_with("update-status-hook-interval="))
                {
                    // A new period: the timer restarts with it.
                    let d = model.update_status_interval().unwrap_or_default();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(0));
                    model.next_update_status =
                        Some(now + u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                }
                model.save(&self.model_dir)?;
            }
            Command::Wait { time } => {
                let d = jujulet::model::parse_duration(&time)
                    .with_context(|| format!("{time:?}: a duration such as 30s, 5m or 250ms"))?;
                s.wait(model, d)?;
            }
            Command::Config { settings, reset } if settings.is_empty() && reset.is_empty() => {
                let charm =
                    Paths::new(self.machine.as_ref()).host(&install::charm_dir(&model.unit_tag()));
                for (k, v) in Schema::read(&charm)?.effective(&model.config) {
                    out!("{k}: {v}");
                }
            }
            Command::Config { settings, reset } => {
                if !s.config(model, &settings, &reset)? {
                    eprintln!("no value changed; config-changed not run");
                }
            }
            Command::Relate {
                endpoint,
                stand_in,
                units,
                hostile_password,
            } => {
                if stand_in == standin::Kind::Postgresql {
                    check_traversable(&self.model_dir)?;
                }
                standin::preflight(stand_in)?;
                let id = s.relate(model, &endpoint, stand_in, units, hostile_password)?;
                progress(&format!("related {endpoint}:{id} to {stand_in}"));
            }
            Command::Unrelate { endpoint } => s.unrelate(model, &endpoint)?,
            Command::RemoveApplication { name } => {
                let app = model.unit.split('/').next().unwrap_or_default();
                if name != app {
                    bail!("application {name:?} not found; this model has {app}");
                }
                s.remove_application(model)?;
                out!("removed {name}: {} terminated", model.unit);
            }
            Command::Hook { hook } => s.run_hook_named(model, &hook)?,
            Command::Run {
                unit,
                action,
                params,
            } => {
                if unit != model.unit {
                    bail!(
                        "unit {unit:?} not found; this model has {} (try `jujulet status`)",
                        model.unit
                    );
                }
                let charm =
                    Paths::new(self.machine.as_ref()).host(&install::charm_dir(&model.unit_tag()));
                let actions = jujulet::model::actions::read(&charm)?;
                let params = jujulet::model::actions::params(&actions, &action, &params)?;
                let outcome = s.run_action(model, &action, params)?;
                print_action(model, &outcome);
            }
            Command::Reboot => {
                drop(s);
                self.machine.reboot(progress)?;
                let s = Scheduler::new(
                    &self.model_dir,
                    self.machine.as_ref(),
                    &self.standins,
                    progress,
                );
                // Juju runs start after a reboot (the uniter's reboot handling).
                s.run_hook_named(&mut self.model, "start")?;
            }
            Command::Resolve => s.resolve(model)?,
            Command::AttachResource {
                resource: (name, path),
            } => {
                let file = resource_file(&self.model_dir, &name, &path, progress)?;
                progress(&format!("attaching {name} from {}", file.display()));
                let tag = model.unit_tag();
                install::install_resource(&Paths::new(self.machine.as_ref()), &tag, &name, &file)?;
                model.resources.insert(name, file);
                model.save(&self.model_dir)?;
                s.upgrade(model)?;
            }
            Command::Upgrade { charm } => {
                if let Some(c) = charm {
                    model.charm_dir = c
                        .canonicalize()
                        .with_context(|| format!("charm {}", c.display()))?;
                }
                progress("installing the charm again");
                let paths = Paths::new(self.machine.as_ref());
                install::install_charm(&paths, &model.unit_tag(), &model.charm_dir)?;
                install::install_tools(&paths, &model.unit_tag(), &current_exe()?)?;
                s.upgrade(model)?;
            }
            Command::Deploy(_)
            | Command::Status
            | Command::DebugLog { .. }
            | Command::Destroy
            | Command::Exec { .. } => unreachable!("handled in main"),
        }
        Ok(())
    }
}

/// The action's outcome as `juju run` prints it: the operation and task,
/// then the results as YAML; a failed task is an error (exit 1).
fn print_action(model: &Model, o: &jujulet::scheduler::ActionOutcome) {
    let tag = model.unit_tag();
    out!("Running operation {} with 1 task", o.operation);
    out!("  - task {} on {tag}", o.task);
    out!();
    out!("Waiting for task {}...", o.task);
    if !o.record.results.is_empty() {
        let text = jujulet::tools::format::render(
            &serde_json::Value::Object(o.record.results.clone()),
            jujulet::tools::format::Format::Yaml,
        );
        print!("{text}");
    }
    let failure = match (&o.record.failed, o.code) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(0)) => None,
        (None, Some(c)) => Some(format!("exit status {c}")),
        (None, None) => Some("killed by a signal".into()),
    };
    if let Some(message) = failure {
        out!("Action id {} failed: {message}", o.task);
        eprintln!(
            "ERROR the following task failed:\n id {:?} with return code {}\n\nuse 'juju show-task' to inspect the failure",
            o.task.to_string(),
            o.code.unwrap_or(1)
        );
        std::process::exit(1);
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

/// The file to attach: the file given, or a directory packed into a
/// gzipped tarball under the model dir (its contents at the top level).
fn resource_file(
    model_dir: &Path,
    name: &str,
    path: &Path,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_owned());
    }
    if !path.is_dir() {
        bail!(
            "resource {name}: {} is neither a file nor a directory",
            path.display()
        );
    }
    let dir = model_dir.join("resources");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("{name}-{}.tar.gz", jujulet::model::random_hex(8)));
    progress(&format!("packing {} as resource {name}", path.display()));
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("--exclude-vcs")
        .arg("-C")
        .arg(path)
        .arg(".")
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!(
            "resource {name}: tar czf of {} failed ({st})",
            path.display()
        );
    }
    Ok(out)
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

fn deploy(model_dir: &Path, d: Deploy, progress: &dyn Fn(&str)) -> Result<()> {
    if Model::exists(model_dir) {
        bail!(
            "a model is already deployed in {}; run `jujulet destroy` first (or use --model DIR)",
            model_dir.display()
        );
    }
    let charm = d
        .charm
        .canonicalize()
        .with_context(|| format!("charm {}", d.charm.display()))?;
    // Check everything the user typed before booting anything: the charm's
    // metadata and config schema are read from a staging copy.
    std::fs::create_dir_all(model_dir)
        .with_context(|| format!("creating the model dir {}", model_dir.display()))?;
    let staged = model_dir.join("charm-staged");
    let _ = std::fs::remove_dir_all(&staged);
    let local = machines::local::LocalMachine::new(&staged);
    let staged_charm = install::install_charm(&Paths::new(&local), "staged", &charm)?;
    let meta = Metadata::read(&staged_charm)?;
    let schema = Schema::read(&staged_charm)?;
    let _ = std::fs::remove_dir_all(&staged);
    let app = d.name.unwrap_or(meta.name.clone());
    let mut model = Model::new(&app, &charm, d.machine);
    for arg in &d.config {
        let (k, v) = schema.parse_assignment(arg)?;
        model.config.insert(k, v);
    }
    let mut resources = Vec::new();
    for (name, path) in d.resource {
        resources.push((
            name.clone(),
            resource_file(model_dir, &name, &path, progress)?,
        ));
    }
    let machine = match &d.to {
        Some(owner) => {
            progress(&format!(
                "deploying onto the machine of {}",
                owner.display()
            ));
            machines::share(model_dir, owner)?
        }
        None => {
            machines::preflight(d.machine)?;
            progress(&format!("creating a {} machine", d.machine));
            machines::create(d.machine, model_dir, progress)?
        }
    };
    model.agent = Status::new(Agent::Allocating, "");
    model.save(model_dir)?;
    let tag = model.unit_tag();
    {
        let paths = Paths::new(machine.as_ref());
        progress("installing the charm and the hook tools");
        install::install_charm(&paths, &tag, &charm)?;
        install::install_tools(&paths, &tag, &current_exe()?)?;
        for (name, path) in resources {
            install::install_resource(&paths, &tag, &name, &path)?;
            model.resources.insert(name, path);
        }
    }
    model.save(model_dir)?;
    let standins = RealStandIns {
        model_dir: model_dir.to_owned(),
    };
    Scheduler::new(model_dir, machine.as_ref(), &standins, progress).deploy(&mut model)?;
    progress(&format!(
        "deployed {} ({})",
        model.unit,
        model.workload.status.as_str()
    ));
    Ok(())
}

fn status(model_dir: &Path) -> Result<()> {
    let model = Model::load(model_dir)?;
    let machine = match machines::attach(model_dir) {
        Ok(m) => m.describe(),
        Err(e) => format!("unavailable: {e}"),
    };
    let ports: Vec<&str> = model.ports.iter().map(String::as_str).collect();
    let in_error = model.agent.status == Agent::Error;
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
            model.workload.status.as_str().into(),
            model.agent.status.as_str().into(),
            if in_error {
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
        let q: Vec<String> = model
            .queue
            .iter()
            .map(jujulet::model::Hook::describe)
            .collect();
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
                    if r.standin_kind == standin::Kind::Haproxy
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
    if in_error {
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
    if let Err(e) = machines::destroy(model_dir) {
        errors.push(format!("destroying the machine: {e}"));
    }
    for f in ["model.json", "debug.log", "nspawn.log", "tool-calls.log"] {
        let _ = std::fs::remove_file(model_dir.join(f));
    }
    for d in ["reacted", "standins", "resources", "charm-staged"] {
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
