//! Console accounts: users with an email and an Argon2id password, sign-up (with a personal
//! team), log-in, and the `tower-sessions` store that keeps browser sessions in Weir's own
//! database on both backends.

use std::sync::LazyLock;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use sqlx::Row;

use crate::{
    db::{now_ms, Db, DbError},
    team::{self, Role, Team, TeamError},
};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused (Argon2 would hash them, but nobody types 1 KB).
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub is_operator: bool,
    pub created_at: i64,
}

/// A new user and their personal team.
#[derive(Clone, Debug)]
pub struct SignedUp {
    pub user: User,
    pub team: Team,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("not a valid email address")]
    InvalidEmail,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// Unknown email or wrong password: one error for both.
    #[error("wrong email or password")]
    BadCredentials,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Db(DbError::Sqlx(e))
    }
}

/// The form an email is unique in: trimmed and lower-cased. `None` when it is not an address.
pub fn email_key(email: &str) -> Option<String> {
    let e = email.trim();
    let (local, domain) = e.rsplit_once('@')?;
    let ok = e.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.len() >= 3
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| e.to_lowercase())
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::WeakPassword);
    }
    Ok(())
}

/// Argon2id (the crate's defaults: 19 MiB, 2 passes), off the async runtime.
pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))?
    .map_err(|e| AccountError::Hash(e.to_string()))
}

async fn verify_password(password: &str, hash: String) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash verified when the email is unknown, so that both failures take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(b"weir-dummy-password", &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        is_operator: row.try_get::<i64, _>("is_operator")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Creates a user and their personal team (the user its owner), in one transaction. The user
/// is the operator when their email is `operator_email` (`WEIR_ADMIN_EMAIL`).
pub async fn sign_up(
    db: &Db,
    email: &str,
    password: &str,
    operator_email: Option<&str>,
) -> Result<SignedUp, AccountError> {
    let key = email_key(email).ok_or(AccountError::InvalidEmail)?;
    check_password(password)?;
    let is_operator = operator_email.and_then(email_key).as_deref() == Some(key.as_str());
    let hash = hash_password(password).await?;
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let res = sqlx::query(
        "INSERT INTO app_user (email, email_key, password_hash, is_operator, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id, email, is_operator, created_at",
    )
    .bind(email.trim())
    .bind(&key)
    .bind(hash)
    .bind(i64::from(is_operator))
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let user = match res {
        Ok(row) => user_from_row(&row)?,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(AccountError::EmailTaken)
        }
        Err(e) => return Err(e.into()),
    };
    let team = team::create_personal_tx(&mut tx, &user).await?;
    team::add_member_tx(&mut tx, team.id, user.id, Role::Owner).await?;
    tx.commit().await?;
    Ok(SignedUp { user, team })
}

/// Checks an email and password. Unknown emails run Argon2 against a dummy hash, so both
/// failures ([`AccountError::BadCredentials`]) take the same time.
pub async fn log_in(db: &Db, email: &str, password: &str) -> Result<User, AccountError> {
    let row = match email_key(email) {
        Some(key) if password.len() <= MAX_PASSWORD_BYTES => sqlx::query(
            "SELECT id, email, is_operator, created_at, password_hash FROM app_user WHERE email_key = $1",
        )
        .bind(key)
        .fetch_optional(db.pool())
        .await?,
        _ => None,
    };
    let (user, hash) = match &row {
        Some(r) => (
            Some(user_from_row(r)?),
            r.try_get::<String, _>("password_hash")?,
        ),
        None => (None, DUMMY_HASH.clone()),
    };
    let password = if password.len() <= MAX_PASSWORD_BYTES {
        password
    } else {
        ""
    };
    let ok = verify_password(password, hash).await;
    match user {
        Some(u) if ok => Ok(u),
        _ => Err(AccountError::BadCredentials),
    }
}

