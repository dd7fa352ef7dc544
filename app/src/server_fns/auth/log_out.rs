//! `log_out`: ends the session (its row deleted, the cookie's id no longer valid).

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "auth/log_out")]
pub async fn log_out(#[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let (_, session) = ssr::anonymous(&csrf).await?;
        session
            .flush()
            .await
            .map_err(|e| ssr::internal("ending the session", e))?;
        leptos_axum::redirect("/login");
        Ok(())
    })
    .await
}
