//! `admin_add_model`: a model of an existing provider. The same call as `weir model add`.
// A form's fields are the server function's arguments (the hydrate build's stub too).
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/add_model")]
pub async fn admin_add_model(
    id: String,
    provider_id: String,
    upstream_model: String,
    kind: String,
    context_window: String,
    max_output_tokens: Option<String>,
    capabilities: Option<String>,
    input_modalities: Option<String>,
    output_modalities: Option<String>,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::catalog::{models, Capabilities, Modalities, ModelKind};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let kind = match kind.trim() {
            "chat" => ModelKind::Chat,
            "embedding" => ModelKind::Embedding,
            _ => return Err(AppError::field("kind", "Choose chat or embedding.")),
        };
        let context_window: u32 = context_window
            .trim()
            .replace([',', '_'], "")
            .parse()
            .map_err(|_| AppError::field("context_window", "A number of tokens."))?;
        let max_output_tokens = match max_output_tokens.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                s.replace([',', '_'], "")
                    .parse::<u32>()
                    .map_err(|_| AppError::field("max_output_tokens", "A number of tokens."))?,
            ),
        };
        let list = |s: Option<String>| -> Vec<String> {
            s.unwrap_or_default()
                .split([',', ' '])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut caps = Capabilities::default();
        for c in list(capabilities) {
            match c.as_str() {
                "tools" => caps.tools = true,
                "vision" => caps.vision = true,
                "reasoning" => caps.reasoning = true,
                "json_schema" => caps.json_schema = true,
                _ => {
                    return Err(AppError::field(
                        "capabilities",
                        "Any of tools, vision, reasoning, json_schema.",
                    ))
                }
            }
        }
        let or_text = |v: Vec<String>| {
            if v.is_empty() {
                vec!["text".to_owned()]
            } else {
                v
            }
        };
        let input = models::ModelInput {
            id: id.trim().to_owned(),
            provider_id: provider_id.trim().to_owned(),
            upstream_model: upstream_model.trim().to_owned(),
            kind,
            context_window,
            max_output_tokens,
            capabilities: caps,
            modalities: Modalities {
                input: or_text(list(input_modalities)),
                output: or_text(list(output_modalities)),
            },
        };
        let actor = format!("user:{}", caller.user.id);
        models::add(&caller.state.db, &actor, &input)
            .await
            .map_err(|e| ssr::catalog_error("adding a model", e))
    })
    .await
}
