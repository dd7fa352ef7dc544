//! `list_members`: who is in the current team, and with which role.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: i64,
    pub email: String,
    pub role: String,
    pub joined_at: i64,
    pub is_me: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersPage {
    pub team_name: String,
    pub members: Vec<MemberView>,
    pub can_manage: bool,
}

#[server(endpoint = "members/list_members")]
pub async fn list_members() -> Result<MembersPage, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, role) = caller.team()?;
        let rows = weir_core::team::members(&caller.state.db, team_id)
            .await
            .map_err(|e| ssr::internal("listing members", e))?;
        Ok(MembersPage {
            team_name: caller
                .current
                .as_ref()
                .map(|m| m.team.name.clone())
                .unwrap_or_default(),
            members: rows
                .into_iter()
                .map(|m| MemberView {
                    is_me: m.user_id == caller.user.id,
                    user_id: m.user_id,
                    email: m.email,
                    role: m.role.as_str().to_owned(),
                    joined_at: m.joined_at,
                })
                .collect(),
            can_manage: role.can_manage(),
        })
    })
    .await
}
