//! `invite_details` and `accept_invite`: what an invitation link offers, and joining by it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteView {
    pub team_name: String,
    pub role: String,
    pub expires_at: i64,
    pub signed_in: bool,
}

#[server(endpoint = "members/invite_details")]
pub async fn invite_details(token: String) -> Result<InviteView, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let state = ssr::state()?;
        let info = weir_core::team::invite_info(&state.db, &token)
            .await
            .map_err(super::team_error)?
            .ok_or_else(|| {
                AppError::Invalid(
                    "This invitation is not valid: it was used or has expired.".into(),
                )
            })?;
        let signed_in = ssr::caller().await.is_ok();
        Ok(InviteView {
            team_name: info.team_name,
            role: info.role.as_str().to_owned(),
            expires_at: info.expires_at,
            signed_in,
        })
    })
    .await
}

#[server(endpoint = "members/accept_invite")]
pub async fn accept_invite(token: String, #[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let team = weir_core::team::accept_invite(&caller.state.db, &token, caller.user.id)
            .await
            .map_err(super::team_error)?;
        caller
            .session
            .insert(ssr::SessionKeys::TEAM, team.id)
            .await
            .map_err(|e| ssr::internal("switching team", e))?;
        leptos_axum::redirect("/dashboard");
        Ok(())
    })
    .await
}
