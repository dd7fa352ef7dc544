//! Per-key, per-team and per-channel limits: requests per minute, tokens per minute and
//! concurrent requests, checked and taken in one step for every subject of a request.
//!
//! A [`Limiter`] is either in-process ([`Limiter::in_process`], one replica's own counts) or
//! shared by every replica through Redis ([`Limiter::redis`]). Both give the same answers.
//!
//! # What is limited
//!
//! [`Limiter::admit`] takes, for each `(subject, rates)` it is given, one request, the request's
//! estimated tokens and one concurrency slot, *all or nothing*: if any subject refuses, nothing is
//! taken from any of them. Subjects whose rates are all `None` are skipped without a lock, an
//! allocation or a Redis round trip (keys without limits are the common case), and an admit in
//! which no subject has a limit is free.
//!
//! * **Requests per minute: a sliding-window log.** Each subject keeps the instants of its
//!   admissions of the last 60 s; a request is admitted while fewer than `rpm` are in the log, so
//!   no 60 s window ever holds more than `rpm` (a GCRA with a burst of `rpm` lets about twice
//!   that through in a minute). An entry counts while it is younger than 60 s. `remaining` is
//!   `rpm` less the count including this request; `reset` and a refusal's `retry_after` are the
//!   time until the oldest entry leaves the window.
//! * **Tokens per minute: GCRA** (a token bucket written as a "theoretical arrival time", TAT).
//!   The bucket holds `tpm` tokens and refills one token every `60 s / tpm`. A request costing
//!   `n` (its estimate) moves the TAT `n` intervals later, from `max(TAT, now)`; it fits while the
//!   TAT stays within 60 s of now. `remaining` is what the bucket still holds, `reset` the time
//!   until it is full again, `retry_after` the time until the cost fits. A cost larger than the
//!   whole bucket never fits: it is refused at once (see [`Refusal::exceeds_capacity`]).
//!   [`Limiter::correct_tokens`] moves the TAT by `actual - estimated` after settlement: later
//!   for more, earlier for fewer, but never before now (a bucket never holds more than `tpm`).
//!   In-process this is a small GCRA of its own rather than `governor`'s, because `governor`
//!   cannot give tokens back.
//! * **Concurrency: slots** held by the returned [`Admission`] and freed when it is dropped (or
//!   [`Admission::finish`]ed), which is when the response stream ends.
//!
//! # In-process
//!
//! A map from subject to its state, split in shards each behind a `std::sync::Mutex`. An admit
//! locks the shards of its subjects in index order (so two admits never deadlock), checks and
//! takes subject by subject, and on a refusal puts back what it took before unlocking; nobody can
//! see the half-taken state. The request log is a `VecDeque` of admission instants, never longer
//! than `rpm`. A concurrency count is an atomic shared with the admissions holding its slots, so
//! freeing a slot takes no lock. Idle subjects are swept out of a shard once it grows large.
//!
//! # Redis
//!
//! Keys, all under `weir:rl:` (a subject is whatever short string the caller names, e.g.
//! `k:<api_key_id>`):
//!
//! | key | type | content | expiry |
//! | --- | --- | --- | --- |
//! | `weir:rl:req:<subject>` | ZSET | one member per admission, score = its time (ms) | 61 s |
//! | `weir:rl:tok:<subject>` | string | the TAT, µs since the Unix epoch | when the bucket is full + 1 s |
//! | `weir:rl:cc:<subject>` | ZSET | one member per slot (a lease), score = its expiry (ms) | 10 min |
//!
//! One admit is **one round trip**: one `EVALSHA` of a Lua script given all the keys of all its
//! limited subjects (three per subject) and their rates. The script runs atomically in Redis, so
//! all or nothing holds across replicas exactly as it does in-process: it checks and takes
//! subject by subject and, on a refusal, undoes what it took before returning. Time is Redis's
//! own `TIME`, so the replicas' clocks do not matter. A lease expires after 10 minutes, so the
//! slots of a replica that died come back on their own; a live one frees its leases with a
//! `ZREM` from a background task when the admission is dropped (a stream longer than 10 minutes
//! stops counting against the limit after that). Token corrections are likewise a script run in
//! the background; neither ever blocks the caller.
//!
//! The connection is opened lazily on first use and re-opened by `redis`'s `ConnectionManager`.
//!
//! # When Redis is unreachable
//!
//! Every call has a 250 ms timeout. A call that fails or times out, and every admit in the second
//! after it (so that an outage does not add 250 ms to every request), is decided by the
//! [`FailMode`]: `Open` admits as if there were no limits, `Closed` refuses with
//! [`Which::Unavailable`] and a `retry_after` of 1 s (render it as 503). Either way
//! [`Limiter::health`] reports the outage, and a warning is logged at most once every 10 s. The
//! first call that succeeds again ends it; nothing needs restarting.

