//! The mock upstream: a real HTTP server speaking the OpenAI, Anthropic, Gemini and Cohere wire
//! formats with deterministic replies and injectable faults, for integration tests, the benchmark
//! and the quickstart demo (`weir mock-upstream --listen ADDR`).
//!
//! # Routes
//! OpenAI: `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models` (Anthropic's
//! list shape when `anthropic-version` is sent). Anthropic: `POST /v1/messages` (`?beta=true`
//! ignored), `POST /v1/messages/count_tokens`. Gemini: `POST /v1beta/models/{model}:{method}`
//! for `generateContent`, `streamGenerateContent` (always SSE, as with `?alt=sse`),
//! `countTokens`, `embedContent`, `batchEmbedContents`; `GET /v1beta/models`. Cohere:
//! `POST /v2/chat` (`stream: true` for its named SSE events), `POST /v2/embed`. Anything else is
//! a 404 (a known path with another method a 405) in the OpenAI envelope.
//!
//! # Requests
//! The whole body is always read before any answer. A non-empty key is required
//! (`Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or `?key=`, accepted on every route);
//! none, or the key `mock-bad-key`, gives 401. Bad JSON or a missing required field gives 400.
//! Errors use the route's envelope. Any model name is accepted; `fail-<code>` (in the JSON
//! `model`, or the Gemini path) always answers `<code>`.
//!
//! # The model
//! Tokenizer: a text's token count is its number of whitespace-separated words. Prompt tokens
//! are the words of the system text plus, for every message, the words of its text parts, tool
//! call arguments (JSON text) and tool results, each message counting at least 1. The text is
//! counted as sent, fault directives included. Completion tokens are the words of the reply
//! text, or of a tool call's arguments JSON (at least 1); OpenAI `n` multiplies them.
//!
//! Anthropic prompt caching: the prompt up to the last block carrying `cache_control` is
//! reported as `cache_creation_input_tokens` the first time that prefix is seen and as
//! `cache_read_input_tokens` after (and left out of `input_tokens`), for the process's life.
//!
//! Reply: `echo: <last user message text>` (text parts joined with a space, images ignored,
//! whitespace collapsed to single spaces); when the last turn is a tool result (OpenAI `tool`
//! message, Anthropic `tool_result` block, Gemini `functionResponse`, Cohere `tool` message),
//! `tool result: <its text>`.
//! It is cut before the first stop sequence (finish `stop` / `stop_sequence` / `STOP`) and then
//! to the max output tokens in words (finish `length` / `max_tokens` / `MAX_TOKENS`). OpenAI
//! `n > 1` gives `n` identical choices.
//!
//! Tools are called only when the tool choice forces one (OpenAI `"required"` or a named
//! function, Anthropic `any`/`tool`, Gemini mode `ANY` with optional `allowedFunctionNames`,
//! Cohere `REQUIRED`) or when the last user text says `call <name>` for an offered tool; never
//! under `none`. The
//! arguments are the JSON object written right after `call <name>` (compacted, key order kept),
//! else an object of the schema's `required` properties (string `"test"`, integer or number
//! `1`, boolean `true`, anything else `null`). Ids: `chatcmpl-mock-<n>`, `msg_mock_<n>`,
//! `call_mock_<n>`, `toolu_mock_<n>`, from one process-wide counter (Cohere: UUID-shaped
//! message ids and `<name>_mock_<n>` calls, each with the `tool_plan` `I will call <name>.`,
//! which no count includes). Cohere usage has `tokens` as above and `billed_units` without the
//! system messages' words.
//!
//! # Control
//! `GET /_mock/stats` counts the API requests this server received; `PUT /_mock/outage`
//! (`{"status": 503}`) fails every API request with that status until `DELETE /_mock/outage`.
//!
//! # Faults
//! A directive in the text of the turn the reply answers, or the `x-mock-fault` header with
//! the same contents (with or without the brackets), chooses faults for one request:
//! `[[mock key=value … flag …]]`. Several directives merge (the text wins over the header),
//! and they are removed from the echoed text. An unknown key or bad value is a 400. An API key
//! `mock-fault:<key=value>+<key=value>…` applies its directives to every request made with it
//! (beneath the header's and the text's), so that one channel can be a slow host.
//!
//! | directive | effect |
//! |---|---|
//! | `status=<code>` | answer `<code>` (≥ 400) in the format's error envelope |
//! | `retry_after=<s>` | `retry-after` header on that error |
//! | `delay_ms=<n>` | wait before the response headers (≤ 600000) |
//! | `chunk_delay_ms=<n>` | wait between stream events (≤ 600000) |
//! | `reset_after=<n>` | after `n` content events, abort the TCP connection with a RST |
//! | `error_after=<n>` | after `n` content events, send the in-stream error and end (Cohere: a `message-end` with `finish_reason` `ERROR` and `delta.error`) |
//! | `stall_after=<n>` | after `n` content events, send nothing more (up to 10 minutes) |
//! | `no_usage` | no usage anywhere (Anthropic: zeros in `message_start` and in a whole reply) |
//! | `malformed` | after the first content event, a `data:` line of invalid JSON |
//! | `words=<n>` | reply `w1 w2 … wn` instead of the echo |
//!
//! A content event is one word, or one tool-argument fragment, of one choice (a Gemini tool
//! call is one event). The counted faults strike after the last content event when there are
//! fewer than `n`, before the closing events; Gemini has none, its last content event carries
//! the finish. On whole (non-stream) replies, `reset_after`/`stall_after` cut the body after
//! half its bytes, `malformed` sends only that half, and `error_after`/`chunk_delay_ms` do
//! nothing.
//!
//! A reset is a real TCP RST only on connections accepted by [`spawn`] (see `listener`); a
//! [`router`] served by other code aborts the connection with a plain close instead, and over
//! HTTP/2 the body error resets only the stream.

