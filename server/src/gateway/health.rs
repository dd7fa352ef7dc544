//! Channel health as this replica sees it: a circuit breaker per channel (opens after
//! consecutive failures, half-opens after a cool-down), cool-downs from upstream 429
//! `retry-after`, and channels disabled after the upstream refused their credentials.
//! Per-replica state, as in Envoy and Kong; durable disables come with the admin console.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use weir_core::catalog::Target;

use crate::error::{ErrorKind, GatewayError};

pub const FAILURES_TO_OPEN: u32 = 5;
pub const OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Default, Debug)]
struct State {
    consecutive_failures: u32,
    /// Breaker open (or 429 cool-down) until then.
    resting_until: Option<Instant>,
    /// The upstream refused the channel's key; never tried again until restart or edit.
    disabled: bool,
}

#[derive(Default)]
pub struct ChannelHealth {
    states: Mutex<HashMap<i64, State>>,
}

impl ChannelHealth {
    /// Orders `targets` for trying: healthy channels first (keeping their order), then resting
    /// ones (so the last channel is never ejected entirely), never disabled ones; each channel
    /// once.
    pub fn plan(&self, targets: Vec<Target>) -> Vec<Target> {
        let now = Instant::now();
        let Ok(states) = self.states.lock() else {
            return targets;
        };
        let mut seen = Vec::with_capacity(targets.len());
        let (mut healthy, mut resting) = (Vec::new(), Vec::new());
        for t in targets {
            if seen.contains(&t.channel.id) {
                continue;
            }
            seen.push(t.channel.id);
            match states.get(&t.channel.id) {
                Some(s) if s.disabled => {}
                Some(State {
                    resting_until: Some(until),
                    ..
                }) if *until > now => resting.push(t),
                _ => healthy.push(t),
            }
        }
        healthy.extend(resting);
        healthy
    }

    /// Each channel's state as this replica sees it, in words, for the admin console:
    /// channels not listed are closed (healthy).
    pub fn describe(&self) -> HashMap<i64, String> {
        let now = Instant::now();
        let Ok(states) = self.states.lock() else {
            return HashMap::new();
        };
        states
            .iter()
            .map(|(id, s)| {
                let text = match s.resting_until {
                    _ if s.disabled => "disabled: credentials refused".to_owned(),
                    Some(until) if until > now => format!(
                        "open for {} s more ({} failures)",
                        (until - now).as_secs().max(1),
                        s.consecutive_failures
                    ),
                    _ if s.consecutive_failures > 0 => {
                        format!("closed ({} recent failures)", s.consecutive_failures)
                    }
                    _ => "closed".to_owned(),
                };
                (*id, text)
            })
            .collect()
    }

    pub fn record_success(&self, channel: i64) {
        if let Ok(mut s) = self.states.lock() {
            if let Some(st) = s.get_mut(&channel) {
                st.consecutive_failures = 0;
                st.resting_until = None;
            }
        }
    }

    /// Feeds an upstream failure. Client mistakes passed through from the upstream do not
    /// count against the channel.
    pub fn record_failure(&self, channel: i64, err: &GatewayError) {
        if !err.retryable && err.kind != ErrorKind::BadGateway {
            return;
        }
        let Ok(mut s) = self.states.lock() else {
            return;
        };
        let st = s.entry(channel).or_default();
        if err.code == Some("upstream_auth") {
            tracing::error!(
                channel,
                "upstream refused the channel's credentials; channel disabled"
            );
            st.disabled = true;
            return;
        }
        if err.kind == ErrorKind::UpstreamRateLimited {
            // A 429 is back-pressure, not a fault: rest for as long as asked, no breaker count.
            let secs = err.retry_after.unwrap_or(1).clamp(1, 300);
            st.resting_until = Some(Instant::now() + Duration::from_secs(secs));
            return;
        }
        st.consecutive_failures += 1;
        if st.consecutive_failures >= FAILURES_TO_OPEN {
            st.resting_until = Some(Instant::now() + OPEN_FOR);
            tracing::warn!(channel, "circuit breaker opened");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_core::catalog::{Capabilities, Channel, Model, ModelKind, Wire};

    fn target(id: i64) -> Target {
        Target {
            model: Arc::new(Model {
                id: "m".into(),
                provider_id: "p".into(),
                upstream_model: "m".into(),
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
            }),
            tariff: None,
        }
    }

    fn ids(v: &[Target]) -> Vec<i64> {
        v.iter().map(|t| t.channel.id).collect()
    }

    #[test]
    fn breaker_cooldown_and_disable() {
        let h = ChannelHealth::default();
        let all = || vec![target(1), target(2), target(1)];
        assert_eq!(ids(&h.plan(all())), vec![1, 2], "deduplicated");
        let fail = GatewayError::new(ErrorKind::BadGateway, "x").retryable(true);
        for _ in 0..FAILURES_TO_OPEN {
            h.record_failure(1, &fail);
        }
        assert_eq!(
            ids(&h.plan(all())),
            vec![2, 1],
            "open breaker goes last, not away"
        );
        h.record_success(1);
        assert_eq!(ids(&h.plan(all())), vec![1, 2]);
        let limited = GatewayError::new(ErrorKind::UpstreamRateLimited, "x")
            .retryable(true)
            .with_retry_after(Some(60));
        h.record_failure(2, &limited);
        assert_eq!(ids(&h.plan(all())), vec![1, 2]);
        h.record_failure(1, &limited);
        assert_eq!(ids(&h.plan(all())), vec![1, 2]);
        let mut auth = GatewayError::new(ErrorKind::BadGateway, "x").retryable(true);
        auth.code = Some("upstream_auth");
        h.record_failure(1, &auth);
        assert_eq!(ids(&h.plan(all())), vec![2]);
        let client = GatewayError::invalid("bad");
        h.record_failure(2, &client);
        assert_eq!(ids(&h.plan(vec![target(2)])), vec![2]);
    }
}
