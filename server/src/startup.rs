//! Start-up: everything between "the database is migrated" and "the router can serve":
//! seeding the catalog, wiring channels from upstream keys in the environment, and starting
//! the background tasks (key-cache epoch watcher, catalog watcher, reaper, billing committer).

use std::sync::Arc;

use anyhow::Context;
use weir_core::{
    auth::KeyVerifier,
    catalog::{self, ChannelSpec},
    Db,
};

use crate::{
    config::Config,
    gateway::{self, CatalogHandle, Gateway},
    http::AppState,
    upstream,
};

/// A prepared server: its state and the background tasks to stop on shutdown.
pub struct Prepared {
    pub state: AppState,
    pub gateway: Arc<Gateway>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    committer_task: tokio::task::JoinHandle<()>,
}

impl Prepared {
    /// Stops the watchers and waits (bounded) for pending settlements and queued request-log
    /// rows to be written.
    pub async fn shutdown(mut self) {
        // Aborted, then awaited: a watcher is gone (its connection back in the pool, its
        // handle on the gateway dropped) before anything below waits on either.
        for w in &self.watchers {
            w.abort();
        }
        for w in std::mem::take(&mut self.watchers) {
            let _ = w.await;
        }
        // Streams still running finish (their bookkeeping with them) before the committer's
        // last flush; a stream that outlives the bound is settled by the reaper.
        self.gateway.tasks.close();
        if tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.gateway.tasks.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!("streams still running at exit");
        }
        // Give Redis back the concurrency leases of the requests that just ended.
        self.gateway.limiter.flush().await;
        let Prepared {
            state,
            gateway,
            committer_task,
            ..
        } = self;
        drop(state);
        drop(gateway);
        // The committer ends, after writing what is waiting, once the last request that held
        // a handle (through the gateway) has finished.
        if tokio::time::timeout(std::time::Duration::from_secs(30), committer_task)
            .await
            .is_err()
        {
            tracing::warn!("settlements still running at exit; the reaper will finish them");
        }
    }
}

/// Seeds the catalog and creates one channel per provider whose key is in the environment.
/// `OPENAI_BASE_URL`-style variables override the provider's address, as the official SDKs do.
pub async fn seed_catalog(db: &Db, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    let providers = catalog::seed(db, catalog::SEED_JSON, 0)
        .await
        .context("seeding the model catalog")?;
    for p in providers {
        let Some(key_env) = p.key_env.as_deref() else {
            continue;
        };
        if env(key_env).is_none() {
            continue;
        }
        let base_env = key_env.replace("_API_KEY", "_BASE_URL");
        let base_url = env(&base_env).unwrap_or_else(|| p.base_url.clone());
        let name = format!("{}-env", p.id);
        catalog::upsert_channel(
            db,
            &ChannelSpec {
                provider_id: &p.id,
                name: &name,
                base_url: &base_url,
                key_env: Some(key_env),
                api_key: None,
                priority: 0,
                is_local: false,
            },
        )
        .await?;
        tracing::info!(provider = %p.id, "channel enabled from {key_env}");
    }
    Ok(())
}

/// Builds the gateway and app state over a migrated database.
pub async fn prepare(db: Db, config: &Config) -> anyhow::Result<Prepared> {
    seed_catalog(&db, |k| std::env::var(k).ok().filter(|v| !v.is_empty())).await?;
    let verifier = KeyVerifier::new(db.clone(), config.secret.expose());
    verifier.poll_epoch().await?;
    let catalog = CatalogHandle::load(db.clone(), config.key_cipher()).await?;
    let timeouts = config.timeouts.clone();
    let http = upstream::client(&timeouts, catalog.resolver.clone())
        .context("building the HTTP client")?;
    let (committer, committer_task) = weir_core::billing::Committer::spawn(db.clone());
    let gateway = Arc::new(Gateway {
        db: db.clone(),
        verifier: verifier.clone(),
        catalog,
        http,
        timeouts,
        health: crate::gateway::health::ChannelHealth::new(config.resilience),
        billing: config.billing.clone(),
        committer,
        limiter: config.limiter()?,
        limit_ns: format!("{}:", weir_core::db::instance_id(&db).await?).into(),
        speed: Arc::default(),
        tasks: tokio_util::task::TaskTracker::new(),
    });
    let watchers = vec![
        verifier.spawn_epoch_watcher(),
        gateway::spawn_catalog_watcher(gateway.clone()),
        gateway::spawn_reaper(gateway.clone()),
        crate::console::spawn_session_sweeper(db.clone()),
        crate::routing::speed::spawn_sync(gateway.speed.clone(), db.clone()),
    ];
    let state = AppState::new(db, gateway.clone(), config);
    Ok(Prepared {
        state,
        gateway,
        watchers,
        committer_task,
    })
}
