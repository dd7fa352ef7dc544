//! `sign_up`: a new account with its personal team; signs the new user in.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "auth/sign_up")]
pub async fn sign_up(
    email: String,
    password: String,
    #[server(default)] csrf: String,
    next: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::account::{self, AccountError};
    ssr::run(async move {
        let (state, session) = ssr::anonymous(&csrf).await?;
        let done = account::sign_up(&state.db, &email, &password, state.admin_email.as_deref())
            .await
            .map_err(|e| match e {
                AccountError::InvalidEmail => {
                    AppError::field("email", "Enter a valid email address.")
                }
                AccountError::EmailTaken => {
                    AppError::field("email", "An account with this email already exists.")
                }
                AccountError::WeakPassword => {
                    AppError::field("password", "Use at least 10 characters.")
                }
                e => ssr::internal("sign up", e),
            })?;
        ssr::start(&session, &done.user).await?;
        leptos_axum::redirect(&super::safe_next(next.as_deref()));
        Ok(())
    })
    .await
}
