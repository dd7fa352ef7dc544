//! The catalog audit log: one row per operator change (who, what, when), written in the same
//! transaction as the change, and read back for the admin console.

use sqlx::Row;

use crate::db::{now_ms, Db, DbError};

/// One audit row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub created_at: i64,
}

/// Writes an audit row through `tx` (the change's own transaction).
pub async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO catalog_audit (actor, action, target, detail, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<AuditEntry>, DbError> {
    let rows = sqlx::query(
        "SELECT id, actor, action, target, detail, created_at FROM catalog_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit.clamp(1, 1000))
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                detail: r.try_get("detail")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}
