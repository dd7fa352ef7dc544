//! Talking to upstream providers: building the HTTP request for a target's wire format,
//! sending it under the connect and first-byte deadlines, classifying failures (who is to
//! blame, may another channel be tried), and reading SSE bodies with a bounded line length.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use weir_core::catalog::{Target, Wire};

use crate::{
    canonical::{CanonicalRequest, EmbeddingRequest},
    error::{ErrorKind, GatewayError},
    wire::{cohere, gemini, json::to_bytes, openai_chat, openai_embeddings},
};

/// Deadlines for upstream calls (RELIABILITY.md §3 "Deadlines").
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to receiving response headers.
    pub first_byte: Duration,
    /// Longest silence between two stream chunks.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

/// Longest SSE line accepted from an upstream before the stream is treated as broken.
pub const MAX_SSE_LINE: usize = 4 * 1024 * 1024;
/// Largest non-streamed upstream body read.
pub const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// Name resolution for upstream calls with the SSRF guard applied at connect time: addresses
/// a non-local channel may not reach (`weir_core::catalog::ssrf::is_forbidden`) are dropped
/// from every answer, so a name that resolves, or later re-resolves, to a private or metadata
/// address cannot be connected to, unless the host is one the catalog trusts (channels marked
/// local, or configured by the deployer: see `Snapshot::trusted_hosts`). IP literals never
/// reach a resolver; they are checked when the channel is saved.
#[derive(Clone, Default)]
pub struct GuardedResolver {
    pub trusted: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self
            .trusted
            .read()
            .map(|s| s.contains(&host))
            .unwrap_or(false);
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<std::net::SocketAddr> = if trusted {
                addrs
            } else {
                addrs
                    .into_iter()
                    .filter(|a| !weir_core::catalog::ssrf::is_forbidden(a.ip()))
                    .collect()
            };
            if kept.is_empty() {
                tracing::warn!(host = %host, "upstream host resolves only to refused addresses");
                return Err(
                    "the upstream host resolves only to private or refused addresses".into(),
                );
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Builds the shared HTTP client for upstream calls.
pub fn client(t: &Timeouts, resolver: GuardedResolver) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(resolver))
        .connect_timeout(t.connect)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        // Upstream redirects are never followed (an SSRF guard, and APIs do not redirect).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// An HTTP request ready to send upstream.
pub struct Outbound {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Upstream endpoints already parsed: parsing a URL (with its IDNA host rules) costs several
/// microseconds, a lookup here a hash of the string. Keyed by the full URL, so an operator's
/// change of a channel's base URL is simply a new entry; bounded, since the keys come from the
/// catalog (channels × paths), never from callers.
static ENDPOINTS: std::sync::LazyLock<quick_cache::sync::Cache<String, reqwest::Url>> =
    std::sync::LazyLock::new(|| quick_cache::sync::Cache::new(1024));

/// `base` + `path`, parsed (once per distinct URL).
fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, GatewayError> {
    let full = format!("{}{path}", base.trim_end_matches('/'));
    if let Some(url) = ENDPOINTS.get(full.as_str()) {
        return Ok(url);
    }
    let url = reqwest::Url::parse(&full).map_err(|_| {
        tracing::error!(url = %full, "a channel's base URL is not a valid URL");
        GatewayError::new(ErrorKind::BadGateway, "The upstream could not be reached.")
            .retryable(true)
    })?;
    ENDPOINTS.insert(full, url.clone());
    Ok(url)
}

fn auth_headers(target: &Target) -> Result<HeaderMap, GatewayError> {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let key = target.channel.api_key.as_deref().unwrap_or_default();
    let bad_key = || GatewayError::internal("A channel's API key is not a valid header value.");
    match target.channel.wire {
        Wire::OpenAi | Wire::Cohere | Wire::Responses => {
            let v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| bad_key())?;
            h.insert(http::header::AUTHORIZATION, v);
        }
        Wire::Anthropic => {
            h.insert(
                "x-api-key",
                HeaderValue::from_str(key).map_err(|_| bad_key())?,
            );
            h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        Wire::Gemini => {
            h.insert(
                "x-goog-api-key",
                HeaderValue::from_str(key).map_err(|_| bad_key())?,
            );
        }
    }
    Ok(h)
}

/// The channel's headers, with the client's `forward`ed ones in place of Weir's defaults.
fn headers_with(target: &Target, forward: Option<&HeaderMap>) -> Result<HeaderMap, GatewayError> {
    let mut headers = auth_headers(target)?;
    if let Some(f) = forward {
        for name in f.keys() {
            headers.remove(name);
        }
        for (name, v) in f {
            headers.append(name, v.clone());
        }
    }
    Ok(headers)
}

/// Default output limit for formats that require one, when the client gave none.
pub fn default_max_tokens(target: &Target) -> u32 {
    target.model.max_output_tokens.unwrap_or(4096).min(4096)
}

/// The request for a chat completion on `target`. `forward` holds client headers for an
/// upstream of the client's own format (Anthropic's `anthropic-version` and `anthropic-beta`),
/// which replace Weir's defaults.
pub fn chat_request(
    target: &Target,
    req: &CanonicalRequest,
    forward: Option<&HeaderMap>,
) -> Result<Outbound, GatewayError> {
    let upstream_model = &target.model.upstream_model;
    let (url, body) = match target.channel.wire {
        Wire::OpenAi => (
            endpoint(&target.channel.base_url, "/chat/completions")?,
            openai_chat::encode_request(req, upstream_model),
        ),
        Wire::Anthropic => (
            endpoint(&target.channel.base_url, "/v1/messages")?,
            crate::wire::anthropic::encode_request(
                req,
                upstream_model,
                default_max_tokens(target),
            )?,
        ),
        // The catalog's Cohere base URL is the API root (`https://api.cohere.com`).
        Wire::Cohere => (
            endpoint(&target.channel.base_url, "/v2/chat")?,
            cohere::encode_request(req, upstream_model)?,
        ),
        Wire::Gemini => (
            endpoint(
                &target.channel.base_url,
                &gemini::request_path(upstream_model, req.stream),
            )?,
            gemini::encode_request(req)?,
        ),
        Wire::Responses => {
            return Err(GatewayError::new(
                ErrorKind::BadGateway,
                "This provider's wire format is not supported yet.",
            ))
        }
    };
    let headers = headers_with(target, forward)?;
    Ok(Outbound {
        url,
        headers,
        body: to_bytes(&body),
    })
}

/// The client's own request for an upstream of the same format (an Anthropic client on an
/// Anthropic channel), relayed with only the model name replaced; `forward` as for
/// [`chat_request`].
pub fn relay_request(
    target: &Target,
    body: &[u8],
    forward: &HeaderMap,
) -> Result<Outbound, GatewayError> {
    let body = match target.channel.wire {
        Wire::Anthropic => {
            crate::wire::anthropic::relay_request(body, &target.model.upstream_model)?
        }
        _ => {
            return Err(GatewayError::internal(
                "only Anthropic requests are relayed",
            ))
        }
    };
    Ok(Outbound {
        url: endpoint(&target.channel.base_url, "/v1/messages")?,
        headers: headers_with(target, Some(forward))?,
        body: to_bytes(&body),
    })
}

/// Anthropic's token count of `req` on `target` (an Anthropic channel): the Messages request
/// with only the members `count_tokens` takes.
pub fn count_tokens_request(
    target: &Target,
    req: &CanonicalRequest,
    forward: &HeaderMap,
) -> Result<Outbound, GatewayError> {
    let mut body = crate::wire::anthropic::encode_request(
        req,
        &target.model.upstream_model,
        default_max_tokens(target),
    )?;
    if let serde_json::Value::Object(o) = &mut body {
        o.retain(|k, _| {
            matches!(
                k.as_str(),
                "model"
                    | "messages"
                    | "system"
                    | "tools"
                    | "tool_choice"
                    | "thinking"
                    | "mcp_servers"
            )
        });
    }
    let headers = headers_with(target, Some(forward))?;
    Ok(Outbound {
        url: endpoint(&target.channel.base_url, "/v1/messages/count_tokens")?,
        headers,
        body: to_bytes(&body),
    })
}

/// The request for embeddings on `target`: OpenAI `{base}/embeddings`, Cohere
/// `{base}/v2/embed`, Gemini `{base}/models/{model}:batchEmbedContents`.
pub fn embeddings_request(
    target: &Target,
    req: &EmbeddingRequest,
) -> Result<Outbound, GatewayError> {
    let upstream_model = &target.model.upstream_model;
    let (url, body) = match target.channel.wire {
        Wire::OpenAi => (
            endpoint(&target.channel.base_url, "/embeddings")?,
            openai_embeddings::encode_request(req, upstream_model),
        ),
        Wire::Cohere => (
            endpoint(&target.channel.base_url, "/v2/embed")?,
            cohere::encode_embed_request(req, upstream_model)?,
        ),
        Wire::Gemini => (
            endpoint(
                &target.channel.base_url,
                &gemini::embed_path(upstream_model),
            )?,
            gemini::encode_embed_request(req, upstream_model)?,
        ),
        Wire::Anthropic | Wire::Responses => {
            return Err(GatewayError::new(
                ErrorKind::BadGateway,
                "Embeddings are not supported for this provider yet.",
            ))
        }
    };
    Ok(Outbound {
        url,
        headers: auth_headers(target)?,
        body: to_bytes(&body),
    })
}

/// Sends `out`, waiting at most the first-byte deadline for the response headers. Non-2xx
/// answers are read (bounded) and turned into a classified error.
pub async fn send(
    http: &reqwest::Client,
    out: Outbound,
    t: &Timeouts,
) -> Result<reqwest::Response, GatewayError> {
    let fut = http
        .post(out.url)
        .headers(out.headers)
        .body(out.body)
        .send();
    let resp = match tokio::time::timeout(t.first_byte, fut).await {
        Err(_) => {
            return Err(GatewayError::new(
                ErrorKind::Timeout,
                "The upstream did not answer in time.",
            )
            .retryable(true))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upstream request failed");
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::BadGateway
            };
            return Err(
                GatewayError::new(kind, "The upstream could not be reached.").retryable(true),
            );
        }
        Ok(Ok(r)) => r,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|s| s.ceil().clamp(0.0, 3600.0) as u64);
    let body = tokio::time::timeout(Duration::from_secs(10), read_limited(resp, 64 * 1024))
        .await
        .unwrap_or_default();
    Err(classify_status(status, &body, retry_after))
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(Ok(chunk)) = s.next().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Bytes::from(buf)
}

/// Reads a whole non-streamed upstream body, bounded.
pub async fn read_body(resp: reqwest::Response, t: &Timeouts) -> Result<Bytes, GatewayError> {
    let fut = async {
        let mut buf = Vec::new();
        let mut s = resp.bytes_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|_| {
                GatewayError::new(ErrorKind::BadGateway, "The upstream connection failed.")
            })?;
            if buf.len() + chunk.len() > MAX_UPSTREAM_BODY {
                return Err(GatewayError::new(
                    ErrorKind::BadGateway,
                    "The upstream answer is too large.",
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(t.first_byte, fut)
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::new(
                ErrorKind::Timeout,
                "The upstream did not finish in time.",
            ))
        })
}

/// The message inside an upstream error envelope (OpenAI, Anthropic, Gemini or Cohere shape).
fn upstream_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let msg = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)?;
    Some(msg.chars().take(1000).collect())
}

