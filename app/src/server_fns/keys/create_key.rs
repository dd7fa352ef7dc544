//! `create_key`: a key for the current team. The secret is returned once (and, for a form
//! posted without JavaScript, kept in the session until the keys page has shown it).

use leptos::prelude::*;

use crate::error::AppError;

/// How long a key may live at most when it has an expiry, in days.
pub const MAX_EXPIRY_DAYS: i64 = 3650;

#[server(endpoint = "keys/create_key")]
pub async fn create_key(
    name: String,
    environment: String,
    expires_in_days: Option<String>,
    #[server(default)] csrf: String,
) -> Result<String, AppError> {
    use crate::ssr;
    use weir_core::auth::{self, Env};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        // Members create their own keys; owners and admins any.
        let (team_id, _) = caller.team()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AppError::field(
                "name",
                "Give the key a name of 1 to 64 characters.",
            ));
        }
        let env: Env = environment
            .parse()
            .map_err(|_| AppError::field("environment", "Choose dev, staging or prod."))?;
        let expires_at = match expires_in_days.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) => {
                let days: i64 = d
                    .parse()
                    .ok()
                    .filter(|d| (1..=MAX_EXPIRY_DAYS).contains(d))
                    .ok_or_else(|| {
                        AppError::field(
                            "expires_in_days",
                            format!("A whole number of days from 1 to {MAX_EXPIRY_DAYS}."),
                        )
                    })?;
                Some(weir_core::db::now_ms() + days * 86_400_000)
            }
        };
        let key = auth::create_team_key(
            &caller.state.db,
            team_id,
            env,
            name,
            expires_at,
            Some(caller.user.id),
        )
        .await
        .map_err(|e| ssr::internal("creating a key", e))?;
        caller
            .session
            .insert(ssr::SessionKeys::NEW_KEY, &key.full)
            .await
            .map_err(|e| ssr::internal("keeping the new key", e))?;
        Ok(key.full)
    })
    .await
}
