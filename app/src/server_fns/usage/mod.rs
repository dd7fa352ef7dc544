//! Usage history: the request table with filters, and totals for the filtered range.

mod export_usage;
mod list_usage;

pub use export_usage::*;
pub use list_usage::*;

use serde::{Deserialize, Serialize};

/// One request as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub request_id: String,
    pub created_at: i64,
    pub key_name: String,
    pub model: String,
    pub provider: Option<String>,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Micro-USD.
    pub cost: i64,
    pub latency_ms: u64,
    pub status: u16,
    /// `upstream` (reported), `estimated` (counted by Weir) or `none`.
    pub usage_source: String,
}

/// Sums over a set of requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsView {
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: i64,
}

impl TotalsView {
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.reasoning_tokens)
    }
}

#[cfg(feature = "ssr")]
impl From<weir_core::metering::UsageRow> for RequestView {
    fn from(r: weir_core::metering::UsageRow) -> Self {
        RequestView {
            request_id: r.request_id,
            created_at: r.created_at,
            key_name: r.key_name,
            model: r.model,
            provider: r.provider,
            input_tokens: r.input_tokens,
            cached_tokens: r.cached_tokens,
            cache_write_tokens: r.cache_write_tokens,
            output_tokens: r.output_tokens,
            reasoning_tokens: r.reasoning_tokens,
            cost: r.cost.0,
            latency_ms: r.latency_ms,
            status: r.status,
            usage_source: r.usage_source,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<weir_core::metering::UsageTotals> for TotalsView {
    fn from(t: weir_core::metering::UsageTotals) -> Self {
        TotalsView {
            requests: t.requests,
            input_tokens: t.input_tokens,
            cached_tokens: t.cached_tokens,
            cache_write_tokens: t.cache_write_tokens,
            output_tokens: t.output_tokens,
            reasoning_tokens: t.reasoning_tokens,
            cost: t.cost.0,
        }
    }
}
