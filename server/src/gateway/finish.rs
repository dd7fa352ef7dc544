//! The per-request finaliser: what runs exactly once at the end of every gateway request,
//! however it ends (success, error, client gone, upstream broken). It is consumed by
//! [`Finaliser::finish`]; if it is dropped unfinished (the client went away while the handler
//! was waiting), `Drop` records the request as cancelled.
//!
//! Billing: a request that holds a reservation is settled at its measured usage, or released
//! when nothing billable happened (no tokens produced: a failure before any output, or a
//! client that left before the first byte — the prompt is charged only if the upstream
//! produced tokens). The settlement and the request-log row are handed to the billing
//! committer without waiting, independent of the client connection; it writes them within a
//! few milliseconds and retries failures, settling is idempotent, and the reaper covers a
//! crash.

use std::{sync::Arc, time::Instant};

use weir_core::{
    auth::Caller,
    billing,
    catalog::Tariff,
    metering::{RequestRecord, UsageSource},
    money::Micros,
};

use super::Gateway;
use crate::{canonical::Usage, error::GatewayError};

/// HTTP status recorded for requests whose client disconnected (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// How a request ended.
pub struct Outcome {
    pub status: u16,
    pub error: Option<&'static str>,
    pub usage: Usage,
    pub source: UsageSource,
}

impl Outcome {
    pub fn ok(usage: Usage, source: UsageSource) -> Outcome {
        Outcome {
            status: 200,
            error: None,
            usage,
            source,
        }
    }

    pub fn failed(status: u16, err: &GatewayError) -> Outcome {
        Outcome {
            status,
            error: Some(error_name(err)),
            usage: Usage::default(),
            source: UsageSource::None,
        }
    }
}

pub fn error_name(e: &GatewayError) -> &'static str {
    use crate::error::ErrorKind::*;
    match e.kind {
        InvalidRequest => "invalid_request",
        Authentication => "authentication",
        PermissionDenied => "permission_denied",
        NotFound => "not_found",
        PayloadTooLarge => "payload_too_large",
        InsufficientBalance => "insufficient_balance",
        RateLimited => "rate_limited",
        UpstreamRateLimited => "upstream_rate_limited",
        Overloaded => "overloaded",
        BadGateway => "bad_gateway",
        Timeout => "timeout",
        Unavailable => "unavailable",
        Internal => "internal",
    }
}

struct Pending {
    gw: Arc<Gateway>,
    request_id: String,
    caller: Caller,
    endpoint: &'static str,
    started: Instant,
}

/// Exactly-once end-of-request bookkeeping.
pub struct Finaliser {
    pending: Option<Pending>,
    pub model: String,
    pub channel_id: Option<i64>,
    /// The catalog model of the last channel tried (its upstream name goes in the log).
    pub target_model: Option<Arc<weir_core::catalog::Model>>,
    pub attempts: u32,
    pub stream: bool,
    pub ttfb: Option<Instant>,
    /// When the last attempt was sent (its answer's speed is measured from here).
    pub attempt_started: Option<Instant>,
    /// The price snapshot of this request's reservation, once one is held.
    pub reserved: Option<Tariff>,
    /// What the rate limiter admitted (its concurrency slots, freed with it) and the tokens it
    /// counted, corrected to the real usage at the end.
    pub admission: Option<(crate::limits::Admission, u64)>,
    /// The same for the first channel's upstream quota, when it has one.
    pub channel_admission: Option<(crate::limits::Admission, u64)>,
}

/// The charge for `usage` at the reserved price snapshot (what settlement will post).
pub fn cost_of(tariff: &Tariff, usage: &Usage) -> Micros {
    billing::price(&billing_usage(usage), tariff).total
}

fn billing_usage(u: &Usage) -> billing::Usage {
    billing::Usage {
        input: u.input,
        cached_input: u.cached_input,
        cache_write: u.cache_write,
        output: u.output,
        reasoning: u.reasoning,
    }
}

