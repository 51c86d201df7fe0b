//! The operations store seen from the worker: which `Ops` shard keeps a record (a hash of
//! its key, mostly the phone), record ids that name their shard (`dl-3-…`), and reads
//! that ask every shard at once and merge (one round trip's latency, not N).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::objects::ops::{self, DeadLetter, EventRecord, Fallback, PageArgs, BINDING};
use crate::rpc::{self, now_ms, Ctx};
use crate::settings::Settings;

/// The object name of shard `n`.
pub fn shard_name(n: u32) -> String {
    format!("ops-{n}")
}

/// The shard that keeps records about `key`.
pub fn shard_of(settings: &Settings, key: &str) -> u32 {
    gateway_core::webhook::shard_of(key, settings.config.ops_shards)
}

/// A new record id that names its shard: `{prefix}-{shard}-{random}`.
pub fn new_record_id(prefix: &str, shard: u32) -> String {
    rpc::new_id(&format!("{prefix}-{shard}")).replacen('_', "-", 1)
}

/// The shard named in a record id, if it is one of ours.
pub fn shard_in_id(settings: &Settings, id: &str) -> Option<u32> {
    let mut parts = id.splitn(3, '-');
    let _prefix = parts.next()?;
    let shard: u32 = parts.next()?.parse().ok()?;
    parts.next()?;
    (shard < settings.config.ops_shards).then_some(shard)
}

/// Call one shard.
pub async fn call<Res: DeserializeOwned>(
    ctx: &Ctx,
    shard: u32,
    op: &str,
    body: &impl Serialize,
) -> Result<Res, AppError> {
    rpc::call(ctx, BINDING, &shard_name(shard), op, body).await
}

/// Ask every shard the same thing, all at once.
pub async fn every_shard(
    ctx: &Ctx,
    settings: &Settings,
    op: &str,
    body: &Value,
) -> Result<Vec<Value>, AppError> {
    let names: Vec<String> = (0..settings.config.ops_shards).map(shard_name).collect();
    futures_util::future::try_join_all(
        names
            .iter()
            .map(|name| rpc::call::<_, Value>(ctx, BINDING, name, op, body)),
    )
    .await
}

/// Record a dead letter in its phone's shard (kept `retention.dead_letters_ms`).
pub async fn add_dead_letter(
    ctx: &Ctx,
    settings: &Settings,
    mut letter: DeadLetter,
) -> Result<String, AppError> {
    let shard = match shard_in_id(settings, &letter.id) {
        Some(shard) => shard,
        None => {
            let shard = shard_of(settings, &letter.phone);
            letter.id = new_record_id("dl", shard);
            shard
        }
    };
    let expires_ms = letter
        .at_ms
        .saturating_add(settings.config.retention.dead_letters_ms);
    call::<Value>(
        ctx,
        shard,
        "dead_letter.add",
        &json!({"letter": letter, "expires_ms": expires_ms}),
    )
    .await?;
    Ok(letter.id)
}

/// Record a fallback-routed chat in its phone's shard.
pub async fn add_fallback(
    ctx: &Ctx,
    settings: &Settings,
    fallback: &Fallback,
) -> Result<(), AppError> {
    let shard =
        shard_in_id(settings, &fallback.id).unwrap_or_else(|| shard_of(settings, &fallback.phone));
    let expires_ms = fallback
        .at_ms
        .saturating_add(settings.config.retention.fallbacks_ms);
    call::<Value>(
        ctx,
        shard,
        "fallback.add",
        &json!({"fallback": fallback, "expires_ms": expires_ms}),
    )
    .await?;
    Ok(())
}

/// Keep an event for operators in the shard of `key` (a phone, or the event's own id).
pub async fn add_event(
    ctx: &Ctx,
    settings: &Settings,
    key: &str,
    kind: &str,
    at_ms: i64,
    data: Value,
) -> Result<(), AppError> {
    let event = EventRecord {
        id: rpc::new_id("ev"),
        kind: kind.to_owned(),
        at_ms,
        data,
    };
    let expires_ms = now_ms().saturating_add(settings.config.retention.events_ms);
    call::<Value>(
        ctx,
        shard_of(settings, key),
        "event.add",
        &json!({"event": event, "expires_ms": expires_ms}),
    )
    .await?;
    Ok(())
}

