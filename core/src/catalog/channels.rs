//! Channels as the operator edits them (console and `weir channel`): an upstream endpoint of
//! one kind (OpenAI-compatible, Anthropic, Gemini, Cohere) with its base URL, its upstream key
//! (sealed with [`KeyCipher`]; only the last four characters are kept readable), priority,
//! weight, enabled and local flags, and the models it serves. Every change is audited and
//! bumps the catalog epoch, so every replica reloads within seconds.

use std::sync::Arc;

use sqlx::Row;

use super::{
    audit, keys::KeyCipher, ssrf, CatalogError, Channel, Model, ModelKind, Target, Wire, EPOCH,
    MODEL_COLUMNS,
};
use crate::db::{bump_counter, now_ms, Db};

/// What the operator submits for a channel. `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct ChannelInput {
    pub name: String,
    /// The provider the channel belongs to; created (with the channel's kind) when new.
    pub provider_id: String,
    pub kind: Option<Wire>,
    pub base_url: String,
    /// A new upstream key; `None` on update keeps the stored one.
    pub api_key: Option<String>,
    pub priority: i64,
    pub weight: i64,
    pub enabled: bool,
    /// Allows a private or loopback base URL (a model server on the operator's network).
    pub is_local: bool,
    /// Models this channel serves (ids of the provider's models); empty: all of them.
    pub models: Vec<String>,
}

impl std::fmt::Debug for ChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelInput")
            .field("name", &self.name)
            .field("provider_id", &self.provider_id)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("is_local", &self.is_local)
            .finish_non_exhaustive()
    }
}

/// A channel as listed: never the key, only where it comes from and its last four characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: i64,
    pub name: String,
    pub provider_id: String,
    pub wire: String,
    pub base_url: String,
    /// `encrypted`, `stored` (seed or demo, in clear), `env:NAME`, or `none`.
    pub key_source: String,
    pub key_last4: String,
    pub priority: i64,
    pub weight: i64,
    pub enabled: bool,
    pub is_local: bool,
    pub models: Vec<String>,
    pub created_at: i64,
}

pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

async fn validate(input: &ChannelInput, adding: bool) -> Result<(), CatalogError> {
    if !valid_id(&input.name) || input.name.contains('/') {
        return Err(CatalogError::invalid(
            "name",
            "Letters, digits, '-', '_' and '.', up to 128 characters.",
        ));
    }
    if !valid_id(&input.provider_id) || input.provider_id.contains('/') {
        return Err(CatalogError::invalid(
            "provider_id",
            "Letters, digits, '-', '_' and '.', up to 128 characters.",
        ));
    }
    if !(-1000..=1000).contains(&input.priority) {
        return Err(CatalogError::invalid(
            "priority",
            "A whole number from -1000 to 1000.",
        ));
    }
    if !(1..=1000).contains(&input.weight) {
        return Err(CatalogError::invalid(
            "weight",
            "A whole number from 1 to 1000.",
        ));
    }
    match input.api_key.as_deref() {
        None if adding => {
            return Err(CatalogError::invalid(
                "api_key",
                "The upstream API key is required.",
            ))
        }
        Some(k)
            if k.is_empty() || k.len() > 4096 || k.chars().any(|c| c.is_control() || c == ' ') =>
        {
            return Err(CatalogError::invalid(
                "api_key",
                "An API key without spaces, up to 4096 characters.",
            ))
        }
        _ => {}
    }
    ssrf::check(&input.base_url, input.is_local)
        .await
        .map_err(|e| CatalogError::invalid("base_url", e.to_string()))
}

/// Finds the provider or creates it with the channel's kind; the kind must match.
async fn provider_for(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    input: &ChannelInput,
) -> Result<Wire, CatalogError> {
    let wire: Option<String> = sqlx::query_scalar("SELECT wire FROM provider WHERE id = $1")
        .bind(&input.provider_id)
        .fetch_optional(&mut **tx)
        .await?;
    match (wire.as_deref().and_then(Wire::parse), input.kind) {
        (Some(w), Some(k)) if w != k => Err(CatalogError::invalid(
            "kind",
            format!(
                "Provider {} speaks {}; choose that kind or another provider id.",
                input.provider_id,
                w.as_str()
            ),
        )),
        (Some(w), _) => Ok(w),
        (None, None) => Err(CatalogError::invalid(
            "kind",
            "Choose the upstream kind for a new provider.",
        )),
        (None, Some(k)) => {
            sqlx::query(
                "INSERT INTO provider (id, name, wire, base_url, key_env, created_at) VALUES ($1, $1, $2, $3, NULL, $4)",
            )
            .bind(&input.provider_id)
            .bind(k.as_str())
            .bind(input.base_url.trim())
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
            Ok(k)
        }
    }
}

