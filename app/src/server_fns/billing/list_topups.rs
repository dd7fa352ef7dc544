//! `list_topups`: whether top-ups are possible (and why not), their bounds, and the current
//! team's top-ups with status and receipt link; `focus` is the one the browser came back
//! from Stripe with (display only: credit comes from the webhook).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopupView {
    pub id: String,
    /// Micro-USD.
    pub amount: i64,
    pub status: String,
    pub receipt_url: Option<String>,
    /// Micro-USD reversed for refunds.
    pub refunded: i64,
    pub note: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopupsPage {
    /// Stripe is configured and the caller may top up.
    pub enabled: bool,
    /// Why the button is disabled.
    pub reason: Option<String>,
    pub min: i64,
    pub max: i64,
    pub rows: Vec<TopupView>,
    pub focus: Option<TopupView>,
}

pub const TOPUP_PAGE: u32 = 20;

#[server(endpoint = "billing/list_topups")]
pub async fn list_topups(focus: Option<String>) -> Result<TopupsPage, AppError> {
    use crate::ssr;
    use weir_core::topup;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, role) = caller.team()?;
        let settings = &caller.state.topups;
        let reason = if settings.checkout.is_none() {
            Some("Top-ups are off: this server has no Stripe key (STRIPE_SECRET_KEY). Until then the operator credits balances.".to_owned())
        } else if !role.can_manage() {
            Some("Only the team's owners and admins can top up.".to_owned())
        } else {
            None
        };
        let db = &caller.state.db;
        let view = |t: topup::Topup| TopupView {
            id: t.id,
            amount: t.amount.0,
            status: t.status.as_str().to_owned(),
            receipt_url: t.receipt_url,
            refunded: t.refund_reversed.0,
            note: t.note,
            created_at: t.created_at,
        };
        let rows = topup::list(db, team_id, TOPUP_PAGE)
            .await
            .map_err(|e| ssr::internal("listing top-ups", e))?;
        let focus = match focus.filter(|f| !f.is_empty()) {
            Some(id) => match topup::get(db, team_id, &id).await {
                Ok(t) => Some(view(t)),
                Err(topup::TopupError::NotFound) => None,
                Err(e) => return Err(ssr::internal("reading a top-up", e)),
            },
            None => None,
        };
        Ok(TopupsPage {
            enabled: reason.is_none(),
            reason,
            min: settings.limits.min.0,
            max: settings.limits.max.0,
            rows: rows.into_iter().map(view).collect(),
            focus,
        })
    })
    .await
}
