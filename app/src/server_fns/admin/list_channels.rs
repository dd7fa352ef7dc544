//! `admin_list_channels`: every channel with its key's last four characters (never the key),
//! this replica's breaker state, and the last hour's traffic from the request log.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    pub provider_id: String,
    pub wire: String,
    pub base_url: String,
    pub key_source: String,
    pub key_last4: String,
    pub priority: i64,
    pub weight: i64,
    pub enabled: bool,
    pub is_local: bool,
    pub models: Vec<String>,
    pub breaker: String,
    pub requests_1h: i64,
    pub errors_1h: i64,
    pub avg_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

#[server(endpoint = "admin/list_channels")]
pub async fn admin_list_channels() -> Result<Vec<ChannelView>, AppError> {
    use crate::ssr;
    use weir_core::catalog::channels;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        caller.operator()?;
        let db = &caller.state.db;
        let list = channels::list(db)
            .await
            .map_err(|e| ssr::internal("listing channels", e))?;
        let mut stats = channels::recent_stats(db, weir_core::db::now_ms() - 3_600_000)
            .await
            .map_err(|e| ssr::internal("reading channel health", e))?;
        let breakers = (caller.state.health)();
        Ok(list
            .into_iter()
            .map(|c| {
                let s = stats.remove(&c.id).unwrap_or_default();
                ChannelView {
                    breaker: breakers
                        .get(&c.id)
                        .cloned()
                        .unwrap_or_else(|| "closed".to_owned()),
                    requests_1h: s.requests,
                    errors_1h: s.errors,
                    avg_latency_ms: s.avg_latency_ms,
                    last_error_at: s.last_error.as_ref().map(|e| e.1),
                    last_error: s.last_error.map(|e| e.0),
                    id: c.id,
                    name: c.name,
                    provider_id: c.provider_id,
                    wire: c.wire,
                    base_url: c.base_url,
                    key_source: c.key_source,
                    key_last4: c.key_last4,
                    priority: c.priority,
                    weight: c.weight,
                    enabled: c.enabled,
                    is_local: c.is_local,
                    models: c.models,
                }
            })
            .collect())
    })
    .await
}