/// Maps an upstream error status to a [`GatewayError`]. Client mistakes keep the upstream's
/// message and are not retried; auth failures of the channel and server-side failures are
/// retryable on another channel and never show the upstream's text.
pub fn classify_status(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> GatewayError {
    // Google's envelope names the error class (`error.status`) and the wait (`RetryInfo`).
    let code = gemini::error_status(body).unwrap_or(status.as_u16());
    let retry_after = retry_after.or_else(|| gemini::retry_delay(body));
    match code {
        400 | 404 | 413 | 422 => {
            let kind = match code {
                404 => ErrorKind::NotFound,
                413 => ErrorKind::PayloadTooLarge,
                _ => ErrorKind::InvalidRequest,
            };
            let msg = upstream_message(body)
                .unwrap_or_else(|| format!("The upstream rejected the request ({code})."));
            GatewayError::new(kind, msg)
        }
        // 498 is Cohere's invalid-token status.
        401 | 403 | 498 => {
            let mut e = GatewayError::new(
                ErrorKind::BadGateway,
                "The upstream refused this gateway's credentials.",
            )
            .retryable(true);
            e.code = Some("upstream_auth");
            e
        }
        429 => GatewayError::new(
            ErrorKind::UpstreamRateLimited,
            "The upstream is rate limiting requests.",
        )
        .retryable(true)
        .with_retry_after(retry_after),
        408 | 504 => {
            GatewayError::new(ErrorKind::Timeout, "The upstream timed out.").retryable(true)
        }
        503 | 529 => GatewayError::new(ErrorKind::Overloaded, "The upstream is overloaded.")
            .retryable(true)
            .with_retry_after(retry_after),
        _ => GatewayError::new(
            ErrorKind::BadGateway,
            format!("The upstream failed ({code})."),
        )
        .retryable(code >= 500),
    }
}

/// Why reading an upstream stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// The connection broke (reset, EOF inside a chunk, TLS failure).
    Transport,
    /// The bytes were not valid SSE / UTF-8, or a line was too long.
    Malformed,
}

