//! The reaper: finishes reservations left open past their TTL (a crash, a `kill -9`, a lost
//! settlement). One with checkpointed output is settled at the prompt estimate plus the
//! checkpointed output (`usage_source = estimated`); one without is released. Every
//! reservation is finished in its own transaction through the same guarded claim as
//! `settle`/`release`, so reapers on several replicas can run at once.

use sqlx::Row;

use super::{
    batch::{apply, claim_in, Finish},
    pricing::Usage,
    BillingError,
};
use crate::{db::Db, metering::UsageSource, money::Micros};

/// What one [`reap`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Reservations settled from their checkpoint.
    pub settled: usize,
    /// Reservations released (no output had been checkpointed).
    pub released: usize,
    /// The total charged by those settlements.
    pub charged: Micros,
    /// Reservations that failed to finish (logged; retried on the next run).
    pub failed: usize,
}

const BATCH: i64 = 256;

enum Reaped {
    Settled(Micros),
    Released,
}

/// Finishes every reservation still `reserved` whose `expires_at <= now_ms`. Call it every
/// minute or so on each replica (and once at startup); it is safe to run concurrently and a
/// second run finds nothing left to do.
pub async fn reap(db: &Db, now_ms: i64) -> Result<ReapReport, BillingError> {
    let mut report = ReapReport::default();
    loop {
        let ids: Vec<String> = sqlx::query(
            "SELECT request_id FROM hold WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(BATCH)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| r.try_get("request_id"))
        .collect::<Result<_, _>>()?;
        let mut failed_here = 0usize;
        for id in &ids {
            match reap_one(db, id, now_ms).await {
                Ok(Some(Reaped::Settled(cost))) => {
                    report.settled += 1;
                    report.charged = Micros(report.charged.0.saturating_add(cost.0));
                }
                Ok(Some(Reaped::Released)) => report.released += 1,
                // Finished by someone else since the listing.
                Ok(None) => {}
                Err(e) => {
                    failed_here += 1;
                    tracing::warn!(request_id = %id, error = %e, "reaper could not finish a reservation");
                }
            }
        }
        report.failed += failed_here;
        // Stop at the last page, or when a page made no progress (the same rows would come back).
        if (ids.len() as i64) < BATCH || failed_here == ids.len() {
            break;
        }
    }
    if report.settled + report.released > 0 {
        tracing::info!(
            settled = report.settled,
            released = report.released,
            charged = %report.charged,
            "reaped expired reservations"
        );
    }
    Ok(report)
}

async fn reap_one(db: &Db, request_id: &str, now_ms: i64) -> Result<Option<Reaped>, BillingError> {
    let mut w = crate::writer::Writer::Pool(db);
    let mut tx = w.begin().await?;
    let claimed = claim_in(&mut tx, &[request_id], now_ms).await?;
    let Some(c) = claimed.get(request_id) else {
        tx.rollback().await?;
        return Ok(None);
    };
    let finish = if c.checkpoint > 0 {
        Finish::Settle {
            usage: Usage {
                input: c.prompt_estimate,
                output: c.checkpoint,
                ..Usage::default()
            },
            source: UsageSource::Estimated,
        }
    } else {
        Finish::Release
    };
    let cost = apply(&mut tx, &[(request_id, c, finish)], crate::db::now_ms()).await?;
    tx.commit().await?;
    Ok(Some(match finish {
        Finish::Settle { .. } => Reaped::Settled(cost.first().copied().unwrap_or(Micros::ZERO)),
        Finish::Release => Reaped::Released,
    }))
}
