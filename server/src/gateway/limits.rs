//! Limits in the request path: the models a key may use, then its and its team's requests,
//! tokens and concurrency per minute (the [`Limiter`](crate::limits::Limiter)), checked after
//! the model resolves and before any money is held or anything is sent upstream. Spend caps are
//! checked by the reservation itself (`weir_core::limits`).
//!
//! Every answer of a limited key carries the tightest windows as headers, refusals and
//! successes alike: OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (resets as
//! Go-style durations, `1s`, `6m0s`, `250ms`), or Anthropic's `anthropic-ratelimit-*` (resets
//! as RFC 3339 instants) on Anthropic's surface, and `x-weir-key-remaining` (dollars) when a
//! spend cap applies. Keys without limits pay for none of this: one `Option` check.

use std::{sync::Arc, time::Duration};

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue},
    response::Response,
};
use weir_core::{
    catalog::Target,
    limits::{Limits, Scope},
    money::Micros,
};

use super::{finish::Finaliser, Gateway};
use crate::{
    canonical::Wire,
    error::{ErrorKind, GatewayError},
    limits::{Rates, Refusal, Subject, Which, Window},
};

/// What the response headers say about the caller's limits.
#[derive(Clone, Debug, Default)]
pub struct RateHeaders {
    requests: Option<Window>,
    tokens: Option<Window>,
    /// What the tightest spend cap still allows.
    pub key_remaining: Option<Micros>,
}

impl RateHeaders {
    fn set(&mut self, requests: Option<Window>, tokens: Option<Window>) {
        self.requests = requests;
        self.tokens = tokens;
    }

    /// Adds the headers to a response in the client's naming.
    pub fn apply(&self, resp: &mut Response, client: Wire) {
        if self.requests.is_none() && self.tokens.is_none() && self.key_remaining.is_none() {
            return;
        }
        let h = resp.headers_mut();
        for (what, w) in [("requests", self.requests), ("tokens", self.tokens)] {
            if let Some(w) = w {
                window_headers(h, client, what, &w);
            }
        }
        if let Some(m) = self.key_remaining {
            insert(h, "x-weir-key-remaining".to_owned(), m.to_string());
        }
    }
}

fn insert(h: &mut HeaderMap, name: String, value: String) {
    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        h.insert(n, v);
    }
}

