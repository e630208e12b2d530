//! The `wsgi-agent` binary. Juju runs it through `dispatch` for every hook;
//! an operator or a test runs its subcommands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wsgi-agent", version, about = "The hooks of the wsgi charm")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the reactive flags set on this unit, one per line.
    Flags {
        /// The charm directory (default: $JUJU_CHARM_DIR, else the current one).
        #[arg(long)]
        charm_dir: Option<PathBuf>,
    },
    /// Run a handler set described as JSON through the engine and print, as
    /// JSON, the handlers in the order they ran and the final flags.
    EngineTrace {
        /// The spec file ("-" for stdin).
        spec: PathBuf,
        /// Start from this state file and commit the result to it.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let named_as_hook = PathBuf::from(&argv0)
        .file_name()
        .is_some_and(|n| n != "wsgi-agent" && n != "dispatch");
    // Juju passes no arguments; JUJU_DISPATCH_PATH (or a hook name as argv[0],
    // for agents older than dispatch) says which hook this is.
    if args.next().is_none() && (std::env::var_os("JUJU_DISPATCH_PATH").is_some() || named_as_hook)
    {
        return wsgi_layer::runtime::run_hook(&|_| Ok(()));
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsgi-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    use reactive::{State, StateStore, trace};
    match cli.command {
        Command::Flags { charm_dir } => {
            let dir = match charm_dir.or_else(|| std::env::var_os("JUJU_CHARM_DIR").map(Into::into))
            {
                Some(d) => d,
                None => std::env::current_dir()?,
            };
            let state = StateStore::new(StateStore::default_path(&dir)).load()?;
            let mut out = std::io::stdout().lock();
            for f in &state.flags {
                writeln!(out, "{f}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::EngineTrace { spec, state } => {
            let text = if spec.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&spec)
                    .with_context(|| format!("reading {}", spec.display()))?
            };
            let spec: trace::Spec = serde_json::from_str(&text).context("bad spec")?;
            let store = state.map(StateStore::new);
            let mut current = match &store {
                Some(s) => s.load()?,
                None => State::default(),
            };
            match trace::run_from(&spec, &mut current) {
                Ok(t) => {
                    if let Some(s) = &store {
                        s.commit(&current)?;
                    }
                    writeln!(std::io::stdout(), "{}", serde_json::to_string(&t)?)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    writeln!(
                        std::io::stdout(),
                        "{}",
                        serde_json::json!({ "error": e.to_string() })
                    )?;
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
