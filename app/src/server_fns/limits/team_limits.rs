//! `team_limits`: the current team's limits and what it has spent against its caps.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::LimitsView;
use crate::error::AppError;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamLimitsPage {
    pub limits: LimitsView,
    pub can_manage: bool,
}

#[server(endpoint = "limits/team_limits")]
pub async fn team_limits() -> Result<TeamLimitsPage, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, role) = caller.team()?;
        let (rules, spend) =
            weir_core::limits::get(&caller.state.db, weir_core::limits::Scope::Team, team_id)
                .await
                .map_err(|e| ssr::internal("reading the team's limits", e))?;
        Ok(TeamLimitsPage {
            limits: LimitsView::new(&rules, &spend),
            can_manage: role.can_manage(),
        })
    })
    .await
}
