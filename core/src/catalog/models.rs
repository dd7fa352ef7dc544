//! Models and codenames as the operator edits them (console and `weir model`): a model's id,
//! upstream name, kind, context window, output limit, capabilities, modalities and active
//! flag; a codename's ordered models. An operator's edit marks the model `source = operator`,
//! which the seed and price-list imports then leave alone. Every change is audited and bumps
//! the catalog epoch.

use sqlx::Row;

use super::{audit, channels::valid_id, Capabilities, CatalogError, Modalities, ModelKind, EPOCH};
use crate::db::{bump_counter, now_ms, Db};

/// A model as the operator submits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInput {
    pub id: String,
    pub provider_id: String,
    pub upstream_model: String,
    pub kind: ModelKind,
    pub context_window: u32,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Capabilities,
    pub modalities: Modalities,
}

/// A model as listed, active or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub input: ModelInput,
    pub active: bool,
    /// `seed`, `import` or `operator`.
    pub source: String,
    pub created_at: i64,
}

fn validate(m: &ModelInput) -> Result<(), CatalogError> {
    if !valid_id(&m.id) {
        return Err(CatalogError::invalid(
            "id",
            "Letters, digits and '-', '_', '.', '/', ':' (like acme/model-1), up to 128 characters.",
        ));
    }
    let upstream = m.upstream_model.trim();
    if upstream.is_empty() || upstream.len() > 200 || upstream.chars().any(char::is_control) {
        return Err(CatalogError::invalid(
            "upstream_model",
            "The model name the upstream expects, up to 200 characters.",
        ));
    }
    if m.context_window == 0 || m.context_window > 100_000_000 {
        return Err(CatalogError::invalid(
            "context_window",
            "A positive number of tokens.",
        ));
    }
    if m.max_output_tokens
        .is_some_and(|n| n == 0 || n > m.context_window)
    {
        return Err(CatalogError::invalid(
            "max_output_tokens",
            "Positive and at most the context window.",
        ));
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

fn describe(m: &ModelInput) -> String {
    format!(
        "provider {}, upstream {}, {}, context {}, max output {}, capabilities {}, modalities {}",
        m.provider_id,
        m.upstream_model.trim(),
        m.kind.as_str(),
        m.context_window,
        m.max_output_tokens
            .map_or("-".to_owned(), |n| n.to_string()),
        json(&m.capabilities),
        json(&m.modalities),
    )
}

async fn provider_exists(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
) -> Result<(), CatalogError> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM provider WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::invalid(
            "provider_id",
            format!("No provider {id}: add a channel for it first."),
        )),
    }
}

