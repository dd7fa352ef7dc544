//! `admin_set_team_active`: a deactivated team's keys are refused (403) at once.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/set_team_active")]
pub async fn admin_set_team_active(
    team_id: i64,
    active: bool,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        weir_core::team::set_active_by_id(&caller.state.db, team_id, active)
            .await
            .map_err(|e| match e {
                weir_core::team::TeamError::NotFound(_) => AppError::NotFound,
                e => ssr::internal("changing a team's status", e),
            })?;
        caller.state.verifier.invalidate_all();
        Ok(())
    })
    .await
}