impl Finaliser {
    pub fn new(
        gw: Arc<Gateway>,
        request_id: String,
        caller: Caller,
        endpoint: &'static str,
        started: Instant,
    ) -> Finaliser {
        Finaliser {
            pending: Some(Pending {
                gw,
                request_id,
                caller,
                endpoint,
                started,
            }),
            model: String::new(),
            channel_id: None,
            target_model: None,
            attempts: 0,
            stream: false,
            ttfb: None,
            attempt_started: None,
            reserved: None,
            admission: None,
            channel_admission: None,
        }
    }

    /// The caller's key and team limits, if any.
    pub fn limits(&self) -> Option<&Arc<weir_core::limits::Limits>> {
        self.pending.as_ref().and_then(|p| p.caller.limits.as_ref())
    }

    /// The request id and the caller's team and key ids.
    pub fn identity(&self) -> Option<(&str, i64, i64)> {
        self.pending
            .as_ref()
            .map(|p| (p.request_id.as_str(), p.caller.team_id, p.caller.api_key_id))
    }

    /// Records the end of the request. Consumes the finaliser, so it can run only once.
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    fn record(&mut self, o: Outcome) {
        let Some(p) = self.pending.take() else { return };
        let u = o.usage.sanitized();
        let ms =
            |i: Instant| u64::try_from(i.duration_since(p.started).as_millis()).unwrap_or(u64::MAX);
        let rec = RequestRecord {
            request_id: p.request_id,
            team_id: p.caller.team_id,
            api_key_id: p.caller.api_key_id,
            endpoint: p.endpoint,
            model: std::mem::take(&mut self.model),
            upstream_model: self.target_model.as_ref().map(|m| m.upstream_model.clone()),
            channel_id: self.channel_id,
            status: o.status,
            error_kind: o.error,
            stream: self.stream,
            input_tokens: u.input,
            cached_tokens: u.cached_input,
            cache_write_tokens: u.cache_write,
            output_tokens: u.output,
            reasoning_tokens: u.reasoning,
            usage_source: o.source,
            attempts: self.attempts,
            latency_ms: ms(Instant::now()),
            ttfb_ms: self.ttfb.map(ms),
            created_at: weir_core::db::now_ms(),
        };
        if rec.status == 200 {
            self.measure(&p.gw, u.output);
        }
        tracing::debug!(request_id = %rec.request_id, status = rec.status, channel = ?rec.channel_id, "request finished");
        let finish = self.reserved.take().map(|_| {
            if o.source != UsageSource::None && u.total() > 0 {
                billing::Finish::Settle {
                    usage: billing_usage(&u),
                    source: o.source,
                }
            } else {
                billing::Finish::Release
            }
        });
        for (admission, counted) in [self.admission.take(), self.channel_admission.take()]
            .into_iter()
            .flatten()
        {
            if admission.tokens.is_some() {
                let used = i64::try_from(u.total()).unwrap_or(i64::MAX);
                let delta = used.saturating_sub(i64::try_from(counted).unwrap_or(i64::MAX));
                if delta != 0 {
                    p.gw.limiter.correct_tokens(&admission, delta);
                }
            }
        }
        p.gw.committer.done(rec, finish);
    }
}

impl Finaliser {
    /// Feeds the speed book with the answering channel's time to first token and, for a
    /// stream, its tokens per second after the first byte.
    fn measure(&self, gw: &Gateway, output_tokens: u64) {
        let (Some(channel), Some(model), Some(sent)) =
            (self.channel_id, &self.target_model, self.attempt_started)
        else {
            return;
        };
        let now = Instant::now();
        let first = self.ttfb.unwrap_or(now);
        let tps = self.ttfb.and_then(|t| {
            let us = u64::try_from(now.duration_since(t).as_micros()).ok()?;
            (output_tokens > 1 && us >= 1000)
                .then(|| output_tokens.saturating_mul(1_000_000_000) / us)
        });
        gw.speed
            .record(channel, &model.id, first.duration_since(sent), tps);
    }
}

impl Drop for Finaliser {
    fn drop(&mut self) {
        if self.pending.is_some() {
            self.record(Outcome {
                status: CLIENT_CLOSED,
                error: Some("client_closed"),
                usage: Usage::default(),
                source: UsageSource::None,
            });
        }
    }
}
