//! `revoke_key`: effective in the gateway at once (the auth epoch and this process's cache).

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "keys/revoke_key")]
pub async fn revoke_key(key_id: i64, #[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::auth::{self, KeyAdminError};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let (team_id, role) = caller.team()?;
        let only_creator = (!role.can_manage()).then_some(caller.user.id);
        auth::revoke_team_key(&caller.state.db, team_id, key_id, only_creator)
            .await
            .map_err(|e| match e {
                KeyAdminError::NotFound(_) => AppError::NotFound,
                e => ssr::internal("revoking a key", e),
            })?;
        caller.state.verifier.invalidate_all();
        Ok(())
    })
    .await
}
