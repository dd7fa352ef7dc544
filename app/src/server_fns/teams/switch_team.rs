//! `switch_team`: the team the console acts for, chosen in the header.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "teams/switch_team")]
pub async fn switch_team(team_id: i64, #[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        if !caller.teams.iter().any(|m| m.team.id == team_id) {
            return Err(AppError::NotFound);
        }
        caller
            .session
            .insert(ssr::SessionKeys::TEAM, team_id)
            .await
            .map_err(|e| ssr::internal("switching team", e))?;
        leptos_axum::redirect("/dashboard");
        Ok(())
    })
    .await
}
