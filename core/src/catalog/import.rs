//! Importing a price list in the schema of `catalog/models.json`: a preview of what would
//! change ([`preview`]), then the same plan applied in one transaction ([`apply`]). New
//! providers, models and codenames are added; prices that differ from the version in force
//! become a new version effective now (keeping its markup). Anything an operator edited
//! (`source = operator` on the model or on the tariff in force) is left alone and reported.

use std::collections::HashMap;

use sqlx::Row;

use super::{
    audit, price, Capabilities, CatalogError, Modalities, ModelKind, SeedFile, Tariff, Wire, EPOCH,
};
use crate::{
    db::{bump_counter, now_ms, Db},
    money::{Micros, PerMillion},
};

/// What one change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    NewProvider,
    NewModel,
    UpdateModel,
    NewPrice,
    NewCodename,
    /// Differs from the file, but an operator edited it: kept.
    KeptOperatorEdit,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::NewProvider => "new provider",
            ChangeKind::NewModel => "new model",
            ChangeKind::UpdateModel => "model details",
            ChangeKind::NewPrice => "new price",
            ChangeKind::NewCodename => "new codename",
            ChangeKind::KeptOperatorEdit => "kept operator edit",
        }
    }
}

/// One line of the preview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub target: String,
    pub detail: String,
}

/// The preview: every change, and how many models the file lists that already match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

impl ImportPlan {
    /// Changes that would be written (not the kept edits).
    pub fn writes(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.kind != ChangeKind::KeptOperatorEdit)
            .count()
    }
}

