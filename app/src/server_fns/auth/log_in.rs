//! `log_in`: email and password, throttled per account and per client address. Unknown
//! email and wrong password get the same answer in the same time.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "auth/log_in")]
pub async fn log_in(
    email: String,
    password: String,
    #[server(default)] csrf: String,
    next: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::account::{self, AccountError};
    ssr::run(async move {
        let (state, session) = ssr::anonymous(&csrf).await?;
        if !state.limiter.allow(&email, ssr::ClientAddr::current()) {
            return Err(AppError::TooMany(
                "Too many attempts. Wait a minute and try again.".into(),
            ));
        }
        let user = account::log_in(&state.db, &email, &password)
            .await
            .map_err(|e| match e {
                AccountError::BadCredentials => {
                    AppError::Invalid("Wrong email or password.".into())
                }
                e => ssr::internal("log in", e),
            })?;
        ssr::start(&session, &user).await?;
        leptos_axum::redirect(&super::safe_next(next.as_deref()));
        Ok(())
    })
    .await
}
