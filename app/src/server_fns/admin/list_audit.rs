//! `admin_list_audit`: the newest catalog changes (who, what, when).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub created_at: i64,
}

#[server(endpoint = "admin/list_audit")]
pub async fn admin_list_audit() -> Result<Vec<AuditView>, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        caller.operator()?;
        let db = &caller.state.db;
        let rows = weir_core::catalog::audit::list(db, 200)
            .await
            .map_err(|e| ssr::internal("reading the audit log", e))?;
        // Console actors are `user:<id>`: shown as the account's email.
        let mut out = Vec::with_capacity(rows.len());
        for a in rows {
            let actor = match a.actor.strip_prefix("user:").and_then(|id| id.parse().ok()) {
                Some(id) => weir_core::account::user_by_id(db, id)
                    .await
                    .ok()
                    .flatten()
                    .map_or(a.actor.clone(), |u| u.email),
                None => a.actor.clone(),
            };
            out.push(AuditView {
                id: a.id,
                actor,
                action: a.action,
                target: a.target,
                detail: a.detail,
                created_at: a.created_at,
            });
        }
        Ok(out)
    })
    .await
}
