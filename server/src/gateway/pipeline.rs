//! The one pass of a gateway request, in order and never going back (ARCHITECTURE.md):
//! read the body, authenticate, decode to canonical, resolve the model, then try candidate
//! channels (another one only when the failure is retryable and no byte has reached the
//! client), render in the client's format, and finish exactly once.
//!
//! Streams are pumped by a spawned task that owns the [`Finaliser`], so bookkeeping completes
//! even when the client leaves; a client that leaves cancels the upstream read at once.
//! When the upstream speaks the client's format (OpenAI-compatible upstream, OpenAI client)
//! its bytes are relayed as they are and only observed for metering; otherwise its events are
//! decoded to [`StreamEvent`]s and rendered in the client's format.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::Response,
};
use bytes::{Bytes, BytesMut};
use eventsource_stream::Event;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use weir_core::{
    auth::{Caller, VerifyError},
    billing::{self, BillingError},
    catalog::{ModelKind, Target},
    metering::UsageSource,
};

use super::{
    finish::{cost_of, Finaliser, Outcome},
    limits::{self, RateHeaders},
    responses::{self, StoreJob},
    Gateway,
};
use crate::{
    canonical::{CanonicalRequest, EmbeddingResponse, StreamErrorKind, StreamEvent, Usage, Wire},
    error::{ErrorKind, GatewayError},
    routing, tokens,
    upstream::{self, StreamFault},
    wire::{
        self, cohere, gemini, json::to_bytes, openai_chat, openai_embeddings, openai_responses,
        tool_names::ToolNames, ChunkKind, Echo, ModelRewrite, StreamDecoder, StreamEncoder,
    },
};

/// Largest request body accepted (Anthropic's limit; images make chat bodies large).
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// Most channels tried for one request.
pub const MAX_ATTEMPTS: usize = 3;

/// A new request id: `req_` and a UUIDv7 whose 12 bits after the millisecond timestamp count
/// up within the millisecond (RFC 9562, method 1), so the ids of one process sort in the order
/// they were made (rows keyed by them are appended at the end of their b-trees). The other 62
/// bits come from the thread's userspace generator (no `getrandom` system call per request).
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now_ms =
        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0) & ((1 << 48) - 1);
    // (milliseconds << 12 | counter), strictly increasing; a counter that overflows borrows
    // from the next millisecond.
    let mut last = LAST.load(Ordering::Relaxed);
    let stamp = loop {
        let next = (now_ms << 12).max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let ms = u128::from(stamp >> 12);
    let counter = u128::from(stamp & 0xfff);
    let random = u128::from(rand::random::<u64>() & ((1 << 62) - 1));
    let v = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | random;
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    let hex = uuid::Uuid::from_u128(v).simple().encode_lower(&mut buf);
    let mut id = String::with_capacity(4 + hex.len());
    id.push_str("req_");
    id.push_str(hex);
    id
}

/// `x-weir-cost`: what the request cost, in US dollars.
fn set_cost_header(resp: &mut Response, cost: weir_core::money::Micros) {
    if let Ok(v) = HeaderValue::from_str(&cost.to_string()) {
        resp.headers_mut().insert("x-weir-cost", v);
    }
}

pub fn with_request_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// [`with_request_id`], and Anthropic's own `request-id` for Anthropic clients.
pub fn with_request_id_for(resp: Response, id: &str, client: Wire) -> Response {
    let mut resp = with_request_id(resp, id);
    if client == Wire::Anthropic {
        if let Ok(v) = HeaderValue::from_str(id) {
            resp.headers_mut().insert("request-id", v);
        }
    }
    resp
}

/// Reads the whole request body (so that a keep-alive connection stays in sync even when the
/// answer is an error), refusing bodies over [`MAX_BODY`].
pub(super) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "The request body is larger than {} MiB.",
                MAX_BODY / (1024 * 1024)
            ),
        )
        .with_code("request_too_large")
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| GatewayError::invalid("The request body could not be read."))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The API key from `Authorization: Bearer` or `x-api-key`; never echoed back.
fn presented_key(headers: &HeaderMap) -> Result<&str, GatewayError> {
    let unauth = |m: &'static str| {
        GatewayError::new(ErrorKind::Authentication, m).with_code("invalid_api_key")
    };
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let first = auth.next();
    if auth.next().is_some() {
        return Err(unauth("More than one Authorization header was sent."));
    }
    let raw = match first {
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| unauth("Incorrect API key provided."))?;
            let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(unauth("The Authorization header must use Bearer auth: Authorization: Bearer YOUR_KEY."));
            }
            rest.trim()
        }
        None => {
            let mut xs = headers.get_all("x-api-key").iter();
            let x = xs.next();
            if xs.next().is_some() {
                return Err(unauth("More than one x-api-key header was sent."));
            }
            match x {
                Some(v) => v
                    .to_str()
                    .map_err(|_| unauth("Incorrect API key provided."))?
                    .trim(),
                None => "",
            }
        }
    };
    if raw.is_empty() {
        return Err(unauth(
            "You didn't provide an API key. Provide it in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY) or in an x-api-key header.",
        ));
    }
    Ok(raw)
}

