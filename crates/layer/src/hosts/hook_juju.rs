//! The layer's view of Juju, over hookenv's tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hookenv::{HookContext, HookTools};
use interfaces::Databag;
use serde_json::{Map, Value};

use crate::seams::{Juju, RelationContext, Status};

/// Juju through the hook tools of this hook.
pub struct HookJuju {
    ctx: HookContext,
    tools: HookTools,
}

impl HookJuju {
    /// Juju for the hook `ctx` describes, through `tools`.
    pub fn new(ctx: HookContext, tools: HookTools) -> Self {
        HookJuju { ctx, tools }
    }
}

impl Juju for HookJuju {
    fn unit_name(&self) -> &str {
        &self.ctx.unit
    }
    fn charm_dir(&self) -> &Path {
        &self.ctx.charm_dir
    }
    fn config(&self) -> anyhow::Result<Map<String, Value>> {
        Ok(self.tools.config()?)
    }
    fn resource(&self, name: &str) -> anyhow::Result<Option<PathBuf>> {
        Ok(self.tools.resource_get(name)?)
    }
    fn status(&self, status: Status, message: &str) -> anyhow::Result<()> {
        Ok(self.tools.status_set(status, message)?)
    }
    fn open_port(&self, port: u16) -> anyhow::Result<()> {
        Ok(self.tools.open_port(port)?)
    }
    fn close_port(&self, port: u16) -> anyhow::Result<()> {
        Ok(self.tools.close_port(port)?)
    }
    fn app_version(&self, version: &str) -> anyhow::Result<()> {
        Ok(self.tools.application_version_set(version)?)
    }
    fn is_leader(&self) -> anyhow::Result<bool> {
        Ok(self.tools.is_leader()?)
    }
    fn relation_ids(&self, endpoint: &str) -> anyhow::Result<Vec<String>> {
        Ok(self.tools.relation_ids(endpoint)?)
    }
    fn relation_units(&self, relation_id: &str) -> anyhow::Result<Vec<String>> {
        Ok(self.tools.relation_list(relation_id)?)
    }
    fn relation_get(&self, rid: &str, who: &str, app: bool) -> anyhow::Result<Databag> {
        Ok(self.tools.relation_get(rid, who, app)?)
    }
    fn relation_set(&self, rid: &str, data: &Databag, app: bool) -> anyhow::Result<()> {
        let own = if app { &self.ctx.app } else { &self.ctx.unit };
        self.tools.relation_set(rid, own, data, app)?;
        Ok(())
    }
    fn secret_get(&self, uri: &str) -> anyhow::Result<Databag> {
        Ok(self.tools.secret_get(uri)?)
    }
    fn ingress_address(&self) -> anyhow::Result<String> {
        match self.tools.ingress_address("website") {
            Ok(a) if !a.is_empty() => Ok(a),
            _ => Ok(self.tools.private_address()?),
        }
    }
    fn relation_context(&self) -> RelationContext<'_> {
        RelationContext {
            relation_id: self.ctx.relation_id.as_deref(),
            remote_unit: self.ctx.remote_unit.as_deref(),
            departing_unit: self.ctx.departing_unit.as_deref(),
        }
    }
    fn log(&self, message: &str) {
        if let Err(e) = self.tools.log(hookenv::log::LogLevel::Info, message) {
            // Logging must not fail a hook; stderr reaches Juju's log too.
            eprintln!("wsgi-agent: juju-log failed ({e}): {message}");
        }
    }
    fn proxy_env(&self) -> Vec<(String, String)> {
        self.ctx.proxy.env()
    }
    fn action_params(&self) -> anyhow::Result<Map<String, Value>> {
        Ok(self.tools.action_get()?)
    }
    fn action_set(&self, results: &BTreeMap<String, String>) -> anyhow::Result<()> {
        Ok(self.tools.action_set(results)?)
    }
    fn action_fail(&self, message: &str) -> anyhow::Result<()> {
        Ok(self.tools.action_fail(message)?)
    }
    fn action_log(&self, message: &str) -> anyhow::Result<()> {
        Ok(self.tools.action_log(message)?)
    }
}
