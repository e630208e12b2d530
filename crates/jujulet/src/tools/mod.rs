//! The hook tools. The jujulet binary is every tool: `main` checks
//! basename(argv[0]) against [`juju_contract::Tool`], the one list of tools. A tool reads the hook context the
//! scheduler wrote (see [`crate::context`]), answers with Juju 3.6's
//! grammar, formats, exit codes (0 ok, 1 run error, 2 usage error) and
//! `ERROR <msg>` on stderr, and records its writes into the context dir.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use juju_contract::{Tool, WorkloadStatus};
use serde_json::{Value, json};

use crate::context::{self, Context, CtxRelation, Immediate, Pending};
use crate::model::Databag;

pub mod args;
pub mod format;

use args::{Flag, boolean, valued};
use format::Format;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub code: i32,
    pub message: String,
}

impl ToolError {
    /// An Init (argument) error: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    /// A Run error: exit 1.
    pub fn run(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

/// What a tool run produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Where the tool runs: its environment, and stdin for `--file -`.
pub struct Env<'a> {
    pub context_id: Option<String>,
    pub ctx_base: PathBuf,
    pub stdin: &'a mut dyn Read,
}

impl Env<'_> {
    /// From the process environment.
    pub fn from_process(stdin: &mut dyn Read) -> Env<'_> {
        Env {
            context_id: std::env::var("JUJU_CONTEXT_ID")
                .ok()
                .filter(|s| !s.is_empty()),
            ctx_base: std::env::var_os(context::CTX_BASE_ENV)
                .map_or_else(|| PathBuf::from(context::CTX_BASE), PathBuf::from),
            stdin,
        }
    }
}

/// The tool named by `argv0`'s basename, if it is one.
pub fn tool_name(argv0: &str) -> Option<Tool> {
    Tool::from_name(Path::new(argv0).file_name()?.to_str()?)
}

/// Appends the call to the context's `calls.log` (the scheduler keeps them
/// in the model's `tool-calls.log`, to count what a hook asked of Juju).
fn record_call(dir: &Path, name: &str, args: &[String]) {
    use std::io::Write;
    let mut words = vec![name.to_owned()];
    words.extend(args.iter().cloned());
    let line = words
        .iter()
        .map(|w| w.replace(['\n', '\t'], " "))
        .collect::<Vec<_>>()
        .join(" ");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CALLS_LOG))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Where [`record_call`] writes, in the context directory.
pub const CALLS_LOG: &str = "calls.log";

/// Run tool `name` with `args` (argv without argv[0]).
pub fn run(name: Tool, args: &[String], env: &mut Env<'_>) -> Outcome {
    let mut out = Outcome::default();
    let result = match env.context_id.clone() {
        None => Err(ToolError::run("JUJU_CONTEXT_ID not set")),
        Some(id) => {
            let dir = context::dir_for(&env.ctx_base, &id);
            match context::read_context(&dir) {
                Err(e) => Err(ToolError::run(format!(
                    "bad request: unknown context {id:?} ({e}); tools work only while a hook runs"
                ))),
                Ok(ctx) => {
                    record_call(&dir, name.name(), args);
                    let mut t = Call {
                        ctx,
                        dir,
                        stdin: &mut *env.stdin,
                        stdout: String::new(),
                        stderr: String::new(),
                    };
                    let r = t.dispatch(name, args);
                    out.stdout = t.stdout;
                    out.stderr = t.stderr;
                    r
                }
            }
        }
    };
    if let Err(e) = result {
        out.code = e.code;
        out.stderr.push_str(&format!("ERROR {}\n", e.message));
    }
    out
}

/// Entry point when the binary runs as a tool: `Some(exit code)`.
pub fn main_if_tool() -> Option<i32> {
    let mut argv = std::env::args();
    let name = tool_name(&argv.next()?)?;
    let args: Vec<String> = argv.collect();
    let mut stdin = std::io::stdin();
    let mut env = Env::from_process(&mut stdin);
    let out = run(name, &args, &mut env);
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    Some(out.code)
}

