//! One object turn's storage in two calls: the entries the turn may read, fetched
//! together (`get_multiple`), and everything it writes, saved together (`put_multiple`,
//! atomic). Every `get` or `put` of a Durable Object is a round trip through the
//! runtime, and a message made a dozen of them in each object; measured on the message
//! path, they cost more than the object call itself (see the README, issue 12).
//!
//! Only storage may be awaited between [`Turn::load`] and [`Turn::commit`]: the object's
//! input gate then keeps every other event out, so no other request can interleave with
//! the turn and nothing it read can be stale when it writes. A turn that must await
//! something else (another object, a Rate Limiting binding) does that first, or loads
//! again afterwards.
//!
//! Values are converted exactly as `Storage::get`/`put` convert them
//! (`serde_wasm_bindgen`'s defaults), so entries written by a turn and by a plain `put`
//! read the same either way.

use js_sys::{Map, Object, Reflect};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;
use worker::Storage;

use crate::error::AppError;

/// The storage API's bound on the keys of one `get_multiple` or `put_multiple`.
const MAX_KEYS_PER_CALL: usize = 128;

/// What one turn read and what it will write.
#[derive(Debug)]
pub struct Turn {
    loaded: Map,
    /// Keys asked for (present in storage or not): reading any other key is a bug.
    asked: Vec<String>,
    writes: Map,
}

impl Turn {
    /// Read `keys` (at most 128) in one call.
    pub async fn load(storage: &Storage, keys: &[&str]) -> Result<Self, AppError> {
        if keys.len() > MAX_KEYS_PER_CALL {
            return Err(AppError::Internal(format!(
                "a turn reads at most {MAX_KEYS_PER_CALL} keys"
            )));
        }
        let loaded = storage.get_multiple(keys.to_vec()).await?;
        Ok(Turn {
            loaded,
            asked: keys.iter().map(|k| (*k).to_owned()).collect(),
            writes: Map::new(),
        })
    }

    /// The value of `key` as this turn sees it: its own write if any, else the stored
    /// one. A key the turn did not load is an error, not a silent `None`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AppError> {
        let name = JsValue::from_str(key);
        let value = if self.writes.has(&name) {
            self.writes.get(&name)
        } else if self.asked.iter().any(|k| k == key) {
            self.loaded.get(&name)
        } else {
            return Err(AppError::Internal(format!(
                "the turn reads {key}, which it did not load"
            )));
        };
        if value.is_undefined() {
            return Ok(None);
        }
        serde_wasm_bindgen::from_value(value)
            .map(Some)
            .map_err(|e| AppError::Internal(format!("stored {key} does not read back: {e}")))
    }

    /// Write `value` under `key` when the turn commits.
    pub fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), AppError> {
        let value = serde_wasm_bindgen::to_value(value)
            .map_err(|e| AppError::Internal(format!("{key} does not serialize: {e}")))?;
        self.writes.set(&JsValue::from_str(key), &value);
        Ok(())
    }

    /// Save every write (one call per 128 keys; all of them before any other event).
    pub async fn commit(self, storage: &Storage) -> Result<(), AppError> {
        let js = |e: JsValue| AppError::from(worker::Error::from(e));
        let mut chunk = Object::new();
        let mut in_chunk = 0_usize;
        for entry in self.writes.entries() {
            let entry = entry.map_err(js)?;
            let key = Reflect::get_u32(&entry, 0).map_err(js)?;
            let value = Reflect::get_u32(&entry, 1).map_err(js)?;
            Reflect::set(&chunk, &key, &value).map_err(js)?;
            in_chunk += 1;
            if in_chunk == MAX_KEYS_PER_CALL {
                storage
                    .put_multiple_raw(std::mem::replace(&mut chunk, Object::new()))
                    .await?;
                in_chunk = 0;
            }
        }
        if in_chunk > 0 {
            storage.put_multiple_raw(chunk).await?;
        }
        Ok(())
    }
}
