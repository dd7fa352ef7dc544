//! `create_invite`: a single-use link, valid for a week, that adds its holder to the current
//! team as a member (or admin). Shown in the console; no mail server needed.

use leptos::prelude::*;

use crate::error::AppError;

/// How long an invitation link stays valid.
pub const INVITE_TTL_DAYS: u64 = 7;

#[server(endpoint = "members/create_invite")]
pub async fn create_invite(
    role: String,
    #[server(default)] csrf: String,
) -> Result<String, AppError> {
    use crate::ssr;
    use weir_core::team::{self, Role};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let team_id = caller.managed_team()?;
        let role = match Role::parse(&role) {
            Some(r @ (Role::Member | Role::Admin)) => r,
            _ => return Err(AppError::field("role", "Invite as member or admin.")),
        };
        let token = team::create_invite(
            &caller.state.db,
            team_id,
            caller.user.id,
            role,
            std::time::Duration::from_secs(INVITE_TTL_DAYS * 86_400),
        )
        .await
        .map_err(super::team_error)?;
        Ok(format!("{}/invite/{token}", caller.state.public_url))
    })
    .await
}
