//! `set_limits`: replaces the limits of the current team (`scope = "team"`) or of one of its
//! keys (`scope = "key"`, `key_id`). Owners and admins only: a member must not lift the limits
//! of the key they call with.
// One argument per form field: the server function is the form's decoder.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "limits/set_limits")]
pub async fn set_limits(
    scope: String,
    #[server(default)] key_id: Option<i64>,
    #[server(default)] rpm: String,
    #[server(default)] tpm: String,
    #[server(default)] concurrency: String,
    #[server(default)] models: String,
    #[server(default)] daily: String,
    #[server(default)] monthly: String,
    #[server(default)] total: String,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::limits::{self, parse_cap, parse_rate, Rules, Scope};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let team_id = caller.managed_team()?;
        let db = &caller.state.db;
        let (scope, owner) = match (scope.as_str(), key_id) {
            ("team", _) => (Scope::Team, team_id),
            ("key", Some(id)) => {
                let keys = weir_core::auth::list_team_keys(db, team_id)
                    .await
                    .map_err(|e| ssr::internal("listing keys", e))?;
                if !keys.iter().any(|k| k.id == id) {
                    return Err(AppError::NotFound);
                }
                (Scope::Key, id)
            }
            _ => return Err(AppError::Invalid("Say whose limits these are.".into())),
        };
        let rate = |field: &str, v: &str| parse_rate(v).map_err(|e| AppError::field(field, e));
        let cap = |field: &str, v: &str| parse_cap(v).map_err(|e| AppError::field(field, e));
        let models = Rules::parse_models(&models);
        if let Some(m) = &models {
            if m.len() > 50
                || m.iter()
                    .any(|p| p.len() > 200 || p.chars().any(char::is_control))
            {
                return Err(AppError::field(
                    "models",
                    "Up to 50 model ids or patterns, separated by commas.",
                ));
            }
        }
        let rules = Rules {
            rpm: rate("rpm", &rpm)?,
            tpm: rate("tpm", &tpm)?,
            concurrency: rate("concurrency", &concurrency)?,
            models,
            day_cap: cap("daily", &daily)?,
            month_cap: cap("monthly", &monthly)?,
            total_cap: cap("total", &total)?,
        };
        limits::set(db, scope, owner, &rules)
            .await
            .map_err(|e| ssr::internal("setting limits", e))?;
        // This process applies it at once; other replicas within the epoch poll.
        caller.state.verifier.invalidate_all();
        Ok(())
    })
    .await
}
