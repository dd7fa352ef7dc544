//! The HTTP server: one axum router for health checks, the gateway API and the console
//! (server-rendered Leptos), served with `TCP_NODELAY` and a graceful, deadline-bound drain.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use leptos::config::{Env, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use weir_app::ssr::{ConsoleState, LoginLimiter};
use weir_core::Db;

use crate::gateway::Gateway;

use crate::config::Config;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub leptos: LeptosOptions,
    pub gateway: Arc<Gateway>,
    pub console: ConsoleState,
    pub stripe_webhook: crate::stripe::webhook::WebhookState,
    /// `Secure` session cookies (the public URL is https).
    secure_cookies: bool,
    draining: Arc<AtomicBool>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    pub fn new(db: Db, gateway: Arc<Gateway>, config: &Config) -> AppState {
        let env = match std::env::var("LEPTOS_ENV").as_deref() {
            Ok("DEV") | Ok("dev") => Env::DEV,
            _ => Env::PROD,
        };
        let leptos = LeptosOptions::builder()
            .output_name("weir")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(config.listen)
            .env(env)
            .build();
        let catalog_gw = gateway.clone();
        let checkout = config.stripe.as_ref().and_then(|s| {
            match crate::stripe::Checkout::new(s, &config.public_url) {
                Ok(c) => Some(c.starter()),
                Err(e) => {
                    tracing::error!(error = %e, "Stripe is configured but its client cannot be built; top-ups are off");
                    None
                }
            }
        });
        let probe_gw = gateway.clone();
        let health_gw = gateway.clone();
        let keys = config.key_cipher();
        let probe_keys = keys.clone();
        let probe: weir_app::ssr::ChannelProbe = Arc::new(move |id| {
            let gw = probe_gw.clone();
            let keys = probe_keys.clone();
            Box::pin(async move {
                crate::gateway::probe::probe(&gw, &keys, id)
                    .await
                    .map_err(|e| weir_app::ssr::catalog_error("testing a channel", e))
            })
        });
        let console = ConsoleState {
            keys,
            probe,
            health: Arc::new(move || health_gw.health.describe()),
            db: db.clone(),
            verifier: gateway.verifier.clone(),
            catalog: Arc::new(move || catalog_gw.catalog.current()),
            public_url: config.public_url.clone(),
            admin_email: config.admin_email.clone(),
            limiter: Arc::new(LoginLimiter::default()),
            topups: weir_app::ssr::TopupSettings {
                limits: config.topup_limits,
                checkout,
            },
        };
        AppState {
            secure_cookies: config.public_url.starts_with("https://"),
            console,
            stripe_webhook: crate::stripe::webhook::WebhookState::new(
                db.clone(),
                config.stripe.as_ref(),
            ),
            db,
            leptos,
            gateway,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Builds the whole router: health, gateway and console. Only the console's routes pass
/// through the session layer and its guard; the gateway's `/v1` path never touches them.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(weir_app::App);
    let leptos = state.leptos.clone();
    let api = crate::gateway::routes().with_state(state.gateway.clone());
    let console_state = state.console.clone();
    let context = move || leptos::prelude::provide_context(console_state.clone());
    let guard = crate::console::GuardConfig {
        db: state.db.clone(),
        origin: crate::console::guard::origin_of(&state.console.public_url),
    };
    let fallback_state = state.console.clone();
    let console = Router::new()
        .route(
            "/api/public/models",
            get(crate::console::public_models).with_state(state.gateway.clone()),
        )
        .leptos_routes_with_context(&state, routes, context, move || {
            weir_app::shell(leptos.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(
            move || leptos::prelude::provide_context(fallback_state.clone()),
            weir_app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::console::guard,
        ))
        .layer(crate::console::session_layer(
            state.db.clone(),
            state.secure_cookies,
        ))
        .with_state(state.clone());
    Router::new()
        .nest("/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/webhooks/stripe",
            post(crate::stripe::webhook::receive).with_state(state.stripe_webhook.clone()),
        )
        .with_state(state)
        .merge(console)
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Ready: not draining and the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        // Limits failing open or closed still serve (closed refuses limited keys with 503):
        // the detail says so, the status stays ready.
        Ok(Ok(())) => match state.gateway.limiter.health() {
            Ok(()) => (StatusCode::OK, "ready"),
            Err(_) => (
                StatusCode::OK,
                "ready; rate limits degraded: Redis unreachable",
            ),
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timeout"),
    }
}

/// How long in-flight requests may run after a shutdown signal before the process exits.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Binds, prints the URL, and serves until SIGTERM or SIGINT; then stops accepting, fails
/// readiness, and lets in-flight requests finish up to [`DRAIN_DEADLINE`].
pub async fn serve(state: AppState, listen: SocketAddr) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY a response written in two parts waits for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    println!("Weir is listening on http://{addr}");

    let draining = state.draining.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        draining.store(true, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        tracing::info!("shutdown signal: draining in-flight requests");
    });
    let mut stop_rx = stop_rx;
    tokio::select! {
        res = std::future::IntoFuture::into_future(server) => res.context("server error")?,
        _ = async {
            let _ = stop_rx.wait_for(|s| *s).await;
            tokio::time::sleep(DRAIN_DEADLINE).await;
        } => tracing::warn!("drain deadline passed; exiting with requests still open"),
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