mod local;
mod shared;
#[cfg(test)]
mod tests;

use std::{fmt, sync::Arc, time::Duration};

use local::Local;
use shared::Shared;

/// What a subject is: `"k:<api_key_id>"`, `"t:<team_id>"`, `"c:<channel_id>"` (any short string).
pub type Subject = Arc<str>;

/// A subject's limits; `None` is no limit (and `Some(0)` refuses everything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub concurrency: Option<u32>,
}

impl Rates {
    /// No limit at all: such a subject costs nothing to admit.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.concurrency.is_none()
    }
}

/// One window's state for the response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

impl Window {
    /// The tighter of two windows: fewer remaining, then the later reset.
    fn tighter(a: Option<Window>, b: Option<Window>) -> Option<Window> {
        match (a, b) {
            (Some(a), Some(b)) => Some(
                if (b.remaining, std::cmp::Reverse(b.reset))
                    < (a.remaining, std::cmp::Reverse(a.reset))
                {
                    b
                } else {
                    a
                },
            ),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

/// An admitted request: the tightest windows for the headers, and what it holds.
///
/// It holds the request's concurrency slots until it is dropped (or [`finish`](Self::finish)ed);
/// clones share them, and they are freed when the last clone goes. It is `Send + 'static`.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
    held: Option<Arc<Held>>,
}

impl Admission {
    /// Frees the concurrency slots now (the same as dropping it).
    pub fn finish(self) {}
}

/// What an admission took that is given back or corrected later.
struct Held {
    /// The subjects whose tokens were taken, with their `tpm`, for [`Limiter::correct_tokens`].
    tokens: Vec<(Subject, u32)>,
    slots: Slots,
}

enum Slots {
    Local(Vec<Arc<std::sync::atomic::AtomicU32>>),
    Redis(shared::Leases),
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = match &self.slots {
            Slots::Local(s) => s.len(),
            Slots::Redis(l) => l.len(),
        };
        f.debug_struct("Held")
            .field("tokens", &self.tokens)
            .field("slots", &slots)
            .finish()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        match &mut self.slots {
            Slots::Local(counters) => {
                for c in counters.iter() {
                    c.fetch_sub(1, std::sync::atomic::Ordering::Release);
                }
            }
            Slots::Redis(leases) => leases.release(),
        }
    }
}

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Requests,
    Tokens,
    Concurrency,
    /// Redis could not be asked and the limiter fails closed: render as 503.
    Unavailable,
}

/// A refused request: who refused, on which limit, and when to come back.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub subject: Subject,
    pub which: Which,
    /// The refusing limit (rpm, tpm or concurrency); 0 for `Unavailable`.
    pub limit: u64,
    /// Always > 0.
    pub retry_after: Duration,
    /// The refusing subject's windows as they stand (nothing was taken).
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
    /// What the request asked of that limit: 1 request or slot, or its estimated tokens.
    pub requested: u64,
}

impl Refusal {
    /// The request's token estimate is more than the whole per-minute limit: it can never be
    /// admitted, whatever it waits (render as 400 rather than 429).
    pub fn exceeds_capacity(&self) -> bool {
        self.which == Which::Tokens && self.requested > self.limit
    }

    /// `retry_after` in whole seconds, rounded up, at least 1 (for a `Retry-After` header).
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    fn unavailable(subject: Subject) -> Refusal {
        Refusal {
            subject,
            which: Which::Unavailable,
            limit: 0,
            retry_after: Duration::from_secs(1),
            requests: None,
            tokens: None,
            requested: 1,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.which {
            Which::Tokens if self.exceeds_capacity() => write!(
                f,
                "this request needs about {} tokens, more than the limit of {} tokens per minute",
                self.requested, self.limit
            ),
            Which::Requests => write!(
                f,
                "rate limit of {} requests per minute reached; retry in {} s",
                self.limit,
                self.retry_after_secs()
            ),
            Which::Tokens => write!(
                f,
                "rate limit of {} tokens per minute reached; retry in {} s",
                self.limit,
                self.retry_after_secs()
            ),
            Which::Concurrency => write!(
                f,
                "limit of {} concurrent requests reached; retry when one finishes",
                self.limit
            ),
            Which::Unavailable => write!(f, "rate limiting is unavailable; retry shortly"),
        }
    }
}

/// What a Redis limiter does while Redis cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Admit as if there were no limits.
    Open,
    /// Refuse with [`Which::Unavailable`].
    Closed,
}