async fn set_models(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    channel_id: i64,
    input: &ChannelInput,
) -> Result<(), CatalogError> {
    sqlx::query("DELETE FROM channel_model WHERE channel_id = $1")
        .bind(channel_id)
        .execute(&mut **tx)
        .await?;
    for m in &input.models {
        let provider: Option<String> =
            sqlx::query_scalar("SELECT provider_id FROM model WHERE id = $1")
                .bind(m)
                .fetch_optional(&mut **tx)
                .await?;
        if provider.as_deref() != Some(input.provider_id.as_str()) {
            return Err(CatalogError::invalid(
                "models",
                format!("{m} is not a model of provider {}.", input.provider_id),
            ));
        }
        sqlx::query(
            "INSERT INTO channel_model (channel_id, model_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(channel_id)
        .bind(m)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn describe(input: &ChannelInput, wire: Wire, last4: Option<&str>) -> String {
    let mut d = format!(
        "provider {}, kind {}, base {}, priority {}, weight {}, {}{}",
        input.provider_id,
        wire.as_str(),
        input.base_url.trim(),
        input.priority,
        input.weight,
        if input.enabled { "enabled" } else { "disabled" },
        if input.is_local { ", local" } else { "" },
    );
    if !input.models.is_empty() {
        d.push_str(&format!(", models {}", input.models.join(" ")));
    }
    if let Some(l) = last4 {
        d.push_str(&format!(", key …{l}"));
    }
    d
}

/// Adds a channel; returns its id.
pub async fn add(
    db: &Db,
    keys: &KeyCipher,
    actor: &str,
    input: &ChannelInput,
) -> Result<i64, CatalogError> {
    validate(input, true).await?;
    let key = input.api_key.as_deref().unwrap_or_default();
    let sealed = keys
        .seal(key)
        .map_err(|e| CatalogError::invalid("api_key", e.to_string()))?;
    let last4 = super::keys::last4(key);
    let mut tx = db.begin_write().await?;
    let wire = provider_for(&mut tx, input).await?;
    let now = now_ms();
    let id: i64 = match sqlx::query_scalar(
        "INSERT INTO channel (provider_id, name, base_url, key_env, api_key, api_key_enc, api_key_last4, priority, weight, enabled, is_local, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, NULL, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(&input.provider_id)
    .bind(&input.name)
    .bind(input.base_url.trim())
    .bind(&sealed)
    .bind(&last4)
    .bind(input.priority)
    .bind(input.weight)
    .bind(i64::from(input.enabled))
    .bind(i64::from(input.is_local))
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    {
        Ok(id) => id,
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(CatalogError::invalid(
                "name",
                "A channel with this name exists.",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    set_models(&mut tx, id, input).await?;
    audit::record(
        &mut tx,
        actor,
        "channel.add",
        &input.name,
        &describe(input, wire, Some(&last4)),
    )
    .await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(id)
}

/// Replaces a channel's settings; its key only when `input.api_key` is given.
pub async fn update(
    db: &Db,
    keys: &KeyCipher,
    actor: &str,
    id: i64,
    input: &ChannelInput,
) -> Result<(), CatalogError> {
    validate(input, false).await?;
    let sealed = match input.api_key.as_deref() {
        Some(k) => Some((
            keys.seal(k)
                .map_err(|e| CatalogError::invalid("api_key", e.to_string()))?,
            super::keys::last4(k),
        )),
        None => None,
    };
    let mut tx = db.begin_write().await?;
    let wire = provider_for(&mut tx, input).await?;
    let n = sqlx::query(
        "UPDATE channel SET provider_id = $1, name = $2, base_url = $3, priority = $4, weight = $5, \
         enabled = $6, is_local = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(&input.provider_id)
    .bind(&input.name)
    .bind(input.base_url.trim())
    .bind(input.priority)
    .bind(input.weight)
    .bind(i64::from(input.enabled))
    .bind(i64::from(input.is_local))
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await;
    match n {
        Ok(r) if r.rows_affected() == 0 => {
            return Err(CatalogError::NotFound(format!("channel {id}")))
        }
        Ok(_) => {}
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(CatalogError::invalid(
                "name",
                "A channel with this name exists.",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    if let Some((enc, last4)) = &sealed {
        sqlx::query(
            "UPDATE channel SET api_key_enc = $1, api_key_last4 = $2, api_key = NULL, key_env = NULL WHERE id = $3",
        )
        .bind(enc)
        .bind(last4)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    set_models(&mut tx, id, input).await?;
    audit::record(
        &mut tx,
        actor,
        "channel.update",
        &input.name,
        &describe(input, wire, sealed.as_ref().map(|(_, l)| l.as_str())),
    )
    .await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Finds a channel id by id or name (the CLI takes either).
pub async fn resolve(db: &Db, id_or_name: &str) -> Result<i64, CatalogError> {
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM channel WHERE name = $1")
        .bind(id_or_name)
        .fetch_optional(db.pool())
        .await?;
    match (id, id_or_name.parse::<i64>()) {
        (Some(id), _) => Ok(id),
        (None, Ok(n)) => Ok(n),
        (None, Err(_)) => Err(CatalogError::NotFound(format!("channel {id_or_name}"))),
    }
}

/// Enables or disables a channel; a disabled channel is never tried.
pub async fn set_enabled(db: &Db, actor: &str, id: i64, enabled: bool) -> Result<(), CatalogError> {
    let mut tx = db.begin_write().await?;
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE channel SET enabled = $1, updated_at = $2 WHERE id = $3 RETURNING name",
    )
    .bind(i64::from(enabled))
    .bind(now_ms())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or_else(|| CatalogError::NotFound(format!("channel {id}")))?;
    let action = if enabled {
        "channel.enable"
    } else {
        "channel.disable"
    };
    audit::record(&mut tx, actor, action, &name, "").await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a channel's upstream quota (requests and tokens per minute; `None` removes one).
pub async fn set_quota(
    db: &Db,
    actor: &str,
    id: i64,
    quota: super::Quota,
) -> Result<(), CatalogError> {
    let mut tx = db.begin_write().await?;
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE channel SET rpm_quota = $1, tpm_quota = $2, updated_at = $3 WHERE id = $4 RETURNING name",
    )
    .bind(quota.rpm.map(i64::from))
    .bind(quota.tpm.map(i64::from))
    .bind(now_ms())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or_else(|| CatalogError::NotFound(format!("channel {id}")))?;
    let n = |v: Option<u32>| v.map_or("none".to_owned(), |v| v.to_string());
    let detail = format!("{} requests/min, {} tokens/min", n(quota.rpm), n(quota.tpm));
    audit::record(&mut tx, actor, "channel.quota", &name, &detail).await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Every channel, enabled or not, by name.
pub async fn list(db: &Db) -> Result<Vec<ChannelInfo>, CatalogError> {
    let rows = sqlx::query(
        "SELECT c.id, c.name, c.provider_id, p.wire, c.base_url, c.key_env, c.api_key, c.api_key_enc, \
         c.api_key_last4, c.priority, c.weight, c.enabled, c.is_local, c.created_at \
         FROM channel c JOIN provider p ON p.id = c.provider_id ORDER BY c.name",
    )
    .fetch_all(db.pool())
    .await?;
    let mut models: std::collections::HashMap<i64, Vec<String>> = Default::default();
    for r in sqlx::query("SELECT channel_id, model_id FROM channel_model ORDER BY model_id")
        .fetch_all(db.pool())
        .await?
    {
        models
            .entry(r.try_get("channel_id")?)
            .or_default()
            .push(r.try_get("model_id")?);
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let enc: Option<String> = r.try_get("api_key_enc")?;
        let stored: Option<String> = r.try_get("api_key")?;
        let key_env: Option<String> = r.try_get("key_env")?;
        let (key_source, key_last4) = match (enc, stored, key_env) {
            (Some(_), _, _) => ("encrypted".to_owned(), r.try_get("api_key_last4")?),
            (None, Some(k), _) => ("stored".to_owned(), super::keys::last4(&k)),
            (None, None, Some(e)) => (format!("env:{e}"), String::new()),
            (None, None, None) => ("none".to_owned(), String::new()),
        };
        out.push(ChannelInfo {
            id,
            name: r.try_get("name")?,
            provider_id: r.try_get("provider_id")?,
            wire: r.try_get("wire")?,
            base_url: r.try_get("base_url")?,
            key_source,
            key_last4,
            priority: r.try_get("priority")?,
            weight: r.try_get("weight")?,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            is_local: r.try_get::<i64, _>("is_local")? != 0,
            models: models.remove(&id).unwrap_or_default(),
            created_at: r.try_get("created_at")?,
        });
    }
    Ok(out)
}

/// What a "Test" request runs on: the channel (key opened) and a chat model it serves, after
/// the SSRF check of its base URL (resolved again now: DNS may have changed since saving).
pub async fn probe_target(db: &Db, keys: &KeyCipher, id: i64) -> Result<Target, CatalogError> {
    let r = sqlx::query(
        "SELECT c.id, c.provider_id, c.name, c.base_url, c.key_env, c.api_key, c.api_key_enc, c.priority, \
         c.weight, c.is_local, c.rpm_quota, c.tpm_quota, p.wire FROM channel c JOIN provider p ON p.id = c.provider_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| CatalogError::NotFound(format!("channel {id}")))?;
    let api_key = super::channel_key(&r, Some(keys), |k| std::env::var(k).ok())?
        .ok_or_else(|| CatalogError::invalid("api_key", "The channel has no usable key."))?;
    let wire = Wire::parse(&r.try_get::<String, _>("wire")?)
        .ok_or_else(|| CatalogError::invalid("kind", "Unknown channel kind."))?;
    let channel = Channel {
        id,
        provider_id: r.try_get("provider_id")?,
        name: r.try_get("name")?,
        base_url: r.try_get("base_url")?,
        wire,
        api_key: Some(api_key),
        priority: r.try_get("priority")?,
        weight: r.try_get("weight")?,
        is_local: r.try_get::<i64, _>("is_local")? != 0,
        quota: super::Quota::from_row(&r)?,
    };
    ssrf::check(&channel.base_url, channel.is_local)
        .await
        .map_err(|e| CatalogError::invalid("base_url", e.to_string()))?;
    let row = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS} FROM model WHERE provider_id = $1 AND kind = 'chat' AND enabled = 1 \
         AND (NOT EXISTS (SELECT 1 FROM channel_model WHERE channel_id = $2) \
              OR id IN (SELECT model_id FROM channel_model WHERE channel_id = $2)) ORDER BY id LIMIT 1"
    ))
    .bind(&channel.provider_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| {
        CatalogError::invalid("models", "The channel serves no active chat model to test with.")
    })?;
    let model: Model = super::model_from_row(&row)?;
    debug_assert_eq!(model.kind, ModelKind::Chat);
    // The admin page's probe is not billed: its tariff is only for the type.
    let tariff = model.tariff.unwrap_or_default();
    Ok(Target {
        model: Arc::new(model),
        channel: Arc::new(channel),
        tariff,
    })
}

/// A channel's recent traffic from the request log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub requests: i64,
    /// Answers with status 500 or above (failures blamed on the upstream or on Weir).
    pub errors: i64,
    pub avg_latency_ms: Option<i64>,
    /// The newest failure: its error kind (or status) and when.
    pub last_error: Option<(String, i64)>,
}

/// Request counts, 5xx share, mean latency and the last failure per channel since `since`
/// (Unix ms). A scan of the log's recent rows: for the admin page, not the request path.
pub async fn recent_stats(
    db: &Db,
    since: i64,
) -> Result<std::collections::HashMap<i64, ChannelStats>, CatalogError> {
    let mut out: std::collections::HashMap<i64, ChannelStats> = Default::default();
    for r in sqlx::query(
        "SELECT channel_id, COUNT(*) AS n, CAST(SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
         CAST(SUM(latency_ms) AS BIGINT) AS latency FROM request_log \
         WHERE created_at >= $1 AND channel_id IS NOT NULL GROUP BY channel_id",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?
    {
        let n: i64 = r.try_get("n")?;
        let latency: Option<i64> = r.try_get("latency")?;
        out.insert(
            r.try_get("channel_id")?,
            ChannelStats {
                requests: n,
                errors: r.try_get::<Option<i64>, _>("errors")?.unwrap_or(0),
                avg_latency_ms: latency.filter(|_| n > 0).map(|l| l / n),
                last_error: None,
            },
        );
    }
    for r in sqlx::query(
        "SELECT channel_id, status, error_kind, created_at FROM request_log \
         WHERE created_at >= $1 AND channel_id IS NOT NULL AND status >= 500 ORDER BY created_at DESC LIMIT 500",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?
    {
        let e = out.entry(r.try_get("channel_id")?).or_default();
        if e.last_error.is_none() {
            let status: i64 = r.try_get("status")?;
            let kind: Option<String> = r.try_get("error_kind")?;
            e.last_error = Some((
                kind.map_or_else(|| format!("HTTP {status}"), |k| format!("{k} (HTTP {status})")),
                r.try_get("created_at")?,
            ));
        }
    }
    Ok(out)
}
