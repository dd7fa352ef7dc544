//! `admin_list_tariffs`: tariff versions, newest first, with their state (scheduled, in force,
//! superseded), for one model or all.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffVersionView {
    pub id: i64,
    pub model_id: String,
    pub channel: Option<String>,
    /// Micro-USD per million tokens.
    pub input: i64,
    pub cached_input: Option<i64>,
    pub cache_write: Option<i64>,
    pub output: i64,
    pub reasoning: Option<i64>,
    pub markup_bps: i64,
    pub effective_from: i64,
    pub source: String,
    pub state: String,
}

#[server(endpoint = "admin/list_tariffs")]
pub async fn admin_list_tariffs(model: String) -> Result<Vec<TariffVersionView>, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        caller.operator()?;
        let model = model.trim();
        let rows = weir_core::catalog::tariffs::history(
            &caller.state.db,
            (!model.is_empty()).then_some(model),
            300,
        )
        .await
        .map_err(|e| ssr::internal("listing tariffs", e))?;
        Ok(rows
            .into_iter()
            .map(|v| TariffVersionView {
                id: v.id,
                model_id: v.model_id,
                channel: v.channel_name,
                input: v.tariff.input.0,
                cached_input: v.tariff.cached_input.map(|p| p.0),
                cache_write: v.tariff.cache_write.map(|p| p.0),
                output: v.tariff.output.0,
                reasoning: v.tariff.reasoning.map(|p| p.0),
                markup_bps: v.tariff.markup_bps,
                effective_from: v.effective_from,
                source: v.source,
                state: v.state.as_str().to_owned(),
            })
            .collect())
    })
    .await
}