/// Adds a model (active, `source = operator`).
pub async fn add(db: &Db, actor: &str, m: &ModelInput) -> Result<(), CatalogError> {
    validate(m)?;
    let mut tx = db.begin_write().await?;
    provider_exists(&mut tx, &m.provider_id).await?;
    let res = sqlx::query(
        "INSERT INTO model (id, provider_id, upstream_model, kind, context_window, max_output_tokens, capabilities, modalities, enabled, created_at, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, 'operator')",
    )
    .bind(&m.id)
    .bind(&m.provider_id)
    .bind(m.upstream_model.trim())
    .bind(m.kind.as_str())
    .bind(i64::from(m.context_window))
    .bind(m.max_output_tokens.map(i64::from))
    .bind(json(&m.capabilities))
    .bind(json(&m.modalities))
    .bind(now_ms())
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(CatalogError::invalid("id", "A model with this id exists."))
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(&mut tx, actor, "model.add", &m.id, &describe(m)).await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces a model's settings (its id stays) and marks it an operator's edit.
pub async fn update(db: &Db, actor: &str, m: &ModelInput) -> Result<(), CatalogError> {
    validate(m)?;
    let mut tx = db.begin_write().await?;
    provider_exists(&mut tx, &m.provider_id).await?;
    let n = sqlx::query(
        "UPDATE model SET provider_id = $1, upstream_model = $2, kind = $3, context_window = $4, \
         max_output_tokens = $5, capabilities = $6, modalities = $7, source = 'operator' WHERE id = $8",
    )
    .bind(&m.provider_id)
    .bind(m.upstream_model.trim())
    .bind(m.kind.as_str())
    .bind(i64::from(m.context_window))
    .bind(m.max_output_tokens.map(i64::from))
    .bind(json(&m.capabilities))
    .bind(json(&m.modalities))
    .bind(&m.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(CatalogError::NotFound(format!("model {}", m.id)));
    }
    audit::record(&mut tx, actor, "model.update", &m.id, &describe(m)).await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Activates or deactivates a model; an inactive model is not listed or served (404).
pub async fn set_active(db: &Db, actor: &str, id: &str, active: bool) -> Result<(), CatalogError> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("UPDATE model SET enabled = $1, source = 'operator' WHERE id = $2")
        .bind(i64::from(active))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(CatalogError::NotFound(format!("model {id}")));
    }
    let action = if active {
        "model.activate"
    } else {
        "model.deactivate"
    };
    audit::record(&mut tx, actor, action, id, "").await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Every model, active or not, by id.
pub async fn list(db: &Db) -> Result<Vec<ModelInfo>, CatalogError> {
    let rows = sqlx::query(&format!(
        "SELECT {}, enabled, source FROM model ORDER BY id",
        super::MODEL_COLUMNS
    ))
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let m = super::model_from_row(&r)?;
        out.push(ModelInfo {
            input: ModelInput {
                id: m.id,
                provider_id: m.provider_id,
                upstream_model: m.upstream_model,
                kind: m.kind,
                context_window: m.context_window,
                max_output_tokens: m.max_output_tokens,
                capabilities: m.capabilities,
                modalities: m.modalities,
            },
            active: r.try_get::<i64, _>("enabled")? != 0,
            source: r.try_get("source")?,
            created_at: m.created_at,
        });
    }
    Ok(out)
}

/// A codename with the models behind it, in preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodenameInfo {
    pub name: String,
    pub description: String,
    pub models: Vec<String>,
}

/// Creates a codename or replaces its description and models (in preference order).
pub async fn set_codename(
    db: &Db,
    actor: &str,
    name: &str,
    description: &str,
    model_ids: &[String],
) -> Result<(), CatalogError> {
    if !valid_id(name) {
        return Err(CatalogError::invalid(
            "name",
            "Letters, digits and '-', '_', '.', '/', ':', up to 128 characters.",
        ));
    }
    if model_ids.is_empty() {
        return Err(CatalogError::invalid("models", "Name at least one model."));
    }
    let mut tx = db.begin_write().await?;
    for id in model_ids {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM model WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(CatalogError::invalid("models", format!("No model {id}.")));
        }
    }
    sqlx::query(
        "INSERT INTO codename (name, description) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET description = excluded.description",
    )
    .bind(name)
    .bind(description.trim())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM codename_model WHERE codename = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    for (i, id) in model_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO codename_model (codename, model_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(id)
        .bind(i as i64)
        .execute(&mut *tx)
        .await?;
    }
    audit::record(&mut tx, actor, "codename.set", name, &model_ids.join(" ")).await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(())
}

/// Every codename, by name.
pub async fn list_codenames(db: &Db) -> Result<Vec<CodenameInfo>, CatalogError> {
    let mut out: Vec<CodenameInfo> = Vec::new();
    for r in sqlx::query("SELECT name, description FROM codename ORDER BY name")
        .fetch_all(db.pool())
        .await?
    {
        out.push(CodenameInfo {
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            models: Vec::new(),
        });
    }
    for r in
        sqlx::query("SELECT codename, model_id FROM codename_model ORDER BY codename, position")
            .fetch_all(db.pool())
            .await?
    {
        let c: String = r.try_get("codename")?;
        if let Some(e) = out.iter_mut().find(|e| e.name == c) {
            e.models.push(r.try_get("model_id")?);
        }
    }
    Ok(out)
}
