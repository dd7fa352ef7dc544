//! The in-process limiter: sharded maps of subject state behind `std::sync::Mutex`es.

use std::{
    collections::{hash_map::RandomState, HashMap, VecDeque},
    hash::BuildHasher,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use super::{
    Admission, Held, Rates, Refusal, Slots, Subject, Verdict, Which, Window, CONCURRENCY_RETRY,
    MINUTE,
};

const SHARDS: usize = 32;
/// A shard is swept of idle subjects (at most once a minute) once it holds more than this.
const SWEEP_ABOVE: usize = 1024;
const MINUTE_NS: u64 = 60_000_000_000;

pub(super) struct Local {
    /// Times are nanoseconds since this instant.
    base: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Subject, Entry>,
    next_sweep: u64,
}

#[derive(Default)]
struct Entry {
    /// Admission times of the last minute, oldest first; never longer than the subject's rpm.
    log: VecDeque<u64>,
    /// GCRA's theoretical arrival time; at or before now is a full bucket.
    tat: u64,
    /// Slots held, shared with the admissions holding them (freeing one takes no lock).
    inflight: Arc<AtomicU32>,
}

impl Entry {
    fn prune(&mut self, now: u64) {
        while self
            .log
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= MINUTE_NS)
        {
            self.log.pop_front();
        }
    }

    fn idle(&self, now: u64) -> bool {
        self.log
            .back()
            .is_none_or(|&t| now.saturating_sub(t) >= MINUTE_NS)
            && self.tat <= now
            && self.inflight.load(Ordering::Acquire) == 0
            && Arc::strong_count(&self.inflight) == 1
    }

    fn requests_window(&self, rpm: u32, now: u64) -> Window {
        Window {
            limit: u64::from(rpm),
            remaining: u64::from(rpm).saturating_sub(self.log.len() as u64),
            reset: self.log.front().map_or(Duration::ZERO, |&t| {
                nanos((t + MINUTE_NS).saturating_sub(now))
            }),
        }
    }
}

fn tokens_window(tat: u64, tpm: u32, now: u64) -> Window {
    let used = tat.saturating_sub(now).min(MINUTE_NS);
    let remaining = u128::from(MINUTE_NS - used) * u128::from(tpm) / u128::from(MINUTE_NS);
    Window {
        limit: u64::from(tpm),
        remaining: u64::try_from(remaining).unwrap_or(u64::MAX),
        reset: nanos(tat.saturating_sub(now)),
    }
}

/// The time `tokens` take to refill at `tpm` per minute, in ns (rounded up: charging never
/// undercounts).
fn cost(tokens: u64, tpm: u32) -> u64 {
    let ns = (u128::from(tokens) * u128::from(MINUTE_NS)).div_ceil(u128::from(tpm.max(1)));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

fn nanos(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn entry<'m>(map: &'m mut HashMap<Subject, Entry>, subject: &Subject) -> &'m mut Entry {
    map.entry(subject.clone()).or_default()
}

/// What one subject's take did, to put back if a later subject refuses.
struct Undo {
    guard: usize,
    subject: usize,
    pushed: bool,
    tat: Option<u64>,
}