/// The SSE events of an upstream response body. Lines longer than [`MAX_SSE_LINE`] end the
/// stream with [`StreamFault::Malformed`] instead of growing a buffer without bound.
pub fn sse_events(
    resp: reqwest::Response,
) -> impl Stream<Item = Result<Event, StreamFault>> + Send {
    let mut since_newline = 0usize;
    let guarded = resp
        .bytes_stream()
        .map_err(|_| StreamFault::Transport)
        .and_then(move |chunk: Bytes| {
            let r = match memchr_last_newline(&chunk) {
                Some(i) => {
                    since_newline = chunk.len() - i - 1;
                    Ok(chunk)
                }
                None => {
                    since_newline += chunk.len();
                    if since_newline > MAX_SSE_LINE {
                        Err(StreamFault::Malformed)
                    } else {
                        Ok(chunk)
                    }
                }
            };
            std::future::ready(r)
        });
    guarded.eventsource().map(|r| {
        r.map_err(|e| match e {
            EventStreamError::Transport(f) => f,
            EventStreamError::Utf8(_) | EventStreamError::Parser(_) => StreamFault::Malformed,
        })
    })
}

fn memchr_last_newline(b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == b'\n' || c == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resolver_refuses_private_answers_unless_the_host_is_trusted() {
        use reqwest::dns::Resolve;
        let r = GuardedResolver::default();
        let name = || -> reqwest::dns::Name { "localhost".parse().unwrap() };
        assert!(r.resolve(name()).await.is_err(), "localhost is loopback");
        r.trusted.write().unwrap().insert("localhost".into());
        let addrs: Vec<_> = r.resolve(name()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());

        // Through the client: a non-local name resolving to loopback is never connected to.
        let mock = crate::mock::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = mock.base_url().rsplit(':').next().unwrap().to_owned();
        let guarded = client(&Timeouts::default(), GuardedResolver::default()).unwrap();
        let url = format!("http://localhost:{port}/v1/models");
        assert!(guarded.get(&url).send().await.is_err());
        let trusted = GuardedResolver::default();
        trusted.trusted.write().unwrap().insert("localhost".into());
        let ok = client(&Timeouts::default(), trusted).unwrap();
        assert!(ok.get(&url).send().await.is_ok());
    }

    #[test]
    fn statuses_are_classified() {
        let e = classify_status(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"message":"context too long"}}"#,
            None,
        );
        assert_eq!(
            (e.kind, e.retryable, &*e.message),
            (ErrorKind::InvalidRequest, false, "context too long")
        );
        let e = classify_status(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"message":"bad key sk-123"}}"#,
            None,
        );
        assert!(e.retryable && !e.message.contains("sk-123"));
        let e = classify_status(StatusCode::TOO_MANY_REQUESTS, b"", Some(7));
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::UpstreamRateLimited, Some(7))
        );
        // Cohere: `{"id", "message"}`, 422 for invalid requests, 498 for a bad token.
        let e = classify_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"id":"0f1e","message":"invalid request: p must be at most 0.99"}"#,
            None,
        );
        assert_eq!(
            (e.kind, &*e.message),
            (
                ErrorKind::InvalidRequest,
                "invalid request: p must be at most 0.99"
            )
        );
        let e = classify_status(
            StatusCode::from_u16(498).unwrap(),
            br#"{"id":"0f1e","message":"invalid api token"}"#,
            None,
        );
        assert_eq!(
            (e.kind, e.code, e.retryable),
            (ErrorKind::BadGateway, Some("upstream_auth"), true)
        );
        // Gemini: a bad key is a 400 whose detail says API_KEY_INVALID, and the wait of a
        // 429 is in its RetryInfo detail rather than a header.
        let e = classify_status(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
            None,
        );
        assert_eq!(
            (e.kind, e.code, e.retryable),
            (ErrorKind::BadGateway, Some("upstream_auth"), true)
        );
        let quota = br#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"36.5s"}]}}"#;
        let e = classify_status(StatusCode::TOO_MANY_REQUESTS, quota, None);
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::UpstreamRateLimited, Some(37))
        );
        let e = classify_status(StatusCode::TOO_MANY_REQUESTS, quota, Some(5));
        assert_eq!(e.retry_after, Some(5), "the header wins");
        let e = classify_status(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"code":400,"message":"Invalid JSON payload.","status":"INVALID_ARGUMENT"}}"#,
            None,
        );
        assert_eq!(
            (e.kind, e.retryable, &*e.message),
            (ErrorKind::InvalidRequest, false, "Invalid JSON payload.")
        );
        let e = classify_status(StatusCode::from_u16(529).unwrap(), b"", None);
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert!(classify_status(StatusCode::INTERNAL_SERVER_ERROR, b"x", None).retryable);
        assert!(!classify_status(StatusCode::IM_A_TEAPOT, b"x", None).retryable);
    }
}
