//! Stored responses of the OpenAI Responses surface (`store: true`, OpenAI's default): what a
//! later request's `previous_response_id` continues from, and what `GET` / `DELETE
//! /v1/responses/{id}` read. Every read and write is scoped by team: another team's id reads
//! as absent. Rows live for [`RETENTION`] and the reaper removes them after.

use sqlx::Row;

use crate::db::{now_ms, Db, DbError};

/// How long a stored response is kept (OpenAI keeps them 30 days).
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// One stored response, its JSON as text (written and read whole, never queried into).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub id: String,
    pub team_id: i64,
    pub created_at: i64,
    /// JSON array of every input item of the conversation up to this response.
    pub input_items: String,
    /// JSON object: the response as the client received it.
    pub response: String,
}

/// Stores (or replaces) a response for [`RETENTION`].
pub async fn save(db: &Db, r: &StoredResponse) -> Result<(), DbError> {
    let expires = r
        .created_at
        .saturating_add(i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX));
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM stored_response WHERE id = $1")
        .bind(&r.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO stored_response (id, team_id, created_at, expires_at, input_items, response) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&r.id)
    .bind(r.team_id)
    .bind(r.created_at)
    .bind(expires)
    .bind(&r.input_items)
    .bind(&r.response)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The team's stored response `id`, unless it expired.
pub async fn load(db: &Db, team_id: i64, id: &str) -> Result<Option<StoredResponse>, DbError> {
    let row = sqlx::query(
        "SELECT id, team_id, created_at, input_items, response FROM stored_response \
         WHERE id = $1 AND team_id = $2 AND expires_at > $3",
    )
    .bind(id)
    .bind(team_id)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(StoredResponse {
            id: r.try_get("id")?,
            team_id: r.try_get("team_id")?,
            created_at: r.try_get("created_at")?,
            input_items: r.try_get("input_items")?,
            response: r.try_get("response")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// Deletes the team's stored response `id`; `false` when it has none by that id.
pub async fn delete(db: &Db, team_id: i64, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "DELETE FROM stored_response WHERE id = $1 AND team_id = $2 AND expires_at > $3",
    )
    .bind(id)
    .bind(team_id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n > 0)
}

/// Removes responses past their retention; returns how many.
pub async fn purge_expired(db: &Db, now: i64) -> Result<u64, DbError> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("DELETE FROM stored_response WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn stored_responses_are_scoped_by_team_and_expire() {
        let t = TestDb::new().await.unwrap();
        let db = &t.db;
        let r = StoredResponse {
            id: "resp_1".into(),
            team_id: 7,
            created_at: now_ms(),
            input_items: r#"[{"role":"user","content":"hi ' \" ;--"}]"#.into(),
            response: r#"{"id":"resp_1","output":[]}"#.into(),
        };
        save(db, &r).await.unwrap();
        assert_eq!(load(db, 7, "resp_1").await.unwrap().as_ref(), Some(&r));
        assert_eq!(load(db, 8, "resp_1").await.unwrap(), None, "another team");
        assert!(!delete(db, 8, "resp_1").await.unwrap());
        // Saving again replaces.
        let r2 = StoredResponse {
            response: r#"{"id":"resp_1","output":[1]}"#.into(),
            ..r.clone()
        };
        save(db, &r2).await.unwrap();
        assert_eq!(load(db, 7, "resp_1").await.unwrap(), Some(r2));
        assert!(delete(db, 7, "resp_1").await.unwrap());
        assert_eq!(load(db, 7, "resp_1").await.unwrap(), None);

        // Past retention: unreadable, then purged.
        let old = StoredResponse {
            id: "resp_old".into(),
            created_at: now_ms() - i64::try_from(RETENTION.as_millis()).unwrap() - 1,
            ..r
        };
        save(db, &old).await.unwrap();
        assert_eq!(load(db, 7, "resp_old").await.unwrap(), None);
        assert_eq!(purge_expired(db, now_ms()).await.unwrap(), 1);
        t.cleanup().await;
    }
}
