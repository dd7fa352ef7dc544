//! Authentication: API keys (format, hashing, verification with a bounded cache) and the auth
//! epoch, a counter bumped by every change that must reach cached verifications at once
//! (revocation, team deactivation), which every server polls.

mod key;
mod verifier;

pub use key::{Env, KeyError, NewKey, ParsedKey};
pub use verifier::{
    create_key, create_team_key, list_team_keys, revoke_key, revoke_team_key, Caller,
    KeyAdminError, KeyRow, KeyVerifier, VerifyError, CACHE_TTL, EPOCH_POLL,
};

use sqlx::{Any, Transaction};

use crate::db::{Db, DbError};

const EPOCH: &str = "auth_epoch";

/// Increments the auth epoch inside the caller's write transaction.
pub(crate) async fn bump_epoch(tx: &mut Transaction<'static, Any>) -> Result<(), sqlx::Error> {
    crate::db::bump_counter(&mut **tx, EPOCH).await
}

/// Reads the current auth epoch (0 before the first bump).
pub async fn read_epoch(db: &Db) -> Result<i64, DbError> {
    crate::db::read_counter(db, EPOCH).await
}