mod anthropic;
mod cohere;
mod control;
mod delivery;
mod dialect;
mod directive;
mod embedding;
mod gemini;
mod generation;
mod inbound;
mod listener;
mod openai;

#[cfg(test)]
mod tests;

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    routing::{get, post},
    serve::ListenerExt,
    Router,
};
use tokio::sync::oneshot;

use listener::{ResetSwitch, ResettingListener};

/// Every mock route, with a control surface of its own ([`control`]).
pub fn router() -> Router {
    Router::new()
        .route("/_mock/stats", get(control::stats))
        .route(
            "/_mock/outage",
            axum::routing::put(control::start_outage).delete(control::end_outage),
        )
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models", get(gemini::list_models))
        .route("/v1beta/models/{*tail}", post(gemini::model_action))
        .route("/v2/chat", post(cohere::chat))
        .route("/v2/embed", post(cohere::embed))
        .fallback(openai::not_found)
        .method_not_allowed_fallback(openai::method_not_allowed)
        .layer(axum::Extension(std::sync::Arc::new(
            control::Control::default(),
        )))
}

/// A running mock upstream; it stops accepting connections when dropped.
#[derive(Debug)]
pub struct MockServer {
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl MockServer {
    /// `http://IP:PORT`, with a loopback IP when bound to the unspecified address.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }
}

/// Binds `listen` (port 0 picks a free port) and serves the mock in a tokio task until the
/// returned [`MockServer`] is dropped.
pub async fn spawn(listen: SocketAddr) -> io::Result<MockServer> {
    let tcp = tokio::net::TcpListener::bind(listen).await?;
    let addr = tcp.local_addr()?;
    // Without TCP_NODELAY a response written in two parts waits for the client's delayed ACK.
    let listener = ResettingListener::new(tcp.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    }));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let service = router().into_make_service_with_connect_info::<ResetSwitch>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(MockServer {
        addr,
        _shutdown: shutdown,
    })
}

/// `weir mock-upstream`: serves on `listen` until SIGINT or SIGTERM.
pub async fn run(listen: SocketAddr) -> io::Result<()> {
    let server = spawn(listen).await?;
    println!("mock upstream listening on http://{}", server.addr);
    crate::http::shutdown_signal().await;
    Ok(())
}

/// The next number for response and tool-call ids.
fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
