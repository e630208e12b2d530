//! The typed client of the hook tools (juju-hook-contract.md §4).
//!
//! Juju answers reads from a snapshot taken at hook start, so a value read
//! once is good for the whole hook: every read is cached, and the charm's
//! own writes update the cache (Juju too shows a unit its own uncommitted
//! relation data). Writes that would change nothing are not sent: a
//! needless relation-set wakes the other side with a -changed hook.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use juju_contract::{Databag, Tool, WorkloadStatus};
use serde_json::{Map, Value};
use thiserror::Error;

use super::runner::{ToolOutput, ToolRunner};

/// A hook tool that could not be run or failed.
#[derive(Debug, Error)]
pub enum ToolError {
    /// The tool could not be started.
    #[error("{tool} {args}: cannot run")]
    Spawn {
        /// The tool.
        tool: Tool,
        /// Its arguments, joined.
        args: String,
        /// Why.
        source: std::io::Error,
    },
    /// The tool exited non-zero.
    #[error("{tool} {args}: {}: {stderr}", exit_text(*.code))]
    Failed {
        /// The tool.
        tool: Tool,
        /// Its arguments, joined.
        args: String,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// The tool printed something that is not what it should.
    #[error("{tool} {args}: unexpected output: {detail}")]
    Output {
        /// The tool.
        tool: Tool,
        /// Its arguments, joined.
        args: String,
        /// What was wrong.
        detail: String,
    },
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_owned(),
    }
}

#[derive(Default)]
struct Cache {
    config: Option<Map<String, Value>>,
    relation_ids: HashMap<String, Vec<String>>,
    relation_list: HashMap<String, Vec<String>>,
    relation_get: HashMap<(String, String, bool), Databag>,
    is_leader: Option<bool>,
    status: Option<(WorkloadStatus, String)>,
    addresses: HashMap<String, String>,
    resources: HashMap<String, Option<PathBuf>>,
    secrets: HashMap<String, Databag>,
}

/// The hook tools, for one hook.
pub struct HookTools {
    runner: Box<dyn ToolRunner>,
    cache: RefCell<Cache>,
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

impl HookTools {
    /// A client running tools with `runner`.
    pub fn new(runner: Box<dyn ToolRunner>) -> Self {
        HookTools {
            runner,
            cache: RefCell::default(),
        }
    }

    fn call(
        &self,
        tool: Tool,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let joined = || args.join(" ");
        let out = self
            .runner
            .run(tool, &args, stdin)
            .map_err(|source| ToolError::Spawn {
                tool,
                args: joined(),
                source,
            })?;
        if out.code != Some(0) {
            return Err(ToolError::Failed {
                tool,
                args: joined(),
                code: out.code,
                stderr: tail(&out.stderr, 5),
            });
        }
        Ok(out)
    }

    fn json(&self, tool: Tool, args: &[&str]) -> Result<Value, ToolError> {
        let out = self.call(tool, args, None)?;
        serde_json::from_slice(&out.stdout).map_err(|e| ToolError::Output {
            tool,
            args: args.join(" "),
            detail: e.to_string(),
        })
    }

    fn bad(tool: Tool, args: &[&str], detail: &str) -> ToolError {
        ToolError::Output {
            tool,
            args: args.join(" "),
            detail: detail.into(),
        }
    }

    /// All config values (`config-get --format=json`), read once per hook.
    pub fn config(&self) -> Result<Map<String, Value>, ToolError> {
        if let Some(c) = &self.cache.borrow().config {
            return Ok(c.clone());
        }
        let args = ["--format=json"];
        let map = match self.json(Tool::ConfigGet, &args)? {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err(Self::bad(Tool::ConfigGet, &args, "not a JSON object")),
        };
        self.cache.borrow_mut().config = Some(map.clone());
        Ok(map)
    }

