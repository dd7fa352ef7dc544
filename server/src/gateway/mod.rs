//! The gateway: the `/v1` routes, the state they share (key verifier, catalog snapshot,
//! upstream client, channel health, billing committer), and the catalog refresher.

mod count_tokens;
mod finish;
pub mod health;
pub mod limits;
mod models;
mod pipeline;
pub mod probe;
mod responses;

use std::sync::{Arc, RwLock};

use axum::{
    routing::{get, post},
    Router,
};
use weir_core::{
    auth::KeyVerifier,
    catalog::{self, Snapshot},
    Db,
};

use crate::upstream::Timeouts;

/// Everything the request path reads. One per process, shared by reference.
pub struct Gateway {
    pub db: Db,
    pub verifier: KeyVerifier,
    pub catalog: CatalogHandle,
    pub http: reqwest::Client,
    pub timeouts: Timeouts,
    pub health: health::ChannelHealth,
    pub billing: BillingPolicy,
    /// Group commit of reservations, settlements and request-log rows.
    pub committer: weir_core::billing::Committer,
    /// Requests, tokens and concurrency per minute of keys and teams (in process or Redis).
    pub limiter: crate::limits::Limiter,
    /// This deployment's id and a colon, before every limiter subject (see
    /// [`weir_core::db::instance_id`]).
    pub limit_ns: Arc<str>,
    /// Measured time to first token and tokens per second per (channel, model), shared by
    /// the replicas through the database, for speed-ordered routing.
    pub speed: Arc<crate::routing::SpeedBook>,
    /// Work a request leaves running after its handler returned (stream pumps, checkpoints),
    /// waited for at shutdown.
    pub tasks: tokio_util::task::TaskTracker,
}

/// How much a request may hold, and for how long, before it is settled.
#[derive(Clone, Debug)]
pub struct BillingPolicy {
    /// Largest amount one request reserves (a huge `max_tokens` must not lock a balance).
    pub reservation_cap: weir_core::money::Micros,
    /// How long a reservation lives before the reaper finishes it; longer than any request.
    pub reservation_ttl: std::time::Duration,
}

impl Default for BillingPolicy {
    fn default() -> Self {
        BillingPolicy {
            reservation_cap: weir_core::money::Micros(10_000_000),
            reservation_ttl: std::time::Duration::from_secs(40 * 60),
        }
    }
}

/// Finishes reservations whose time ran out (after a crash) and purges stored Responses past
/// their retention, at start-up and every minute.
pub fn spawn_reaper(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match weir_core::billing::reap(&gw.db, weir_core::db::now_ms()).await {
                Ok(r) if r.settled + r.released > 0 => {
                    tracing::info!(
                        settled = r.settled,
                        released = r.released,
                        "reaped expired reservations"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reaper failed"),
            }
            match weir_core::responses::purge_expired(&gw.db, weir_core::db::now_ms()).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "purged expired stored responses"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stored-response purge failed"),
            }
        }
    })
}

/// The current catalog snapshot, swapped whole when the catalog changes.
pub struct CatalogHandle {
    db: Db,
    /// Opens the channels' sealed upstream keys.
    keys: catalog::keys::KeyCipher,
    /// The upstream resolver's trusted hosts, kept in step with the snapshot.
    pub resolver: crate::upstream::GuardedResolver,
    snap: RwLock<Arc<Snapshot>>,
    epoch: std::sync::atomic::AtomicI64,
    /// One reload at a time, so a slow load begun before a change cannot land after (and
    /// over) a load that saw it.
    reloading: tokio::sync::Mutex<()>,
}

impl CatalogHandle {
    pub async fn load(
        db: Db,
        keys: catalog::keys::KeyCipher,
    ) -> Result<CatalogHandle, catalog::CatalogError> {
        let epoch = catalog::read_epoch(&db).await?;
        let snap = catalog::load_with(&db, Some(&keys), |k| std::env::var(k).ok()).await?;
        let resolver = crate::upstream::GuardedResolver::default();
        set_trusted(&resolver, &snap);
        Ok(CatalogHandle {
            db,
            keys,
            resolver,
            snap: RwLock::new(Arc::new(snap)),
            epoch: std::sync::atomic::AtomicI64::new(epoch),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        match self.snap.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the snapshot if the catalog epoch moved, a scheduled tariff took effect, or
    /// always with `force`.
    pub async fn refresh(&self, force: bool) -> Result<(), catalog::CatalogError> {
        use std::sync::atomic::Ordering;
        let _one_at_a_time = self.reloading.lock().await;
        let epoch = catalog::read_epoch(&self.db).await?;
        let price_change_due = self
            .current()
            .next_tariff_change
            .is_some_and(|t| t <= weir_core::db::now_ms());
        if !force && !price_change_due && epoch == self.epoch.load(Ordering::SeqCst) {
            return Ok(());
        }
        let snap =
            catalog::load_with(&self.db, Some(&self.keys), |k| std::env::var(k).ok()).await?;
        set_trusted(&self.resolver, &snap);
        self.epoch.store(epoch, Ordering::SeqCst);
        match self.snap.write() {
            Ok(mut g) => *g = Arc::new(snap),
            Err(p) => *p.into_inner() = Arc::new(snap),
        }
        Ok(())
    }
}

fn set_trusted(resolver: &crate::upstream::GuardedResolver, snap: &Snapshot) {
    match resolver.trusted.write() {
        Ok(mut g) => *g = snap.trusted_hosts.clone(),
        Err(p) => *p.into_inner() = snap.trusted_hosts.clone(),
    }
}

/// Polls the catalog epoch so that changes made by other processes appear within seconds.
pub fn spawn_catalog_watcher(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = gw.catalog.refresh(false).await {
                tracing::warn!(error = %e, "catalog refresh failed");
            }
        }
    })
}

/// The API routes, to be nested under `/v1`; unknown paths there get an API-style 404.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/chat/completions", post(pipeline::chat_completions))
        .route("/messages", post(pipeline::messages))
        .route("/messages/count_tokens", post(count_tokens::count_tokens))
        .route("/embeddings", post(pipeline::embeddings))
        .route("/responses", post(responses::create))
        .route(
            "/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/models", get(models::list))
        .route("/models/{*id}", get(models::get_one))
        .fallback(models::not_found)
}
