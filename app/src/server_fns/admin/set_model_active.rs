//! `admin_set_model_active`: an inactive model is neither listed nor served.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/set_model_active")]
pub async fn admin_set_model_active(
    model_id: String,
    active: bool,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let actor = format!("user:{}", caller.user.id);
        weir_core::catalog::models::set_active(&caller.state.db, &actor, &model_id, active)
            .await
            .map_err(|e| ssr::catalog_error("activating a model", e))
    })
    .await
}