    fn strings(&self, tool: Tool, args: &[&str]) -> Result<Vec<String>, ToolError> {
        match self.json(tool, args)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(Self::bad(tool, args, "a list item is not a string")),
                })
                .collect(),
            _ => Err(Self::bad(tool, args, "not a JSON list")),
        }
    }

    /// `relation-ids ENDPOINT`.
    pub fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>, ToolError> {
        if let Some(v) = self.cache.borrow().relation_ids.get(endpoint) {
            return Ok(v.clone());
        }
        let v = self.strings(Tool::RelationIds, &[endpoint, "--format=json"])?;
        self.cache
            .borrow_mut()
            .relation_ids
            .insert(endpoint.to_owned(), v.clone());
        Ok(v)
    }

    /// `relation-list -r RID`: the remote units.
    pub fn relation_list(&self, relation_id: &str) -> Result<Vec<String>, ToolError> {
        if let Some(v) = self.cache.borrow().relation_list.get(relation_id) {
            return Ok(v.clone());
        }
        let v = self.strings(Tool::RelationList, &["--format=json", "-r", relation_id])?;
        self.cache
            .borrow_mut()
            .relation_list
            .insert(relation_id.to_owned(), v.clone());
        Ok(v)
    }

    /// `relation-get -r RID - WHO` (with `app`: an application's databag).
    pub fn relation_get(
        &self,
        relation_id: &str,
        who: &str,
        app: bool,
    ) -> Result<Databag, ToolError> {
        let key = (relation_id.to_owned(), who.to_owned(), app);
        if let Some(v) = self.cache.borrow().relation_get.get(&key) {
            return Ok(v.clone());
        }
        let mut args = vec!["--format=json", "-r", relation_id];
        if app {
            args.push("--app");
        }
        args.extend(["-", who]);
        let bag = match self.json(Tool::RelationGet, &args)? {
            Value::Null => Databag::new(),
            Value::Object(m) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    _ => Err(Self::bad(
                        Tool::RelationGet,
                        &args,
                        "a value is not a string",
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(Self::bad(Tool::RelationGet, &args, "not a JSON object")),
        };
        self.cache
            .borrow_mut()
            .relation_get
            .insert(key, bag.clone());
        Ok(bag)
    }

    /// Publishes `data` in this unit's databag (`app`: its application's, as
    /// leader), sending only keys whose value differs from what the databag
    /// holds; an empty value deletes a key. Values go on stdin as JSON
    /// (`--file -`): no size limit, and no secret in process arguments.
    pub fn relation_set(
        &self,
        relation_id: &str,
        own: &str,
        data: &Databag,
        app: bool,
    ) -> Result<bool, ToolError> {
        let current = self.relation_get(relation_id, own, app)?;
        let changed: Databag = data
            .iter()
            .filter(|(k, v)| current.get(*k).map_or("", String::as_str) != v.as_str())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if changed.is_empty() {
            return Ok(false);
        }
        let body = serde_json::to_vec(&changed)
            .map_err(|e| Self::bad(Tool::RelationSet, &[], &e.to_string()))?;
        let mut args = vec!["-r", relation_id];
        if app {
            args.push("--app");
        }
        args.extend(["--file", "-"]);
        self.call(Tool::RelationSet, &args, Some(&body))?;
        let mut cache = self.cache.borrow_mut();
        let entry = cache
            .relation_get
            .entry((relation_id.to_owned(), own.to_owned(), app))
            .or_default();
        for (k, v) in changed {
            if v.is_empty() {
                entry.remove(&k);
            } else {
                entry.insert(k, v);
            }
        }
        Ok(true)
    }

    /// `status-set STATUS -- MESSAGE`, skipped when it repeats this hook's last.
    pub fn status_set(&self, status: WorkloadStatus, message: &str) -> Result<(), ToolError> {
        let message = crate::secrets::scrub(message);
        let message = message.as_str();
        let now = (status, message.to_owned());
        if self.cache.borrow().status.as_ref() == Some(&now) {
            return Ok(());
        }
        self.call(Tool::StatusSet, &[status.as_str(), "--", message], None)?;
        self.cache.borrow_mut().status = Some(now);
        Ok(())
    }

    /// `juju-log --log-level LEVEL -- MESSAGE`.
    pub fn log(&self, level: crate::log::LogLevel, message: &str) -> Result<(), ToolError> {
        let message = crate::secrets::scrub(message);
        self.call(
            Tool::JujuLog,
            &["--log-level", level.as_str(), "--", &message],
            None,
        )
        .map(drop)
    }

    /// `action-get --format=json`: the action's parameters.
    pub fn action_get(&self) -> Result<Map<String, Value>, ToolError> {
        let args = ["--format=json"];
        match self.json(Tool::ActionGet, &args)? {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            _ => Err(Self::bad(Tool::ActionGet, &args, "not a JSON object")),
        }
    }

    /// `action-set KEY=VALUE...` (dotted keys nest; values are scrubbed of
    /// secrets like every message that leaves the agent).
    pub fn action_set(&self, results: &BTreeMap<String, String>) -> Result<(), ToolError> {
        if results.is_empty() {
            return Ok(());
        }
        let pairs: Vec<String> = results
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::secrets::scrub(v)))
            .collect();
        let args: Vec<&str> = pairs.iter().map(String::as_str).collect();
        self.call(Tool::ActionSet, &args, None).map(drop)
    }

    /// `action-fail -- MESSAGE`.
    pub fn action_fail(&self, message: &str) -> Result<(), ToolError> {
        let message = crate::secrets::scrub(message);
        self.call(Tool::ActionFail, &["--", &message], None)
            .map(drop)
    }

    /// `action-log -- MESSAGE`.
    pub fn action_log(&self, message: &str) -> Result<(), ToolError> {
        let message = crate::secrets::scrub(message);
        self.call(Tool::ActionLog, &["--", &message], None)
            .map(drop)
    }

    /// `open-port PORT/tcp`.
    pub fn open_port(&self, port: u16) -> Result<(), ToolError> {
        self.call(Tool::OpenPort, &[&format!("{port}/tcp")], None)
            .map(drop)
    }

    /// `close-port PORT/tcp`.
    pub fn close_port(&self, port: u16) -> Result<(), ToolError> {
        self.call(Tool::ClosePort, &[&format!("{port}/tcp")], None)
            .map(drop)
    }

    /// `state-get KEY --format=json`: the value in Juju's unit state, None
    /// when the key is not set.
    pub fn state_get(&self, key: &str) -> Result<Option<String>, ToolError> {
        let args = [key, "--format=json"];
        match self.json(Tool::StateGet, &args)? {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s)),
            _ => Err(Self::bad(Tool::StateGet, &args, "not a string")),
        }
    }

    /// `state-set KEY=VALUE`: committed with the hook's other changes.
    pub fn state_set(&self, key: &str, value: &str) -> Result<(), ToolError> {
        self.call(Tool::StateSet, &[&format!("{key}={value}")], None)
            .map(drop)
    }

    /// `application-version-set -- VERSION`.
    pub fn application_version_set(&self, version: &str) -> Result<(), ToolError> {
        self.call(Tool::ApplicationVersionSet, &["--", version], None)
            .map(drop)
    }

    /// `is-leader --format=json`, once per hook (Juju: a "no" stays a no).
    pub fn is_leader(&self) -> Result<bool, ToolError> {
        if let Some(l) = self.cache.borrow().is_leader {
            return Ok(l);
        }
        let args = ["--format=json"];
        let l = self
            .json(Tool::IsLeader, &args)?
            .as_bool()
            .ok_or_else(|| Self::bad(Tool::IsLeader, &args, "not a boolean"))?;
        self.cache.borrow_mut().is_leader = Some(l);
        Ok(l)
    }

    /// `unit-get --format=json private-address`.
    pub fn private_address(&self) -> Result<String, ToolError> {
        self.address(Tool::UnitGet, &["--format=json", "private-address"])
    }

    /// `network-get BINDING --ingress-address --format=json`.
    pub fn ingress_address(&self, binding: &str) -> Result<String, ToolError> {
        self.address(
            Tool::NetworkGet,
            &[binding, "--ingress-address", "--format=json"],
        )
    }

    fn address(&self, tool: Tool, args: &[&str]) -> Result<String, ToolError> {
        let key = format!("{tool} {}", args.join(" "));
        if let Some(a) = self.cache.borrow().addresses.get(&key) {
            return Ok(a.clone());
        }
        let a = match self.json(tool, args)? {
            Value::String(s) => s,
            Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or("").to_owned(),
            _ => return Err(Self::bad(tool, args, "not an address")),
        };
        self.cache.borrow_mut().addresses.insert(key, a.clone());
        Ok(a)
    }

    /// `resource-get NAME`: its path, or None when no revision is attached.
    pub fn resource_get(&self, name: &str) -> Result<Option<PathBuf>, ToolError> {
        if let Some(r) = self.cache.borrow().resources.get(name) {
            return Ok(r.clone());
        }
        let path = match self.call(Tool::ResourceGet, &[name], None) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                (!text.is_empty()).then(|| PathBuf::from(text))
            }
            // Juju: "could not download resource ... not found" when none is attached.
            Err(ToolError::Failed { ref stderr, .. })
                if stderr.contains("not found") || stderr.contains("no resource") =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        self.cache
            .borrow_mut()
            .resources
            .insert(name.to_owned(), path.clone());
        Ok(path)
    }

    /// `secret-get --format=json -- URI`: the secret's content, its values
    /// registered as secrets. `uri` comes from a remote charm: it must have
    /// the shape of a Juju secret URI, and goes after `--`, so it cannot
    /// be read as an option (`--label`, `--peek`).
    pub fn secret_get(&self, uri: &str) -> Result<Databag, ToolError> {
        if let Some(s) = self.cache.borrow().secrets.get(uri) {
            return Ok(s.clone());
        }
        if !is_secret_uri(uri) {
            return Err(Self::bad(
                Tool::SecretGet,
                &[],
                &format!(
                    "{:?} is not a Juju secret URI",
                    uri.chars().take(80).collect::<String>()
                ),
            ));
        }
        let args = ["--format=json", "--", uri];
        let content: Databag = match self.json(Tool::SecretGet, &args)? {
            Value::Object(m) => m
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect(),
            _ => return Err(Self::bad(Tool::SecretGet, &args, "not a JSON object")),
        };
        for v in content.values() {
            crate::secrets::register(v);
        }
        self.cache
            .borrow_mut()
            .secrets
            .insert(uri.to_owned(), content.clone());
        Ok(content)
    }
}

/// A Juju secret URI: `secret:<id>` or `secret://<model uuid>/<id>`, the id
/// 20 characters of xid's alphabet (`0-9a-v`).
pub fn is_secret_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("secret:") else {
        return false;
    };
    let id = match rest.strip_prefix("//") {
        Some(r) => match r.split_once('/') {
            Some((uuid, id))
                if uuid.len() == 36 && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') =>
            {
                id
            }
            _ => return false,
        },
        None => rest,
    };
    id.len() == 20 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v'))
}
