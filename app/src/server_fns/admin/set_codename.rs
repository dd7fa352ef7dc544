//! `admin_set_codename`: create a codename or replace the models behind it, in order.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/set_codename")]
pub async fn admin_set_codename(
    name: String,
    models: String,
    description: Option<String>,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let ids: Vec<String> = models
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        let actor = format!("user:{}", caller.user.id);
        weir_core::catalog::models::set_codename(
            &caller.state.db,
            &actor,
            name.trim(),
            description.as_deref().unwrap_or(""),
            &ids,
        )
        .await
        .map_err(|e| ssr::catalog_error("setting a codename", e))
    })
    .await
}
