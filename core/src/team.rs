//! Teams: the accounts that own API keys and a balance (see [`crate::billing`]), their
//! members with roles, and single-use invitation links.

use std::time::Duration;

use crate::db::{now_ms, Db, DbError};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};

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
    #[error("the last owner of a team cannot leave it or be removed")]
    LastOwner,
    #[error("the invitation is unknown, used or expired")]
    InviteInvalid,
    #[error("not allowed for this role")]
    NotAllowed,
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
    let mut tx = db.begin_write().await?;
    let team = create_tx(&mut tx, name).await?;
    tx.commit().await?;
    Ok(team)
}

/// [`create`] inside the caller's write transaction.
pub(crate) async fn create_tx(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<Team, TeamError> {
    validate_name(name)?;
    let now = now_ms();
    let res = sqlx::query(
        "INSERT INTO team (name, active, created_at) VALUES ($1, 1, $2) RETURNING id, name, active, created_at",
    )
    .bind(name)
    .bind(now)
    .fetch_one(&mut **tx)
    .await;
    let team = match res {
        Ok(row) => from_row(&row)?,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(TeamError::Exists(name.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    crate::billing::ensure_team_account_tx(tx, team.id).await?;
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

/// Activates or deactivates a team by id (the console's operator page); see [`set_active`].
pub async fn set_active_by_id(db: &Db, id: i64, active: bool) -> Result<Team, TeamError> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE team SET active = $1 WHERE id = $2 RETURNING id, name, active, created_at",
    )
    .bind(i64::from(active))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| TeamError::NotFound(id.to_string()))?;
    crate::auth::bump_epoch(&mut tx).await?;
    tx.commit().await?;
    Ok(from_row(&row)?)
}

/// What a member may do in a team. Owners and admins manage keys and members; members see
/// usage and create (and revoke) their own keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Owners and admins manage the team's keys and members.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

fn role_of(row: &sqlx::any::AnyRow) -> Result<Role, sqlx::Error> {
    let s: String = row.try_get("role")?;
    Role::parse(&s).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {s:?}").into()))
}

/// A team a user belongs to, and their role in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub team: Team,
    pub role: Role,
}

/// A member as the members page lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    pub joined_at: i64,
}

/// The personal team made at sign-up, named after the email (with ` (2)`, ` (3)`... when a
/// team of that name exists).
pub(crate) async fn create_personal_tx(
    tx: &mut Transaction<'static, Any>,
    user: &crate::account::User,
) -> Result<Team, TeamError> {
    let base: String = user.email.chars().take(56).collect();
    for n in 1..=100u32 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base} ({n})")
        };
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM team WHERE name = $1")
            .bind(&name)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_none() {
            return create_tx(tx, &name).await;
        }
    }
    Err(TeamError::Exists(base))
}