impl Local {
    pub(super) fn new() -> Local {
        Local {
            base: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, subject: &str) -> usize {
        (self.hasher.hash_one(subject) % SHARDS as u64) as usize
    }

    pub(super) fn admit(
        &self,
        subjects: &[(Subject, Rates)],
        tokens: u64,
    ) -> Result<Admission, Refusal> {
        // (shard, subject index) of the limited subjects, in the order given.
        let order: Vec<(usize, usize)> = subjects
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| !r.is_unlimited())
            .map(|(i, (s, _))| (self.shard(s), i))
            .collect();
        let mut ids: Vec<usize> = order.iter().map(|&(s, _)| s).collect();
        ids.sort_unstable();
        ids.dedup();
        // In index order, so concurrent admits never deadlock.
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            ids.iter().map(|&s| lock(&self.shards[s])).collect();
        let now = self.now();

        let mut undo: Vec<Undo> = Vec::with_capacity(order.len());
        let mut slots: Vec<Arc<AtomicU32>> = Vec::new();
        let mut charged: Vec<(Subject, u32)> = Vec::new();
        let (mut requests, mut token_window) = (None, None);
        for &(shard, i) in &order {
            let g = ids.binary_search(&shard).unwrap_or_default();
            let (subject, rates) = &subjects[i];
            let e = entry(&mut guards[g].map, subject);
            e.prune(now);

            let mut verdict = None;
            if let Some(rpm) = rates.rpm {
                if e.log.len() >= rpm as usize {
                    let oldest = e.log.front().copied().unwrap_or(now);
                    verdict = Verdict::worse(
                        verdict,
                        Verdict {
                            which: Which::Requests,
                            limit: u64::from(rpm),
                            retry_after: nanos((oldest + MINUTE_NS).saturating_sub(now)),
                            requested: 1,
                        },
                    );
                }
            }
            let mut new_tat = None;
            if let Some(tpm) = rates.tpm {
                let t = e.tat.max(now).saturating_add(cost(tokens, tpm));
                if t - now > MINUTE_NS {
                    verdict = Verdict::worse(
                        verdict,
                        Verdict {
                            which: Which::Tokens,
                            limit: u64::from(tpm),
                            retry_after: nanos(t - now - MINUTE_NS),
                            requested: tokens,
                        },
                    );
                }
                new_tat = Some(t);
            }
            if let Some(cc) = rates.concurrency {
                if e.inflight.load(Ordering::Acquire) >= cc {
                    verdict = Verdict::worse(
                        verdict,
                        Verdict {
                            which: Which::Concurrency,
                            limit: u64::from(cc),
                            retry_after: CONCURRENCY_RETRY,
                            requested: 1,
                        },
                    );
                }
            }

            if let Some(v) = verdict {
                let refusal = Refusal {
                    subject: subject.clone(),
                    which: v.which,
                    limit: v.limit,
                    retry_after: v.retry_after.max(Duration::from_millis(1)),
                    requests: rates.rpm.map(|rpm| e.requests_window(rpm, now)),
                    tokens: rates.tpm.map(|tpm| tokens_window(e.tat, tpm, now)),
                    requested: v.requested,
                };
                for u in undo.iter().rev() {
                    if let Some(e) = guards[u.guard].map.get_mut(&subjects[u.subject].0) {
                        if u.pushed {
                            e.log.pop_back();
                        }
                        if let Some(tat) = u.tat {
                            e.tat = tat;
                        }
                    }
                }
                for s in &slots {
                    s.fetch_sub(1, Ordering::Release);
                }
                return Err(refusal);
            }

            // Take.
            let mut taken = Undo {
                guard: g,
                subject: i,
                pushed: false,
                tat: None,
            };
            if let Some(rpm) = rates.rpm {
                e.log.push_back(now);
                taken.pushed = true;
                requests = Window::tighter(requests, Some(e.requests_window(rpm, now)));
            }
            if let (Some(tpm), Some(t)) = (rates.tpm, new_tat) {
                taken.tat = Some(std::mem::replace(&mut e.tat, t));
                token_window = Window::tighter(token_window, Some(tokens_window(t, tpm, now)));
                charged.push((subject.clone(), tpm));
            }
            if rates.concurrency.is_some() {
                e.inflight.fetch_add(1, Ordering::AcqRel);
                slots.push(e.inflight.clone());
            }
            undo.push(taken);
        }

        for g in guards.iter_mut() {
            sweep(g, now);
        }
        drop(guards);
        let held = (!charged.is_empty() || !slots.is_empty()).then(|| {
            Arc::new(Held {
                tokens: charged,
                slots: Slots::Local(slots),
            })
        });
        Ok(Admission {
            requests,
            tokens: token_window,
            held,
        })
    }

    pub(super) fn correct_tokens(&self, charged: &[(Subject, u32)], delta: i64) {
        let now = self.now();
        for (subject, tpm) in charged {
            let mut g = lock(&self.shards[self.shard(subject)]);
            let e = entry(&mut g.map, subject);
            let by = cost(delta.unsigned_abs(), *tpm);
            e.tat = if delta > 0 {
                e.tat.max(now).saturating_add(by)
            } else {
                e.tat.saturating_sub(by).max(now)
            };
        }
    }
}

/// Drops the idle subjects of a large shard, at most once a minute.
fn sweep(shard: &mut Shard, now: u64) {
    if shard.map.len() > SWEEP_ABOVE && now >= shard.next_sweep {
        shard.map.retain(|_, e| !e.idle(now));
        shard.next_sweep = now + MINUTE_NS;
    }
}

// `MINUTE` is the same minute as `MINUTE_NS`.
const _: () = assert!(MINUTE.as_nanos() == MINUTE_NS as u128);
