//! The real machine as the layer's [`Host`]. (Being wired to `crate::host`;
//! until then every operation reports that it is missing, so a hook fails
//! loudly instead of pretending.)

use std::collections::BTreeMap;
use std::path::Path;

use super::model::{Host, SeamError, ServiceState};

/// The machine the hook runs on.
#[derive(Debug, Default)]
pub struct SystemHost;

fn missing(what: &str) -> SeamError {
    format!("{what}: the host side is not wired in this build").into()
}

impl Host for SystemHost {
    fn ensure_user(&mut self, _: &str, _: &Path) -> Result<(), SeamError> {
        Err(missing("useradd"))
    }
    fn apt_install(&mut self, _: &[String]) -> Result<(), SeamError> {
        Err(missing("apt"))
    }
    fn unpack_release(&mut self, _: &Path, _: &Path, _: &Path) -> Result<String, SeamError> {
        Err(missing("unpack"))
    }
    fn ensure_venv(&mut self, _: &Path, _: &Path, _: Option<&Path>) -> Result<String, SeamError> {
        Err(missing("venv"))
    }
    fn write_file(
        &mut self,
        _: &Path,
        _: &str,
        _: u32,
        _: Option<&str>,
    ) -> Result<bool, SeamError> {
        Err(missing("write"))
    }
    fn ensure_log_file(&mut self, _: &Path, _: &str) -> Result<(), SeamError> {
        Err(missing("log file"))
    }
    fn remove_file(&mut self, _: &Path) -> Result<(), SeamError> {
        Err(missing("remove"))
    }
    fn systemctl(&mut self, _: &str, _: &str) -> Result<(), SeamError> {
        Err(missing("systemctl"))
    }
    fn service_state(&mut self, _: &str) -> Result<ServiceState, SeamError> {
        Err(missing("systemctl show"))
    }
    fn journal_tail(&mut self, _: &str, _: usize) -> String {
        String::new()
    }
    fn health(&mut self, _: u16, _: &str, _: u32) -> Result<String, SeamError> {
        Err(missing("health"))
    }
    fn provision(
        &mut self,
        _: &[String],
        _: &str,
        _: &Path,
        _: &BTreeMap<String, String>,
        _: u32,
    ) -> Result<(), SeamError> {
        Err(missing("provision"))
    }
    fn cpus(&self) -> u32 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    }
}