/// The limiter; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

enum Inner {
    Local(Local),
    Redis(Shared),
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Local(_) => f.write_str("Limiter(in-process)"),
            Inner::Redis(s) => write!(f, "Limiter(redis, {:?})", s.fail_mode()),
        }
    }
}

impl Limiter {
    /// Counts kept in this process only.
    pub fn in_process() -> Limiter {
        Limiter {
            inner: Arc::new(Inner::Local(Local::new())),
        }
    }

    /// Counts shared through the Redis at `url` (`redis://[:password@]host[:port][/db]`).
    /// Connects lazily; never fails at construction (Redis down at start is the same as down
    /// later). A URL that cannot be parsed is an `Err`.
    pub fn redis(url: &str, fail: FailMode) -> Result<Limiter, String> {
        Ok(Limiter {
            inner: Arc::new(Inner::Redis(Shared::new(url, fail)?)),
        })
    }

    /// Checks and takes, for every `(subject, rates)` given: one request, `tokens` tokens and one
    /// concurrency slot, all or nothing. Returns the tightest requests window and the tightest
    /// tokens window among the subjects, for the headers.
    pub async fn admit(
        &self,
        subjects: &[(Subject, Rates)],
        tokens: u64,
    ) -> Result<Admission, Refusal> {
        if subjects.iter().all(|(_, r)| r.is_unlimited()) {
            return Ok(Admission::default());
        }
        if let Some(refusal) = never(subjects, tokens) {
            return Err(refusal);
        }
        match &*self.inner {
            Inner::Local(local) => local.admit(subjects, tokens),
            Inner::Redis(shared) => shared.admit(subjects, tokens).await,
        }
    }

    /// After settlement: moves the token buckets of the admission's subjects by
    /// `actual - estimated` (negative gives tokens back). Never blocks: with Redis it runs on a
    /// background task.
    pub fn correct_tokens(&self, admission: &Admission, delta: i64) {
        let Some(held) = &admission.held else { return };
        if delta == 0 || held.tokens.is_empty() {
            return;
        }
        match &*self.inner {
            Inner::Local(local) => local.correct_tokens(&held.tokens, delta),
            Inner::Redis(shared) => shared.correct_tokens(&held.tokens, delta),
        }
    }

    /// For `/ready`: `Ok`, or why not (`"redis unreachable: …, failing open"`). Reflects the last
    /// call to Redis; when there has been none lately it starts a background `PING` (so an idle
    /// replica learns of an outage by the next check) and reports the last known state.
    pub fn health(&self) -> Result<(), String> {
        match &*self.inner {
            Inner::Local(_) => Ok(()),
            Inner::Redis(shared) => shared.health(),
        }
    }

    /// Waits (at most about a second) for the background releases and corrections sent so far,
    /// e.g. at shutdown. A no-op in-process.
    pub async fn flush(&self) {
        if let Inner::Redis(shared) = &*self.inner {
            shared.flush().await;
        }
    }
}

/// A request that no waiting can admit: a token estimate above some subject's whole
/// per-minute capacity, or a limit of 0. Refused before any lock or round trip, so the backends
/// only see limits of at least 1.
fn never(subjects: &[(Subject, Rates)], tokens: u64) -> Option<Refusal> {
    subjects.iter().find_map(|(subject, rates)| {
        let (which, limit) = if rates.rpm == Some(0) {
            (Which::Requests, 0)
        } else if let Some(tpm) = rates.tpm.filter(|&t| t == 0 || tokens > u64::from(t)) {
            (Which::Tokens, u64::from(tpm))
        } else if rates.concurrency == Some(0) {
            (Which::Concurrency, 0)
        } else {
            return None;
        };
        Some(Refusal {
            subject: subject.clone(),
            which,
            limit,
            retry_after: MINUTE,
            requests: None,
            tokens: None,
            requested: if which == Which::Tokens { tokens } else { 1 },
        })
    })
}

/// The refusing limit among a subject's: the one with the longest wait.
#[derive(Clone, Copy)]
struct Verdict {
    which: Which,
    limit: u64,
    retry_after: Duration,
    requested: u64,
}

impl Verdict {
    fn worse(current: Option<Verdict>, next: Verdict) -> Option<Verdict> {
        match current {
            Some(c) if c.retry_after >= next.retry_after => Some(c),
            _ => Some(next),
        }
    }
}

/// One minute, the window of both per-minute limits.
const MINUTE: Duration = Duration::from_secs(60);
/// What a concurrency refusal suggests waiting.
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);
