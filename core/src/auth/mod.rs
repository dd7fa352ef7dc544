//! Authentication: API keys (format, hashing, verification with a bounded cache) and the auth
//! epoch, a counter bumped by every change that must reach cached verifications at once
//! (revocation, team deactivation), which every server polls.

mod key;
mod verifier;

pub use key::{Env, KeyError, NewKey, ParsedKey};
pub use verifier::{
    create_key, revoke_key, Caller, KeyAdminError, KeyVerifier, VerifyError, CACHE_TTL, EPOCH_POLL,
};

use sqlx::{Any, Transaction};

use crate::db::{now_ms, Db, DbError};

const EPOCH: &str = "auth_epoch";

/// Increments the auth epoch inside the caller's write transaction.
pub(crate) async fn bump_epoch(tx: &mut Transaction<'static, Any>) -> Result<(), sqlx::Error> {
    // Stored as text in the generic settings table; the value only has to change.
    sqlx::query(
        "INSERT INTO instance_setting (name, value, updated_at) VALUES ($1, '1', $2) \
         ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(instance_setting.value AS BIGINT) + 1 AS TEXT), updated_at = $2",
    )
    .bind(EPOCH)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads the current auth epoch (0 before the first bump).
pub async fn read_epoch(db: &Db) -> Result<i64, DbError> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM instance_setting WHERE name = $1")
            .bind(EPOCH)
            .fetch_optional(db.pool())
            .await?;
    Ok(v.and_then(|s| s.parse().ok()).unwrap_or(0))
}
