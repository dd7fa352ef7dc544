//! `leave_team`: the caller leaves the current team (not if they are its last owner).

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "members/leave_team")]
pub async fn leave_team(#[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let (team_id, _) = caller.team()?;
        weir_core::team::leave(&caller.state.db, team_id, caller.user.id)
            .await
            .map_err(super::team_error)?;
        caller
            .session
            .remove::<i64>(ssr::SessionKeys::TEAM)
            .await
            .map_err(|e| ssr::internal("switching team", e))?;
        leptos_axum::redirect("/dashboard");
        Ok(())
    })
    .await
}