pub async fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let key = presented_key(headers)?;
    gw.verifier.verify(key).await.map_err(|e| match e {
        VerifyError::Invalid => {
            GatewayError::new(ErrorKind::Authentication, "Incorrect API key provided.")
                .with_code("invalid_api_key")
        }
        VerifyError::TeamInactive => GatewayError::new(
            ErrorKind::PermissionDenied,
            "The team that owns this API key is inactive.",
        )
        .with_code("team_inactive"),
        VerifyError::Unavailable(e) => {
            tracing::error!(error = %e, "key verification failed");
            GatewayError::new(
                ErrorKind::Unavailable,
                "The service is temporarily unavailable.",
            )
            .with_retry_after(Some(1))
        }
    })
}

/// The format of the embeddings surface.
const OPENAI: Wire = Wire::OpenAi;

/// Holds the worst-case cost of the request before any upstream call, in one guarded update
/// (RELIABILITY.md §3). The worst case is taken over every candidate, so failover never needs
/// more than was held; the first candidate's tariff is the price snapshot settled against.
async fn reserve(
    gw: &Gateway,
    fin: &mut Finaliser,
    targets: &[Target],
    prompt_estimate: u64,
    max_output: Option<u32>,
    rate: &mut RateHeaders,
) -> Result<(), GatewayError> {
    let Some((request_id, team_id, api_key_id)) = fin.identity() else {
        return Ok(());
    };
    let Some(first) = targets.first() else {
        return Ok(());
    };
    let amount = targets
        .iter()
        .map(|t| {
            let out = max_output.or(t.model.max_output_tokens).unwrap_or(4096);
            billing::worst_case(
                prompt_estimate,
                u64::from(out),
                &t.tariff,
                gw.billing.reservation_cap,
            )
        })
        .max()
        .unwrap_or_default();
    let tariff = first.tariff;
    let r = billing::NewReservation {
        request_id: request_id.to_owned(),
        team_id,
        api_key_id,
        model: fin.model.clone(),
        amount,
        tariff,
        ttl: gw.billing.reservation_ttl,
        prompt_estimate,
        caps: fin.limits().map_or(0, |l| l.caps()),
    };
    let capped = r.caps != 0;
    match gw.committer.reserve(r).await {
        Ok(()) => {
            fin.reserved = Some(tariff);
            if capped {
                rate.key_remaining = limits::key_remaining(gw, fin).await;
            }
            Ok(())
        }
        Err(BillingError::SpendCap { scope, window }) => {
            rate.key_remaining = Some(weir_core::money::Micros::ZERO);
            Err(limits::spend_cap_error(scope, window))
        }
        Err(BillingError::InsufficientBalance) => Err(GatewayError::new(
            ErrorKind::InsufficientBalance,
            format!(
                "Your team's available balance does not cover this request (up to ${amount} reserved). Top up, or lower max_tokens."
            ),
        )),
        Err(e) => {
            tracing::error!(error = %e, "reservation failed");
            // Fail closed: nothing is served unbilled.
            Err(GatewayError::new(ErrorKind::Unavailable, "Billing is temporarily unavailable.")
                .with_retry_after(Some(1)))
        }
    }
}

/// The steps every API request starts with: read the whole body, then verify the key. On
/// success the caller gets a finaliser for the request; on failure, the error response.
async fn admit(
    gw: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    endpoint: &'static str,
    client: Wire,
) -> Result<(Bytes, Finaliser), Response> {
    let started = Instant::now();
    let bytes = read_body(headers, body)
        .await
        .map_err(|e| e.to_response(client, Some(request_id)))?;
    let caller = authenticate(gw, headers)
        .await
        .map_err(|e| e.to_response(client, Some(request_id)))?;
    let fin = Finaliser::new(gw.clone(), request_id.to_owned(), caller, endpoint, started);
    Ok((bytes, fin))
}

// ---------------------------------------------------------------------------------------------
// POST /v1/chat/completions and POST /v1/messages
// ---------------------------------------------------------------------------------------------

pub async fn chat_completions(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    chat_surface(gw, headers, body, Wire::OpenAi, "chat").await
}

pub async fn messages(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    chat_surface(gw, headers, body, Wire::Anthropic, "messages").await
}

