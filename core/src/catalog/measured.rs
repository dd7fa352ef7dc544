//! `route_speed`: the time to first token and tokens per second measured per (channel,
//! model), shared by the replicas (the gateway's speed book writes its means here every few
//! seconds and reads everyone's back).

use sqlx::Row;

use crate::{db::DbError, Db};

/// One replica's means since its last write, or a shared row read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    pub channel_id: i64,
    pub model_id: String,
    /// Microseconds; 0 is not measured.
    pub ttft_us: u64,
    /// Tokens per second × 1000; 0 is not measured.
    pub tps_milli: u64,
    /// Answers behind the means.
    pub samples: u64,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Blends each mean half and half into its shared row (a row older than `stale_before`,
/// Unix ms, is replaced instead), then returns every row updated since `stale_before`.
pub async fn share(
    db: &Db,
    means: &[Measured],
    now: i64,
    stale_before: i64,
) -> Result<Vec<Measured>, DbError> {
    for m in means {
        sqlx::query(
            "INSERT INTO route_speed (channel_id, model_id, ttft_us, tps_milli, samples, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (channel_id, model_id) DO UPDATE SET \
               ttft_us = CASE WHEN route_speed.ttft_us = 0 OR route_speed.updated_at < $7 THEN excluded.ttft_us \
                              ELSE (route_speed.ttft_us + excluded.ttft_us) / 2 END, \
               tps_milli = CASE WHEN excluded.tps_milli = 0 THEN route_speed.tps_milli \
                                WHEN route_speed.tps_milli = 0 OR route_speed.updated_at < $7 THEN excluded.tps_milli \
                                ELSE (route_speed.tps_milli + excluded.tps_milli) / 2 END, \
               samples = route_speed.samples + excluded.samples, \
               updated_at = excluded.updated_at",
        )
        .bind(m.channel_id)
        .bind(m.model_id.as_str())
        .bind(int(m.ttft_us))
        .bind(int(m.tps_milli))
        .bind(int(m.samples))
        .bind(now)
        .bind(stale_before)
        .execute(db.write_pool())
        .await?;
    }
    let rows = sqlx::query(
        "SELECT channel_id, model_id, ttft_us, tps_milli, samples FROM route_speed WHERE updated_at >= $1",
    )
    .bind(stale_before)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let n = |c: &str| -> Result<u64, sqlx::Error> {
                Ok(u64::try_from(r.try_get::<i64, _>(c)?).unwrap_or(0))
            };
            Ok(Measured {
                channel_id: r.try_get("channel_id")?,
                model_id: r.try_get("model_id")?,
                ttft_us: n("ttft_us")?,
                tps_milli: n("tps_milli")?,
                samples: n("samples")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}
