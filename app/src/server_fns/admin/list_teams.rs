//! `admin_list_teams`: every team with balance, held, 30-day spend, members and status.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTeamView {
    pub id: i64,
    pub name: String,
    pub active: bool,
    pub balance: i64,
    pub held: i64,
    pub spend_30d: i64,
    pub members: i64,
    pub created_at: i64,
}

#[server(endpoint = "admin/list_teams")]
pub async fn admin_list_teams() -> Result<Vec<AdminTeamView>, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        caller.operator()?;
        let today = weir_core::db::now_ms().div_euclid(86_400_000);
        let rows = weir_core::metering::admin_teams(&caller.state.db, today)
            .await
            .map_err(|e| ssr::internal("listing teams", e))?;
        Ok(rows
            .into_iter()
            .map(|t| AdminTeamView {
                id: t.id,
                name: t.name,
                active: t.active,
                balance: t.balance.0,
                held: t.held.0,
                spend_30d: t.spend_30d.0,
                members: t.members,
                created_at: t.created_at,
            })
            .collect())
    })
    .await
}
