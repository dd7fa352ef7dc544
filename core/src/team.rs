//! Teams: the accounts that own API keys and a balance (see [`crate::billing`]).

use crate::db::{now_ms, Db, DbError};
use sqlx::Row;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub active: bool,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("team name must be 1 to 64 characters without control characters")]
    InvalidName,
    #[error("a team named {0:?} already exists")]
    Exists(String),
    #[error("no team named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TeamError {
    fn from(e: sqlx::Error) -> Self {
        TeamError::Db(DbError::Sqlx(e))
    }
}

fn validate_name(name: &str) -> Result<(), TeamError> {
    let n = name.chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(TeamError::InvalidName);
    }
    Ok(())
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Team, sqlx::Error> {
    Ok(Team {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Creates an active team, with its (empty) balance account, in one transaction. Names are
/// unique and stored literally.
pub async fn create(db: &Db, name: &str) -> Result<Team, TeamError> {
    validate_name(name)?;
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let res = sqlx::query(
        "INSERT INTO team (name, active, created_at) VALUES ($1, 1, $2) RETURNING id, name, active, created_at",
    )
    .bind(name)
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let team = match res {
        Ok(row) => from_row(&row)?,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(TeamError::Exists(name.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    crate::billing::ensure_team_account_tx(&mut tx, team.id).await?;
    tx.commit().await?;
    Ok(team)
}

pub async fn find_by_name(db: &Db, name: &str) -> Result<Option<Team>, TeamError> {
    let row = sqlx::query("SELECT id, name, active, created_at FROM team WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

pub async fn get_by_name(db: &Db, name: &str) -> Result<Team, TeamError> {
    find_by_name(db, name)
        .await?
        .ok_or_else(|| TeamError::NotFound(name.to_owned()))
}

/// Activates or deactivates a team; keys of an inactive team are refused with 403. Bumps the
/// auth epoch so that every server drops its cached key verifications.
pub async fn set_active(db: &Db, name: &str, active: bool) -> Result<Team, TeamError> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE team SET active = $1 WHERE name = $2 RETURNING id, name, active, created_at",
    )
    .bind(i64::from(active))
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| TeamError::NotFound(name.to_owned()))?;
    crate::auth::bump_epoch(&mut tx).await?;
    tx.commit().await?;
    Ok(from_row(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn create_find_deactivate() {
        let t = TestDb::new().await.unwrap();
        let db = &t.db;
        let a = create(db, "Acme; DROP TABLE team;--").await.unwrap();
        assert!(a.active);
        assert!(matches!(
            create(db, "Acme; DROP TABLE team;--").await,
            Err(TeamError::Exists(_))
        ));
        assert!(matches!(create(db, "").await, Err(TeamError::InvalidName)));
        assert!(matches!(
            create(db, " padded").await,
            Err(TeamError::InvalidName)
        ));
        let found = get_by_name(db, "Acme; DROP TABLE team;--").await.unwrap();
        assert_eq!(found, a);
        let off = set_active(db, &a.name, false).await.unwrap();
        assert!(!off.active);
        assert!(matches!(
            set_active(db, "nobody", true).await,
            Err(TeamError::NotFound(_))
        ));
        t.cleanup().await;
    }
}
