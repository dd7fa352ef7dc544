//! Channel health as this replica sees it, and the retry budget.
//!
//! - A circuit breaker per (channel, model): **closed** until `failures_to_open` consecutive
//!   failures, or a failure rate of `failure_rate_percent` (default half) or more over at
//!   least [`RATE_MIN_REQUESTS`] requests in a [`RATE_WINDOW`]; then **open** for the cool-down, when the pair gets no traffic at
//!   all; then **half-open**: the first request to come claims a single probe, the others pass
//!   it by; the probe's success closes the breaker, its failure opens it for another
//!   cool-down. A probe that never reports (its client went away) frees the slot after one
//!   cool-down.
//! - A 429 rests the channel (all its models) for its `retry-after` (1 s to 5 min), without a
//!   breaker count (back-pressure, not a fault): other channels are tried first, and a resting
//!   one only when no other is left, so the upstream, not a guess, decides when it is over.
//! - A channel whose credentials the upstream refused is skipped until restart or edit.
//! - Retries draw on a budget ([`tower::retry::budget::TpsBudget`]): every request deposits,
//!   every retry withdraws, so during a full outage upstreams see at most the requests plus
//!   `retry_budget_percent` of them plus a small floor ([`RETRY_FLOOR_PER_SEC`] over
//!   [`BUDGET_TTL`]).
//!
//! Per-replica state, as in Envoy and Kong: each replica learns an upstream's health from its
//! own traffic.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tower::retry::budget::{Budget, TpsBudget};
use weir_core::catalog::Target;

use crate::error::{ErrorKind, GatewayError};

/// The window over which the failure rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(30);
/// Fewest requests in a window for its failure rate to open the breaker.
pub const RATE_MIN_REQUESTS: u32 = 20;
/// How long a deposit counts in the retry budget.
pub const BUDGET_TTL: Duration = Duration::from_secs(10);
/// Retries allowed per second whatever the traffic (for quiet replicas).
pub const RETRY_FLOOR_PER_SEC: u32 = 1;

/// Breaker and budget settings (`WEIR_BREAKER_FAILURES`, `WEIR_BREAKER_FAILURE_RATE_PERCENT`,
/// `WEIR_BREAKER_COOLDOWN_MS`, `WEIR_RETRY_BUDGET_PERCENT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResiliencePolicy {
    pub failures_to_open: u32,
    /// Failure share (percent) over a window that opens the breaker; 0 turns it off.
    pub failure_rate_percent: u32,
    pub cooldown: Duration,
    /// Retries allowed, in percent of requests over [`BUDGET_TTL`].
    pub retry_budget_percent: u32,
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        ResiliencePolicy {
            failures_to_open: 5,
            failure_rate_percent: 50,
            cooldown: Duration::from_secs(30),
            retry_budget_percent: 20,
        }
    }
}

/// A breaker's state, as shown to the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
struct Breaker {
    consecutive_failures: u32,
    window_start: Instant,
    window_requests: u32,
    window_failures: u32,
    /// Open until then; after it, half-open.
    open_until: Option<Instant>,
    /// When the half-open probe was handed out, while it has not reported.
    probe_since: Option<Instant>,
}

impl Breaker {
    fn new(now: Instant) -> Breaker {
        Breaker {
            consecutive_failures: 0,
            window_start: now,
            window_requests: 0,
            window_failures: 0,
            open_until: None,
            probe_since: None,
        }
    }

    fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if until > now => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a probe may go now (half-open, and no probe out, or one out for too long).
    fn probe_free(&self, now: Instant, cooldown: Duration) -> bool {
        self.probe_since
            .is_none_or(|since| now.duration_since(since) >= cooldown)
    }

    fn count(&mut self, now: Instant, failed: bool) {
        if now.duration_since(self.window_start) >= RATE_WINDOW {
            self.window_start = now;
            self.window_requests = 0;
            self.window_failures = 0;
        }
        self.window_requests += 1;
        self.window_failures += u32::from(failed);
    }
}

#[derive(Default, Debug)]
struct ChannelState {
    /// Resting after a 429 until then.
    rate_limited_until: Option<Instant>,
    /// The upstream refused the channel's key.
    disabled: bool,
}

#[derive(Default, Debug)]
struct States {
    channels: HashMap<i64, ChannelState>,
    /// Breakers by channel, then model id (looked up without allocating).
    breakers: HashMap<i64, HashMap<String, Breaker>>,
}

/// One breaker, for the operator's health page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerView {
    pub channel_id: i64,
    pub model_id: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
}

pub struct ChannelHealth {
    policy: ResiliencePolicy,
    states: Mutex<States>,
    budget: TpsBudget,
}

impl Default for ChannelHealth {
    fn default() -> Self {
        ChannelHealth::new(ResiliencePolicy::default())
    }
}