const FORMAT: Flag = valued(&["--format"]);
const OUTPUT: Flag = valued(&["-o", "--output"]);
const RELATION: Flag = valued(&["-r", "--relation"]);
const APP: Flag = boolean(&["--app"]);
const FILE: Flag = valued(&["--file"]);

const STATUSES: &str = "[maintenance blocked waiting active]";

/// open-port or close-port.
#[derive(Clone, Copy)]
enum Ports {
    Open,
    Close,
}

struct Call<'a> {
    ctx: Context,
    dir: PathBuf,
    stdin: &'a mut dyn Read,
    stdout: String,
    stderr: String,
}

type ToolResult = Result<(), ToolError>;

impl Call<'_> {
    fn dispatch(&mut self, tool: Tool, args: &[String]) -> ToolResult {
        match tool {
            Tool::ConfigGet => self.config_get(args),
            Tool::RelationIds => self.relation_ids(args),
            Tool::RelationList => self.relation_list(args),
            Tool::RelationGet => self.relation_get(args),
            Tool::RelationSet => self.relation_set(args),
            Tool::StatusSet => self.status_set(args),
            Tool::StatusGet => self.status_get(args),
            Tool::JujuLog => self.juju_log(args),
            Tool::OpenPort => self.port(args, Ports::Open),
            Tool::ClosePort => self.port(args, Ports::Close),
            Tool::OpenedPorts => self.opened_ports(args),
            Tool::UnitGet => self.unit_get(args),
            Tool::NetworkGet => self.network_get(args),
            Tool::IsLeader => self.is_leader(args),
            Tool::ApplicationVersionSet => self.version_set(args),
            Tool::ResourceGet => self.resource_get(args),
            Tool::ActionGet => self.action_get(args),
            Tool::ActionSet => self.action_set(args),
            Tool::ActionFail => self.action_fail(args),
            Tool::ActionLog => self.action_log(args),
            Tool::StateGet => self.state_get(args),
            Tool::StateSet => self.state_set(args),
            Tool::StateDelete => self.state_delete(args),
            Tool::SecretGet => self.secret_get(args),
        }
    }

    /// Print `value` per `--format` (default `default`), to `-o FILE` if given.
    fn output(&mut self, p: &args::Parsed, value: &Value, default: Format) -> ToolResult {
        let format = match p.value("--format") {
            None => default,
            Some(f) => Format::parse(f).ok_or_else(|| {
                ToolError::usage(format!(
                    "invalid value {f:?} for option --format: unknown format {f:?}"
                ))
            })?,
        };
        let text = format::render(value, format);
        match p.value("-o") {
            Some(path) => std::fs::write(path, text)
                .map_err(|e| ToolError::run(format!("cannot write {path}: {e}"))),
            None => {
                self.stdout.push_str(&text);
                Ok(())
            }
        }
    }

    fn pending(&self) -> Result<Pending, ToolError> {
        context::read_pending(&self.dir).map_err(|e| ToolError::run(e.to_string()))
    }

    fn save_pending(&self, p: &Pending) -> ToolResult {
        context::write_pending(&self.dir, p).map_err(|e| ToolError::run(e.to_string()))
    }

    fn immediate(&self, item: &Immediate) -> ToolResult {
        context::append_immediate(&self.dir, item).map_err(|e| ToolError::run(e.to_string()))
    }

    /// `-r N` / `-r ep:N`, else the hook's relation, else an Init error.
    fn relation(&self, p: &args::Parsed) -> Result<CtxRelation, ToolError> {
        let id = match p.value("-r") {
            Some(v) => {
                let num = v.rsplit(':').next().unwrap_or(v);
                let id: u64 = num.parse().map_err(|_| {
                    ToolError::usage(format!(
                        "invalid value {v:?} for option -r: invalid relation id"
                    ))
                })?;
                if !self.ctx.relations.iter().any(|r| r.id == id) {
                    return Err(ToolError::usage(format!(
                        "invalid value {v:?} for option -r: relation not found"
                    )));
                }
                id
            }
            None => self
                .ctx
                .relation_id
                .ok_or_else(|| ToolError::usage("no relation id specified"))?,
        };
        self.ctx
            .relations
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| {
                ToolError::usage(format!(
                    "invalid value \"{id}\" for option -r: relation not found"
                ))
            })
    }

    fn config_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT, boolean(&["-a", "--all"])])?;
        let value = match p.positional.as_slice() {
            [] => Value::Object(
                self.ctx
                    .config
                    .iter()
                    .filter(|(_, v)| p.flag("-a") || !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            [key] if p.flag("-a") => {
                return Err(ToolError::usage(format!(
                    "cannot use argument --all together with key {key:?}"
                )));
            }
            [key] => self.ctx.config.get(key).cloned().unwrap_or(Value::Null),
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        self.output(&p, &value, Format::Smart)
    }

    fn relation_ids(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT])?;
        let endpoint = match p.positional.as_slice() {
            [] => self
                .ctx
                .relation_id
                .and_then(|id| self.ctx.relations.iter().find(|r| r.id == id))
                .map(|r| r.endpoint.clone())
                .ok_or_else(|| ToolError::usage("no endpoint name specified"))?,
            [ep] => ep.clone(),
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        let mut ids: Vec<String> = self
            .ctx
            .relations
            .iter()
            .filter(|r| r.endpoint == endpoint && !r.broken)
            .map(|r| format!("{}:{}", r.endpoint, r.id))
            .collect();
        ids.sort();
        self.output(&p, &json!(ids), Format::Smart)
    }

    fn relation_list(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT, RELATION, APP])?;
        if !p.positional.is_empty() {
            return Err(unrecognized(&p.positional));
        }
        let rel = self.relation(&p)?;
        let value = if p.flag("--app") {
            json!(rel.remote_app)
        } else {
            json!(rel.members.iter().collect::<Vec<_>>())
        };
        self.output(&p, &value, Format::Smart)
    }

    fn relation_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT, RELATION, APP])?;
        let rel = self.relation(&p)?;
        let (key, target) = match p.positional.as_slice() {
            [] => (None, None),
            [k] => (Some(k.as_str()), None),
            [k, t] => (Some(k.as_str()), Some(t.as_str())),
            [_, _, rest @ ..] => return Err(unrecognized(rest)),
        };
        let key = key.filter(|k| *k != "-");
        let mut app = p.flag("--app");
        let target: String = match target {
            Some(t) if t.contains('/') => {
                if app {
                    t.split('/').next().unwrap_or(t).to_owned()
                } else {
                    t.to_owned()
                }
            }
            Some(t) if app => t.to_owned(),
            Some(t) => {
                return Err(ToolError::usage(format!(
                    "expected unit name, got application name {t:?}"
                )));
            }
            None if app => rel.remote_app.clone(),
            None => match self.ctx.remote_unit.as_deref().filter(|u| !u.is_empty()) {
                Some(u) => u.to_owned(),
                None if self
                    .ctx
                    .remote_app
                    .as_deref()
                    .is_some_and(|a| !a.is_empty()) =>
                {
                    app = true;
                    rel.remote_app.clone()
                }
                None => return Err(ToolError::usage("no unit or application specified")),
            },
        };
        let pending = self.pending()?;
        let bag: Databag = if app {
            if target == self.ctx.app {
                if !self.ctx.leader {
                    return Err(ToolError::run("permission denied"));
                }
                pending.app_data.get(&rel.id).cloned().unwrap_or_default()
            } else if target == rel.remote_app {
                rel.remote_app_data.clone()
            } else {
                return Err(ToolError::run("permission denied"));
            }
        } else if target == self.ctx.unit {
            pending.unit_data.get(&rel.id).cloned().unwrap_or_default()
        } else {
            rel.remote_units.get(&target).cloned().ok_or_else(|| {
                ToolError::run(format!(
                    "cannot read settings for unit {target:?} in relation \"{}:{}\": unit {target:?}: settings not found",
                    rel.endpoint, rel.id
                ))
            })?
        };
        let value = match key {
            Some(k) => bag.get(k).map_or(Value::Null, |v| json!(v)),
            None => json!(bag),
        };
        self.output(&p, &value, Format::Smart)
    }

    /// `--file PATH|-` as a map of strings (YAML, so JSON too).
    fn read_file_map(&mut self, path: &str) -> Result<Vec<(String, String)>, ToolError> {
        let mut text = String::new();
        if path == "-" {
            self.stdin
                .read_to_string(&mut text)
                .map_err(|e| ToolError::run(format!("reading stdin: {e}")))?;
        } else {
            text = std::fs::read_to_string(path)
                .map_err(|e| ToolError::run(format!("open {path}: {e}")))?;
        }
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let map: BTreeMap<String, Value> = serde_saphyr::from_str(&text).map_err(|e| {
            ToolError::run(format!(
                "cannot parse {path}: expected a map of strings: {e}"
            ))
        })?;
        Ok(map
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect())
    }

    /// File pairs, then command-line pairs over them.
    fn settings(&mut self, p: &args::Parsed) -> Result<Vec<(String, String)>, ToolError> {
        let from_args = args::key_values(&p.positional)?;
        let mut out = match p.value("--file") {
            Some(path) => self.read_file_map(path)?,
            None => Vec::new(),
        };
        for (k, v) in from_args {
            out.retain(|(seen, _)| *seen != k);
            out.push((k, v));
        }
        Ok(out)
    }

    fn relation_set(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, RELATION, APP, FILE])?;
        if p.value("--format").is_some() {
            self.stderr
                .push_str("WARNING --format flag deprecated for command \"relation-set\"\n");
        }
        let rel = self.relation(&p)?;
        let settings = self.settings(&p)?;
        if p.flag("--app") && !self.ctx.leader {
            return Err(ToolError::run("cannot write relation settings"));
        }
        let mut pending = self.pending()?;
        let bags = if p.flag("--app") {
            &mut pending.app_data
        } else {
            &mut pending.unit_data
        };
        let bag = bags.entry(rel.id).or_default();
        for (k, v) in settings {
            if v.is_empty() {
                bag.remove(&k);
            } else {
                bag.insert(k, v);
            }
        }
        self.save_pending(&pending)
    }

    fn status_set(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[boolean(&["--application"])])?;
        let (status, message) = match p.positional.as_slice() {
            [] => return Err(ToolError::usage("invalid args, require <status> [message]")),
            [s] => (s.clone(), String::new()),
            [s, m] => (s.clone(), m.clone()),
            [_, _, rest @ ..] => return Err(unrecognized(rest)),
        };
        let Some(status) = WorkloadStatus::parse(&status) else {
            return Err(ToolError::usage(format!(
                "invalid status {status:?}, expected one of {STATUSES}"
            )));
        };
        let application = p.flag("--application");
        if application && !self.ctx.leader {
            return Err(ToolError::run("this unit is not the leader"));
        }
        self.immediate(&Immediate::Status {
            application,
            status,
            message,
        })
    }

    fn status_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(
            args,
            &[
                FORMAT,
                OUTPUT,
                boolean(&["--include-data"]),
                boolean(&["--application"]),
            ],
        )?;
        if !p.positional.is_empty() {
            return Err(unrecognized(&p.positional));
        }
        let full = |s: &crate::model::Status<crate::model::Workload>| json!({"status": s.status.as_str(), "message": s.message, "status-data": {}});
        let value = if p.flag("--application") {
            if !self.ctx.leader {
                return Err(ToolError::run(
                    "finding application status: this unit is not the leader",
                ));
            }
            let mut app = full(&self.ctx.app_status);
            app["units"] = json!({ self.ctx.unit.clone(): full(&self.ctx.status) });
            json!({ "application-status": app })
        } else if p.flag("--include-data") {
            full(&self.ctx.status)
        } else if matches!(p.value("--format"), None | Some("smart")) {
            json!(self.ctx.status.status.as_str())
        } else {
            json!({"status": self.ctx.status.status.as_str()})
        };
        self.output(&p, &value, Format::Smart)
    }

    fn juju_log(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(
            args,
            &[
                boolean(&["--debug"]),
                valued(&["-l", "--log-level"]),
                FORMAT,
            ],
        )?;
        if p.positional.is_empty() {
            return Err(ToolError::usage("no message specified"));
        }
        let mut level = if p.flag("--debug") {
            "DEBUG".to_owned()
        } else {
            p.value("-l").unwrap_or("INFO").to_ascii_uppercase()
        };
        if !matches!(
            level.as_str(),
            "TRACE" | "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL"
        ) {
            self.immediate(&Immediate::Log {
                level: "WARNING".into(),
                message: format!("Specified log level ({level}) is not valid"),
            })?;
            level = "INFO".into();
        }
        let mut message = p.positional.join(" ");
        if let Some(rel) = self
            .ctx
            .relation_id
            .and_then(|id| self.ctx.relations.iter().find(|r| r.id == id))
        {
            message = format!("{}:{}: {message}", rel.endpoint, rel.id);
        }
        self.immediate(&Immediate::Log { level, message })
    }

    fn port(&mut self, args: &[String], op: Ports) -> ToolResult {
        let p = args::parse(args, &[valued(&["--endpoints"]), FORMAT])?;
        let spec = match p.positional.as_slice() {
            [s] => s,
            [] => return Err(ToolError::usage("no port or range specified")),
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        let port = normalise_port(spec)?;
        let mut pending = self.pending()?;
        match op {
            Ports::Open => pending.ports.insert(port),
            Ports::Close => pending.ports.remove(&port),
        };
        self.save_pending(&pending)
    }

    fn opened_ports(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT, boolean(&["--endpoints"])])?;
        let mut ports: Vec<String> = self.pending()?.ports.into_iter().collect();
        ports.sort_by_key(|s| port_sort_key(s));
        if p.flag("--endpoints") {
            for s in &mut ports {
                s.push_str(" (*)");
            }
        }
        self.output(&p, &json!(ports), Format::Smart)
    }

    fn unit_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT])?;
        match p.positional.as_slice() {
            [] => Err(ToolError::usage("no setting specified")),
            [k] if k == "private-address" || k == "public-address" => {
                let v = json!(self.ctx.private_address);
                self.output(&p, &v, Format::Smart)
            }
            [k] => Err(ToolError::usage(format!("unknown setting {k:?}"))),
            [_, rest @ ..] => Err(unrecognized(rest)),
        }
    }

    fn network_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(
            args,
            &[
                FORMAT,
                OUTPUT,
                RELATION,
                boolean(&["--bind-address"]),
                boolean(&["--ingress-address"]),
                boolean(&["--egress-subnets"]),
                boolean(&["--primary-address"]),
            ],
        )?;
        if p.value("-r").is_some() {
            self.relation(&p)?;
        }
        let binding = match p.positional.as_slice() {
            [b] => b.clone(),
            [] => return Err(ToolError::usage("no arguments specified")),
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        if !self.ctx.endpoints.contains(&binding) {
            return Err(ToolError::run(format!(
                "no network config found for binding {binding:?}"
            )));
        }
        let addr = self.ctx.private_address.clone();
        let mut picked: Vec<(&str, Value)> = Vec::new();
        if p.flag("--bind-address") || p.flag("--primary-address") {
            picked.push(("bind-address", json!(addr)));
        }
        if p.flag("--ingress-address") {
            picked.push(("ingress-address", json!(addr)));
        }
        if p.flag("--egress-subnets") {
            picked.push(("egress-subnets", json!([format!("{addr}/32")])));
        }
        let value = match picked.len() {
            0 => json!({
                "bind-addresses": [{
                    "mac-address": "",
                    "interface-name": "lo",
                    "addresses": [{"hostname": "", "value": addr, "cidr": "127.0.0.0/8"}],
                }],
                "egress-subnets": [format!("{addr}/32")],
                "ingress-addresses": [addr],
            }),
            1 => picked.remove(0).1,
            _ => Value::Object(picked.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        };
        self.output(&p, &value, Format::Smart)
    }

    fn is_leader(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT])?;
        if !p.positional.is_empty() {
            return Err(unrecognized(&p.positional));
        }
        let v = json!(self.ctx.leader);
        self.output(&p, &v, Format::Smart)
    }

    fn version_set(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[])?;
        match p.positional.as_slice() {
            [v] => self.immediate(&Immediate::Version { version: v.clone() }),
            [] => Err(ToolError::usage("no version specified")),
            [_, rest @ ..] => Err(unrecognized(rest)),
        }
    }

    fn resource_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[])?;
        match p.positional.as_slice() {
            [name] => match self.ctx.resources.get(name) {
                Some(path) => {
                    self.stdout.push_str(&format!("{path}\n"));
                    Ok(())
                }
                None => Err(ToolError::run(format!(
                    "could not download resource: resource {name:?} not found (deploy with --resource {name}=PATH)"
                ))),
            },
            [] => Err(ToolError::usage("missing required resource name")),
            [_, rest @ ..] => Err(unrecognized(rest)),
        }
    }

    fn action(&self) -> Result<crate::context::CtxAction, ToolError> {
        self.ctx
            .action
            .clone()
            .ok_or_else(|| ToolError::run("not running an action"))
    }

    fn action_get(&mut self, args: &[String]) -> ToolResult {
        let action = self.action()?;
        let p = args::parse(args, &[FORMAT, OUTPUT])?;
        let value = match p.positional.as_slice() {
            [] => Value::Object(action.params),
            [key] => {
                let mut v = Value::Object(action.params);
                for part in key.split('.') {
                    v = v.get(part).cloned().unwrap_or(Value::Null);
                }
                v
            }
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        self.output(&p, &value, Format::Smart)
    }

    fn action_set(&mut self, args: &[String]) -> ToolResult {
        self.action()?;
        let p = args::parse(args, &[])?;
        if p.positional.is_empty() {
            return Err(ToolError::usage("no key=value pairs given"));
        }
        let mut record = crate::context::read_action(&self.dir);
        for arg in &p.positional {
            let (key, value) = arg.split_once('=').ok_or_else(|| {
                ToolError::usage(format!("argument {arg:?} must be of the form key...=value"))
            })?;
            let parts: Vec<&str> = key.split('.').collect();
            if let Some(bad) = parts.iter().find(|k| !is_result_key(k)) {
                return Err(ToolError::usage(format!(
                    "key {bad:?} must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods"
                )));
            }
            if RESERVED_RESULTS.contains(&parts[0]) {
                return Err(ToolError::usage(format!(
                    "cannot set reserved action key {:?}",
                    parts[0]
                )));
            }
            let mut at = &mut record.results;
            for part in &parts[..parts.len() - 1] {
                let entry = at
                    .entry((*part).to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(serde_json::Map::new());
                }
                at = entry
                    .as_object_mut()
                    .ok_or_else(|| ToolError::run("results"))?;
            }
            at.insert(
                parts[parts.len() - 1].to_owned(),
                Value::String(value.to_owned()),
            );
        }
        crate::context::write_action(&self.dir, &record).map_err(|e| ToolError::run(e.to_string()))
    }

    fn action_fail(&mut self, args: &[String]) -> ToolResult {
        self.action()?;
        let p = args::parse(args, &[])?;
        let message = match p.positional.as_slice() {
            [] => "action failed without reason given, check action for errors".to_owned(),
            [m] => m.clone(),
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        let mut record = crate::context::read_action(&self.dir);
        record.failed = Some(message);
        crate::context::write_action(&self.dir, &record).map_err(|e| ToolError::run(e.to_string()))
    }

    fn action_log(&mut self, args: &[String]) -> ToolResult {
        self.action()?;
        let p = args::parse(args, &[])?;
        if p.positional.is_empty() {
            return Err(ToolError::usage("no message specified"));
        }
        let mut record = crate::context::read_action(&self.dir);
        record.log.push(p.positional.join(" "));
        crate::context::write_action(&self.dir, &record).map_err(|e| ToolError::run(e.to_string()))
    }

    fn state_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FORMAT, OUTPUT, boolean(&["--strict"])])?;
        let state = self.pending()?.state;
        let value = match p.positional.as_slice() {
            [] => json!(state),
            [k] if k == "-" => json!(state),
            [k] => match state.get(k) {
                Some(v) => json!(v),
                None if p.flag("--strict") => {
                    return Err(ToolError::run(format!("{k:?} not found")));
                }
                None => json!(""),
            },
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        self.output(&p, &value, Format::Smart)
    }

    fn state_set(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[FILE])?;
        let settings = self.settings(&p)?;
        let mut pending = self.pending()?;
        for (k, v) in settings {
            if k.len() > 256 {
                return Err(ToolError::run(format!(
                    "key {k:?} exceeds the 256 byte limit"
                )));
            }
            if v.len() > 64 * 1024 {
                return Err(ToolError::run(format!(
                    "value of {k:?} exceeds the 64 KiB limit"
                )));
            }
            if v.is_empty() {
                pending.state.remove(&k);
            } else {
                pending.state.insert(k, v);
            }
        }
        self.save_pending(&pending)
    }

    fn state_delete(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(args, &[])?;
        let key = match p.positional.as_slice() {
            [k] => k,
            [] => return Err(ToolError::usage("no key specified")),
            [_, rest @ ..] => return Err(unrecognized(rest)),
        };
        let mut pending = self.pending()?;
        pending.state.remove(key);
        self.save_pending(&pending)
    }

    fn secret_get(&mut self, args: &[String]) -> ToolResult {
        let p = args::parse(
            args,
            &[
                FORMAT,
                OUTPUT,
                valued(&["--label"]),
                boolean(&["--peek"]),
                boolean(&["--refresh"]),
            ],
        )?;
        let id = p
            .positional
            .first()
            .map(String::as_str)
            .or(p.value("--label"))
            .ok_or_else(|| ToolError::usage("require either a secret URI or label"))?;
        let content = self
            .ctx
            .relations
            .iter()
            .find_map(|r| r.secrets.get(id))
            .ok_or_else(|| ToolError::run(format!("secret {id:?} not found")))?;
        let value = serde_json::Value::Object(
            content
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        );
        self.output(&p, &value, Format::Yaml)
    }
}

