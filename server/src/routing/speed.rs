//! Measured speed per (channel, model): time to first token and tokens per second, as moving
//! averages, for `optimise: speed` and OpenRouter's `sort: latency | throughput`.
//!
//! Each replica folds every successful answer into its own view at once (an exponential
//! moving average, weight 1/4 for the newest sample), and every few seconds
//! ([`SYNC_EVERY`]) writes the means of what it measured since to `route_speed` and reads
//! back every row, so that all replicas order by what all of them measured. A row not
//! updated for [`STALE_AFTER`] is forgotten: the pair counts as unmeasured again and is tried
//! early, so a channel that got faster is found out.
//!
//! Time to first token is measured from the attempt's start to the first byte sent to the
//! client on a stream, and to the whole answer otherwise; tokens per second only on streams
//! (output tokens over the time after the first byte).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use weir_core::{
    catalog::measured::{self, Measured},
    Db,
};

/// How often a replica shares its measurements and reads everyone's.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);
/// How long a measurement is trusted without a new one.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// What is known of one (channel, model): zero means not measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Speed {
    pub ttft_us: u64,
    /// Tokens per second × 1000.
    pub tps_milli: u64,
}

impl Speed {
    /// Expected microseconds until an answer of `output_tokens` is complete, `None` when the
    /// time to first token was never measured.
    pub fn expected_us(&self, output_tokens: u64) -> Option<u64> {
        if self.ttft_us == 0 {
            return None;
        }
        let generation = match self.tps_milli {
            0 => 0,
            tps => output_tokens.saturating_mul(1_000_000_000) / tps,
        };
        Some(self.ttft_us.saturating_add(generation))
    }
}

/// Sums of the samples since the last sync.
#[derive(Clone, Copy, Default)]
struct Acc {
    ttft_sum: u64,
    ttft_n: u64,
    tps_sum: u64,
    tps_n: u64,
}

#[derive(Default)]
struct State {
    view: HashMap<i64, HashMap<String, Speed>>,
    pending: HashMap<i64, HashMap<String, Acc>>,
}

#[derive(Default)]
pub struct SpeedBook {
    state: Mutex<State>,
}

fn ewma(old: u64, sample: u64) -> u64 {
    if old == 0 {
        return sample;
    }
    let (o, s) = (i128::from(old), i128::from(sample));
    u64::try_from(o + (s - o) / 4).unwrap_or(old)
}

impl SpeedBook {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known of `model` on `channel`.
    pub fn get(&self, channel: i64, model: &str) -> Speed {
        self.lock()
            .view
            .get(&channel)
            .and_then(|m| m.get(model))
            .copied()
            .unwrap_or_default()
    }

    /// Folds in one answer: its time to first token and, for streams, tokens per second.
    pub fn record(&self, channel: i64, model: &str, ttft: Duration, tps_milli: Option<u64>) {
        let ttft_us = u64::try_from(ttft.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut s = self.lock();
        let v = entry(&mut s.view, channel, model);
        v.ttft_us = ewma(v.ttft_us, ttft_us);
        if let Some(tps) = tps_milli.filter(|t| *t > 0) {
            v.tps_milli = ewma(v.tps_milli, tps);
        }
        let a = entry(&mut s.pending, channel, model);
        a.ttft_sum = a.ttft_sum.saturating_add(ttft_us);
        a.ttft_n += 1;
        if let Some(tps) = tps_milli.filter(|t| *t > 0) {
            a.tps_sum = a.tps_sum.saturating_add(tps);
            a.tps_n += 1;
        }
    }

    /// Writes the means measured here since the last sync (each blended half and half with
    /// the shared row) and replaces the view with every replica's rows.
    pub async fn sync(&self, db: &Db) -> Result<(), weir_core::db::DbError> {
        let pending = std::mem::take(&mut self.lock().pending);
        let means: Vec<Measured> = pending
            .into_iter()
            .flat_map(|(channel_id, models)| {
                models.into_iter().map(move |(model_id, a)| Measured {
                    channel_id,
                    model_id,
                    ttft_us: a.ttft_sum.checked_div(a.ttft_n).unwrap_or(0),
                    tps_milli: a.tps_sum.checked_div(a.tps_n).unwrap_or(0),
                    samples: a.ttft_n,
                })
            })
            .collect();
        let now = weir_core::db::now_ms();
        let stale = i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
        let rows = measured::share(db, &means, now, now - stale).await?;
        let mut view: HashMap<i64, HashMap<String, Speed>> = HashMap::new();
        for r in rows {
            view.entry(r.channel_id).or_default().insert(
                r.model_id,
                Speed {
                    ttft_us: r.ttft_us,
                    tps_milli: r.tps_milli,
                },
            );
        }
        self.lock().view = view;
        Ok(())
    }
}

fn entry<'a, T: Default>(
    m: &'a mut HashMap<i64, HashMap<String, T>>,
    channel: i64,
    model: &str,
) -> &'a mut T {
    let models = m.entry(channel).or_default();
    if !models.contains_key(model) {
        models.insert(model.to_owned(), T::default());
    }
    models.get_mut(model).unwrap_or_else(|| unreachable!())
}

/// Shares measurements with the other replicas every [`SYNC_EVERY`].
pub fn spawn_sync(book: Arc<SpeedBook>, db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = book.sync(&db).await {
                tracing::warn!(error = %e, "sharing measured channel speeds failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_move_a_quarter_towards_each_sample() {
        let b = SpeedBook::default();
        assert_eq!(b.get(1, "m"), Speed::default());
        b.record(1, "m", Duration::from_millis(100), Some(50_000));
        assert_eq!(
            b.get(1, "m"),
            Speed {
                ttft_us: 100_000,
                tps_milli: 50_000
            }
        );
        b.record(1, "m", Duration::from_millis(200), None);
        assert_eq!(b.get(1, "m").ttft_us, 125_000);
        assert_eq!(b.get(1, "m").tps_milli, 50_000);
        assert_eq!(b.get(2, "m"), Speed::default());
    }

    #[test]
    fn expected_time_adds_the_generation() {
        let s = Speed {
            ttft_us: 100_000,
            tps_milli: 100_000,
        };
        // 50 tokens at 100 tokens/s: half a second more.
        assert_eq!(s.expected_us(50), Some(600_000));
        assert_eq!(Speed::default().expected_us(50), None);
    }

    #[tokio::test]
    async fn replicas_share_what_they_measured() {
        let t = weir_core::testing::TestDb::new().await.unwrap();
        let (a, b) = (SpeedBook::default(), SpeedBook::default());
        a.record(7, "p/m", Duration::from_millis(80), Some(40_000));
        a.sync(&t.db).await.unwrap();
        b.sync(&t.db).await.unwrap();
        assert_eq!(b.get(7, "p/m"), a.get(7, "p/m"));
        assert_eq!(b.get(7, "p/m").ttft_us, 80_000);
        // A second replica's mean is blended half and half into the shared row.
        b.record(7, "p/m", Duration::from_millis(120), None);
        b.sync(&t.db).await.unwrap();
        a.sync(&t.db).await.unwrap();
        assert_eq!(a.get(7, "p/m").ttft_us, 100_000);
        assert_eq!(a.get(7, "p/m").tps_milli, 40_000);
    }
}
