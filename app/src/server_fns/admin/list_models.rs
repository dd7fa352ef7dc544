//! `admin_list_models`: every model, active or not, with its tariff in force, and the
//! codenames with their models.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminModelView {
    pub id: String,
    pub provider_id: String,
    pub upstream_model: String,
    pub kind: String,
    pub context_window: u32,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Vec<String>,
    pub input_modalities: Vec<String>,
    pub output_modalities: Vec<String>,
    pub active: bool,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodenameView {
    pub name: String,
    pub description: String,
    pub models: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminModels {
    pub models: Vec<AdminModelView>,
    pub codenames: Vec<CodenameView>,
    pub providers: Vec<String>,
}

#[server(endpoint = "admin/list_models")]
pub async fn admin_list_models() -> Result<AdminModels, AppError> {
    use crate::ssr;
    use weir_core::catalog::models;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        caller.operator()?;
        let db = &caller.state.db;
        let list = models::list(db)
            .await
            .map_err(|e| ssr::internal("listing models", e))?;
        let codenames = models::list_codenames(db)
            .await
            .map_err(|e| ssr::internal("listing codenames", e))?;
        let mut providers: Vec<String> = list.iter().map(|m| m.input.provider_id.clone()).collect();
        providers.extend(
            weir_core::catalog::channels::list(db)
                .await
                .map_err(|e| ssr::internal("listing channels", e))?
                .into_iter()
                .map(|c| c.provider_id),
        );
        providers.sort();
        providers.dedup();
        Ok(AdminModels {
            providers,
            models: list
                .into_iter()
                .map(|m| {
                    let c = &m.input.capabilities;
                    AdminModelView {
                        capabilities: [
                            (c.tools, "tools"),
                            (c.vision, "vision"),
                            (c.reasoning, "reasoning"),
                            (c.json_schema, "json_schema"),
                        ]
                        .into_iter()
                        .filter(|(on, _)| *on)
                        .map(|(_, n)| n.to_owned())
                        .collect(),
                        id: m.input.id,
                        provider_id: m.input.provider_id,
                        upstream_model: m.input.upstream_model,
                        kind: m.input.kind.as_str().to_owned(),
                        context_window: m.input.context_window,
                        max_output_tokens: m.input.max_output_tokens,
                        input_modalities: m.input.modalities.input,
                        output_modalities: m.input.modalities.output,
                        active: m.active,
                        source: m.source,
                    }
                })
                .collect(),
            codenames: codenames
                .into_iter()
                .map(|c| CodenameView {
                    name: c.name,
                    description: c.description,
                    models: c.models,
                })
                .collect(),
        })
    })
    .await
}