fn window_headers(h: &mut HeaderMap, client: Wire, what: &str, w: &Window) {
    if client == Wire::Anthropic {
        let reset = chrono::Utc::now()
            + chrono::Duration::from_std(w.reset).unwrap_or_else(|_| chrono::Duration::zero());
        let p = format!("anthropic-ratelimit-{what}");
        insert(h, format!("{p}-limit"), w.limit.to_string());
        insert(h, format!("{p}-remaining"), w.remaining.to_string());
        insert(
            h,
            format!("{p}-reset"),
            reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    } else {
        insert(h, format!("x-ratelimit-limit-{what}"), w.limit.to_string());
        insert(
            h,
            format!("x-ratelimit-remaining-{what}"),
            w.remaining.to_string(),
        );
        insert(h, format!("x-ratelimit-reset-{what}"), go_duration(w.reset));
    }
}

/// A duration as OpenAI writes its resets: `250ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let s_ms = ms % 60_000;
    let secs = if s_ms.is_multiple_of(1000) {
        format!("{}s", s_ms / 1000)
    } else {
        let frac = format!("{:03}", s_ms % 1000);
        format!("{}.{}s", s_ms / 1000, frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// The candidates the caller's key and team may use; a 403 when none is left.
pub fn allowed(
    limits: Option<&Arc<Limits>>,
    requested: &str,
    targets: Vec<Target>,
) -> Result<Vec<Target>, GatewayError> {
    let Some(l) = limits else {
        return Ok(targets);
    };
    if l.key.models.is_none() && l.team.models.is_none() {
        return Ok(targets);
    }
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| l.allows(requested, &t.model.id))
        .collect();
    if targets.is_empty() {
        let shown: String = requested.chars().take(200).collect();
        return Err(GatewayError::new(
            ErrorKind::PermissionDenied,
            format!("This API key is not allowed to use the model `{shown}`."),
        )
        .with_param("model")
        .with_code("model_not_allowed"));
    }
    Ok(targets)
}

fn rates(r: &weir_core::limits::Rules) -> Rates {
    Rates {
        rpm: r.rpm,
        tpm: r.tpm,
        concurrency: r.concurrency,
    }
}

/// Takes one request, `tokens` and a concurrency slot from the key's and team's limits (all or
/// nothing), keeping the admission on the finaliser until the request ends.
pub async fn admit(
    gw: &Gateway,
    fin: &mut Finaliser,
    tokens: u64,
    headers: &mut RateHeaders,
) -> Result<(), GatewayError> {
    let Some(limits) = fin.limits().cloned() else {
        return Ok(());
    };
    let Some((_, team_id, key_id)) = fin.identity() else {
        return Ok(());
    };
    let (k, t) = (rates(&limits.key), rates(&limits.team));
    if k.is_unlimited() && t.is_unlimited() {
        return Ok(());
    }
    let ns = &gw.limit_ns;
    let subjects: [(Subject, Rates); 2] = [
        (Subject::from(format!("{ns}k:{key_id}")), k),
        (Subject::from(format!("{ns}t:{team_id}")), t),
    ];
    match gw.limiter.admit(&subjects, tokens).await {
        Ok(a) => {
            headers.set(a.requests, a.tokens);
            fin.admission = Some((a, tokens));
            Ok(())
        }
        Err(r) => {
            headers.set(
                r.requests.or(zero_window(&r, Which::Requests)),
                r.tokens.or(zero_window(&r, Which::Tokens)),
            );
            Err(refusal_error(&r))
        }
    }
}

/// Applies the operators' upstream quotas: the first candidates whose channel is at its quota
/// are dropped (the request spills to the next channel), and the first one with room is
/// counted against its quota. Only the first choice is checked: a failover after an upstream
/// failure goes to the next candidate as planned. Nothing left: a 429 saying when a quota has
/// room again, before anything is held or sent.
pub async fn spill(
    gw: &Gateway,
    fin: &mut Finaliser,
    mut plan: Vec<Target>,
    tokens: u64,
) -> Result<Vec<Target>, GatewayError> {
    let mut wait: Option<std::time::Duration> = None;
    while let Some(t) = plan.first() {
        let q = t.channel.quota;
        if q.is_none() {
            break;
        }
        let subject = Subject::from(format!("{}c:{}", gw.limit_ns, t.channel.id));
        let rates = Rates {
            rpm: q.rpm,
            tpm: q.tpm,
            concurrency: None,
        };
        match gw.limiter.admit(&[(subject, rates)], tokens).await {
            Ok(a) => {
                fin.channel_admission = Some((a, tokens));
                break;
            }
            Err(r) => {
                tracing::debug!(channel = %t.channel.name, refusal = %r, "channel at its quota");
                if !r.exceeds_capacity() {
                    wait = Some(wait.map_or(r.retry_after, |w| w.min(r.retry_after)));
                }
                plan.remove(0);
            }
        }
    }
    if plan.is_empty() {
        let secs = wait.map_or(60, |w| {
            (w.as_secs() + u64::from(w.subsec_nanos() > 0)).max(1)
        });
        return Err(GatewayError::new(
            ErrorKind::UpstreamRateLimited,
            format!(
                "Every channel that serves this model is at its upstream quota. Retry in {secs} s."
            ),
        )
        .with_code("upstream_quota")
        .with_retry_after(Some(secs)));
    }
    Ok(plan)
}

fn zero_window(r: &Refusal, which: Which) -> Option<Window> {
    (r.which == which).then_some(Window {
        limit: r.limit,
        remaining: 0,
        reset: r.retry_after,
    })
}

fn whose(subject: &str) -> &'static str {
    if subject.contains(":t:") {
        "your team's"
    } else {
        "this API key's"
    }
}

/// A limiter refusal in the caller's terms.
pub fn refusal_error(r: &Refusal) -> GatewayError {
    if r.which == Which::Unavailable {
        return GatewayError::new(
            ErrorKind::Unavailable,
            "Rate limiting is temporarily unavailable; retry shortly.",
        )
        .with_retry_after(Some(1));
    }
    if r.exceeds_capacity() {
        return GatewayError::invalid(format!(
            "This request needs about {} tokens, more than {} limit of {} tokens per minute. Send a shorter prompt or a lower max_tokens.",
            r.requested,
            whose(&r.subject),
            r.limit
        ))
        .with_code("tokens_exceed_rate_limit");
    }
    let what = match r.which {
        Which::Requests => format!("{} requests per minute", r.limit),
        Which::Tokens => format!("{} tokens per minute", r.limit),
        _ => format!("{} concurrent requests", r.limit),
    };
    GatewayError::new(
        ErrorKind::RateLimited,
        format!(
            "Rate limit reached: {} limit of {what}. Retry in {} s.",
            whose(&r.subject),
            r.retry_after_secs()
        ),
    )
    .with_retry_after(Some(r.retry_after_secs()))
}

/// A spend cap refusal from the reservation.
pub fn spend_cap_error(scope: Scope, window: weir_core::billing::CapWindow) -> GatewayError {
    let now = weir_core::db::now_ms();
    let who = match scope {
        Scope::Key => "This API key's",
        Scope::Team => "Your team's",
    };
    let when = match window {
        weir_core::billing::CapWindow::Day => " It resets at 00:00 UTC.",
        weir_core::billing::CapWindow::Month => " It resets on the 1st of the month (UTC).",
        weir_core::billing::CapWindow::Total => "",
    };
    GatewayError::new(
        ErrorKind::RateLimited,
        format!("{who} {} spend cap is reached.{when}", window.as_str()),
    )
    .with_code("spend_cap_reached")
    .with_retry_after(window.retry_after_secs(now))
}

/// What the tightest spend cap of the caller still allows, after its hold (one read of the
/// cap rows, only for capped keys).
pub async fn key_remaining(gw: &Gateway, fin: &Finaliser) -> Option<Micros> {
    let limits = fin.limits()?;
    let (_, team_id, key_id) = fin.identity()?;
    let mut out: Option<Micros> = None;
    for (scope, id, rules) in [
        (Scope::Key, key_id, &limits.key),
        (Scope::Team, team_id, &limits.team),
    ] {
        if !rules.has_cap() {
            continue;
        }
        let (_, spend) = weir_core::limits::get(&gw.db, scope, id).await.ok()?;
        let r = spend.remaining(rules);
        out = match (out, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai_resets() {
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_millis(59_820)), "59.82s");
    }
}
