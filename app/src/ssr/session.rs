//! The signed-in caller, resolved from the `tower-sessions` session: who they are, which team
//! they act for and in what role; the per-session CSRF token every form carries; and the
//! absolute lifetime of a log-in (the store's expiry is the idle one).

use std::time::Duration;

use subtle::ConstantTimeEq;
use tower_sessions::Session;
use weir_core::{
    account::{self, User},
    team::{self, Membership, Role},
};

use super::{internal, state, ConsoleState};
use crate::error::AppError;

/// The names of the values kept in a session.
pub struct SessionKeys;

impl SessionKeys {
    pub const USER: &'static str = "uid";
    pub const TEAM: &'static str = "team";
    pub const CSRF: &'static str = "csrf";
    /// When the user logged in (Unix ms): the session ends [`ABSOLUTE_LIFETIME`] later however
    /// active it is.
    pub const AUTH_AT: &'static str = "auth_at";
    /// A key secret created by a form posted without JavaScript, shown once by the next page.
    pub const NEW_KEY: &'static str = "new_key";
}

/// How long a log-in lasts at most.
pub const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A signed-in user and the team they act for.
pub struct Caller {
    pub state: ConsoleState,
    pub session: Session,
    pub user: User,
    /// Every team the user belongs to, sorted by name.
    pub teams: Vec<Membership>,
    /// The current team (the one chosen in the header), if the user has any.
    pub current: Option<Membership>,
}

impl Caller {
    /// The current team and the caller's role in it.
    pub fn team(&self) -> Result<(i64, Role), AppError> {
        self.current
            .as_ref()
            .map(|m| (m.team.id, m.role))
            .ok_or_else(|| {
                AppError::Invalid("You are not in a team yet: create one in Settings.".into())
            })
    }

    /// The current team, if the caller may manage its keys and members (owner or admin).
    pub fn managed_team(&self) -> Result<i64, AppError> {
        let (id, role) = self.team()?;
        if role.can_manage() {
            Ok(id)
        } else {
            Err(AppError::Forbidden(
                "Only the team's owners and admins can do this.".into(),
            ))
        }
    }

    /// Refuses callers who are not the operator, as if the page did not exist.
    pub fn operator(&self) -> Result<(), AppError> {
        if self.user.is_operator {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|e| internal("session layer missing", e))
}

fn session_err(e: tower_sessions::session::Error) -> AppError {
    internal("session store", e)
}

/// 32 random URL-safe characters (~190 bits) from the OS generator.
fn random_token() -> String {
    use rand::{distributions::Alphanumeric, rngs::OsRng, Rng};
    OsRng
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The session's CSRF token, created if it has none yet.
pub async fn ensure_csrf(session: &Session) -> Result<String, AppError> {
    if let Some(t) = session
        .get::<String>(SessionKeys::CSRF)
        .await
        .map_err(session_err)?
    {
        return Ok(t);
    }
    let token = random_token();
    session
        .insert(SessionKeys::CSRF, &token)
        .await
        .map_err(session_err)?;
    Ok(token)
}

async fn check_csrf(session: &Session, presented: &str) -> Result<(), AppError> {
    let expected = session
        .get::<String>(SessionKeys::CSRF)
        .await
        .map_err(session_err)?;
    let ok = expected.is_some_and(|e| {
        !presented.is_empty() && bool::from(e.as_bytes().ct_eq(presented.as_bytes()))
    });
    if ok {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "This form has expired or came from another site. Reload the page and try again."
                .into(),
        ))
    }
}

/// The signed-in caller, or [`AppError::Unauthorized`].
pub async fn caller() -> Result<Caller, AppError> {
    let state = state()?;
    let session = session().await?;
    let Some(uid) = session
        .get::<i64>(SessionKeys::USER)
        .await
        .map_err(session_err)?
    else {
        return Err(AppError::Unauthorized);
    };
    let auth_at = session
        .get::<i64>(SessionKeys::AUTH_AT)
        .await
        .map_err(session_err)?
        .unwrap_or(0);
    let lifetime = i64::try_from(ABSOLUTE_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let user = if weir_core::db::now_ms().saturating_sub(auth_at) > lifetime {
        None
    } else {
        account::user_by_id(&state.db, uid)
            .await
            .map_err(|e| internal("loading the user", e))?
    };
    let Some(user) = user else {
        session.flush().await.map_err(session_err)?;
        return Err(AppError::Unauthorized);
    };
    let teams = team::teams_of_user(&state.db, user.id)
        .await
        .map_err(|e| internal("loading the user's teams", e))?;
    let chosen = session
        .get::<i64>(SessionKeys::TEAM)
        .await
        .map_err(session_err)?;
    let current = chosen
        .and_then(|id| teams.iter().find(|m| m.team.id == id))
        .or_else(|| teams.first())
        .cloned();
    if let Some(m) = &current {
        if chosen != Some(m.team.id) {
            session
                .insert(SessionKeys::TEAM, m.team.id)
                .await
                .map_err(session_err)?;
        }
    }
    Ok(Caller {
        state,
        session,
        user,
        teams,
        current,
    })
}

/// A mutation by a signed-in caller: the CSRF token is checked first.
pub async fn mutation(csrf: &str) -> Result<Caller, AppError> {
    let session = session().await?;
    check_csrf(&session, csrf).await?;
    caller().await
}

/// A mutation that needs no sign-in (sign up, log in): the CSRF token is checked.
pub async fn anonymous(csrf: &str) -> Result<(ConsoleState, Session), AppError> {
    let session = session().await?;
    check_csrf(&session, csrf).await?;
    Ok((state()?, session))
}

/// Starts a fresh session for `user` (a new id, so a session fixed before log-in is useless).
pub async fn start(session: &Session, user: &User) -> Result<(), AppError> {
    session.cycle_id().await.map_err(session_err)?;
    session
        .insert(SessionKeys::USER, user.id)
        .await
        .map_err(session_err)?;
    session
        .insert(SessionKeys::AUTH_AT, weir_core::db::now_ms())
        .await
        .map_err(session_err)?;
    // A new token for the signed-in session.
    session
        .insert(SessionKeys::CSRF, random_token())
        .await
        .map_err(session_err)?;
    Ok(())
}
