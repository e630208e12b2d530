//! What the layer remembers from one hook to the next: one typed, versioned
//! struct, kept in the engine's state (committed with it, so only when the
//! hook succeeds). A value that does not read back is an error naming the
//! key, never a silent reset; a state file written by an older release of
//! the charm (format 0: one engine key per field) is read and rewritten in
//! this format.

use reactive::Ctx;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::relations::RelationView;
use crate::render::Hashes;
use crate::seams::{LayerCtx, Status};

/// The engine key the memory lives under.
pub const KEY: &str = "wsgi.memory";
/// This format (2 added the release fields; a format-1 memory reads as is).
pub const VERSION: u32 = 2;

/// What update-status checks, kept from the last reconcile so that it needs
/// no config-get (a config change always comes with config-changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthTarget {
    /// The port gunicorn listens on.
    pub port: u16,
    /// The path the check requests.
    pub path: String,
    /// The active status message.
    pub serving: String,
}

/// A release chosen by the rollback action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The release to serve.
    pub release: u32,
    /// The source attached when it was chosen; attaching another ends the pin.
    pub over_source: Option<String>,
}

/// The layer's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerMemory {
    /// The format ([`VERSION`]).
    pub version: u32,
    /// The status last set (status-set is called only when it changes).
    pub status: Option<(Status, String)>,
    /// A block the reconcile found (bad config, resource, requirements,
    /// port, files, provision), kept until a reconcile gets past it, so that
    /// update-status does not cover it with "active" while the old service
    /// still answers.
    pub held: Option<(Status, String)>,
    /// The SHA-256 of the source last taken from the resource (or the
    /// charm's directory).
    pub release: Option<String>,
    /// What is wrong with the newest code while an older release serves
    /// (it would not install, or failed its health check and was rolled
    /// back): the unit is blocked with it, the service keeps serving.
    #[serde(default)]
    pub problem: Option<String>,
    /// A release that failed its health check, and the digest of the files
    /// it failed with: not tried again until one of them changes.
    #[serde(default)]
    pub failed_with: Option<(u32, String)>,
    /// The operator's rollback: the release to serve while the source it
    /// rolled back from stays attached.
    #[serde(default)]
    pub pinned: Option<Pin>,
    /// The charm's own uv, where install put it.
    #[serde(default)]
    pub uv: Option<std::path::PathBuf>,
    /// Why the attached resource was refused (kept until another is attached).
    pub resource_error: Option<String>,
    /// Why a database URL is not usable yet (update-status retries it).
    pub db_waiting: Option<String>,
    /// Digests of the database URLs that connected.
    pub db_checked: Vec<String>,
    /// What the relations gave, as of the last reconcile.
    pub relations: Option<RelationView>,
    /// The port opened (open-port).
    pub port: Option<u16>,
    /// The hashes of the files the running service was started or reloaded with.
    pub hashes: Option<Hashes>,
    /// What update-status checks.
    pub health_target: Option<HealthTarget>,
    /// The main PID before a restart this hook made (a health check answered
    /// by it would be the old master).
    pub old_main_pid: Option<u32>,
}

/// The memory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// A value does not read back as its type.
    #[error(transparent)]
    Stored(#[from] reactive::StoredError),
    /// Written by a newer release of the charm.
    #[error(
        "the layer's memory ({KEY}) has format {found}; this charm reads format {VERSION} and older"
    )]
    Newer {
        /// The format found.
        found: u32,
    },
}

/// Format 0: one engine key per field; the status enum in PascalCase.
mod v0 {
    use super::Status;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) enum OldStatus {
        Maintenance,
        Blocked,
        Waiting,
        Active,
    }

    impl From<OldStatus> for Status {
        fn from(s: OldStatus) -> Status {
            match s {
                OldStatus::Maintenance => Status::Maintenance,
                OldStatus::Blocked => Status::Blocked,
                OldStatus::Waiting => Status::Waiting,
                OldStatus::Active => Status::Active,
            }
        }
    }

    /// The keys of format 0, in the engine's store.
    pub(super) const KEYS: &[&str] = &[
        "status",
        "held",
        "release",
        "resource-error",
        "db-waiting",
        "db-checked",
        "relations",
        "port",
        "hashes",
        "health-target",
        "old-main-pid",
    ];
}

fn old<T: DeserializeOwned>(ctx: &Ctx<'_, LayerCtx>, key: &str) -> Result<Option<T>, MemoryError> {
    Ok(ctx.stored(key)?)
}

fn old_status(ctx: &Ctx<'_, LayerCtx>, key: &str) -> Result<Option<(Status, String)>, MemoryError> {
    Ok(old::<(v0::OldStatus, String)>(ctx, key)?.map(|(s, m)| (s.into(), m)))
}

impl LayerMemory {
    /// Reads the memory from the engine's state (an empty memory before the
    /// first hook), migrating format 0.
    pub fn load(ctx: &Ctx<'_, LayerCtx>) -> Result<Self, MemoryError> {
        if let Some(m) = ctx.stored::<LayerMemory>(KEY).map_err(|e| {
            // A newer format may not parse at all: say so rather than
            // naming a field this release does not know.
            match ctx
                .stored_raw(KEY)
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                .and_then(|v| v.get("version")?.as_u64())
            {
                Some(found) if found > u64::from(VERSION) => MemoryError::Newer {
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                },
                _ => MemoryError::Stored(e),
            }
        })? {
            if m.version > VERSION {
                return Err(MemoryError::Newer { found: m.version });
            }
            return Ok(m);
        }
        Ok(LayerMemory {
            version: VERSION,
            status: old_status(ctx, "status")?,
            held: old_status(ctx, "held")?,
            release: old(ctx, "release")?,
            problem: None,
            failed_with: None,
            pinned: None,
            uv: None,
            resource_error: old(ctx, "resource-error")?,
            db_waiting: old(ctx, "db-waiting")?,
            db_checked: old(ctx, "db-checked")?.unwrap_or_default(),
            relations: old(ctx, "relations")?,
            port: old(ctx, "port")?,
            hashes: old(ctx, "hashes")?,
            health_target: old(ctx, "health-target")?,
            old_main_pid: old::<Option<u32>>(ctx, "old-main-pid")?.flatten(),
        })
    }

    /// Keeps the memory in the engine's state (format 0 keys removed).
    pub fn save(&self, ctx: &mut Ctx<'_, LayerCtx>) -> Result<(), serde_json::Error> {
        for key in v0::KEYS {
            ctx.unstore(key);
        }
        let mut m = self.clone();
        m.version = VERSION;
        ctx.store(KEY, &m)
    }
}