pub async fn user_by_id(db: &Db, id: i64) -> Result<Option<User>, DbError> {
    let row = sqlx::query("SELECT id, email, is_operator, created_at FROM app_user WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(user_from_row).transpose()?)
}

/// Makes a user the operator (or not), by email (`weir user operator`).
pub async fn set_operator(db: &Db, email: &str, on: bool) -> Result<User, AccountError> {
    let key = email_key(email).ok_or(AccountError::InvalidEmail)?;
    let row = sqlx::query(
        "UPDATE app_user SET is_operator = $1 WHERE email_key = $2 \
         RETURNING id, email, is_operator, created_at",
    )
    .bind(i64::from(on))
    .bind(key)
    .fetch_optional(db.write_pool())
    .await?
    .ok_or(AccountError::BadCredentials)?;
    Ok(user_from_row(&row)?)
}

pub use session_store::DbSessionStore;

mod session_store {
    use async_trait::async_trait;
    use tower_sessions_core::{
        session::{Id, Record},
        session_store::{self, ExpiredDeletion, SessionStore},
    };

    use crate::db::{now_ms, Db};

    /// Browser sessions in the `web_session` table: the record as JSON, with its expiry.
    #[derive(Clone)]
    pub struct DbSessionStore {
        db: Db,
    }

    impl std::fmt::Debug for DbSessionStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("DbSessionStore")
        }
    }

    impl DbSessionStore {
        pub fn new(db: Db) -> DbSessionStore {
            DbSessionStore { db }
        }
    }

    fn backend(e: impl std::fmt::Display) -> session_store::Error {
        session_store::Error::Backend(e.to_string())
    }

    fn encode(r: &Record) -> session_store::Result<(String, i64)> {
        let data =
            serde_json::to_string(r).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expires = r.expiry_date.unix_timestamp().saturating_mul(1000);
        Ok((data, expires))
    }

    #[async_trait]
    impl SessionStore for DbSessionStore {
        async fn create(&self, record: &mut Record) -> session_store::Result<()> {
            loop {
                let (data, expires) = encode(record)?;
                let n = sqlx::query(
                    "INSERT INTO web_session (id, data, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(record.id.to_string())
                .bind(data)
                .bind(expires)
                .execute(self.db.write_pool())
                .await
                .map_err(backend)?
                .rows_affected();
                if n == 1 {
                    return Ok(());
                }
                // An id collision (2^-128): draw another.
                record.id = Id::default();
            }
        }

        async fn save(&self, record: &Record) -> session_store::Result<()> {
            let (data, expires) = encode(record)?;
            sqlx::query(
                "INSERT INTO web_session (id, data, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            )
            .bind(record.id.to_string())
            .bind(data)
            .bind(expires)
            .execute(self.db.write_pool())
            .await
            .map_err(backend)?;
            Ok(())
        }

        async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
            let data: Option<String> = sqlx::query_scalar(
                "SELECT data FROM web_session WHERE id = $1 AND expires_at > $2",
            )
            .bind(id.to_string())
            .bind(now_ms())
            .fetch_optional(self.db.pool())
            .await
            .map_err(backend)?;
            data.map(|d| {
                serde_json::from_str(&d).map_err(|e| session_store::Error::Decode(e.to_string()))
            })
            .transpose()
        }

        async fn delete(&self, id: &Id) -> session_store::Result<()> {
            sqlx::query("DELETE FROM web_session WHERE id = $1")
                .bind(id.to_string())
                .execute(self.db.write_pool())
                .await
                .map_err(backend)?;
            Ok(())
        }
    }

    #[async_trait]
    impl ExpiredDeletion for DbSessionStore {
        async fn delete_expired(&self) -> session_store::Result<()> {
            sqlx::query("DELETE FROM web_session WHERE expires_at <= $1")
                .bind(now_ms())
                .execute(self.db.write_pool())
                .await
                .map_err(backend)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use tower_sessions_core::{session::Id, session_store::ExpiredDeletion, SessionStore};

    #[test]
    fn emails_are_checked_and_folded() {
        assert_eq!(
            email_key("  Alice@Example.COM ").as_deref(),
            Some("alice@example.com")
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@.com",
            "a@x.",
        ] {
            assert_eq!(email_key(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn sign_up_log_in_and_the_operator() {
        let t = TestDb::new().await.unwrap();
        let db = &t.db;
        let a = sign_up(
            db,
            "Alice@Example.com",
            "correct horse",
            Some("alice@example.com"),
        )
        .await
        .unwrap();
        assert!(a.user.is_operator);
        assert_eq!(a.team.name, "Alice@Example.com");
        let teams = team::teams_of_user(db, a.user.id).await.unwrap();
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0].role, Role::Owner);
        assert!(matches!(
            sign_up(db, "alice@example.COM", "another password", None).await,
            Err(AccountError::EmailTaken)
        ));
        assert!(matches!(
            sign_up(db, "bob@example.com", "short", None).await,
            Err(AccountError::WeakPassword)
        ));
        assert!(matches!(
            sign_up(db, "not-an-email", "long enough pw", None).await,
            Err(AccountError::InvalidEmail)
        ));
        let b = sign_up(db, "bob@example.com", "long enough pw", None)
            .await
            .unwrap();
        assert!(!b.user.is_operator);
        let u = log_in(db, " ALICE@example.com", "correct horse")
            .await
            .unwrap();
        assert_eq!(u.id, a.user.id);
        assert!(matches!(
            log_in(db, "alice@example.com", "wrong horse!").await,
            Err(AccountError::BadCredentials)
        ));
        assert!(matches!(
            log_in(db, "nobody@example.com", "correct horse").await,
            Err(AccountError::BadCredentials)
        ));
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM app_user WHERE id = $1")
            .bind(a.user.id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        t.cleanup().await;
    }

    #[tokio::test]
    async fn a_team_named_like_the_email_gets_another_name() {
        let t = TestDb::new().await.unwrap();
        team::create(&t.db, "carol@example.com").await.unwrap();
        let c = sign_up(&t.db, "carol@example.com", "long enough pw", None)
            .await
            .unwrap();
        assert_eq!(c.team.name, "carol@example.com (2)");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn sessions_round_trip_and_expire() {
        let t = TestDb::new().await.unwrap();
        let store = DbSessionStore::new(t.db.clone());
        let mut data = std::collections::HashMap::new();
        data.insert("uid".to_owned(), serde_json::json!(7));
        let mut rec = tower_sessions_core::session::Record {
            id: Id::default(),
            data,
            expiry_date: (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                .replace_nanosecond(0)
                .unwrap(),
        };
        store.create(&mut rec).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
        rec.data.insert("team".into(), serde_json::json!(3));
        store.save(&rec).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
        store.delete(&rec.id).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), None);

        rec.expiry_date = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store.save(&rec).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), None, "expired");
        store.delete_expired().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM web_session")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
        t.cleanup().await;
    }
}
