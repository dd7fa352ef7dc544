//! `list_models`: every enabled model of the live catalog with its marked-up prices. Public:
//! the pricing page shows it to visitors.

use leptos::prelude::*;

use super::ModelView;
use crate::error::AppError;

#[server(endpoint = "catalog/list_models")]
pub async fn list_models() -> Result<Vec<ModelView>, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let state = ssr::state()?;
        Ok(ssr::catalog::model_views(&(state.catalog)()))
    })
    .await
}
