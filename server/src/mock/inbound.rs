//! What every mock request goes through before a format answers it: the whole body is read,
//! the API key checked, the JSON parsed, fault directives collected, and `delay_ms`, the
//! `fail-<code>` model and the `status` fault applied.

use std::time::Duration;

use axum::{
    body::{to_bytes, Bytes},
    extract::{ConnectInfo, Request},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::Response,
};
use serde_json::Value;

use super::{
    control::Control,
    dialect::{Dialect, Refusal},
    directive::{self, Directive},
    generation::LastTurn,
    listener::ResetSwitch,
};

/// Largest request body read (base64 images make prompts big).
pub(super) const BODY_LIMIT: usize = 64 << 20;
/// The key that always fails authentication, for dead-channel tests.
pub(super) const BAD_KEY: &str = "mock-bad-key";

/// A request that passed the common checks.
pub(super) struct Inbound {
    pub body: Bytes,
    /// Faults from the `x-mock-fault` header, then from the prompt text.
    pub directive: Directive,
    /// The connection's reset switch, when served by [`super::spawn`].
    pub reset: Option<ResetSwitch>,
    pub dialect: Dialect,
    /// The status of an outage switched on through the control surface.
    outage: Option<StatusCode>,
}

impl Inbound {
    /// Reads the whole body, then checks the key and the `x-mock-fault` header.
    pub(super) async fn read(req: Request, dialect: Dialect) -> Result<Inbound, Refusal> {
        let (parts, body) = req.into_parts();
        let body = match to_bytes(body, BODY_LIMIT).await {
            Ok(body) => body,
            Err(_) => {
                return Err(dialect.refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large or unreadable",
                ))
            }
        };
        let key = api_key(&parts);
        match key {
            None => return Err(dialect.refuse(
                StatusCode::UNAUTHORIZED,
                "missing API key: send Authorization: Bearer, x-api-key, x-goog-api-key or ?key=",
            )),
            Some(BAD_KEY) => {
                return Err(dialect.refuse(StatusCode::UNAUTHORIZED, "invalid API key provided"))
            }
            Some(_) => {}
        }
        let mut directive = match key.and_then(Directive::from_key) {
            None => Directive::default(),
            Some(d) => d.map_err(|msg| dialect.refuse(StatusCode::BAD_REQUEST, msg))?,
        };
        if let Some(value) = parts.headers.get("x-mock-fault") {
            value
                .to_str()
                .map_err(|_| "x-mock-fault: not ASCII".to_owned())
                .and_then(|v| directive.apply_header(v))
                .map_err(|msg| dialect.refuse(StatusCode::BAD_REQUEST, msg))?;
        }
        let reset = parts
            .extensions
            .get::<ConnectInfo<ResetSwitch>>()
            .map(|info| info.0.clone());
        let outage = parts
            .extensions
            .get::<std::sync::Arc<Control>>()
            .and_then(|c| c.arrive());
        Ok(Inbound {
            body,
            directive,
            reset,
            dialect,
            outage,
        })
    }

    /// The body as JSON, or a 400 in the format's envelope.
    pub(super) fn json(&self) -> Result<Value, Refusal> {
        serde_json::from_slice(&self.body)
            .map_err(|e| self.bad_request(format!("invalid JSON body: {e}")))
    }

    /// A 400 in the format's envelope.
    pub(super) fn bad_request(&self, message: impl Into<String>) -> Refusal {
        self.dialect.refuse(StatusCode::BAD_REQUEST, message)
    }

    /// Moves the directives in the reply's source text into `self.directive`.
    pub(super) fn take_directives(&mut self, last: &mut LastTurn) -> Result<(), Refusal> {
        let text = last.text_mut();
        let stripped = directive::strip(text, &mut self.directive)
            .map_err(|msg| self.dialect.refuse(StatusCode::BAD_REQUEST, msg))?;
        if let std::borrow::Cow::Owned(stripped) = stripped {
            *text = stripped;
        }
        Ok(())
    }

    /// Waits `delay_ms`, then answers for a `fail-<code>` model or a `status` fault; `None`
    /// lets the normal reply go out.
    pub(super) async fn preempt(&self, model: &str) -> Option<Response> {
        if let Some(ms) = self.directive.delay_ms.filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let status = self
            .outage
            .or_else(|| failing_model(model))
            .or(self.directive.status)?;
        let mut response = self
            .dialect
            .error(status, &self.dialect.fault_message(status));
        if let Some(secs) = self.directive.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        Some(response)
    }
}

/// The status a `fail-<code>` model name asks for.
fn failing_model(model: &str) -> Option<StatusCode> {
    let code = model.strip_prefix("fail-")?.parse::<u16>().ok()?;
    StatusCode::from_u16(code).ok()
}

/// The first non-empty key from `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or
/// the `key` query parameter.
fn api_key(parts: &Parts) -> Option<&str> {
    let headers = &parts.headers;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = (v.get(..7)?, v.get(7..)?);
            scheme.eq_ignore_ascii_case("bearer ").then(|| key.trim())
        });
    let named = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let query = parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .map(str::trim)
    });
    [bearer, named("x-api-key"), named("x-goog-api-key"), query]
        .into_iter()
        .flatten()
        .find(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(builder: axum::http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_from_every_place() {
        let p = parts(Request::builder().header("authorization", "Bearer sk-1"));
        assert_eq!(api_key(&p), Some("sk-1"));
        let p = parts(Request::builder().header("x-api-key", "a"));
        assert_eq!(api_key(&p), Some("a"));
        let p = parts(Request::builder().header("x-goog-api-key", "g"));
        assert_eq!(api_key(&p), Some("g"));
        let p = parts(Request::builder().uri("/x?alt=sse&key=q"));
        assert_eq!(api_key(&p), Some("q"));
        let p = parts(Request::builder().header("authorization", "Bearer  "));
        assert_eq!(api_key(&p), None);
        let p = parts(Request::builder().header("authorization", "Basic abc"));
        assert_eq!(api_key(&p), None);
    }

    #[test]
    fn fail_models() {
        assert_eq!(
            failing_model("fail-503"),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(failing_model("fail-x"), None);
        assert_eq!(failing_model("gpt-4o"), None);
    }
}
