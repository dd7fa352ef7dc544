//! The console's HTTP side: the session layer (sessions in Weir's own database), the guard
//! every console request passes (origin check on mutations, sign-in redirect for private
//! pages, 404 for the admin area to non-operators), and the public model list.

pub mod guard;
mod public_models;

pub use guard::{guard, GuardConfig};
pub use public_models::public_models;

use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};
use weir_core::{account::DbSessionStore, Db};

/// How long a session lives without use (its absolute lifetime is checked by the app).
pub const IDLE_EXPIRY_HOURS: i64 = 12;

/// The session layer: `HttpOnly`, `SameSite=Lax`, `Secure` when served over TLS.
pub fn session_layer(db: Db, secure: bool) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(DbSessionStore::new(db))
        .with_name("weir_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::hours(IDLE_EXPIRY_HOURS),
        ))
}

/// Deletes expired sessions every ten minutes (loading one already ignores it when expired).
pub fn spawn_session_sweeper(db: Db) -> tokio::task::JoinHandle<()> {
    use tower_sessions::ExpiredDeletion;
    tokio::spawn(async move {
        let store = DbSessionStore::new(db);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "deleting expired sessions failed");
            }
        }
    })
}
