//! The model catalog: providers, channels, models, codenames and tariffs in the database, the
//! seed from `catalog/models.json`, and an immutable in-memory [`Snapshot`] that resolves a
//! requested model name to its ordered candidate (model, channel) pairs without touching the
//! database. The snapshot is rebuilt when the catalog epoch changes.

#[cfg(test)]
mod admin_tests;
pub mod audit;
pub mod channels;
pub mod import;
pub mod keys;
pub mod measured;
pub mod models;
pub mod ssrf;
pub mod tariffs;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use serde::Deserialize;
use sqlx::Row;

use crate::{
    db::{now_ms, Db, DbError},
    money::{Micros, PerMillion},
};

/// The catalog shipped with Weir (a copy of the shared seed file).
pub const SEED_JSON: &str = include_str!("../catalog/models.json");

const EPOCH: &str = "catalog_epoch";

/// A wire format: a channel's kind (how Weir speaks to its upstream) and the format of a
/// client surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI Chat Completions, and every OpenAI-compatible host.
    OpenAi,
    Anthropic,
    Gemini,
    Cohere,
    /// OpenAI Responses (`/v1/responses`): a client surface; not (yet) a channel kind, so
    /// [`Wire::parse`] does not accept it.
    Responses,
}

impl Wire {
    pub fn parse(s: &str) -> Option<Wire> {
        match s {
            "openai" => Some(Wire::OpenAi),
            "anthropic" => Some(Wire::Anthropic),
            "gemini" => Some(Wire::Gemini),
            "cohere" => Some(Wire::Cohere),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Gemini => "gemini",
            Wire::Cohere => "cohere",
            Wire::Responses => "openai-responses",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Chat,
    Embedding,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        }
    }
}

/// Prices of one model, per million tokens, plus the markup in basis points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tariff {
    pub input: PerMillion,
    pub cached_input: Option<PerMillion>,
    pub cache_write: Option<PerMillion>,
    pub output: PerMillion,
    pub reasoning: Option<PerMillion>,
    pub markup_bps: i64,
}

impl Tariff {
    /// A `tariff` row's prices, read by column name.
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Tariff, sqlx::Error> {
        let opt = |k: &str| -> Result<Option<PerMillion>, sqlx::Error> {
            Ok(r.try_get::<Option<i64>, _>(k)?.map(PerMillion))
        };
        Ok(Tariff {
            input: PerMillion(r.try_get("input")?),
            cached_input: opt("cached_input")?,
            cache_write: opt("cache_write")?,
            output: PerMillion(r.try_get("output")?),
            reasoning: opt("reasoning")?,
            markup_bps: r.try_get("markup_bps")?,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub tools: bool,
    #[serde(default)]
    pub vision: bool,
    #[serde(default)]
    pub reasoning: bool,
    #[serde(default)]
    pub json_schema: bool,
}

/// What a model accepts and produces (`text`, `image`, `audio`, `file`, ...).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Modalities {
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub output: Vec<String>,
}

impl Default for Modalities {
    fn default() -> Self {
        Modalities {
            input: vec!["text".into()],
            output: vec!["text".into()],
        }
    }
}

/// The column default of `model.modalities` (migration 0007), which the seed replaces.
const DEFAULT_MODALITIES: &str = r#"{"input":["text"],"output":["text"]}"#;

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub id: String,
    pub provider_id: String,
    pub upstream_model: String,
    pub kind: ModelKind,
    pub context_window: u32,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Capabilities,
    pub modalities: Modalities,
    pub tariff: Option<Tariff>,
    pub created_at: i64,
}

/// An upstream endpoint with its credential.
#[derive(Clone, PartialEq)]
pub struct Channel {
    pub id: i64,
    pub provider_id: String,
    pub name: String,
    pub base_url: String,
    pub wire: Wire,
    pub api_key: Option<String>,
    pub priority: i64,
    pub weight: i64,
    pub is_local: bool,
    /// The operator's upstream quota for this channel, per minute (`None`: none).
    pub quota: Quota,
}

/// A channel's upstream quota: requests and tokens per minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
}