/// One chat request on the surface of format `client`; everything after decoding is the same
/// for every surface.
pub(super) async fn chat_surface(
    gw: Arc<Gateway>,
    headers: HeaderMap,
    body: Body,
    client: Wire,
    endpoint: &'static str,
) -> Response {
    let request_id = new_request_id();
    let resp = match admit(&gw, &headers, body, &request_id, endpoint, client).await {
        Err(resp) => resp,
        Ok((bytes, fin)) => {
            let mut ctx = ChatCtx {
                client,
                request_id: &request_id,
                forward: forwarded_headers(client, &headers),
                echo: Echo::default(),
                store: None,
                names: None,
                rate: RateHeaders::default(),
                provider: None,
            };
            let mut resp = chat(gw, fin, bytes, &mut ctx).await;
            ctx.rate.apply(&mut resp, client);
            if let Some(v) = ctx.provider.and_then(|p| HeaderValue::try_from(p).ok()) {
                resp.headers_mut().insert("x-weir-provider", v);
            }
            resp
        }
    };
    with_request_id_for(resp, &request_id, client)
}

/// What a chat request carries from its surface through every attempt.
struct ChatCtx<'a> {
    /// The format the client speaks, which every answer and error is rendered in.
    client: Wire,
    request_id: &'a str,
    /// Client headers passed on to upstreams of the client's own format.
    forward: HeaderMap,
    /// What the answer repeats of the request (Responses objects).
    echo: Echo,
    /// Where the answer is kept once complete (Responses with `store`).
    store: Option<StoreJob>,
    /// Tool names of the request that some upstream would refuse, and their stand-ins, for
    /// translated attempts (`None` nearly always).
    names: Option<ToolNames>,
    /// The caller's limits as they stand, for the response headers.
    rate: RateHeaders,
    /// The provider whose channel answered (`x-weir-provider`).
    provider: Option<String>,
}

/// `anthropic-version` and `anthropic-beta` of an Anthropic client, for Anthropic channels.
pub(super) fn forwarded_headers(client: Wire, headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if client == Wire::Anthropic {
        for name in ["anthropic-version", "anthropic-beta"] {
            for v in headers.get_all(name) {
                out.append(name, v.clone());
            }
        }
    }
    out
}

async fn chat(
    gw: Arc<Gateway>,
    mut fin: Finaliser,
    bytes: Bytes,
    ctx: &mut ChatCtx<'_>,
) -> Response {
    match chat_attempts(&gw, &mut fin, bytes, ctx).await {
        Ok(ChatReply::Done { response, outcome }) => {
            fin.finish(outcome);
            response
        }
        Ok(ChatReply::Stream(job)) => start_stream(gw, fin, *job),
        Err(e) => {
            fin.finish(Outcome::failed(e.status(ctx.client).as_u16(), &e));
            e.to_response(ctx.client, Some(ctx.request_id))
        }
    }
}

enum ChatReply {
    Done {
        response: Response,
        outcome: Outcome,
    },
    Stream(Box<StreamJob>),
}

/// The candidates that can express `req` at all (format limits such as `n > 1`), so that the
/// request is refused before any money is held rather than after.
fn within_format_limits(
    req: &CanonicalRequest,
    plan: Vec<Target>,
) -> Result<Vec<Target>, GatewayError> {
    if req.n.is_none_or(|n| n <= 1) {
        return Ok(plan);
    }
    let plan: Vec<Target> = plan
        .into_iter()
        .filter(|t| t.channel.wire == Wire::OpenAi)
        .collect();
    if plan.is_empty() {
        return Err(GatewayError::invalid_param(
            "n",
            "This model supports only n = 1.",
        ));
    }
    Ok(plan)
}