/// A segment of an action-set key, as Juju checks it: lowercase letters
/// and digits, dashes inside.
fn is_result_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with('-')
        && !k.ends_with('-')
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Keys Juju keeps for itself in an action's results.
const RESERVED_RESULTS: &[&str] = &["stdout", "stdout-encoding", "stderr", "stderr-encoding"];

fn unrecognized(rest: &[String]) -> ToolError {
    let quoted: Vec<String> = rest.iter().map(|a| format!("{a:?}")).collect();
    ToolError::usage(format!("unrecognized args: [{}]", quoted.join(" ")))
}

/// `80`, `80/TCP`, `8000-8999/udp`, `icmp` → Juju's canonical spelling.
pub fn normalise_port(spec: &str) -> Result<String, ToolError> {
    let s = spec.to_ascii_lowercase();
    let bad = || {
        ToolError::usage(format!(
            "expected <port>[/<protocol>] or <from>-<to>[/<protocol>] or icmp; got {spec:?}"
        ))
    };
    if s == "icmp" {
        return Ok(s);
    }
    let (range, proto) = s.split_once('/').unwrap_or((s.as_str(), "tcp"));
    if !matches!(proto, "tcp" | "udp") {
        return Err(bad());
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(bad);
    match range.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(bad());
            }
            if a == b {
                Ok(format!("{a}/{proto}"))
            } else {
                Ok(format!("{a}-{b}/{proto}"))
            }
        }
        None => Ok(format!("{}/{proto}", port(range)?)),
    }
}

fn port_sort_key(s: &str) -> (String, u32) {
    let (range, proto) = s.split_once('/').unwrap_or((s, ""));
    let first = range.split('-').next().unwrap_or("").parse().unwrap_or(0);
    (proto.to_owned(), first)
}
