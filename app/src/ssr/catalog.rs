//! The catalog as the console and the public JSON list show it: marked-up prices computed
//! exactly in integers, decimal strings only at the edge.

use serde_json::{json, Value};
use weir_core::catalog::{ModelKind, Snapshot, Tariff};

use crate::{components::format, server_fns::catalog::ModelView};

fn scaled(p: Option<weir_core::money::PerMillion>, t: &Tariff) -> Option<i64> {
    let bps = i128::from(t.markup_bps.max(0));
    p.map(|p| i64::try_from(i128::from(p.0) * (10_000 + bps)).unwrap_or(i64::MAX))
}

/// Every enabled model, sorted by id.
pub fn model_views(snap: &Snapshot) -> Vec<ModelView> {
    let available: std::collections::HashSet<String> = snap
        .available_models()
        .into_iter()
        .map(|m| m.id.clone())
        .collect();
    snap.all_models()
        .into_iter()
        .map(|m| {
            let t = m.tariff.unwrap_or_default();
            let has = m.tariff.is_some();
            let c = &m.capabilities;
            let capabilities = [
                (c.tools, "tools"),
                (c.vision, "vision"),
                (c.reasoning, "reasoning"),
                (c.json_schema, "json_schema"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n.to_owned())
            .collect();
            let provider = snap.provider_name(&m.provider_id).to_owned();
            ModelView {
                name: format!("{provider}: {}", m.upstream_model),
                provider,
                provider_id: m.provider_id.clone(),
                kind: match m.kind {
                    ModelKind::Chat => "chat",
                    ModelKind::Embedding => "embedding",
                }
                .to_owned(),
                context_window: m.context_window,
                max_output_tokens: m.max_output_tokens,
                capabilities,
                input_modalities: m.modalities.input.clone(),
                output_modalities: m.modalities.output.clone(),
                input: has.then(|| scaled(Some(t.input), &t)).flatten(),
                cached_input: scaled(t.cached_input.or(has.then_some(t.input)), &t),
                cache_write: scaled(t.cache_write.or(has.then_some(t.input)), &t),
                output: has.then(|| scaled(Some(t.output), &t)).flatten(),
                reasoning: scaled(t.reasoning.or(has.then_some(t.output)), &t),
                available: available.contains(&m.id),
                id: m.id.clone(),
            }
        })
        .collect()
}

/// `GET /api/public/models`: the shape an OpenRouter-style client or a pi `models.json` can
/// be filled from. Prices are USD per token, as decimal strings.
pub fn public_json(models: &[ModelView]) -> Value {
    let per_token = |p: Option<i64>| p.map(format::per_token);
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "name": m.name,
                "provider": m.provider_id,
                "provider_name": m.provider,
                "kind": m.kind,
                "context_length": m.context_window,
                "max_output_tokens": m.max_output_tokens,
                "modalities": {"input": m.input_modalities, "output": m.output_modalities},
                "architecture": {
                    "input_modalities": m.input_modalities,
                    "output_modalities": m.output_modalities,
                },
                "capabilities": m.capabilities,
                "available": m.available,
                "pricing": {
                    "prompt": per_token(m.input),
                    "completion": per_token(m.output),
                    "input_cache_read": per_token(m.cached_input),
                    "input_cache_write": per_token(m.cache_write),
                    "internal_reasoning": per_token(m.reasoning),
                },
            })
        })
        .collect();
    json!({ "data": data })
}
