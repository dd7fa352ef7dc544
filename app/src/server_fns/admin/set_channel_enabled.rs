//! `admin_set_channel_enabled`: a disabled channel is never tried, on every replica within
//! the catalog poll.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/set_channel_enabled")]
pub async fn admin_set_channel_enabled(
    channel_id: i64,
    enabled: bool,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let actor = format!("user:{}", caller.user.id);
        weir_core::catalog::channels::set_enabled(&caller.state.db, &actor, channel_id, enabled)
            .await
            .map_err(|e| ssr::catalog_error("enabling a channel", e))
    })
    .await
}
