//! `list_ledger`: the current team's balance and ledger transactions (top-ups, usage,
//! adjustments with their reasons), newest first, by keyset on the transaction id.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerView {
    pub id: i64,
    pub kind: String,
    pub memo: Option<String>,
    /// The change to the team's balance, micro-USD (negative for usage).
    pub amount: i64,
    pub created_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingPage {
    pub balance: i64,
    pub held: i64,
    pub rows: Vec<LedgerView>,
    /// The id to pass as `before` for the next page.
    pub next: Option<i64>,
}

pub const LEDGER_PAGE: u32 = 50;

#[server(endpoint = "billing/list_ledger")]
pub async fn list_ledger(before: Option<i64>) -> Result<BillingPage, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, _) = caller.team()?;
        let db = &caller.state.db;
        let (balance, held) = weir_core::billing::balance(db, team_id)
            .await
            .map_err(|e| ssr::internal("reading the balance", e))?;
        let (rows, next) = weir_core::billing::team_ledger(db, team_id, before, LEDGER_PAGE)
            .await
            .map_err(|e| ssr::internal("listing the ledger", e))?;
        Ok(BillingPage {
            balance: balance.0,
            held: held.0,
            rows: rows
                .into_iter()
                .map(|r| LedgerView {
                    id: r.id,
                    kind: r.kind,
                    memo: r.memo,
                    amount: r.amount.0,
                    created_at: r.created_at,
                })
                .collect(),
            next,
        })
    })
    .await
}
