//! The per-request finaliser: what runs exactly once at the end of every gateway request,
//! however it ends (success, error, client gone, upstream broken). It is consumed by
//! [`Finaliser::finish`]; if it is dropped unfinished (the client went away while the handler
//! was waiting), `Drop` records the request as cancelled. This is where billing settles.

use std::{sync::Arc, time::Instant};

use weir_core::{
    auth::Caller,
    metering::{RequestRecord, UsageSource},
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
    pub attempts: u32,
    pub stream: bool,
    pub ttfb: Option<Instant>,
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
            attempts: 0,
            stream: false,
            ttfb: None,
        }
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
        tracing::debug!(request_id = %rec.request_id, status = rec.status, "request finished");
        p.gw.log.send(rec);
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