impl Quota {
    pub fn is_none(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }

    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Quota, sqlx::Error> {
        let q = |c: &str| -> Result<Option<u32>, sqlx::Error> {
            Ok(r.try_get::<Option<i64>, _>(c)?
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
        };
        Ok(Quota {
            rpm: q("rpm_quota")?,
            tpm: q("tpm_quota")?,
        })
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

/// One way to serve a request: a model on a channel, at that pair's tariff.
#[derive(Clone, Debug)]
pub struct Target {
    pub model: Arc<Model>,
    pub channel: Arc<Channel>,
    /// The tariff in force for this model on this channel: the channel's own when it has
    /// one, else the model's. Not optional: a model without a price is never a target.
    pub tariff: Tariff,
}

/// An immutable view of the catalog, cheap to share.
#[derive(Debug, Default)]
pub struct Snapshot {
    models: HashMap<String, Arc<Model>>,
    /// Bare upstream model name → model ids, for clients that omit the provider prefix.
    by_upstream: HashMap<String, Vec<String>>,
    codenames: HashMap<String, Vec<String>>,
    channels: HashMap<String, Vec<Arc<Channel>>>,
    /// Channels restricted to some models (`channel_model`); others serve all their
    /// provider's models.
    channel_models: HashMap<i64, HashSet<String>>,
    /// Tariffs that apply to one model on one channel only.
    channel_tariffs: HashMap<(String, i64), Tariff>,
    /// Provider id → display name.
    provider_names: HashMap<String, String>,
    /// When the next scheduled tariff version takes effect (Unix ms): reload then.
    pub next_tariff_change: Option<i64>,
    /// Host names the upstream resolver may connect to on private addresses: those of
    /// channels marked local, and of channels configured by whoever runs the process (the
    /// seed's `*_BASE_URL` variables, the demo) rather than entered in the admin console.
    pub trusted_hosts: HashSet<String>,
}

impl Snapshot {
    fn targets_of(&self, model: &Arc<Model>, out: &mut Vec<Target>) {
        if let Some(chs) = self.channels.get(&model.provider_id) {
            let serves = |c: &&Arc<Channel>| {
                self.channel_models
                    .get(&c.id)
                    .is_none_or(|ids| ids.contains(&model.id))
            };
            // A model is sold only at a price: without a tariff in force (none set yet, or
            // a snapshot read between a model's insert and its tariff's) it is not served,
            // rather than served free.
            out.extend(chs.iter().filter(serves).filter_map(|c| {
                let tariff = self
                    .channel_tariffs
                    .get(&(model.id.clone(), c.id))
                    .copied()
                    .or(model.tariff)?;
                Some(Target {
                    model: model.clone(),
                    channel: c.clone(),
                    tariff,
                })
            }));
        }
    }

    /// Resolves a requested name: a `provider/model` id, a codename, or a bare upstream name
    /// served by exactly one model. Returns the candidates in preference order (channel
    /// priority, highest first), or `None` when nothing can serve it.
    pub fn resolve(&self, name: &str, kind: ModelKind) -> Option<Vec<Target>> {
        let mut out = Vec::new();
        if let Some(m) = self.models.get(name) {
            self.targets_of(m, &mut out);
        } else if let Some(ids) = self.codenames.get(name) {
            for id in ids {
                if let Some(m) = self.models.get(id) {
                    self.targets_of(m, &mut out);
                }
            }
        } else if let Some([only]) = self.by_upstream.get(name).map(Vec::as_slice) {
            if let Some(m) = self.models.get(only) {
                self.targets_of(m, &mut out);
            }
        }
        out.retain(|t| t.model.kind == kind);
        out.sort_by_key(|t| std::cmp::Reverse(t.channel.priority));
        (!out.is_empty()).then_some(out)
    }

    /// Models that some channel can serve at a price, sorted by id.
    pub fn available_models(&self) -> Vec<Arc<Model>> {
        let mut v: Vec<_> = self
            .models
            .values()
            .filter(|m| self.resolve(&m.id, m.kind).is_some())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every enabled model, served or not (for the public price list).
    pub fn all_models(&self) -> Vec<Arc<Model>> {
        let mut v: Vec<_> = self.models.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Codenames whose models some channel can serve.
    pub fn available_codenames(&self) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .codenames
            .iter()
            .filter(|(name, _)| self.resolve(name, ModelKind::Chat).is_some())
            .map(|(name, ids)| {
                let created = ids
                    .iter()
                    .filter_map(|id| self.models.get(id))
                    .map(|m| m.created_at)
                    .min()
                    .unwrap_or(0);
                (name.clone(), created)
            })
            .collect();
        v.sort();
        v
    }

    /// The models a codename stands for, in the catalog's ranking (best first).
    pub fn codename_models(&self, name: &str) -> Option<&[String]> {
        self.codenames.get(name).map(Vec::as_slice)
    }

    pub fn model(&self, id: &str) -> Option<&Arc<Model>> {
        self.models.get(id)
    }

    /// The display name of a provider (its id when unknown).
    pub fn provider_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.provider_names.get(id).map_or(id, String::as_str)
    }

    /// Codenames with the model ids they stand for, in preference order, sorted by name.
    pub fn codenames(&self) -> Vec<(&str, &[String])> {
        let mut v: Vec<(&str, &[String])> = self
            .codenames
            .iter()
            .map(|(k, ids)| (k.as_str(), ids.as_slice()))
            .collect();
        v.sort();
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid seed catalog: {0}")]
    Seed(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        CatalogError::Db(DbError::Sqlx(e))
    }
}

impl CatalogError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> CatalogError {
        CatalogError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// [`load_with`] without a key cipher: channels whose key is encrypted are left out.
pub async fn load(db: &Db, env: impl Fn(&str) -> Option<String>) -> Result<Snapshot, CatalogError> {
    load_with(db, None, env).await
}

/// Reads one `model` row (selected with [`MODEL_COLUMNS`]).
fn model_from_row(r: &sqlx::any::AnyRow) -> Result<Model, sqlx::Error> {
    let kind = match r.try_get::<String, _>("kind")?.as_str() {
        "embedding" => ModelKind::Embedding,
        _ => ModelKind::Chat,
    };
    let caps: String = r.try_get("capabilities")?;
    let modalities: String = r.try_get("modalities")?;
    Ok(Model {
        modalities: serde_json::from_str(&modalities).unwrap_or_default(),
        provider_id: r.try_get("provider_id")?,
        upstream_model: r.try_get("upstream_model")?,
        kind,
        context_window: u32::try_from(r.try_get::<i64, _>("context_window")?).unwrap_or(0),
        max_output_tokens: r
            .try_get::<Option<i64>, _>("max_output_tokens")?
            .and_then(|x| u32::try_from(x).ok()),
        capabilities: serde_json::from_str(&caps).unwrap_or_default(),
        tariff: None,
        created_at: r.try_get("created_at")?,
        id: r.try_get("id")?,
    })
}

const MODEL_COLUMNS: &str = "id, provider_id, upstream_model, kind, context_window, max_output_tokens, capabilities, modalities, created_at";

/// A channel's upstream key: sealed (`api_key_enc`, opened with `keys`), stored in clear
/// (`api_key`: the seed's and the demo's), or named by `key_env`.
fn channel_key(
    r: &sqlx::any::AnyRow,
    keys: Option<&keys::KeyCipher>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, sqlx::Error> {
    if let Some(sealed) = r.try_get::<Option<String>, _>("api_key_enc")? {
        let id: i64 = r.try_get("id")?;
        return Ok(match keys.map(|k| k.open(&sealed)) {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                tracing::warn!(channel = id, "{e}; channel left out");
                None
            }
            None => None,
        });
    }
    let stored: Option<String> = r.try_get("api_key")?;
    let key_env: Option<String> = r.try_get("key_env")?;
    Ok(stored.or_else(|| key_env.as_deref().and_then(env)))
}

/// Loads the catalog; sealed channel keys are opened with `keys`, and keys named by `key_env`
/// are read through `env`. Channels whose key is missing are left out, as are disabled models
/// and channels.
pub async fn load_with(
    db: &Db,
    keys: Option<&keys::KeyCipher>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Snapshot, CatalogError> {
    let now = now_ms();
    let mut tariffs: HashMap<String, Tariff> = HashMap::new();
    let mut channel_tariffs: HashMap<(String, i64), Tariff> = HashMap::new();
    let rows = sqlx::query(
        "SELECT model_id, channel_id, input, cached_input, cache_write, output, reasoning, markup_bps \
         FROM tariff WHERE effective_from <= $1 ORDER BY model_id, effective_from, id",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    for r in rows {
        let tariff = Tariff::from_row(&r)?;
        // Rows come oldest first, so the last insert per key is the tariff in force.
        let model_id: String = r.try_get("model_id")?;
        match r.try_get::<Option<i64>, _>("channel_id")? {
            Some(ch) => channel_tariffs.insert((model_id, ch), tariff),
            None => tariffs.insert(model_id, tariff),
        };
    }

    let next_tariff_change: Option<i64> =
        sqlx::query_scalar("SELECT MIN(effective_from) FROM tariff WHERE effective_from > $1")
            .bind(now)
            .fetch_one(db.pool())
            .await?;
    let mut snap = Snapshot {
        channel_tariffs,
        next_tariff_change,
        ..Snapshot::default()
    };
    let rows = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS} FROM model WHERE enabled = 1"
    ))
    .fetch_all(db.pool())
    .await?;
    for r in rows {
        let mut model = model_from_row(&r)?;
        model.tariff = tariffs.get(&model.id).copied();
        let id = model.id.clone();
        snap.by_upstream
            .entry(model.upstream_model.clone())
            .or_default()
            .push(id.clone());
        snap.models.insert(id, Arc::new(model));
    }

    let rows = sqlx::query(
        "SELECT c.id, c.provider_id, c.name, c.base_url, c.key_env, c.api_key, c.api_key_enc, c.priority, c.weight, c.is_local, \
           c.rpm_quota, c.tpm_quota, p.wire \
         FROM channel c JOIN provider p ON p.id = c.provider_id WHERE c.enabled = 1 ORDER BY c.id",
    )
    .fetch_all(db.pool())
    .await?;
    for r in rows {
        let api_key = channel_key(&r, keys, &env)?;
        let is_local = r.try_get::<i64, _>("is_local")? != 0;
        let entered = r.try_get::<Option<String>, _>("api_key_enc")?.is_some();
        if is_local || !entered {
            let base: String = r.try_get("base_url")?;
            if let Ok((host, _)) = ssrf::check_literal(&base, true) {
                snap.trusted_hosts.insert(host);
            }
        }
        if api_key.is_none() {
            continue;
        }
        let Some(wire) = Wire::parse(&r.try_get::<String, _>("wire")?) else {
            continue;
        };
        let ch = Channel {
            id: r.try_get("id")?,
            provider_id: r.try_get("provider_id")?,
            name: r.try_get("name")?,
            base_url: r.try_get("base_url")?,
            wire,
            api_key,
            priority: r.try_get("priority")?,
            weight: r.try_get("weight")?,
            is_local,
            quota: Quota::from_row(&r)?,
        };
        snap.channels
            .entry(ch.provider_id.clone())
            .or_default()
            .push(Arc::new(ch));
    }

    for r in sqlx::query("SELECT channel_id, model_id FROM channel_model")
        .fetch_all(db.pool())
        .await?
    {
        snap.channel_models
            .entry(r.try_get("channel_id")?)
            .or_default()
            .insert(r.try_get("model_id")?);
    }

    for r in sqlx::query("SELECT id, name FROM provider")
        .fetch_all(db.pool())
        .await?
    {
        snap.provider_names
            .insert(r.try_get("id")?, r.try_get("name")?);
    }

    for r in
        sqlx::query("SELECT codename, model_id FROM codename_model ORDER BY codename, position")
            .fetch_all(db.pool())
            .await?
    {
        snap.codenames
            .entry(r.try_get("codename")?)
            .or_default()
            .push(r.try_get("model_id")?);
    }
    Ok(snap)
}

/// Reads the catalog epoch (0 before any change).
pub async fn read_epoch(db: &Db) -> Result<i64, DbError> {
    crate::db::read_counter(db, EPOCH).await
}

async fn bump_epoch(db: &Db) -> Result<(), sqlx::Error> {
    crate::db::bump_counter(db.write_pool(), EPOCH).await
}

// ------------------------------------------------------------------------------------------
// Writing the catalog
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct ProviderSpec<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub wire: Wire,
    pub base_url: &'a str,
    pub key_env: Option<&'a str>,
}

#[derive(Clone, Debug)]
pub struct ChannelSpec<'a> {
    pub provider_id: &'a str,
    pub name: &'a str,
    pub base_url: &'a str,
    pub key_env: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub priority: i64,
    pub is_local: bool,
}

#[derive(Clone, Debug)]
pub struct ModelSpec<'a> {
    pub id: &'a str,
    pub provider_id: &'a str,
    pub upstream_model: &'a str,
    pub kind: ModelKind,
    pub context_window: u32,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Capabilities,
}

/// Sets a seeded model's modalities. Only a row still at the column default changes: an
/// operator's edit survives a re-seed.
pub async fn seed_modalities(db: &Db, id: &str, m: &Modalities) -> Result<(), CatalogError> {
    let modalities = serde_json::to_string(m).map_err(|e| CatalogError::Seed(e.to_string()))?;
    if modalities != DEFAULT_MODALITIES {
        sqlx::query("UPDATE model SET modalities = $1 WHERE id = $2 AND modalities = $3 AND source <> 'operator'")
            .bind(modalities)
            .bind(id)
            .bind(DEFAULT_MODALITIES)
            .execute(db.write_pool())
            .await?;
    }
    Ok(())
}

/// Inserts a provider unless one with that id exists (operator edits win).
pub async fn ensure_provider(db: &Db, p: &ProviderSpec<'_>) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO provider (id, name, wire, base_url, key_env, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(p.id)
    .bind(p.name)
    .bind(p.wire.as_str())
    .bind(p.base_url)
    .bind(p.key_env)
    .bind(now_ms())
    .execute(db.write_pool())
    .await?;
    Ok(())
}

/// Creates or updates a channel by name; returns its id.
pub async fn upsert_channel(db: &Db, c: &ChannelSpec<'_>) -> Result<i64, CatalogError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO channel (provider_id, name, base_url, key_env, api_key, priority, weight, enabled, is_local, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, 1, $7, $8) \
         ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, key_env = excluded.key_env, \
           api_key = excluded.api_key, provider_id = excluded.provider_id, is_local = excluded.is_local \
         RETURNING id",
    )
    .bind(c.provider_id)
    .bind(c.name)
    .bind(c.base_url)
    .bind(c.key_env)
    .bind(c.api_key)
    .bind(c.priority)
    .bind(i64::from(c.is_local))
    .bind(now_ms())
    .fetch_one(db.pool())
    .await?;
    bump_epoch(db).await?;
    Ok(id)
}

