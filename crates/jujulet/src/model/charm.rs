//! What jujulet reads from a charm's metadata.yaml: its name and endpoints.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{ModelError, io_err};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub provides: BTreeMap<String, Endpoint>,
    #[serde(default)]
    pub requires: BTreeMap<String, Endpoint>,
    #[serde(default)]
    pub peers: BTreeMap<String, Endpoint>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Endpoint {
    pub interface: String,
}

impl Metadata {
    pub fn read(charm_dir: &Path) -> Result<Self, ModelError> {
        let path = charm_dir.join("metadata.yaml");
        let text = std::fs::read_to_string(&path).map_err(io_err(
            "reading the charm's metadata (is this a charm directory?)",
            &path,
        ))?;
        serde_saphyr::from_str(&text).map_err(|e| ModelError::Parse {
            path,
            detail: e.to_string(),
        })
    }

    /// The interface of a provides/requires endpoint.
    pub fn interface(&self, endpoint: &str) -> Result<&str, ModelError> {
        self.provides
            .get(endpoint)
            .or_else(|| self.requires.get(endpoint))
            .map(|e| e.interface.as_str())
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .provides
                    .keys()
                    .chain(self.requires.keys())
                    .map(String::as_str)
                    .collect();
                ModelError::Invalid(format!(
                    "charm {} has no endpoint {endpoint:?}; its endpoints: {}",
                    self.name,
                    known.join(", ")
                ))
            })
    }
}