impl ChannelHealth {
    pub fn new(policy: ResiliencePolicy) -> ChannelHealth {
        // Not money: the budget's share is a ratio of request counts.
        #[allow(clippy::cast_precision_loss)]
        let share = policy.retry_budget_percent.min(1000) as f32 / 100.0;
        ChannelHealth {
            policy,
            states: Mutex::new(States::default()),
            budget: TpsBudget::new(BUDGET_TTL, RETRY_FLOOR_PER_SEC, share),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, States> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The candidates worth trying, in order, each channel once: those a request may use now
    /// (closed breakers, and half-open ones whose probe is free, after them). None left → a
    /// 503 saying when to come back.
    pub fn plan(&self, targets: Vec<Target>) -> Result<Vec<Target>, GatewayError> {
        let now = Instant::now();
        let cooldown = self.policy.cooldown;
        let states = self.lock();
        let mut seen: Vec<(i64, Arc<weir_core::catalog::Model>)> =
            Vec::with_capacity(targets.len());
        let (mut closed, mut probes, mut resting) = (Vec::new(), Vec::new(), Vec::new());
        let mut back_in: Option<Duration> = None;
        let mut soonest = |d: Duration| back_in = Some(back_in.map_or(d, |b| b.min(d)));
        for t in targets {
            // The same model on the same channel once (a fallback list may name a model
            // twice); one channel may still serve several models of a request.
            if seen
                .iter()
                .any(|(c, m)| *c == t.channel.id && m.id == t.model.id)
            {
                continue;
            }
            seen.push((t.channel.id, t.model.clone()));
            if let Some(ch) = states.channels.get(&t.channel.id) {
                if ch.disabled {
                    continue;
                }
                if ch.rate_limited_until.is_some_and(|u| u > now) {
                    resting.push(t);
                    continue;
                }
            }
            let breaker = states
                .breakers
                .get(&t.channel.id)
                .and_then(|m| m.get(t.model.id.as_str()));
            match breaker {
                None => closed.push(t),
                Some(b) => match b.state(now) {
                    BreakerState::Closed => closed.push(t),
                    BreakerState::Open => {
                        soonest(b.open_until.map_or(cooldown, |u| u - now));
                    }
                    BreakerState::HalfOpen if b.probe_free(now, cooldown) => probes.push(t),
                    BreakerState::HalfOpen => soonest(Duration::from_secs(1)),
                },
            }
        }
        closed.extend(probes);
        closed.extend(resting);
        if closed.is_empty() {
            let secs = back_in.map_or(5, |d| d.as_secs().max(1));
            return Err(GatewayError::new(
                ErrorKind::Unavailable,
                "No channel can serve this model right now.",
            )
            .with_retry_after(Some(secs)));
        }
        Ok(closed)
    }

    /// Called right before an attempt: whether it may go. Claims the probe of a half-open
    /// breaker (so only one request tests a recovering upstream).
    pub fn admit(&self, t: &Target) -> bool {
        let now = Instant::now();
        let cooldown = self.policy.cooldown;
        let mut states = self.lock();
        let Some(b) = states
            .breakers
            .get_mut(&t.channel.id)
            .and_then(|m| m.get_mut(t.model.id.as_str()))
        else {
            return true;
        };
        match b.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if b.probe_free(now, cooldown) => {
                b.probe_since = Some(now);
                tracing::info!(
                    channel = t.channel.id,
                    model = %t.model.id,
                    "circuit breaker half-open: sending a probe"
                );
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    /// Every request deposits into the retry budget once.
    pub fn deposit(&self) {
        self.budget.deposit();
    }

    /// Whether a retry may go; takes it from the budget.
    pub fn retry_allowed(&self) -> bool {
        let ok = self.budget.withdraw();
        if !ok {
            tracing::warn!("retry budget exhausted: not retrying");
        }
        ok
    }

    /// Gives back a probe claimed by [`admit`](Self::admit) that was not sent.
    pub fn release(&self, t: &Target) {
        if let Some(b) = self
            .lock()
            .breakers
            .get_mut(&t.channel.id)
            .and_then(|m| m.get_mut(t.model.id.as_str()))
        {
            b.probe_since = None;
        }
    }

    pub fn record_success(&self, channel: i64, model: &str) {
        let now = Instant::now();
        let mut states = self.lock();
        if let Some(ch) = states.channels.get_mut(&channel) {
            ch.rate_limited_until = None;
        }
        if let Some(b) = states
            .breakers
            .get_mut(&channel)
            .and_then(|m| m.get_mut(model))
        {
            if b.open_until.is_some() {
                tracing::info!(channel, model, "circuit breaker closed");
            }
            b.count(now, false);
            b.consecutive_failures = 0;
            b.open_until = None;
            b.probe_since = None;
        }
    }

    /// Feeds an upstream failure. Client mistakes passed through from the upstream do not
    /// count against the channel.
    pub fn record_failure(&self, channel: i64, model: &str, err: &GatewayError) {
        if !err.retryable && err.kind != ErrorKind::BadGateway {
            return;
        }
        let now = Instant::now();
        let policy = self.policy;
        let mut states = self.lock();
        if err.code == Some("upstream_auth") {
            tracing::error!(
                channel,
                "upstream refused the channel's credentials; channel disabled"
            );
            states.channels.entry(channel).or_default().disabled = true;
            return;
        }
        if err.kind == ErrorKind::UpstreamRateLimited {
            let secs = err.retry_after.unwrap_or(1).clamp(1, 300);
            states
                .channels
                .entry(channel)
                .or_default()
                .rate_limited_until = Some(now + Duration::from_secs(secs));
            return;
        }
        let b = states
            .breakers
            .entry(channel)
            .or_default()
            .entry(model.to_owned())
            .or_insert_with(|| Breaker::new(now));
        b.count(now, true);
        b.consecutive_failures += 1;
        let was = b.state(now);
        let rate_tripped = policy.failure_rate_percent > 0
            && b.window_requests >= RATE_MIN_REQUESTS
            && u64::from(b.window_failures) * 100
                >= u64::from(b.window_requests) * u64::from(policy.failure_rate_percent);
        let trip = match was {
            // The probe failed: another cool-down.
            BreakerState::HalfOpen => true,
            BreakerState::Open => false,
            BreakerState::Closed => {
                b.consecutive_failures >= policy.failures_to_open || rate_tripped
            }
        };
        if trip {
            b.open_until = Some(now + policy.cooldown);
            b.probe_since = None;
            tracing::warn!(
                channel,
                model,
                failures = b.consecutive_failures,
                "circuit breaker opened"
            );
        }
    }

    /// Each channel's state as this replica sees it, in words, for the admin console:
    /// channels not listed are healthy (every breaker closed).
    pub fn describe(&self) -> HashMap<i64, String> {
        let now = Instant::now();
        let states = self.lock();
        let mut out: HashMap<i64, String> = HashMap::new();
        for (id, ch) in &states.channels {
            if ch.disabled {
                out.insert(*id, "disabled: credentials refused".to_owned());
            } else if let Some(until) = ch.rate_limited_until.filter(|u| *u > now) {
                let secs = (until - now).as_secs().max(1);
                out.insert(*id, format!("rate-limited for {secs} s more"));
            }
        }
        for (id, models) in &states.breakers {
            if out.contains_key(id) {
                continue;
            }
            let mut parts: Vec<String> = models
                .iter()
                .filter_map(|(model, b)| match b.state(now) {
                    BreakerState::Closed if b.consecutive_failures == 0 => None,
                    BreakerState::Closed => Some(format!(
                        "{model}: closed ({} recent failures)",
                        b.consecutive_failures
                    )),
                    BreakerState::Open => Some(format!(
                        "{model}: open for {} s more ({} failures)",
                        b.open_until.map_or(0, |u| (u - now).as_secs().max(1)),
                        b.consecutive_failures
                    )),
                    BreakerState::HalfOpen => Some(format!("{model}: half-open (probing)")),
                })
                .collect();
            if !parts.is_empty() {
                parts.sort();
                out.insert(*id, parts.join("; "));
            }
        }
        out
    }

    /// Every breaker that has seen a failure, for the operator.
    pub fn breakers(&self) -> Vec<BreakerView> {
        let now = Instant::now();
        let states = self.lock();
        let mut out: Vec<BreakerView> = states
            .breakers
            .iter()
            .flat_map(|(channel, models)| {
                models.iter().map(move |(model, b)| BreakerView {
                    channel_id: *channel,
                    model_id: model.clone(),
                    state: b.state(now),
                    consecutive_failures: b.consecutive_failures,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.channel_id, &a.model_id).cmp(&(b.channel_id, &b.model_id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_core::catalog::{Capabilities, Channel, Model, ModelKind, Wire};

    fn target(id: i64, model: &str) -> Target {
        Target {
            model: Arc::new(Model {
                id: model.into(),
                provider_id: "p".into(),
                upstream_model: model.into(),
                kind: ModelKind::Chat,
                context_window: 1,
                max_output_tokens: None,
                capabilities: Capabilities::default(),
                modalities: Default::default(),
                tariff: None,
                created_at: 0,
            }),
            channel: Arc::new(Channel {
                id,
                provider_id: "p".into(),
                name: format!("c{id}"),
                base_url: String::new(),
                wire: Wire::OpenAi,
                api_key: None,
                priority: 0,
                weight: 1,
                is_local: false,
                quota: Default::default(),
            }),
            tariff: Default::default(),
        }
    }

    fn ids(v: &[Target]) -> Vec<i64> {
        v.iter().map(|t| t.channel.id).collect()
    }

    fn health(cooldown_ms: u64) -> ChannelHealth {
        ChannelHealth::new(ResiliencePolicy {
            failures_to_open: 3,
            cooldown: Duration::from_millis(cooldown_ms),
            ..ResiliencePolicy::default()
        })
    }

    fn fail() -> GatewayError {
        GatewayError::new(ErrorKind::BadGateway, "x").retryable(true)
    }

    #[test]
    fn breaker_opens_ejects_then_one_probe_closes_it() {
        let h = health(50);
        let all = || vec![target(1, "m"), target(2, "m"), target(1, "m")];
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![1, 2], "deduplicated");
        for _ in 0..3 {
            h.record_failure(1, "m", &fail());
        }
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![2], "open: no traffic");
        // Per model: the channel's other models are unaffected.
        assert_eq!(ids(&h.plan(vec![target(1, "other")]).unwrap()), vec![1]);
        let e = h.plan(vec![target(1, "m")]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.retry_after.is_some_and(|s| s >= 1));

        std::thread::sleep(Duration::from_millis(60));
        // Half-open: offered after the closed ones, and only one request gets the probe.
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![2, 1]);
        assert!(h.admit(&target(1, "m")));
        assert!(!h.admit(&target(1, "m")), "one probe at a time");
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![2]);
        // The probe fails: open again.
        h.record_failure(1, "m", &fail());
        assert_eq!(h.breakers()[0].state, BreakerState::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert!(h.admit(&target(1, "m")));
        h.record_success(1, "m");
        assert_eq!(h.breakers()[0].state, BreakerState::Closed);
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![1, 2]);
    }

    #[test]
    fn an_unreported_probe_frees_its_slot_after_a_cooldown() {
        let h = health(30);
        for _ in 0..3 {
            h.record_failure(1, "m", &fail());
        }
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.admit(&target(1, "m")));
        assert!(!h.admit(&target(1, "m")));
        h.release(&target(1, "m"));
        assert!(h.admit(&target(1, "m")), "released");
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.admit(&target(1, "m")), "abandoned probe timed out");
    }

    #[test]
    fn failure_rate_opens_without_consecutive_failures() {
        let h = ChannelHealth::new(ResiliencePolicy {
            failures_to_open: 1000,
            ..ResiliencePolicy::default()
        });
        // Counted from the pair's first failure (healthy pairs keep no state).
        for _ in 0..(RATE_MIN_REQUESTS / 2) {
            h.record_failure(1, "m", &fail());
            h.record_success(1, "m");
        }
        assert_eq!(
            h.breakers()[0].state,
            BreakerState::Closed,
            "under 20 requests at the last failure"
        );
        h.record_failure(1, "m", &fail());
        assert_eq!(h.breakers()[0].state, BreakerState::Open, "11 of 21 failed");
    }

    #[test]
    fn rate_limits_rest_the_channel_and_credentials_disable_it() {
        let h = health(1000);
        let all = || vec![target(1, "m"), target(2, "m")];
        let limited = GatewayError::new(ErrorKind::UpstreamRateLimited, "x")
            .retryable(true)
            .with_retry_after(Some(60));
        h.record_failure(1, "m", &limited);
        assert_eq!(
            ids(&h.plan(all()).unwrap()),
            vec![2, 1],
            "1 rests: after the others"
        );
        assert!(h.breakers().is_empty(), "a 429 is no breaker failure");
        h.record_failure(2, "m", &limited);
        assert_eq!(
            ids(&h.plan(all()).unwrap()),
            vec![1, 2],
            "both resting: last, not away"
        );
        h.record_success(2, "m");
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![2, 1], "2 answered again");
        let mut auth = fail();
        auth.code = Some("upstream_auth");
        h.record_failure(1, "m", &auth);
        assert_eq!(ids(&h.plan(all()).unwrap()), vec![2]);
        h.record_failure(2, "m", &auth);
        assert!(h.plan(all()).is_err());
        // Client mistakes passed through do not count.
        h.record_failure(3, "m", &GatewayError::invalid("bad"));
        assert!(h.breakers().is_empty());
    }

    #[test]
    fn the_retry_budget_is_a_share_of_requests() {
        let h = ChannelHealth::new(ResiliencePolicy {
            retry_budget_percent: 20,
            ..ResiliencePolicy::default()
        });
        for _ in 0..100 {
            h.deposit();
        }
        let retries = (0..100).filter(|_| h.retry_allowed()).count();
        // 20% of 100, plus the floor of 1 per second over the 10 s window.
        assert!((20..=31).contains(&retries), "{retries}");
    }
}