/// Inserts a model (and its first tariff) unless it exists.
pub async fn ensure_model(
    db: &Db,
    m: &ModelSpec<'_>,
    tariff: Option<Tariff>,
) -> Result<(), CatalogError> {
    let caps = serde_json::to_string(&m.capabilities).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO model (id, provider_id, upstream_model, kind, context_window, max_output_tokens, capabilities, enabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(m.id)
    .bind(m.provider_id)
    .bind(m.upstream_model)
    .bind(m.kind.as_str())
    .bind(i64::from(m.context_window))
    .bind(m.max_output_tokens.map(i64::from))
    .bind(caps)
    .bind(now_ms())
    .execute(db.write_pool())
    .await?;
    if let Some(t) = tariff {
        let has: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tariff WHERE model_id = $1 LIMIT 1")
                .bind(m.id)
                .fetch_optional(db.pool())
                .await?;
        if has.is_none() {
            sqlx::query(
                "INSERT INTO tariff (model_id, channel_id, input, cached_input, cache_write, output, reasoning, markup_bps, effective_from, source) \
                 VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, 0, 'seed')",
            )
            .bind(m.id)
            .bind(t.input.0)
            .bind(t.cached_input.map(|p| p.0))
            .bind(t.cache_write.map(|p| p.0))
            .bind(t.output.0)
            .bind(t.reasoning.map(|p| p.0))
            .bind(t.markup_bps)
            .execute(db.write_pool())
            .await?;
        }
    }
    Ok(())
}

/// Inserts a codename and its models (in preference order) unless the codename is present.
pub async fn ensure_codename(
    db: &Db,
    name: &str,
    description: &str,
    model_ids: &[impl AsRef<str>],
) -> Result<(), CatalogError> {
    // Only a new codename gets the models: an operator's edit of its list survives a re-seed.
    let created: Option<String> = sqlx::query_scalar(
        "INSERT INTO codename (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name",
    )
    .bind(name)
    .bind(description)
    .fetch_optional(db.write_pool())
    .await?;
    if created.is_none() {
        return Ok(());
    }
    for (i, id) in model_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO codename_model (codename, model_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(id.as_ref())
        .bind(i as i64)
        .execute(db.write_pool())
        .await?;
    }
    Ok(())
}

/// Adds a tariff version for a model (or for the model on one channel) that takes effect at
/// `effective_from` (Unix ms). Earlier versions stay for the record; requests already admitted
/// keep the price snapshot they were reserved at.
pub async fn add_tariff(
    db: &Db,
    model_id: &str,
    channel_id: Option<i64>,
    t: &Tariff,
    effective_from: i64,
    source: &str,
) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO tariff (model_id, channel_id, input, cached_input, cache_write, output, reasoning, markup_bps, effective_from, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(model_id)
    .bind(channel_id)
    .bind(t.input.0)
    .bind(t.cached_input.map(|p| p.0))
    .bind(t.cache_write.map(|p| p.0))
    .bind(t.output.0)
    .bind(t.reasoning.map(|p| p.0))
    .bind(t.markup_bps)
    .bind(effective_from)
    .bind(source)
    .execute(db.write_pool())
    .await?;
    bump_epoch(db).await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The seed file
// ------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct SeedFile {
    providers: Vec<SeedProvider>,
    models: Vec<SeedModel>,
    codenames: Vec<SeedCodename>,
}

#[derive(Deserialize)]
struct SeedProvider {
    id: String,
    name: String,
    wire: String,
    base_url: String,
    key_env: Option<String>,
}

#[derive(Deserialize)]
struct SeedModel {
    id: String,
    provider: String,
    upstream_model: String,
    kind: String,
    context_window: u32,
    max_output_tokens: Option<u32>,
    price_per_mtok_usd: SeedPrices,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    modalities: Modalities,
}

#[derive(Deserialize)]
struct SeedPrices {
    input: Option<String>,
    cached_input: Option<String>,
    cache_write: Option<String>,
    output: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct SeedCodename {
    codename: String,
    #[serde(default)]
    description: String,
    models: Vec<String>,
}

/// The providers of the seed file, for wiring up channels from environment keys.
#[derive(Clone, Debug)]
pub struct SeedProviderInfo {
    pub id: String,
    pub wire: Wire,
    pub base_url: String,
    pub key_env: Option<String>,
}

fn price(p: &Option<String>) -> Result<Option<PerMillion>, CatalogError> {
    p.as_deref()
        .map(|s| {
            Micros::parse_usd(s)
                .map(|m| PerMillion(m.0))
                .map_err(|e| CatalogError::Seed(e.to_string()))
        })
        .transpose()
}

/// Seeds providers, models, tariffs (list prices, no markup) and codenames from `json`,
/// inserting only what is absent, so operator overrides survive a re-seed.
pub async fn seed(
    db: &Db,
    json: &str,
    markup_bps: i64,
) -> Result<Vec<SeedProviderInfo>, CatalogError> {
    let file: SeedFile =
        serde_json::from_str(json).map_err(|e| CatalogError::Seed(e.to_string()))?;
    let mut infos = Vec::new();
    for p in &file.providers {
        let wire = Wire::parse(&p.wire)
            .ok_or_else(|| CatalogError::Seed(format!("unknown wire {}", p.wire)))?;
        ensure_provider(
            db,
            &ProviderSpec {
                id: &p.id,
                name: &p.name,
                wire,
                base_url: &p.base_url,
                key_env: p.key_env.as_deref(),
            },
        )
        .await?;
        infos.push(SeedProviderInfo {
            id: p.id.clone(),
            wire,
            base_url: p.base_url.clone(),
            key_env: p.key_env.clone(),
        });
    }
    for m in &file.models {
        let kind = if m.kind == "embedding" {
            ModelKind::Embedding
        } else {
            ModelKind::Chat
        };
        let pr = &m.price_per_mtok_usd;
        let tariff = Tariff {
            input: price(&pr.input)?.unwrap_or_default(),
            cached_input: price(&pr.cached_input)?,
            cache_write: price(&pr.cache_write)?,
            output: price(&pr.output)?.unwrap_or_default(),
            reasoning: price(&pr.reasoning)?,
            markup_bps,
        };
        ensure_model(
            db,
            &ModelSpec {
                id: &m.id,
                provider_id: &m.provider,
                upstream_model: &m.upstream_model,
                kind,
                context_window: m.context_window,
                max_output_tokens: m.max_output_tokens,
                capabilities: m.capabilities.clone(),
            },
            Some(tariff),
        )
        .await?;
        seed_modalities(db, &m.id, &m.modalities).await?;
    }
    for c in &file.codenames {
        ensure_codename(db, &c.codename, &c.description, &c.models).await?;
    }
    bump_epoch(db).await?;
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn seed_load_resolve() {
        let t = TestDb::new().await.unwrap();
        let db = &t.db;
        let providers = seed(db, SEED_JSON, 0).await.unwrap();
        assert_eq!(providers.len(), 10);
        // Re-seeding inserts nothing new and keeps operator prices.
        sqlx::query("UPDATE tariff SET output = 1 WHERE model_id = 'openai/gpt-4o-mini'")
            .execute(db.write_pool())
            .await
            .unwrap();
        seed(db, SEED_JSON, 0).await.unwrap();

        // No channel yet: nothing resolves.
        let snap = load(db, |_| None).await.unwrap();
        assert!(snap
            .resolve("openai/gpt-4o-mini", ModelKind::Chat)
            .is_none());
        assert_eq!(snap.all_models().len(), 79);
        assert!(snap.available_models().is_empty());

        upsert_channel(
            db,
            &ChannelSpec {
                provider_id: "openai",
                name: "openai-env",
                base_url: "https://api.openai.com/v1",
                key_env: Some("OPENAI_API_KEY"),
                api_key: None,
                priority: 0,
                is_local: false,
            },
        )
        .await
        .unwrap();
        let snap = load(db, |k| {
            (k == "OPENAI_API_KEY").then(|| "sk-test".to_owned())
        })
        .await
        .unwrap();
        let got = snap.resolve("openai/gpt-4o-mini", ModelKind::Chat).unwrap();
        assert_eq!(got[0].model.upstream_model, "gpt-4o-mini");
        assert_eq!(got[0].channel.api_key.as_deref(), Some("sk-test"));
        let tariff = got[0].model.tariff.unwrap();
        assert_eq!(tariff.input, PerMillion(150_000));
        assert_eq!(
            tariff.output,
            PerMillion(1),
            "operator override survived re-seed"
        );
        // Bare upstream names resolve when unambiguous; kinds must match.
        assert!(snap.resolve("gpt-4o-mini", ModelKind::Chat).is_some());
        assert!(snap.resolve("gpt-4o-mini", ModelKind::Embedding).is_none());
        assert!(snap
            .resolve("openai/text-embedding-3-small", ModelKind::Embedding)
            .is_some());
        assert!(snap.resolve("nope/nothing", ModelKind::Chat).is_none());
        assert!(read_epoch(db).await.unwrap() >= 3);

        // A channel-specific tariff wins for that channel; a future version is not yet in force.
        let ch = got[0].channel.id;
        let special = Tariff {
            input: PerMillion(7),
            output: PerMillion(9),
            markup_bps: 500,
            ..Tariff::default()
        };
        add_tariff(db, "openai/gpt-4o-mini", Some(ch), &special, 0, "test")
            .await
            .unwrap();
        let later = Tariff {
            input: PerMillion(1),
            ..special
        };
        add_tariff(
            db,
            "openai/gpt-4o-mini",
            Some(ch),
            &later,
            now_ms() + 3_600_000,
            "test",
        )
        .await
        .unwrap();
        let snap = load(db, |k| {
            (k == "OPENAI_API_KEY").then(|| "sk-test".to_owned())
        })
        .await
        .unwrap();
        let got = snap.resolve("openai/gpt-4o-mini", ModelKind::Chat).unwrap();
        assert_eq!(got[0].tariff, special);
        assert!(
            snap.next_tariff_change.is_some(),
            "the future version is scheduled"
        );
        assert_eq!(
            got[0].model.tariff.unwrap().input,
            PerMillion(150_000),
            "the model-wide tariff is unchanged"
        );
        t.cleanup().await;
    }
}
