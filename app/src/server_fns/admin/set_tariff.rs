//! `admin_set_tariff`: a new tariff version for a model (or a model on one channel), now or
//! at a scheduled UTC time. Prices are decimal dollars per million tokens, parsed exactly
//! into integer micro-USD. The same call as `weir tariff set`.
// A form's fields are the server function's arguments (the hydrate build's stub too).
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/set_tariff")]
pub async fn admin_set_tariff(
    model_id: String,
    input: String,
    output: String,
    cached_input: Option<String>,
    cache_write: Option<String>,
    reasoning: Option<String>,
    markup_bps: Option<String>,
    channel: Option<String>,
    effective_from: Option<String>,
    #[server(default)] csrf: String,
) -> Result<i64, AppError> {
    use crate::ssr;
    use weir_core::catalog::{channels, tariffs, Tariff};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let f = |field: &'static str| move |m: String| AppError::field(field, m);
        let opt = |v: Option<String>, field: &'static str| {
            tariffs::parse_optional_price(v.as_deref().unwrap_or("")).map_err(f(field))
        };
        let tariff = Tariff {
            input: tariffs::parse_price(&input).map_err(f("input"))?,
            output: tariffs::parse_price(&output).map_err(f("output"))?,
            cached_input: opt(cached_input, "cached_input")?,
            cache_write: opt(cache_write, "cache_write")?,
            reasoning: opt(reasoning, "reasoning")?,
            markup_bps: tariffs::parse_markup_bps(markup_bps.as_deref().unwrap_or(""))
                .map_err(f("markup_bps"))?,
        };
        let db = &caller.state.db;
        let channel_id = match channel.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(
                channels::resolve(db, c)
                    .await
                    .map_err(|_| AppError::field("channel", "No such channel."))?,
            ),
        };
        let effective_from = tariffs::parse_when(effective_from.as_deref().unwrap_or(""))
            .map_err(f("effective_from"))?;
        let actor = format!("user:{}", caller.user.id);
        tariffs::set(
            db,
            &actor,
            &tariffs::TariffInput {
                model_id: model_id.trim().to_owned(),
                channel_id,
                tariff,
                effective_from,
            },
        )
        .await
        .map_err(|e| ssr::catalog_error("setting a tariff", e))
    })
    .await
}