/// Tries the candidate channels in order until one answers.
async fn chat_attempts(
    gw: &Gateway,
    fin: &mut Finaliser,
    bytes: Bytes,
    ctx: &mut ChatCtx<'_>,
) -> Result<ChatReply, GatewayError> {
    let req = match ctx.client {
        Wire::Responses => {
            let d = responses::decode(gw, fin, &bytes).await?;
            ctx.echo = d.echo;
            ctx.store = d.store;
            d.request
        }
        client => wire::decode_request(client, &bytes)?,
    };
    let mut req = req;
    // An Anthropic client's body goes to Anthropic channels as it came (cache_control,
    // citations and unmodelled members intact); other clients' bytes are done with.
    let raw = (ctx.client == Wire::Anthropic).then_some(bytes);
    ctx.names = ToolNames::for_request(&req);
    let mut mapped = ctx.names.as_ref().map(|n| n.apply(&req));
    fin.model.clone_from(&req.model);
    fin.stream = req.stream;
    let snapshot = gw.catalog.current();
    let prompt_estimate = tokens::estimate_prompt(&req);
    let mut route = routing::route(
        &snapshot,
        &gw.speed,
        fin.limits(),
        &routing::Ask {
            model: &req.model,
            kind: ModelKind::Chat,
            hints: req.route.as_deref(),
            prompt_estimate,
            max_output: req.max_output_tokens,
        },
    )?;
    let plan = gw.health.plan(std::mem::take(&mut route.targets))?;
    let plan = within_format_limits(&req, plan)?;
    let asked = route.has_fallbacks().then(|| req.model.clone());
    let counted = prompt_estimate + u64::from(req.max_output_tokens.unwrap_or(0));
    limits::admit(gw, fin, counted, &mut ctx.rate).await?;
    let plan = limits::spill(gw, fin, plan, counted).await?;
    reserve(
        gw,
        fin,
        &plan,
        prompt_estimate,
        req.max_output_tokens,
        &mut ctx.rate,
    )
    .await?;
    let mut last: Option<GatewayError> = None;
    for target in Attempts::new(gw).admitted(plan) {
        fin.attempts += 1;
        fin.channel_id = Some(target.channel.id);
        fin.target_model = Some(target.model.clone());
        fin.attempt_started = Some(Instant::now());
        if let Some(asked) = &asked {
            // A fallback's answer names the model that gave it.
            let name = if route.is_fallback(&target) {
                &target.model.id
            } else {
                asked
            };
            req.model.clone_from(name);
            if let Some(m) = &mut mapped {
                m.model.clone_from(name);
            }
        }
        let forward = (target.channel.wire == ctx.client).then_some(&ctx.forward);
        let out = match (forward, &raw) {
            (Some(fwd), Some(raw)) => upstream::relay_request(&target, raw, fwd)?,
            // Translated: with portable tool names if the client's are not.
            _ => match (&mapped, forward) {
                (Some(mapped), None) => upstream::chat_request(&target, mapped, None)?,
                _ => upstream::chat_request(&target, &req, forward)?,
            },
        };
        let result = match upstream::send(&gw.http, out, &gw.timeouts).await {
            Ok(resp) if req.stream => open_stream(gw, &target, &req, resp, prompt_estimate, ctx)
                .await
                .map(|job| ChatReply::Stream(Box::new(job))),
            Ok(resp) => complete(gw, &target, &req, resp, ctx, fin.reserved.as_ref()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(mut reply) => {
                gw.health
                    .record_success(target.channel.id, &target.model.id);
                ctx.provider = Some(target.channel.provider_id.clone());
                if let ChatReply::Stream(job) = &mut reply {
                    job.render.store = ctx.store.take();
                }
                return Ok(reply);
            }
            Err(e) => {
                gw.health
                    .record_failure(target.channel.id, &target.model.id, &e);
                tracing::debug!(channel = target.channel.id, error = %e, "attempt failed");
                if !e.retryable {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "No channel could serve this request.",
        )
    }))
}

/// Which planned candidates a request tries: at most [`MAX_ATTEMPTS`], each admitted by its
/// breaker (a half-open one lets a single probe through), every one after the first paid for
/// from the retry budget.
struct Attempts<'g> {
    gw: &'g Gateway,
    made: usize,
    out_of_budget: bool,
}

impl<'g> Attempts<'g> {
    fn new(gw: &'g Gateway) -> Attempts<'g> {
        gw.health.deposit();
        Attempts {
            gw,
            made: 0,
            out_of_budget: false,
        }
    }

    /// The planned candidates this request tries, in order.
    fn admitted(mut self, plan: Vec<Target>) -> impl Iterator<Item = Target> + 'g {
        let mut plan = plan.into_iter();
        std::iter::from_fn(move || loop {
            if self.done() {
                return None;
            }
            let target = plan.next()?;
            if self.next(&target) {
                return Some(target);
            }
        })
    }

    /// Whether to try `target` now.
    fn next(&mut self, target: &Target) -> bool {
        if self.done() || !self.gw.health.admit(target) {
            return false;
        }
        if self.made > 0 && !self.gw.health.retry_allowed() {
            self.gw.health.release(target);
            self.out_of_budget = true;
            return false;
        }
        self.made += 1;
        true
    }

    fn done(&self) -> bool {
        self.out_of_budget || self.made >= MAX_ATTEMPTS
    }
}

