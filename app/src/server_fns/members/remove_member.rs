//! `remove_member`: owners and admins remove someone from the current team.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "members/remove_member")]
pub async fn remove_member(user_id: i64, #[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let team_id = caller.managed_team()?;
        let (_, role) = caller.team()?;
        weir_core::team::remove_member(&caller.state.db, team_id, user_id, role)
            .await
            .map_err(super::team_error)?;
        Ok(())
    })
    .await
}
