//! `list_keys`: the current team's keys (never their secrets), and a key secret created by a
//! form posted without JavaScript, handed over exactly once.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    pub env: String,
    /// `weir_<env>_<key id>`: enough to recognise the key, useless without the secret.
    pub prefix: String,
    pub last4: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Whether the caller may revoke it (managers: any key; members: their own).
    pub can_revoke: bool,
    pub limits: crate::server_fns::limits::LimitsView,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysPage {
    pub keys: Vec<KeyView>,
    pub can_manage: bool,
    /// A secret waiting to be shown (created without JavaScript); gone once read.
    pub fresh_secret: Option<String>,
}

#[server(endpoint = "keys/list_keys")]
pub async fn list_keys() -> Result<KeysPage, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, role) = caller.team()?;
        let rows = weir_core::auth::list_team_keys(&caller.state.db, team_id)
            .await
            .map_err(|e| ssr::internal("listing keys", e))?;
        let can_manage = role.can_manage();
        let limits = weir_core::limits::of_team_keys(&caller.state.db, team_id)
            .await
            .map_err(|e| ssr::internal("reading key limits", e))?;
        let none = (Default::default(), Default::default());
        let keys = rows
            .into_iter()
            .map(|k| KeyView {
                limits: {
                    let (r, s) = limits.get(&k.id).unwrap_or(&none);
                    crate::server_fns::limits::LimitsView::new(r, s)
                },
                can_revoke: k.revoked_at.is_none()
                    && (can_manage || k.created_by == Some(caller.user.id)),
                id: k.id,
                name: k.name,
                env: k.env.as_str().to_owned(),
                prefix: k.prefix,
                last4: k.last4,
                created_by: k.created_by_email,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
                expires_at: k.expires_at,
                revoked_at: k.revoked_at,
            })
            .collect();
        let fresh_secret = caller
            .session
            .remove::<String>(ssr::SessionKeys::NEW_KEY)
            .await
            .map_err(|e| ssr::internal("reading the session", e))?;
        Ok(KeysPage {
            keys,
            can_manage,
            fresh_secret,
        })
    })
    .await
}