/// A write the plan will make.
enum Action {
    Provider {
        id: String,
        name: String,
        wire: Wire,
        base_url: String,
        key_env: Option<String>,
    },
    Model(Box<FileModel>, bool),
    Price(String, Tariff),
    Codename(String, String, Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileModel {
    id: String,
    provider: String,
    upstream_model: String,
    kind: ModelKind,
    context_window: u32,
    max_output_tokens: Option<u32>,
    capabilities: Capabilities,
    modalities: Modalities,
}

struct Current {
    source: String,
    model: FileModel,
}

fn fmt_tariff(t: &Tariff) -> String {
    let o = |p: Option<PerMillion>| p.map_or("-".to_owned(), |p| Micros(p.0).to_string());
    format!(
        "in {} / cached {} / write {} / out {} / reasoning {}",
        Micros(t.input.0),
        o(t.cached_input),
        o(t.cache_write),
        Micros(t.output.0),
        o(t.reasoning)
    )
}

fn same_prices(a: &Tariff, b: &Tariff) -> bool {
    a.input == b.input
        && a.cached_input == b.cached_input
        && a.cache_write == b.cache_write
        && a.output == b.output
        && a.reasoning == b.reasoning
}

async fn plan_actions(db: &Db, json: &str) -> Result<(ImportPlan, Vec<Action>), CatalogError> {
    let file: SeedFile = serde_json::from_str(json).map_err(|e| {
        CatalogError::invalid(
            "file",
            format!("Not a price list in the models.json schema: {e}"),
        )
    })?;
    let mut plan = ImportPlan::default();
    let mut actions = Vec::new();

    let mut providers: HashMap<String, String> = HashMap::new();
    for r in sqlx::query("SELECT id, wire FROM provider")
        .fetch_all(db.pool())
        .await?
    {
        providers.insert(r.try_get("id")?, r.try_get("wire")?);
    }
    for p in &file.providers {
        let wire = Wire::parse(&p.wire).ok_or_else(|| {
            CatalogError::invalid(
                "file",
                format!("Provider {}: unknown wire {}.", p.id, p.wire),
            )
        })?;
        if !providers.contains_key(&p.id) {
            providers.insert(p.id.clone(), p.wire.clone());
            plan.changes.push(Change {
                kind: ChangeKind::NewProvider,
                target: p.id.clone(),
                detail: format!("{} ({}, {})", p.name, p.wire, p.base_url),
            });
            actions.push(Action::Provider {
                id: p.id.clone(),
                name: p.name.clone(),
                wire,
                base_url: p.base_url.clone(),
                key_env: p.key_env.clone(),
            });
        }
    }

    let mut current: HashMap<String, Current> = HashMap::new();
    for r in sqlx::query(&format!(
        "SELECT {}, source FROM model",
        super::MODEL_COLUMNS
    ))
    .fetch_all(db.pool())
    .await?
    {
        let m = super::model_from_row(&r)?;
        current.insert(
            m.id.clone(),
            Current {
                source: r.try_get("source")?,
                model: FileModel {
                    id: m.id,
                    provider: m.provider_id,
                    upstream_model: m.upstream_model,
                    kind: m.kind,
                    context_window: m.context_window,
                    max_output_tokens: m.max_output_tokens,
                    capabilities: m.capabilities,
                    modalities: m.modalities,
                },
            },
        );
    }
    // The model-wide tariff in force per model, with its source.
    let mut in_force: HashMap<String, (Tariff, String)> = HashMap::new();
    for r in sqlx::query(
        "SELECT model_id, input, cached_input, cache_write, output, reasoning, markup_bps, source \
         FROM tariff WHERE channel_id IS NULL AND effective_from <= $1 ORDER BY model_id, effective_from, id",
    )
    .bind(now_ms())
    .fetch_all(db.pool())
    .await?
    {
        let t = Tariff::from_row(&r)?;
        in_force.insert(r.try_get("model_id")?, (t, r.try_get("source")?));
    }

    for m in &file.models {
        if !providers.contains_key(&m.provider) {
            return Err(CatalogError::invalid(
                "file",
                format!("Model {}: unknown provider {}.", m.id, m.provider),
            ));
        }
        let fm = FileModel {
            id: m.id.clone(),
            provider: m.provider.clone(),
            upstream_model: m.upstream_model.clone(),
            kind: if m.kind == "embedding" {
                ModelKind::Embedding
            } else {
                ModelKind::Chat
            },
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            capabilities: m.capabilities.clone(),
            modalities: m.modalities.clone(),
        };
        let pr = &m.price_per_mtok_usd;
        let bad = |e: CatalogError| CatalogError::invalid("file", format!("Model {}: {e}", m.id));
        let mut tariff = Tariff {
            input: price(&pr.input).map_err(bad)?.unwrap_or_default(),
            cached_input: price(&pr.cached_input).map_err(bad)?,
            cache_write: price(&pr.cache_write).map_err(bad)?,
            output: price(&pr.output).map_err(bad)?.unwrap_or_default(),
            reasoning: price(&pr.reasoning).map_err(bad)?,
            markup_bps: 0,
        };
        let mut changed = false;
        match current.get(&m.id) {
            None => {
                changed = true;
                plan.changes.push(Change {
                    kind: ChangeKind::NewModel,
                    target: m.id.clone(),
                    detail: format!(
                        "{}, context {}, {}",
                        fm.kind.as_str(),
                        fm.context_window,
                        fmt_tariff(&tariff)
                    ),
                });
                actions.push(Action::Model(Box::new(fm.clone()), true));
            }
            Some(cur) if cur.model != fm => {
                changed = true;
                let kind = if cur.source == "operator" {
                    ChangeKind::KeptOperatorEdit
                } else {
                    actions.push(Action::Model(Box::new(fm.clone()), false));
                    ChangeKind::UpdateModel
                };
                let mut what = Vec::new();
                if cur.model.upstream_model != fm.upstream_model {
                    what.push(format!(
                        "upstream {} → {}",
                        cur.model.upstream_model, fm.upstream_model
                    ));
                }
                if cur.model.context_window != fm.context_window {
                    what.push(format!(
                        "context {} → {}",
                        cur.model.context_window, fm.context_window
                    ));
                }
                if cur.model.max_output_tokens != fm.max_output_tokens {
                    what.push(format!(
                        "max output {:?} → {:?}",
                        cur.model.max_output_tokens, fm.max_output_tokens
                    ));
                }
                if cur.model.capabilities != fm.capabilities
                    || cur.model.modalities != fm.modalities
                {
                    what.push("capabilities or modalities".to_owned());
                }
                if cur.model.kind != fm.kind || cur.model.provider != fm.provider {
                    what.push("kind or provider".to_owned());
                }
                plan.changes.push(Change {
                    kind,
                    target: m.id.clone(),
                    detail: what.join(", "),
                });
            }
            Some(_) => {}
        }
        match in_force.get(&m.id) {
            Some((cur, _)) if same_prices(cur, &tariff) => {}
            Some((cur, source)) if source == "operator" => {
                changed = true;
                plan.changes.push(Change {
                    kind: ChangeKind::KeptOperatorEdit,
                    target: m.id.clone(),
                    detail: format!(
                        "price stays {} (file: {})",
                        fmt_tariff(cur),
                        fmt_tariff(&tariff)
                    ),
                });
            }
            cur => {
                if current.contains_key(&m.id) || cur.is_some() {
                    changed = true;
                    tariff.markup_bps = cur.map_or(0, |(t, _)| t.markup_bps);
                    plan.changes.push(Change {
                        kind: ChangeKind::NewPrice,
                        target: m.id.clone(),
                        detail: match cur {
                            Some((c, _)) => format!("{} → {}", fmt_tariff(c), fmt_tariff(&tariff)),
                            None => fmt_tariff(&tariff),
                        },
                    });
                }
                actions.push(Action::Price(m.id.clone(), tariff));
            }
        }
        if !changed {
            plan.unchanged += 1;
        }
    }

    let existing: Vec<String> = sqlx::query_scalar("SELECT name FROM codename")
        .fetch_all(db.pool())
        .await?;
    for c in &file.codenames {
        if existing.contains(&c.codename) {
            continue;
        }
        plan.changes.push(Change {
            kind: ChangeKind::NewCodename,
            target: c.codename.clone(),
            detail: c.models.join(" "),
        });
        actions.push(Action::Codename(
            c.codename.clone(),
            c.description.clone(),
            c.models.clone(),
        ));
    }
    Ok((plan, actions))
}

/// What importing `json` would change, without writing anything.
pub async fn preview(db: &Db, json: &str) -> Result<ImportPlan, CatalogError> {
    Ok(plan_actions(db, json).await?.0)
}

/// Imports `json`: the changes [`preview`] lists, in one transaction, audited as one entry.
pub async fn apply(db: &Db, actor: &str, json: &str) -> Result<ImportPlan, CatalogError> {
    let (plan, actions) = plan_actions(db, json).await?;
    if plan.writes() == 0 {
        return Ok(plan);
    }
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    for a in actions {
        match a {
            Action::Provider {
                id,
                name,
                wire,
                base_url,
                key_env,
            } => {
                sqlx::query(
                    "INSERT INTO provider (id, name, wire, base_url, key_env, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(name)
                .bind(wire.as_str())
                .bind(base_url)
                .bind(key_env)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Action::Model(m, new) => {
                let caps = serde_json::to_string(&m.capabilities).unwrap_or_else(|_| "{}".into());
                let modalities =
                    serde_json::to_string(&m.modalities).unwrap_or_else(|_| "{}".into());
                let sql = if new {
                    "INSERT INTO model (id, provider_id, upstream_model, kind, context_window, max_output_tokens, capabilities, modalities, enabled, created_at, source) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, 'import')"
                } else {
                    // `$9` unused but bound so both shapes take the same parameters.
                    "UPDATE model SET provider_id = $2, upstream_model = $3, kind = $4, context_window = $5, \
                     max_output_tokens = $6, capabilities = $7, modalities = $8, source = 'import' \
                     WHERE id = $1 AND source <> 'operator' AND $9 > 0"
                };
                sqlx::query(sql)
                    .bind(&m.id)
                    .bind(&m.provider)
                    .bind(&m.upstream_model)
                    .bind(m.kind.as_str())
                    .bind(i64::from(m.context_window))
                    .bind(m.max_output_tokens.map(i64::from))
                    .bind(caps)
                    .bind(modalities)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Action::Price(model_id, t) => {
                sqlx::query(
                    "INSERT INTO tariff (model_id, channel_id, input, cached_input, cache_write, output, reasoning, markup_bps, effective_from, source) \
                     VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, 'import')",
                )
                .bind(model_id)
                .bind(t.input.0)
                .bind(t.cached_input.map(|p| p.0))
                .bind(t.cache_write.map(|p| p.0))
                .bind(t.output.0)
                .bind(t.reasoning.map(|p| p.0))
                .bind(t.markup_bps)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Action::Codename(name, description, models) => {
                sqlx::query("INSERT INTO codename (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(&name)
                    .bind(description)
                    .execute(&mut *tx)
                    .await?;
                for (i, id) in models.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO codename_model (codename, model_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(&name)
                    .bind(id)
                    .bind(i as i64)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }
    let count = |k: ChangeKind| plan.changes.iter().filter(|c| c.kind == k).count();
    audit::record(
        &mut tx,
        actor,
        "catalog.import",
        "price list",
        &format!(
            "{} new providers, {} new models, {} model updates, {} new prices, {} new codenames, {} operator edits kept",
            count(ChangeKind::NewProvider),
            count(ChangeKind::NewModel),
            count(ChangeKind::UpdateModel),
            count(ChangeKind::NewPrice),
            count(ChangeKind::NewCodename),
            count(ChangeKind::KeptOperatorEdit),
        ),
    )
    .await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(plan)
}
