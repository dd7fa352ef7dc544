//! What only the server sees: the console's state (database, key verifier, catalog, public
//! URL), the signed-in caller resolved from the session, the CSRF check, and the mapping of
//! domain errors to user-safe [`AppError`]s. Every server function starts here.

pub mod catalog;
mod limiter;
mod session;
mod usage;

use std::sync::Arc;

use weir_core::{catalog::Snapshot, Db};

pub use limiter::LoginLimiter;
pub use session::{
    anonymous, caller, ensure_csrf, mutation, session, start, Caller, SessionKeys,
    ABSOLUTE_LIFETIME,
};
pub use usage::usage_filter;

use crate::error::AppError;

/// The live catalog, as the gateway sees it (swapped whole when the catalog changes).
pub type CatalogView = Arc<dyn Fn() -> Arc<Snapshot> + Send + Sync>;

/// Sends a one-token "Test" request through a channel (by id) with the gateway's upstream
/// client, and says how it went; provided by the server, which owns the wire formats.
pub type ChannelProbe = Arc<
    dyn Fn(
            i64,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<crate::server_fns::admin::ProbeOutcome, AppError>,
                    > + Send,
            >,
        > + Send
        + Sync,
>;

/// This replica's circuit-breaker state per channel id (`closed`, `open`, ...).
pub type HealthView = Arc<dyn Fn() -> std::collections::HashMap<i64, String> + Send + Sync>;

/// Everything the console's server functions need, provided through Leptos context by the
/// server (`server/src/http.rs`). Cheap to clone.
#[derive(Clone)]
pub struct ConsoleState {
    pub db: Db,
    pub verifier: weir_core::auth::KeyVerifier,
    pub catalog: CatalogView,
    /// This server's public base URL without a trailing slash (`WEIR_PUBLIC_URL`).
    pub public_url: String,
    /// Who becomes the operator at sign-up (`WEIR_ADMIN_EMAIL`); else the first account.
    pub admin_email: Option<String>,
    pub limiter: Arc<LoginLimiter>,
    /// Seals upstream keys entered on the admin pages (from the instance secret).
    pub keys: weir_core::catalog::keys::KeyCipher,
    pub probe: ChannelProbe,
    pub health: HealthView,
    pub topups: TopupSettings,
}

/// Stripe top-ups as the console sees them.
#[derive(Clone, Default)]
pub struct TopupSettings {
    /// `WEIR_TOPUP_MIN` / `WEIR_TOPUP_MAX`, checked on the server.
    pub limits: weir_core::topup::Limits,
    /// Creates a pending top-up's Checkout Session; `None` without `STRIPE_SECRET_KEY`
    /// (the top-up button is then disabled, saying why).
    pub checkout: Option<weir_core::topup::StartCheckout>,
}

/// The client's address, put in the request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

impl ClientAddr {
    /// The address of the request being served, if the server recorded it.
    pub fn current() -> Option<std::net::IpAddr> {
        leptos::prelude::use_context::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<ClientAddr>().map(|a| a.0))
    }
}

/// The console state from context.
pub fn state() -> Result<ConsoleState, AppError> {
    leptos::prelude::use_context::<ConsoleState>().ok_or_else(|| {
        tracing::error!("console state missing from context");
        AppError::Internal
    })
}

/// Logs an internal failure and returns the user-safe error for it.
pub fn internal(what: &str, e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "{what}");
    AppError::Internal
}

/// Maps a catalog edit's error: a field's problem beside that field, the rest logged.
pub fn catalog_error(what: &str, e: weir_core::catalog::CatalogError) -> AppError {
    use weir_core::catalog::CatalogError;
    match e {
        CatalogError::Invalid { field, message } => AppError::field(field, message),
        CatalogError::NotFound(_) => AppError::NotFound,
        e => internal(what, e),
    }
}

/// Answers a server function's error with its HTTP status, so that scripts and tests see
/// 403 for a refused mutation, 404 for another team's id, and so on.
pub fn respond(e: AppError) -> AppError {
    if let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(e.status()) {
            res.set_status(status);
        }
    }
    e
}

/// Runs a server function body and sets the response status from its error.
pub async fn run<T>(
    body: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    body.await.map_err(respond)
}
