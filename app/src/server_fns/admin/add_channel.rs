//! `admin_add_channel`: a channel of any kind with its upstream key (sealed at rest), checked
//! by the SSRF guard. The same domain call as `weir channel add`.
// A form's fields are the server function's arguments (the hydrate build's stub too).
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/add_channel")]
pub async fn admin_add_channel(
    name: String,
    provider_id: String,
    kind: String,
    base_url: String,
    api_key: String,
    priority: Option<String>,
    weight: Option<String>,
    models: Option<String>,
    local: Option<String>,
    disabled: Option<String>,
    #[server(default)] csrf: String,
) -> Result<i64, AppError> {
    use crate::ssr;
    use weir_core::catalog::{channels, Wire};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let kind = Wire::parse(kind.trim()).ok_or_else(|| {
            AppError::field(
                "kind",
                "Choose OpenAI-compatible, Anthropic, Gemini or Cohere.",
            )
        })?;
        let int = |v: Option<String>, field: &str, default: i64| -> Result<i64, AppError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(default),
                Some(s) => s
                    .parse()
                    .map_err(|_| AppError::field(field, "A whole number.")),
            }
        };
        let input = channels::ChannelInput {
            name: name.trim().to_owned(),
            provider_id: provider_id.trim().to_owned(),
            kind: Some(kind),
            base_url: base_url.trim().to_owned(),
            api_key: Some(api_key.trim().to_owned()),
            priority: int(priority, "priority", 0)?,
            weight: int(weight, "weight", 1)?,
            enabled: disabled.is_none(),
            is_local: local.is_some(),
            models: models
                .unwrap_or_default()
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        let actor = format!("user:{}", caller.user.id);
        channels::add(&caller.state.db, &caller.state.keys, &actor, &input)
            .await
            .map_err(|e| ssr::catalog_error("adding a channel", e))
    })
    .await
}