pub(crate) async fn add_member_tx(
    tx: &mut Transaction<'static, Any>,
    team_id: i64,
    user_id: i64,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO team_member (team_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A new team with `user_id` as its owner.
pub async fn create_for_user(db: &Db, user_id: i64, name: &str) -> Result<Team, TeamError> {
    let mut tx = db.begin_write().await?;
    let team = create_tx(&mut tx, name).await?;
    add_member_tx(&mut tx, team.id, user_id, Role::Owner).await?;
    tx.commit().await?;
    Ok(team)
}

/// Every team the user belongs to, by name.
pub async fn teams_of_user(db: &Db, user_id: i64) -> Result<Vec<Membership>, DbError> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.active, t.created_at, m.role FROM team_member m \
         JOIN team t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.name, t.id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(Membership {
                team: from_row(r)?,
                role: role_of(r)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(out)
}

/// The user's role in the team, if they are in it.
pub async fn membership(db: &Db, team_id: i64, user_id: i64) -> Result<Option<Role>, DbError> {
    let row = sqlx::query("SELECT role FROM team_member WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(role_of).transpose()?)
}

/// The team's members: owners first, then admins, then members, each by email.
pub async fn members(db: &Db, team_id: i64) -> Result<Vec<MemberRow>, DbError> {
    let rows = sqlx::query(
        "SELECT u.id, u.email, m.role, m.joined_at FROM team_member m \
         JOIN app_user u ON u.id = m.user_id WHERE m.team_id = $1 \
         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email_key",
    )
    .bind(team_id)
    .fetch_all(db.pool())
    .await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(MemberRow {
                user_id: r.try_get("id")?,
                email: r.try_get("email")?,
                role: role_of(r)?,
                joined_at: r.try_get("joined_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(out)
}

fn token_hash(token: &str) -> String {
    use std::fmt::Write;
    Sha256::digest(token.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A single-use invitation to join `team_id` with `role` (admin or member), valid for `ttl`.
/// Returns the token for the link; only its hash is stored.
pub async fn create_invite(
    db: &Db,
    team_id: i64,
    by: i64,
    role: Role,
    ttl: Duration,
) -> Result<String, TeamError> {
    if role == Role::Owner {
        return Err(TeamError::NotAllowed);
    }
    use rand::{distributions::Alphanumeric, rngs::OsRng, Rng};
    let token: String = OsRng
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let now = now_ms();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO team_invite (token_hash, team_id, role, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash(&token))
    .bind(team_id)
    .bind(role.as_str())
    .bind(by)
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .execute(db.write_pool())
    .await?;
    Ok(token)
}

/// What an unused, unexpired invitation offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteInfo {
    pub team_id: i64,
    pub team_name: String,
    pub role: Role,
    pub expires_at: i64,
}

/// The invitation behind `token`, if it can still be used.
pub async fn invite_info(db: &Db, token: &str) -> Result<Option<InviteInfo>, TeamError> {
    let row = sqlx::query(
        "SELECT i.team_id, t.name, i.role, i.expires_at FROM team_invite i \
         JOIN team t ON t.id = i.team_id \
         WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(InviteInfo {
        team_id: r.try_get("team_id")?,
        team_name: r.try_get("name")?,
        role: role_of(&r)?,
        expires_at: r.try_get("expires_at")?,
    }))
}

/// Uses the invitation: marks it used (once, whoever races) and adds the user to its team.
/// A user already in the team keeps their role. [`TeamError::InviteInvalid`] when the token is
/// unknown, used or expired.
pub async fn accept_invite(db: &Db, token: &str, user_id: i64) -> Result<Team, TeamError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE team_invite SET used_at = $1, used_by = $2 \
         WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING team_id, role",
    )
    .bind(now)
    .bind(user_id)
    .bind(token_hash(token))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TeamError::InviteInvalid)?;
    let team_id: i64 = row.try_get("team_id")?;
    let role = role_of(&row)?;
    add_member_tx(&mut tx, team_id, user_id, role).await?;
    let team = sqlx::query("SELECT id, name, active, created_at FROM team WHERE id = $1")
        .bind(team_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(from_row(&team)?)
}

/// Takes `user_id` out of the team and revokes the keys they created in it (a departing
/// member's keys stop working at once). The last owner cannot go.
async fn remove_tx(
    tx: &mut Transaction<'static, Any>,
    team_id: i64,
    user_id: i64,
) -> Result<(), TeamError> {
    let role = sqlx::query("SELECT role FROM team_member WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(role_of)
        .transpose()?
        .ok_or_else(|| TeamError::NotFound(format!("member {user_id}")))?;
    if role == Role::Owner {
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM team_member WHERE team_id = $1 AND role = 'owner'",
        )
        .bind(team_id)
        .fetch_one(&mut **tx)
        .await?;
        if owners <= 1 {
            return Err(TeamError::LastOwner);
        }
    }
    sqlx::query("DELETE FROM team_member WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let revoked = sqlx::query(
        "UPDATE api_key SET revoked_at = $1 \
         WHERE team_id = $2 AND created_by = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(team_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if revoked > 0 {
        crate::auth::bump_epoch(tx).await?;
    }
    Ok(())
}

/// An owner or admin (`by`) removes a member. Admins cannot remove owners.
pub async fn remove_member(db: &Db, team_id: i64, user_id: i64, by: Role) -> Result<(), TeamError> {
    if !by.can_manage() {
        return Err(TeamError::NotAllowed);
    }
    let mut tx = db.begin_write().await?;
    if by != Role::Owner {
        let target =
            sqlx::query("SELECT role FROM team_member WHERE team_id = $1 AND user_id = $2")
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(role_of)
                .transpose()?;
        if target == Some(Role::Owner) {
            return Err(TeamError::NotAllowed);
        }
    }
    remove_tx(&mut tx, team_id, user_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The user leaves the team (not if they are its last owner).
pub async fn leave(db: &Db, team_id: i64, user_id: i64) -> Result<(), TeamError> {
    let mut tx = db.begin_write().await?;
    remove_tx(&mut tx, team_id, user_id).await?;
    tx.commit().await?;
    Ok(())
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

    #[tokio::test]
    async fn roles_invites_and_the_last_owner() {
        let t = TestDb::new().await.unwrap();
        let db = &t.db;
        let owner = crate::account::sign_up(db, "owner@example.com", "long enough pw", None)
            .await
            .unwrap();
        let bob = crate::account::sign_up(db, "bob@example.com", "long enough pw", None)
            .await
            .unwrap();
        let team = owner.team.id;
        assert!(matches!(
            leave(db, team, owner.user.id).await,
            Err(TeamError::LastOwner)
        ));
        let token = create_invite(
            db,
            team,
            owner.user.id,
            Role::Member,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let info = invite_info(db, &token).await.unwrap().unwrap();
        assert_eq!((info.team_id, info.role), (team, Role::Member));
        assert_eq!(
            accept_invite(db, &token, bob.user.id).await.unwrap().id,
            team
        );
        assert!(matches!(
            accept_invite(db, &token, bob.user.id).await,
            Err(TeamError::InviteInvalid)
        ));
        assert_eq!(invite_info(db, &token).await.unwrap(), None, "single use");
        assert_eq!(
            membership(db, team, bob.user.id).await.unwrap(),
            Some(Role::Member)
        );
        let expired = create_invite(db, team, owner.user.id, Role::Admin, Duration::ZERO)
            .await
            .unwrap();
        assert!(matches!(
            accept_invite(db, &expired, bob.user.id).await,
            Err(TeamError::InviteInvalid)
        ));
        assert!(matches!(
            remove_member(db, team, owner.user.id, Role::Member).await,
            Err(TeamError::NotAllowed)
        ));
        let names: Vec<_> = members(db, team)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.email)
            .collect();
        assert_eq!(names, ["owner@example.com", "bob@example.com"]);
        // Bob's keys in the team stop working when he goes.
        let key = crate::auth::create_team_key(
            db,
            team,
            crate::auth::Env::Dev,
            "bob's",
            None,
            Some(bob.user.id),
        )
        .await
        .unwrap();
        remove_member(db, team, bob.user.id, Role::Owner)
            .await
            .unwrap();
        assert_eq!(membership(db, team, bob.user.id).await.unwrap(), None);
        let revoked: Option<i64> =
            sqlx::query_scalar("SELECT revoked_at FROM api_key WHERE key_id = $1")
                .bind(&key.key_id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert!(revoked.is_some());
        t.cleanup().await;
    }
}