/// Count `name` (an exact counter summed over the shards on read) in the shard of `key`.
pub async fn count(
    ctx: &Ctx,
    settings: &Settings,
    key: &str,
    name: &str,
    by: i64,
) -> Result<(), AppError> {
    call::<Value>(
        ctx,
        shard_of(settings, key),
        "count",
        &json!({"name": name, "by": by}),
    )
    .await?;
    Ok(())
}

/// A small index entry (`invite:{uid}` → its phone), kept until `expires_ms`.
pub async fn index_put(
    ctx: &Ctx,
    settings: &Settings,
    name: &str,
    value: Value,
    expires_ms: i64,
) -> Result<(), AppError> {
    call::<Value>(
        ctx,
        shard_of(settings, name),
        "index.put",
        &json!({"name": name, "value": value, "expires_ms": expires_ms}),
    )
    .await?;
    Ok(())
}

pub async fn index_get(ctx: &Ctx, settings: &Settings, name: &str) -> Result<Value, AppError> {
    let out: Value = call(
        ctx,
        shard_of(settings, name),
        "index.get",
        &json!({"name": name}),
    )
    .await?;
    Ok(out.get("value").cloned().unwrap_or(Value::Null))
}

pub async fn index_delete(ctx: &Ctx, settings: &Settings, name: &str) -> Result<(), AppError> {
    call::<Value>(
        ctx,
        shard_of(settings, name),
        "index.delete",
        &json!({"name": name}),
    )
    .await?;
    Ok(())
}

/// Every index entry under `prefix`, from every shard.
pub async fn index_list(
    ctx: &Ctx,
    settings: &Settings,
    prefix: &str,
) -> Result<Vec<Value>, AppError> {
    let mut all = Vec::new();
    for out in every_shard(ctx, settings, "index.list", &json!({"prefix": prefix})).await? {
        if let Some(values) = out.get("values").and_then(Value::as_array) {
            all.extend(values.iter().cloned());
        }
    }
    Ok(all)
}

/// Counters summed over every shard.
pub async fn counters(
    ctx: &Ctx,
    settings: &Settings,
) -> Result<serde_json::Map<String, Value>, AppError> {
    let mut totals = serde_json::Map::new();
    for out in every_shard(ctx, settings, "counters", &json!({})).await? {
        if let Some(map) = out.get("counters").and_then(Value::as_object) {
            for (name, n) in map {
                let current = totals.get(name).and_then(Value::as_i64).unwrap_or(0);
                totals.insert(
                    name.clone(),
                    json!(current.saturating_add(n.as_i64().unwrap_or(0))),
                );
            }
        }
    }
    Ok(totals)
}

/// One merged page from every shard, ordered by `(at_ms, id)`: each shard returns up to
/// `limit` rows after the cursor, the merge keeps the first `limit`, and the last row
/// is the next cursor. `key` names the array in each shard's answer.
pub async fn page(
    ctx: &Ctx,
    settings: &Settings,
    op: &str,
    key: &str,
    args: &PageArgs,
) -> Result<(Vec<Value>, Option<(i64, String)>), AppError> {
    let limit = args.limit.unwrap_or(100).clamp(1, ops::MAX_PAGE);
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    // A shard that filled its page may hold more than this merged page shows.
    let mut shard_full = false;
    for out in every_shard(ctx, settings, op, &json!(args)).await? {
        if let Some(list) = out.get(key).and_then(Value::as_array) {
            shard_full |= list.len() >= cap;
            rows.extend(list.iter().cloned());
        }
    }
    let sort_key = |v: &Value| {
        (
            v.get("at_ms").and_then(Value::as_f64).unwrap_or(0.0),
            v.get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    rows.sort_by(|a, b| {
        let (ta, ia) = sort_key(a);
        let (tb, ib) = sort_key(b);
        ta.total_cmp(&tb).then(ia.cmp(&ib))
    });
    let more = shard_full || rows.len() > cap;
    rows.truncate(cap);
    let cursor = if more {
        rows.last().map(|v| {
            let (t, id) = sort_key(v);
            #[allow(clippy::cast_possible_truncation)]
            (t as i64, id)
        })
    } else {
        None
    };
    Ok((rows, cursor))
}

/// `"{at_ms}.{id}"` ↔ cursor, for the `?cursor=` of paginated admin lists.
pub fn encode_cursor(cursor: &(i64, String)) -> String {
    format!("{}.{}", cursor.0, cursor.1)
}

pub fn decode_cursor(raw: &str) -> Option<(i64, String)> {
    let (at, id) = raw.split_once('.')?;
    Some((at.parse().ok()?, id.to_owned()))
}
