//! The haproxy stand-in (being written; every call errors until it lands).

use std::net::SocketAddr;

use super::util::Common;
use super::{RelationSnapshot, RemoteData, StandIn, StandInError};

pub struct HaProxy {
    common: Common,
}

impl HaProxy {
    pub(crate) fn open(common: Common) -> Result<Self, StandInError> {
        Ok(Self { common })
    }

    fn todo(&self) -> StandInError {
        StandInError::Invalid(format!(
            "stand-in {}: the haproxy stand-in is not implemented yet",
            self.common.meta.app
        ))
    }
}

impl StandIn for HaProxy {
    fn kind(&self) -> &str {
        "haproxy"
    }
    fn app(&self) -> &str {
        &self.common.meta.app
    }
    fn units(&self) -> Vec<String> {
        self.common.units()
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["http"]
    }
    fn start(&mut self, _progress: &dyn Fn(&str)) -> Result<(), StandInError> {
        Err(self.todo())
    }
    fn is_running(&self) -> bool {
        false
    }
    fn react(&mut self, _charm_side: &RelationSnapshot) -> Result<RemoteData, StandInError> {
        Err(self.todo())
    }
    fn broken(&mut self, _charm_side: &RelationSnapshot) -> Result<(), StandInError> {
        Err(self.todo())
    }
    fn stop(&mut self) -> Result<(), StandInError> {
        Ok(())
    }
    fn address(&self) -> Option<SocketAddr> {
        None
    }
    fn status(&self) -> String {
        "haproxy (not implemented yet)".into()
    }
}
