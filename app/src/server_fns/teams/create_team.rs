//! `create_team`: a new team with the caller as its owner; it becomes the current team.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "teams/create_team")]
pub async fn create_team(name: String, #[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::team::{self, TeamError};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let t = team::create_for_user(&caller.state.db, caller.user.id, name.trim())
            .await
            .map_err(|e| match e {
                TeamError::InvalidName => {
                    AppError::field("name", "Use 1 to 64 characters, no control characters.")
                }
                TeamError::Exists(_) => AppError::field("name", "That name is taken."),
                e => ssr::internal("creating a team", e),
            })?;
        caller
            .session
            .insert(ssr::SessionKeys::TEAM, t.id)
            .await
            .map_err(|e| ssr::internal("switching team", e))?;
        leptos_axum::redirect("/dashboard");
        Ok(())
    })
    .await
}
