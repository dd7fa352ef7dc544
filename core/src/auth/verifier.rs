//! Verifying presented API keys: checksum first, then a unique-index lookup by key id, then
//! Argon2id (off the async runtime, behind a semaphore), with a bounded cache of successful
//! verifications so that Argon2 never runs per request.
//!
//! The cache key is HMAC-SHA256(instance secret, full key), never the key itself. Entries are
//! trusted for at most [`CACHE_TTL`], and not at all after an auth-epoch change (revocation,
//! team deactivation, from any process: within [`EPOCH_POLL`] for changes made by another
//! process, at once for changes made through this one). An entry that is no longer trusted is
//! checked again against the key's row (revoked? team active?), but Argon2 does not run again
//! when the stored hash is the one the secret was verified against: otherwise a hot key would
//! pay a full Argon2 verification (tens of ms, on the request) once a minute, every request of
//! it in flight at that moment too, and every key at once after any revocation.

use std::{
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Semaphore;

use super::{key::ParsedKey, Env, NewKey};
use crate::{
    db::{now_ms, Db, DbError},
    limits::{rules_from_row, Limits},
    team::{self, TeamError},
};

pub const CACHE_TTL: Duration = Duration::from_secs(60);
pub const EPOCH_POLL: Duration = Duration::from_secs(1);
const CACHE_CAPACITY: usize = 100_000;

/// Who is calling: the facts the gateway needs about a verified key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Row id of the key (for logs and usage; never the secret).
    pub api_key_id: i64,
    pub key_id: Arc<str>,
    pub team_id: i64,
    pub env: Env,
    /// The key's and its team's limits; `None` when neither has any (the common case).
    pub limits: Option<Arc<Limits>>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Malformed, unknown, revoked or wrong secret: all look the same to the caller.
    #[error("invalid API key")]
    Invalid,
    /// The key is valid but its team is deactivated.
    #[error("the team of this API key is inactive")]
    TeamInactive,
    #[error("key verification unavailable: {0}")]
    Unavailable(#[from] DbError),
}

#[derive(Clone)]
struct Entry {
    caller: Caller,
    team_active: bool,
    /// The key's expiry (Unix ms), checked on every use of the entry.
    expires_at: Option<i64>,
    at: Instant,
    /// SHA-256 of the stored Argon2 hash the secret was verified against.
    hash: [u8; 32],
    /// The cache generation the key's row was read in; an older one is not trusted.
    generation: u64,
}

struct Inner {
    db: Db,
    /// HMAC-SHA256 keyed with the pepper, cloned per lookup: keying it again would hash the
    /// pepper's two pad blocks on every request.
    mac: Hmac<Sha256>,
    cache: quick_cache::sync::Cache<[u8; 32], Entry>,
    /// Bumped at every auth-epoch change: entries of older generations (and the results of
    /// verifications that started under one) are checked against the row again.
    generation: AtomicU64,
    epoch: AtomicI64,
    argon: Semaphore,
    ttl: Duration,
    /// How many Argon2 verifications ran (for tests and metrics).
    argon_runs: AtomicU64,
}

/// Shared key verifier. Cheap to clone.
#[derive(Clone)]
pub struct KeyVerifier(Arc<Inner>);

impl KeyVerifier {
    pub fn new(db: Db, pepper: &[u8]) -> KeyVerifier {
        KeyVerifier::with_ttl(db, pepper, CACHE_TTL)
    }

    /// A verifier whose cache entries are trusted for `ttl` (tests use short ones).
    pub fn with_ttl(db: Db, pepper: &[u8], ttl: Duration) -> KeyVerifier {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        // HMAC accepts keys of any length; `new_from_slice` cannot fail.
        let mac = Hmac::<Sha256>::new_from_slice(pepper)
            .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
        KeyVerifier(Arc::new(Inner {
            db,
            mac,
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            generation: AtomicU64::new(0),
            epoch: AtomicI64::new(i64::MIN),
            argon: Semaphore::new(parallel),
            ttl,
            argon_runs: AtomicU64::new(0),
        }))
    }

    fn cache_key(&self, full: &str) -> [u8; 32] {
        let mut mac = self.0.mac.clone();
        mac.update(full.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Stops trusting every cached verification (after a revocation or deactivation made by
    /// this process): each key's row is read again on its next use.
    pub fn invalidate_all(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Checks the auth epoch once; if it moved, no cached verification is trusted until its row
    /// is read again.
    pub async fn poll_epoch(&self) -> Result<(), DbError> {
        let now = super::read_epoch(&self.0.db).await?;
        let before = self.0.epoch.swap(now, Ordering::SeqCst);
        if before != now && before != i64::MIN {
            self.invalidate_all();
        }
        Ok(())
    }

    /// Polls the auth epoch every [`EPOCH_POLL`] until the returned task is aborted.
    pub fn spawn_epoch_watcher(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EPOCH_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.poll_epoch().await {
                    tracing::warn!(error = %e, "auth epoch poll failed");
                }
            }
        })
    }

    /// Verifies a presented key.
    pub async fn verify(&self, presented: &str) -> Result<Caller, VerifyError> {
        let parsed = ParsedKey::parse(presented).map_err(|_| VerifyError::Invalid)?;
        let ck = self.cache_key(presented);
        let generation = self.0.generation.load(Ordering::SeqCst);
        // The hash this exact key was verified against, if its entry is only no longer trusted.
        let mut verified_hash = None;
        // Held while this call verifies a key nobody has verified yet: a burst of first uses of
        // one key waits for the first one's entry (one Argon2, not one per request).
        let mut first = None;
        match self.0.cache.get_value_or_guard_async(&ck).await {
            Ok(e) => {
                if e.expires_at.is_some_and(|t| now_ms() >= t) {
                    self.0.cache.remove(&ck);
                    return Err(VerifyError::Invalid);
                }
                if e.generation == generation && e.at.elapsed() < self.0.ttl {
                    return if e.team_active {
                        Ok(e.caller)
                    } else {
                        Err(VerifyError::TeamInactive)
                    };
                }
                verified_hash = Some(e.hash);
            }
            Err(guard) => first = Some(guard),
        }
        // On a refusal: drop the no longer valid entry; without one, dropping the guard lets
        // the next waiter try for itself.
        let refuse = |first: &Option<_>| {
            if first.is_none() {
                self.0.cache.remove(&ck);
            }
            Err(VerifyError::Invalid)
        };
        let row = sqlx::query(
            "SELECT k.id, k.team_id, k.env, k.secret_hash, k.revoked_at, k.expires_at, t.active, \
               lk.rpm AS k_rpm, lk.tpm AS k_tpm, lk.max_concurrent AS k_max_concurrent, \
               lk.allowed_models AS k_allowed_models, lk.day_cap AS k_day_cap, \
               lk.month_cap AS k_month_cap, lk.total_cap AS k_total_cap, \
               lt.rpm AS t_rpm, lt.tpm AS t_tpm, lt.max_concurrent AS t_max_concurrent, \
               lt.allowed_models AS t_allowed_models, lt.day_cap AS t_day_cap, \
               lt.month_cap AS t_month_cap, lt.total_cap AS t_total_cap \
             FROM api_key k JOIN team t ON t.id = k.team_id \
             LEFT JOIN usage_limit lk ON lk.scope = 'key' AND lk.owner_id = k.id \
             LEFT JOIN usage_limit lt ON lt.scope = 'team' AND lt.owner_id = k.team_id \
             WHERE k.key_id = $1",
        )
        .bind(parsed.key_id)
        .fetch_optional(self.0.db.pool())
        .await
        .map_err(DbError::from)?;
        // Unknown key ids are refused by the index lookup alone, without running Argon2.
        let Some(row) = row else {
            return refuse(&first);
        };
        let stored_env: String = row.try_get("env").map_err(DbError::from)?;
        let revoked: Option<i64> = row.try_get("revoked_at").map_err(DbError::from)?;
        let expires_at: Option<i64> = row.try_get("expires_at").map_err(DbError::from)?;
        if revoked.is_some()
            || stored_env != parsed.env.as_str()
            || expires_at.is_some_and(|t| now_ms() >= t)
        {
            return refuse(&first);
        }
        let hash: String = row.try_get("secret_hash").map_err(DbError::from)?;
        let hash_digest: [u8; 32] = Sha256::digest(hash.as_bytes()).into();
        if verified_hash != Some(hash_digest)
            && !self.argon_verify(parsed.secret.to_owned(), hash).await
        {
            return refuse(&first);
        }
        let caller = Caller {
            api_key_id: row.try_get("id").map_err(DbError::from)?,
            key_id: Arc::from(parsed.key_id),
            team_id: row.try_get("team_id").map_err(DbError::from)?,
            env: parsed.env,
            limits: {
                let limits = Limits {
                    key: rules_from_row(&row, "k_").map_err(DbError::from)?,
                    team: rules_from_row(&row, "t_").map_err(DbError::from)?,
                };
                (limits != Limits::default()).then(|| Arc::new(limits))
            },
        };
        let team_active = row.try_get::<i64, _>("active").map_err(DbError::from)? != 0;
        let entry = Entry {
            caller: caller.clone(),
            team_active,
            expires_at,
            at: Instant::now(),
            hash: hash_digest,
            generation,
        };
        match first {
            // Err: the placeholder was removed meanwhile; the entry is simply not cached.
            Some(guard) => drop(guard.insert(entry)),
            None => self.0.cache.insert(ck, entry),
        }
        if team_active {
            Ok(caller)
        } else {
            Err(VerifyError::TeamInactive)
        }
    }

    async fn argon_verify(&self, secret: String, hash: String) -> bool {
        let Ok(_permit) = self.0.argon.acquire().await else {
            return false;
        };
        self.0.argon_runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(secret.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Number of cached verifications, trusted or not (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.0.cache.len()
    }

    /// Number of Argon2 verifications run so far (for tests and metrics).
    pub fn argon_runs(&self) -> u64 {
        self.0.argon_runs.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error("no API key with id {0:?}")]
    NotFound(String),
    #[error("cannot hash the key: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for KeyAdminError {
    fn from(e: sqlx::Error) -> Self {
        KeyAdminError::Db(DbError::Sqlx(e))
    }
}

/// Creates a key for a team by name (`weir key create`); see [`create_team_key`].
pub async fn create_key(
    db: &Db,
    team_name: &str,
    env: Env,
    name: &str,
) -> Result<NewKey, KeyAdminError> {
    let team = team::get_by_name(db, team_name).await?;
    create_team_key(db, team.id, env, name, None, None).await
}

/// Creates a key for a team, optionally expiring (Unix ms) and recorded as made by a console
/// user. The returned full key is the only copy of the secret: the row keeps an Argon2id hash
/// of the secret and the key's last four characters.
pub async fn create_team_key(
    db: &Db,
    team_id: i64,
    env: Env,
    name: &str,
    expires_at: Option<i64>,
    created_by: Option<i64>,
) -> Result<NewKey, KeyAdminError> {
    let key = NewKey::generate(env);
    let secret = key.secret.clone();
    let hash = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| KeyAdminError::Hash(e.to_string()))?
    .map_err(|e| KeyAdminError::Hash(e.to_string()))?;
    let last4 = &key.full[key.full.len() - 4..];
    let res = sqlx::query(
        "INSERT INTO api_key (key_id, team_id, env, name, secret_hash, created_at, last4, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&key.key_id)
    .bind(team_id)
    .bind(env.as_str())
    .bind(name)
    .bind(hash)
    .bind(now_ms())
    .bind(last4)
    .bind(expires_at)
    .bind(created_by)
    .execute(db.write_pool())
    .await;
    match res {
        Ok(_) => Ok(key),
        // The team's foreign key (PostgreSQL; SQLite does not enforce them here).
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(KeyAdminError::Team(
            TeamError::NotFound(team_id.to_string()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A key as the console lists it (never its secret or hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    pub id: i64,
    pub key_id: String,
    pub name: String,
    pub env: Env,
    /// `weir_<env>_<key id>`.
    pub prefix: String,
    pub last4: String,
    pub created_by: Option<i64>,
    pub created_by_email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The team's keys, newest first.
pub async fn list_team_keys(db: &Db, team_id: i64) -> Result<Vec<KeyRow>, DbError> {
    let rows = sqlx::query(
        "SELECT k.id, k.key_id, k.name, k.env, k.last4, k.created_by, u.email, k.created_at, \
         k.last_used_at, k.expires_at, k.revoked_at \
         FROM api_key k LEFT JOIN app_user u ON u.id = k.created_by \
         WHERE k.team_id = $1 ORDER BY k.id DESC",
    )
    .bind(team_id)
    .fetch_all(db.pool())
    .await?;
    let out = rows
        .iter()
        .map(|r| {
            let env: String = r.try_get("env")?;
            let env: Env = env
                .parse()
                .map_err(|_| sqlx::Error::Decode(format!("bad env {env:?}").into()))?;
            let key_id: String = r.try_get("key_id")?;
            Ok(KeyRow {
                id: r.try_get("id")?,
                prefix: format!("weir_{env}_{key_id}"),
                key_id,
                name: r.try_get("name")?,
                env,
                last4: r.try_get("last4")?,
                created_by: r.try_get("created_by")?,
                created_by_email: r.try_get("email")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(out)
}

/// Revokes a key of the team by its row id (and bumps the auth epoch, in one transaction).
/// With `only_creator`, only a key that user created (a member revoking their own key).
/// [`KeyAdminError::NotFound`] when no such live key exists in the team.
pub async fn revoke_team_key(
    db: &Db,
    team_id: i64,
    key_row_id: i64,
    only_creator: Option<i64>,
) -> Result<(), KeyAdminError> {
    let mut tx = db.begin_write().await?;
    const ANY_KEY: &str =
        "UPDATE api_key SET revoked_at = $1 WHERE id = $2 AND team_id = $3 AND revoked_at IS NULL";
    const OWN_KEY: &str = "UPDATE api_key SET revoked_at = $1 WHERE id = $2 AND team_id = $3 \
                           AND revoked_at IS NULL AND created_by = $4";
    let q = sqlx::query(if only_creator.is_some() {
        OWN_KEY
    } else {
        ANY_KEY
    })
    .bind(now_ms())
    .bind(key_row_id)
    .bind(team_id);
    let q = match only_creator {
        Some(uid) => q.bind(uid),
        None => q,
    };
    let done = q.execute(&mut *tx).await?.rows_affected();
    if done == 0 {
        return Err(KeyAdminError::NotFound(key_row_id.to_string()));
    }
    super::bump_epoch(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes a key by its key id and bumps the auth epoch, in one transaction.
pub async fn revoke_key(db: &Db, key_id: &str) -> Result<(), KeyAdminError> {
    let mut tx = db.begin_write().await?;
    let done =
        sqlx::query("UPDATE api_key SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if done == 0 {
        return Err(KeyAdminError::NotFound(key_id.to_owned()));
    }
    super::bump_epoch(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn verify_caches_and_revocation_wins() {
        let t = TestDb::new().await.unwrap();
        let db = t.db.clone();
        team::create(&db, "acme").await.unwrap();
        let key = create_key(&db, "acme", Env::Dev, "ci").await.unwrap();
        let v = KeyVerifier::new(db.clone(), b"pepper-pepper-pepper-pepper-pepper");
        v.poll_epoch().await.unwrap();

        let c = v.verify(&key.full).await.unwrap();
        assert_eq!(c.env, Env::Dev);
        assert_eq!(&*c.key_id, key.key_id.as_str());
        assert_eq!(v.cached(), 1, "a success is cached");
        assert_eq!(v.verify(&key.full).await.unwrap(), c, "served from cache");

        // Wrong secret with a valid checksum: build a key with the same id and a new secret.
        let other = NewKey::generate(Env::Dev);
        let forged = other.full.replacen(&other.key_id, &key.key_id, 1);
        let forged = forge_checksum(&forged);
        assert!(matches!(v.verify(&forged).await, Err(VerifyError::Invalid)));
        assert!(
            matches!(v.verify(&other.full).await, Err(VerifyError::Invalid)),
            "unknown id"
        );
        assert!(matches!(
            v.verify("sk-nope").await,
            Err(VerifyError::Invalid)
        ));
        assert_eq!(v.cached(), 1, "failures are never cached");

        // Revocation made by another process: visible after the next epoch poll.
        revoke_key(&db, &key.key_id).await.unwrap();
        v.poll_epoch().await.unwrap();
        assert!(matches!(
            v.verify(&key.full).await,
            Err(VerifyError::Invalid)
        ));
        assert_eq!(v.cached(), 0, "a revoked key's entry is dropped");
        assert_eq!(
            v.argon_runs(),
            2,
            "the forged secret ran Argon2; nothing else did again"
        );
        t.cleanup().await;
    }

    /// Past its TTL an entry is checked against the key's row again, without Argon2 while the
    /// stored hash is the one verified; a revocation or deactivation shows at that check even
    /// when no epoch poll has seen it.
    #[tokio::test]
    async fn expired_entries_recheck_the_row_but_not_argon2() {
        let t = TestDb::new().await.unwrap();
        let db = t.db.clone();
        team::create(&db, "hot").await.unwrap();
        let key = create_key(&db, "hot", Env::Prod, "").await.unwrap();
        let v = KeyVerifier::with_ttl(
            db.clone(),
            b"pepper-pepper-pepper-pepper-pepper",
            Duration::ZERO,
        );
        let c = v.verify(&key.full).await.unwrap();
        assert_eq!(v.argon_runs(), 1);
        for _ in 0..3 {
            assert_eq!(v.verify(&key.full).await.unwrap(), c);
        }
        assert_eq!(
            v.argon_runs(),
            1,
            "the hash did not change: no Argon2 again"
        );
        // A forged secret for the same key id is a different cache entry: Argon2 refuses it.
        let other = NewKey::generate(Env::Prod);
        let forged = forge_checksum(&other.full.replacen(&other.key_id, &key.key_id, 1));
        assert!(matches!(v.verify(&forged).await, Err(VerifyError::Invalid)));
        assert_eq!(v.argon_runs(), 2);
        // No epoch poll in this test: the row check alone sees these.
        team::set_active(&db, "hot", false).await.unwrap();
        assert!(matches!(
            v.verify(&key.full).await,
            Err(VerifyError::TeamInactive)
        ));
        team::set_active(&db, "hot", true).await.unwrap();
        assert!(v.verify(&key.full).await.is_ok());
        revoke_key(&db, &key.key_id).await.unwrap();
        assert!(matches!(
            v.verify(&key.full).await,
            Err(VerifyError::Invalid)
        ));
        assert_eq!(v.cached(), 0, "a revoked key's entry is dropped");
        assert_eq!(v.argon_runs(), 2);
        t.cleanup().await;
    }

    /// Many first uses of a key at once run Argon2 once; the others wait for its entry. A
    /// wrong secret presented many times at once is refused every time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_first_uses_runs_argon2_once() {
        let t = TestDb::new().await.unwrap();
        let db = t.db.clone();
        team::create(&db, "burst").await.unwrap();
        let key = create_key(&db, "burst", Env::Dev, "").await.unwrap();
        let v = KeyVerifier::new(db.clone(), b"pepper-pepper-pepper-pepper-pepper");
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (v, full) = (v.clone(), key.full.clone());
                tokio::spawn(async move { v.verify(&full).await })
            })
            .collect();
        for call in calls {
            assert_eq!(&*call.await.unwrap().unwrap().key_id, key.key_id.as_str());
        }
        assert_eq!(v.argon_runs(), 1);
        let other = NewKey::generate(Env::Dev);
        let forged = forge_checksum(&other.full.replacen(&other.key_id, &key.key_id, 1));
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (v, forged) = (v.clone(), forged.clone());
                tokio::spawn(async move { v.verify(&forged).await })
            })
            .collect();
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(VerifyError::Invalid)));
        }
        assert_eq!(v.cached(), 1, "only the good key is cached");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn inactive_team_is_forbidden() {
        let t = TestDb::new().await.unwrap();
        let db = t.db.clone();
        team::create(&db, "sleepy").await.unwrap();
        let key = create_key(&db, "sleepy", Env::Prod, "").await.unwrap();
        let v = KeyVerifier::new(db.clone(), b"pepper-pepper-pepper-pepper-pepper");
        v.poll_epoch().await.unwrap();
        assert!(v.verify(&key.full).await.is_ok());
        team::set_active(&db, "sleepy", false).await.unwrap();
        v.poll_epoch().await.unwrap();
        assert!(matches!(
            v.verify(&key.full).await,
            Err(VerifyError::TeamInactive)
        ));
        team::set_active(&db, "sleepy", true).await.unwrap();
        v.poll_epoch().await.unwrap();
        assert!(v.verify(&key.full).await.is_ok());
        t.cleanup().await;
    }

    /// Recomputes the checksum of a key body (test helper for forged secrets).
    fn forge_checksum(full: &str) -> String {
        let body = &full[..full.len() - 6];
        let mut v = crc32fast::hash(body.as_bytes());
        let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut sum = [b'0'; 6];
        for s in sum.iter_mut().rev() {
            *s = alphabet[(v % 62) as usize];
            v /= 62;
        }
        format!("{body}{}", String::from_utf8(sum.to_vec()).unwrap())
    }
}