/// A non-streamed answer: relayed as it is from an upstream of the client's format,
/// translated otherwise.
async fn complete(
    gw: &Gateway,
    target: &Target,
    req: &CanonicalRequest,
    resp: reqwest::Response,
    ctx: &mut ChatCtx<'_>,
    tariff: Option<&weir_core::catalog::Tariff>,
) -> Result<ChatReply, GatewayError> {
    let body = upstream::read_body(resp, &gw.timeouts)
        .await
        .map_err(|e| e.retryable(true))?;
    let upstream = target.channel.wire;
    let (bytes, usage) = if upstream == ctx.client {
        let usage = wire::response_usage(upstream, &body)?;
        match ModelRewrite::new(&target.model.upstream_model, &req.model) {
            Some(r) => (r.apply(body), usage),
            None => (body, usage),
        }
    } else {
        let mut r = wire::decode_response(upstream, &body).map_err(|e| e.retryable(true))?;
        if let Some(names) = &ctx.names {
            names.restore_response(&mut r);
        }
        r.id = wire::response_id(ctx.client, ctx.request_id);
        r.model.clone_from(&req.model);
        let usage = r.usage;
        let answer = wire::encode_response(ctx.client, &r, &ctx.echo);
        if let Some(job) = ctx.store.take() {
            let signatures: Vec<_> = openai_responses::reasoning_signature(&r)
                .into_iter()
                .collect();
            let stored = openai_responses::stored_copy(&answer, &signatures, &ctx.echo);
            responses::save(gw, job, &stored).await;
        }
        (crate::wire::json::to_bytes(&answer), usage)
    };
    let outcome = match usage {
        Some(u) => Outcome::ok(u, UsageSource::Upstream),
        None => Outcome::ok(Usage::default(), UsageSource::None),
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .map_err(|_| GatewayError::internal("could not build the response"))?;
    if let Some(t) = tariff {
        set_cost_header(&mut response, cost_of(t, &outcome.usage));
    }
    Ok(ChatReply::Done { response, outcome })
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Event, StreamFault>> + Send>>;

/// How upstream events become client bytes: always decoded (for metering), then relayed as
/// they came when the upstream speaks the client's format, rendered by the encoder otherwise.
/// The encoder also writes errors, and the end of a translated stream.
struct Render {
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    relay: bool,
    /// On relayed streams: the upstream's model name → the client's model id.
    rewrite: Option<ModelRewrite>,
    /// The client asked for the usage chunk (OpenAI `stream_options.include_usage`).
    include_usage: bool,
    /// Where the finished answer is kept (Responses with `store`).
    store: Option<StoreJob>,
    /// Translated streams: the client's tool names for the stand-ins the upstream was sent.
    names: Option<ToolNames>,
}

struct StreamJob {
    events: Events,
    /// The first event, read before committing to a 200 so that an immediate upstream error
    /// can still fail over, and what it decoded to (it is decoded once).
    first: Event,
    first_kind: ChunkKind,
    first_events: Vec<StreamEvent>,
    render: Render,
    meter: Meter,
}

/// Opens the upstream stream and reads its first event. Failures up to here are retryable,
/// since the client has received nothing.
async fn open_stream(
    gw: &Gateway,
    target: &Target,
    req: &CanonicalRequest,
    resp: reqwest::Response,
    prompt_estimate: u64,
    ctx: &ChatCtx<'_>,
) -> Result<StreamJob, GatewayError> {
    let mut render = Render {
        decoder: StreamDecoder::new(target.channel.wire)?,
        encoder: StreamEncoder::new(
            ctx.client,
            wire::response_id(ctx.client, ctx.request_id),
            req.model.clone(),
            req.include_usage,
            prompt_estimate,
            &ctx.echo,
        )?,
        relay: target.channel.wire == ctx.client,
        rewrite: ModelRewrite::new(&target.model.upstream_model, &req.model),
        include_usage: req.include_usage,
        store: None,
        names: if target.channel.wire == ctx.client {
            None
        } else {
            ctx.names.clone()
        },
    };
    let mut events: Events = Box::pin(upstream::sse_events(resp));
    let first = match tokio::time::timeout(gw.timeouts.first_byte, events.next()).await {
        Err(_) => {
            return Err(GatewayError::new(
                ErrorKind::Timeout,
                "The upstream did not start streaming in time.",
            )
            .retryable(true))
        }
        Ok(None) | Ok(Some(Err(_))) => {
            return Err(GatewayError::new(
                ErrorKind::BadGateway,
                "The upstream stream failed before it began.",
            )
            .retryable(true))
        }
        Ok(Some(Ok(ev))) => ev,
    };
    let mut first_events = Vec::new();
    let first_kind = render
        .decoder
        .decode(&first, &mut first_events)
        .map_err(|e| e.retryable(true))?;
    // An error as the very first event: nothing was sent, so another channel may be tried.
    if let Some(StreamEvent::Error { kind, .. }) = first_events.first() {
        let k = match kind {
            StreamErrorKind::Overloaded => ErrorKind::Overloaded,
            StreamErrorKind::RateLimited => ErrorKind::UpstreamRateLimited,
            StreamErrorKind::InvalidRequest => ErrorKind::InvalidRequest,
            StreamErrorKind::Server => ErrorKind::BadGateway,
        };
        let e = GatewayError::new(k, "The upstream reported an error.");
        return Err(if k == ErrorKind::InvalidRequest {
            e
        } else {
            e.retryable(true)
        });
    }
    Ok(StreamJob {
        events,
        first,
        first_kind,
        first_events,
        render,
        meter: Meter::new(prompt_estimate),
    })
}

/// Counts what a stream delivered, for billing when the upstream reports no usage.
struct Meter {
    prompt_estimate: u64,
    /// A usage report seen after the finish event: the upstream's final count.
    final_report: Option<Usage>,
    /// A report seen before the finish (Anthropic's `message_start`): its input count is
    /// real, its output count provisional.
    early_report: Option<Usage>,
    output_bytes: u64,
    finished: bool,
    upstream_error: bool,
}

impl Meter {
    fn new(prompt_estimate: u64) -> Meter {
        Meter {
            prompt_estimate,
            final_report: None,
            early_report: None,
            output_bytes: 0,
            finished: false,
            upstream_error: false,
        }
    }

    fn observe(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::TextDelta(t) | StreamEvent::ReasoningDelta(t) => {
                self.output_bytes += t.len() as u64
            }
            StreamEvent::ToolCallStart { name, .. } => self.output_bytes += name.len() as u64,
            StreamEvent::ToolArgsDelta { fragment, .. } => {
                self.output_bytes += fragment.len() as u64
            }
            StreamEvent::Usage(u) if self.finished => self.final_report = Some(*u),
            StreamEvent::Usage(u) => self.early_report = Some(*u),
            StreamEvent::Finish(_) => self.finished = true,
            StreamEvent::Error { .. } => self.upstream_error = true,
            StreamEvent::Start { .. }
            | StreamEvent::ReasoningSignature(_)
            | StreamEvent::ToolCallEnd { .. } => {}
        }
    }

    /// The usage to bill (README, "Billing policy"): the upstream's final report when the
    /// stream delivered one; otherwise Weir's own count — the upstream's input count if it
    /// gave one, else the prompt estimate, plus the streamed output at four bytes per token —
    /// marked estimated, and never zero once output was delivered.
    fn usage(&self) -> (Usage, UsageSource) {
        if let Some(u) = self.final_report {
            if u.output > 0 || self.output_bytes == 0 {
                return (u, UsageSource::Upstream);
            }
        }
        if self.output_bytes == 0 {
            return (Usage::default(), UsageSource::None);
        }
        let known = self.final_report.or(self.early_report);
        let input = known.map_or(self.prompt_estimate, |u| u.input);
        let (cached_input, cache_write) = known.map_or((0, 0), |u| (u.cached_input, u.cache_write));
        let output = self.output_bytes.div_ceil(4);
        (
            Usage {
                input,
                cached_input,
                cache_write,
                output,
                reasoning: 0,
            },
            UsageSource::Estimated,
        )
    }
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamEnd {
    Normal,
    ClientGone,
    UpstreamError,
    UpstreamBroken,
    IdleTimeout,
}

fn start_stream(gw: Arc<Gateway>, fin: Finaliser, job: StreamJob) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    gw.tasks.clone().spawn(pump(gw, job, tx, fin));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// How often a stream records its output so far, for the reaper after a crash.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Relays the upstream's usage chunk with the request's cost added (`usage.cost_usd`, a
/// decimal string of US dollars that SDKs ignore).
fn relay_usage_with_cost(
    data: &str,
    tariff: &weir_core::catalog::Tariff,
    meter: &Meter,
    rewrite: Option<&ModelRewrite>,
    out: &mut BytesMut,
) {
    match serde_json::from_str::<Value>(data) {
        Ok(mut v) => {
            let cost = cost_of(tariff, &meter.usage().0);
            if let Some(Value::Object(u)) = v.get_mut("usage") {
                u.insert("cost_usd".into(), cost.to_string().into());
            }
            let mut chunk = BytesMut::new();
            openai_chat::write_data(&v, &mut chunk);
            match rewrite {
                Some(r) => r.write(&chunk, out),
                None => out.extend_from_slice(&chunk),
            }
        }
        Err(_) => {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(data.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// How long an Anthropic client's stream may be silent before Weir sends a `ping`.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Drives one stream to its end, then finishes the request. Owns the finaliser, so the
/// bookkeeping runs whatever happens to the client.
async fn pump(gw: Arc<Gateway>, job: StreamJob, tx: mpsc::Sender<Bytes>, mut fin: Finaliser) {
    let StreamJob {
        mut events,
        first,
        first_kind,
        first_events,
        mut render,
        mut meter,
    } = job;
    let mut decoded = first_events;
    let mut out = BytesMut::new();
    let mut pending = Some((first, first_kind));
    let mut saw_done = false;
    let tariff = fin.reserved;
    let mut last_checkpoint = Instant::now();
    let keepalive = render.encoder.keepalive();
    let end = loop {
        let (ev, kind) = match pending.take() {
            Some(first) => first,
            None => {
                let idle = tokio::time::sleep(gw.timeouts.idle);
                tokio::pin!(idle);
                let next = loop {
                    tokio::select! {
                        biased;
                        _ = tx.closed() => break None,
                        n = events.next() => break Some(Ok(n)),
                        _ = &mut idle => break Some(Err(())),
                        _ = tokio::time::sleep(PING_EVERY), if keepalive.is_some() => {
                            if let Some(ping) = keepalive {
                                if tx.send(Bytes::from_static(ping)).await.is_err() {
                                    break None;
                                }
                            }
                        }
                    }
                };
                let ev = match next {
                    None => break StreamEnd::ClientGone,
                    Some(Err(())) => {
                        render.encoder.encode_error(
                            StreamErrorKind::Server,
                            "The upstream stopped sending.",
                            &mut out,
                        );
                        break StreamEnd::IdleTimeout;
                    }
                    Some(Ok(None)) if meter.finished || saw_done => break StreamEnd::Normal,
                    Some(Ok(None)) | Some(Ok(Some(Err(_)))) => {
                        render.encoder.encode_error(
                            StreamErrorKind::Server,
                            "The upstream connection failed mid-stream.",
                            &mut out,
                        );
                        break StreamEnd::UpstreamBroken;
                    }
                    Some(Ok(Some(Ok(ev)))) => ev,
                };
                decoded.clear();
                match render.decoder.decode(&ev, &mut decoded) {
                    Ok(kind) => (ev, kind),
                    Err(_) => {
                        render.encoder.encode_error(
                            StreamErrorKind::Server,
                            "The upstream sent a malformed stream.",
                            &mut out,
                        );
                        break StreamEnd::UpstreamBroken;
                    }
                }
            }
        };
        for e in &decoded {
            meter.observe(e);
        }
        if kind == ChunkKind::Done {
            saw_done = true;
        }
        if render.relay {
            match (kind, tariff, render.include_usage) {
                (ChunkKind::UsageOnly, _, false) => {}
                (ChunkKind::UsageOnly, Some(t), true) => {
                    relay_usage_with_cost(&ev.data, &t, &meter, render.rewrite.as_ref(), &mut out)
                }
                _ => render.decoder.relay(&ev, render.rewrite.as_ref(), &mut out),
            }
        } else {
            if let Some(names) = &render.names {
                decoded.iter_mut().for_each(|e| names.restore_event(e));
            }
            for e in &decoded {
                render.encoder.encode(e, &mut out);
            }
        }
        if !out.is_empty() {
            if fin.ttfb.is_none() {
                fin.ttfb = Some(Instant::now());
            }
            if tx.send(out.split().freeze()).await.is_err() {
                break StreamEnd::ClientGone;
            }
        }
        if meter.upstream_error {
            break StreamEnd::UpstreamError;
        }
        if tariff.is_some() && last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            if let Some((id, _, _)) = fin.identity() {
                let (db, id, out_tokens) =
                    (gw.db.clone(), id.to_owned(), meter.output_bytes.div_ceil(4));
                gw.tasks.spawn(async move {
                    let _ = billing::checkpoint(&db, &id, out_tokens).await;
                });
            }
        }
        if saw_done {
            break StreamEnd::Normal;
        }
    };
    if end == StreamEnd::Normal {
        if render.relay {
            if !saw_done {
                // An OpenAI-format upstream that closed without `[DONE]` after its finish.
                if let StreamDecoder::OpenAi(_) = render.decoder {
                    out.extend_from_slice(b"data: [DONE]\n\n");
                }
            }
        } else {
            let mut extra = serde_json::Map::new();
            if let Some(tariff) = &tariff {
                extra.insert(
                    "cost_usd".into(),
                    cost_of(tariff, &meter.usage().0).to_string().into(),
                );
            }
            render.encoder.finish(extra, &mut out);
            // Kept before the client sees the end, so that it can continue from it at once.
            if let (Some(job), Some(answer)) = (render.store.take(), render.encoder.to_store()) {
                super::responses::save(&gw, job, &answer).await;
            }
        }
    }
    if !out.is_empty() && end != StreamEnd::ClientGone {
        let _ = tx.send(out.split().freeze()).await;
    }
    // Dropping the upstream stream here cancels the upstream request if it is still running.
    drop(events);
    let (usage, source) = meter.usage();
    let (status, error) = match end {
        StreamEnd::Normal => (200, None),
        StreamEnd::ClientGone => (super::finish::CLIENT_CLOSED, Some("client_closed")),
        StreamEnd::UpstreamError => (200, Some("upstream_stream_error")),
        StreamEnd::UpstreamBroken => (200, Some("upstream_broken")),
        StreamEnd::IdleTimeout => (200, Some("upstream_idle_timeout")),
    };
    if matches!(
        end,
        StreamEnd::UpstreamError | StreamEnd::UpstreamBroken | StreamEnd::IdleTimeout
    ) {
        if let (Some(ch), Some(model)) = (fin.channel_id, &fin.target_model) {
            gw.health.record_failure(
                ch,
                &model.id,
                &GatewayError::new(ErrorKind::BadGateway, "mid-stream failure").retryable(true),
            );
        }
    }
    fin.finish(Outcome {
        status,
        error,
        usage,
        source,
    });
}

// ---------------------------------------------------------------------------------------------
// POST /v1/embeddings
// ---------------------------------------------------------------------------------------------

pub async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let mut rate = RateHeaders::default();
    let mut resp = match admit(&gw, &headers, body, &request_id, "embeddings", OPENAI).await {
        Err(resp) => resp,
        Ok((bytes, mut fin)) => match embeddings_attempts(&gw, &mut fin, bytes, &mut rate).await {
            Ok((response, usage, source)) => {
                fin.finish(Outcome::ok(usage, source));
                response
            }
            Err(e) => {
                fin.finish(Outcome::failed(e.status(OPENAI).as_u16(), &e));
                e.to_response(OPENAI, Some(&request_id))
            }
        },
    };
    rate.apply(&mut resp, OPENAI);
    with_request_id(resp, &request_id)
}

/// Tries the embedding model's channels in plan order. An OpenAI-format answer is relayed with
/// only its `model` renamed to the client's id; a Cohere or Gemini one is decoded and rendered in OpenAI's shape (in the client's
/// encoding, named by the model id the client asked for), metered by Weir's estimate when the
/// upstream reports no usage (Gemini never does).
async fn embeddings_attempts(
    gw: &Gateway,
    fin: &mut Finaliser,
    bytes: Bytes,
    rate: &mut RateHeaders,
) -> Result<(Response, Usage, UsageSource), GatewayError> {
    let req = openai_embeddings::decode_request(&bytes)?;
    fin.model.clone_from(&req.model);
    let snapshot = gw.catalog.current();
    let targets = snapshot
        .resolve(&req.model, ModelKind::Embedding)
        .ok_or_else(|| GatewayError::model_not_found(&req.model))?;
    let targets = limits::allowed(fin.limits(), &req.model, targets)?;
    let plan = gw.health.plan(targets)?;
    let estimate = match &req.input {
        crate::canonical::EmbeddingInput::Texts(t) => {
            t.iter().map(|s| tokens::estimate_text(s)).sum()
        }
        crate::canonical::EmbeddingInput::Tokens(t) => t.iter().map(|x| x.len() as u64).sum(),
    };
    limits::admit(gw, fin, estimate, rate).await?;
    let plan = limits::spill(gw, fin, plan, estimate).await?;
    reserve(gw, fin, &plan, estimate, Some(0), rate).await?;
    let mut last = None;
    for target in Attempts::new(gw).admitted(plan) {
        fin.attempts += 1;
        fin.channel_id = Some(target.channel.id);
        fin.target_model = Some(target.model.clone());
        let out = upstream::embeddings_request(&target, &req)?;
        let wire = target.channel.wire;
        let result = async {
            let resp = upstream::send(&gw.http, out, &gw.timeouts).await?;
            let body = upstream::read_body(resp, &gw.timeouts)
                .await
                .map_err(|e| e.retryable(true))?;
            let decoded = match wire {
                Wire::Cohere => cohere::decode_embed_response(&body, req.input.len())?,
                Wire::Gemini => gemini::decode_embed_response(&body, req.input.len())?,
                // Anthropic and Responses channels were refused by `embeddings_request`.
                Wire::OpenAi | Wire::Anthropic | Wire::Responses => {
                    let usage =
                        openai_embeddings::decode_usage(&body).map_err(|e| e.retryable(true))?;
                    let body = match ModelRewrite::new(&target.model.upstream_model, &req.model) {
                        Some(r) => r.apply(body),
                        None => body,
                    };
                    return Ok::<_, GatewayError>((body, usage, UsageSource::Upstream));
                }
            };
            let (usage, source) = if decoded.usage.input > 0 {
                (decoded.usage, UsageSource::Upstream)
            } else {
                let usage = Usage {
                    input: estimate,
                    ..Usage::default()
                };
                (usage, UsageSource::Estimated)
            };
            let rendered = EmbeddingResponse {
                model: req.model.clone(),
                vectors: decoded.vectors,
                usage,
            };
            let body = to_bytes(&openai_embeddings::encode_response(&rendered, req.base64));
            Ok((body, usage, source))
        }
        .await;
        match result {
            Ok((body, usage, source)) => {
                gw.health
                    .record_success(target.channel.id, &target.model.id);
                let mut response = Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .map_err(|_| GatewayError::internal("could not build the response"))?;
                if let Some(t) = &fin.reserved {
                    set_cost_header(&mut response, cost_of(t, &usage));
                }
                return Ok((response, usage, source));
            }
            Err(e) => {
                gw.health
                    .record_failure(target.channel.id, &target.model.id, &e);
                if !e.retryable {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "No channel can serve this model right now.",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::new_request_id;

    /// Request ids are UUIDv7 (version and variant bits right, the timestamp now) and sort in
    /// the order they were made, also many within one millisecond.
    #[test]
    fn request_ids_are_v7_and_increase() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let u = uuid::Uuid::parse_str(ids[0].strip_prefix("req_").unwrap()).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        let (secs, _) = u.get_timestamp().unwrap().to_unix();
        let now = chrono::Utc::now().timestamp() as u64;
        assert!(secs.abs_diff(now) <= 5, "timestamp {secs}, now {now}");
    }
}
