//! What a handler body receives: the flags, `data_changed` bookkeeping,
//! values kept across hooks, and the layer's own context.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::flags::FlagBook;

/// Stored values live beside the data_changed hashes, apart by this prefix.
const STORE_PREFIX: &str = "store:";

/// What a handler body can do: read and change flags, keep `data_changed`
/// bookkeeping, and reach the layer's own context.
pub struct Ctx<'a, C> {
    book: &'a mut FlagBook,
    data: &'a mut BTreeMap<String, String>,
    hook: &'a str,
    /// The layer's context (hook tools, host access…), supplied by the runtime.
    pub layer: &'a mut C,
}

impl<'a, C> Ctx<'a, C> {
    pub(crate) fn new(
        book: &'a mut FlagBook,
        data: &'a mut BTreeMap<String, String>,
        hook: &'a str,
        layer: &'a mut C,
    ) -> Self {
        Ctx {
            book,
            data,
            hook,
            layer,
        }
    }

    /// The hook being dispatched, e.g. `config-changed`.
    pub fn hook(&self) -> &str {
        self.hook
    }

    /// Whether `flag` is set now.
    pub fn is_set(&self, flag: &str) -> bool {
        self.book.is_set(flag)
    }

    /// Sets `flag`. Handlers waiting for it become due in the next pass.
    pub fn set_flag(&mut self, flag: &str) {
        self.book.set(flag);
    }

    /// Clears `flag`. Handlers of this pass not yet run are re-tested at once.
    pub fn clear_flag(&mut self, flag: &str) {
        self.book.clear(flag);
    }

    /// Sets or clears `flag`.
    pub fn toggle_flag(&mut self, flag: &str, on: bool) {
        if on {
            self.set_flag(flag);
        } else {
            self.clear_flag(flag);
        }
    }

    /// All flags set now, sorted.
    pub fn flags(&self) -> impl Iterator<Item = &str> {
        self.book.flags.iter().map(String::as_str)
    }

    /// Whether `value` differs from the value last recorded under `key` (true
    /// the first time), recording it. Compared by a hash of its JSON with
    /// sorted keys; kept only if the hook succeeds.
    pub fn data_changed<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<bool, serde_json::Error> {
        let hash = hash_json(value)?;
        let changed = self.data.get(key) != Some(&hash);
        if changed {
            self.data.insert(key.to_owned(), hash);
        }
        Ok(changed)
    }

    /// The value kept across hooks with [`Ctx::store`] under `key`, if any.
    /// A value that no longer reads as a `T` (a type changed between
    /// releases) is an error naming the key, never a silent `None`.
    pub fn stored<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoredError> {
        match self.data.get(&format!("{STORE_PREFIX}{key}")) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|source| StoredError {
                    key: key.to_owned(),
                    source,
                }),
        }
    }

    /// The raw JSON text kept under `key` (for migrations of old formats).
    pub fn stored_raw(&self, key: &str) -> Option<&str> {
        self.data
            .get(&format!("{STORE_PREFIX}{key}"))
            .map(String::as_str)
    }

    /// Keeps `value` across hooks (committed with the state, so only if this
    /// hook succeeds), for bookkeeping such as the port last opened.
    pub fn store<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.data.insert(
            format!("{STORE_PREFIX}{key}"),
            serde_json::to_string(value)?,
        );
        Ok(())
    }

    /// Forgets a value kept with [`Ctx::store`].
    pub fn unstore(&mut self, key: &str) {
        self.data.remove(&format!("{STORE_PREFIX}{key}"));
    }

    /// Forgets `key`, so that the next `data_changed(key, …)` reports a change.
    pub fn forget_data(&mut self, key: &str) {
        self.data.remove(key);
    }
}

fn hash_json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    // Equal data must hash equally whatever the order of a HashMap
    // (interface-http needed a fix for this). serde_json's maps are sorted
    // only without its `preserve_order` feature, which another crate in the
    // build (bson, under the mongodb driver) turns on: sort explicitly.
    let bytes = serde_json::to_vec(&sorted(serde_json::to_value(value)?))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The value with every object's keys in sorted order.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A value kept across hooks that does not read back as the type asked for.
#[derive(Debug, thiserror::Error)]
#[error("the value kept under {key:?} in the state file does not read back")]
pub struct StoredError {
    /// The key.
    pub key: String,
    /// Why.
    #[source]
    pub source: serde_json::Error,
}
