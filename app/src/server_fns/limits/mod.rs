//! Limits of the current team and of its keys: requests, tokens and concurrency per minute,
//! allowed models, spend caps. Owners and admins set them; everyone sees them. A change reaches
//! the gateway of every replica within a second (the auth epoch).

mod set_limits;
mod team_limits;

pub use set_limits::*;
pub use team_limits::*;

use serde::{Deserialize, Serialize};

/// A key's or team's limits as the forms show them: each field as typed (empty is none), and
/// what has been spent against the caps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsView {
    pub rpm: String,
    pub tpm: String,
    pub concurrency: String,
    pub models: String,
    pub daily: String,
    pub monthly: String,
    pub total: String,
    pub spent_day: String,
    pub spent_month: String,
    pub spent_total: String,
    /// One line: `60 req/min · $5.00/day`, or `none`.
    pub summary: String,
}

#[cfg(feature = "ssr")]
impl LimitsView {
    pub fn new(r: &weir_core::limits::Rules, s: &weir_core::limits::Spend) -> LimitsView {
        let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        let usd =
            |v: Option<weir_core::money::Micros>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut parts = Vec::new();
        for (v, unit) in [
            (r.rpm, "req/min"),
            (r.tpm, "tokens/min"),
            (r.concurrency, "at once"),
        ] {
            if let Some(v) = v {
                parts.push(format!("{v} {unit}"));
            }
        }
        for (v, unit) in [
            (r.day_cap, "/day"),
            (r.month_cap, "/month"),
            (r.total_cap, " total"),
        ] {
            if let Some(v) = v {
                parts.push(format!("${v}{unit}"));
            }
        }
        if let Some(m) = &r.models {
            parts.push(format!("models {}", m.join(", ")));
        }
        LimitsView {
            rpm: n(r.rpm),
            tpm: n(r.tpm),
            concurrency: n(r.concurrency),
            models: r.models.as_ref().map(|m| m.join(", ")).unwrap_or_default(),
            daily: usd(r.day_cap),
            monthly: usd(r.month_cap),
            total: usd(r.total_cap),
            spent_day: s.day.to_string(),
            spent_month: s.month.to_string(),
            spent_total: s.total.to_string(),
            summary: if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(" · ")
            },
        }
    }
}
