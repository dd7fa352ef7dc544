//! `GatewayError`, the one error type of the request path, and its rendering in each client
//! format. Use it for anything a gateway caller can see; internal details (database errors,
//! upstream bodies and URLs) go to the log and never into the message.
//!
//! Every error says who is to blame (the caller, the upstream, or Weir) and whether another
//! channel may be tried; the retry loop and billing key off those two facts alone.

use std::borrow::Cow;

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::canonical::Wire;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or invalid request (400).
    InvalidRequest,
    /// Missing or invalid API key (401).
    Authentication,
    /// Valid key, not allowed (403).
    PermissionDenied,
    /// Unknown model or path (404).
    NotFound,
    /// Body over the size limit (413).
    PayloadTooLarge,
    /// The team's balance cannot cover the request (402).
    InsufficientBalance,
    /// Weir's own rate limit for this key (429).
    RateLimited,
    /// Every channel is cooling down after upstream 429s (429).
    UpstreamRateLimited,
    /// Upstream overloaded (Anthropic 529 / OpenAI 503).
    Overloaded,
    /// The upstream failed or answered something unusable (502).
    BadGateway,
    /// The upstream did not answer in time (504).
    Timeout,
    /// No healthy channel, draining, or the database is unreachable (503).
    Unavailable,
    /// A bug or unexpected state inside Weir (500).
    Internal,
}

/// Who caused an error: decides retries and whether the request is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Internal,
}

#[derive(Clone, Debug)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
    pub param: Option<Cow<'static, str>>,
    pub code: Option<&'static str>,
    pub blame: Blame,
    /// Another channel may be tried (only meaningful before any byte reached the client).
    pub retryable: bool,
    /// Seconds the caller (or a channel) should wait.
    pub retry_after: Option<u64>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> GatewayError {
        let blame = match kind {
            ErrorKind::InvalidRequest
            | ErrorKind::Authentication
            | ErrorKind::PermissionDenied
            | ErrorKind::NotFound
            | ErrorKind::PayloadTooLarge
            | ErrorKind::InsufficientBalance
            | ErrorKind::RateLimited => Blame::Client,
            ErrorKind::UpstreamRateLimited
            | ErrorKind::Overloaded
            | ErrorKind::BadGateway
            | ErrorKind::Timeout => Blame::Upstream,
            ErrorKind::Unavailable | ErrorKind::Internal => Blame::Internal,
        };
        GatewayError {
            kind,
            message: message.into(),
            param: None,
            code: None,
            blame,
            retryable: false,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<Cow<'static, str>>) -> GatewayError {
        GatewayError::new(ErrorKind::InvalidRequest, message)
    }

    /// A 400 about one request parameter.
    pub fn invalid_param(
        param: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> GatewayError {
        GatewayError::invalid(message).with_param(param)
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> GatewayError {
        GatewayError::new(ErrorKind::Internal, message)
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> GatewayError {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> GatewayError {
        self.code = Some(code);
        self
    }

    pub fn retryable(mut self, retryable: bool) -> GatewayError {
        self.retryable = retryable;
        self
    }

    pub fn with_retry_after(mut self, secs: Option<u64>) -> GatewayError {
        self.retry_after = secs;
        self
    }

    pub fn model_not_found(model: &str) -> GatewayError {
        let shown: String = model.chars().take(200).collect();
        GatewayError::new(
            ErrorKind::NotFound,
            format!("The model `{shown}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// HTTP status for a client of `format`.
    pub fn status(&self, format: Wire) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InsufficientBalance => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorKind::Overloaded => match format {
                Wire::Anthropic => {
                    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI `error.type`.
    fn openai_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::Authentication
            | ErrorKind::NotFound
            | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::InsufficientBalance => "insufficient_quota",
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => "requests",
            ErrorKind::Overloaded
            | ErrorKind::BadGateway
            | ErrorKind::Timeout
            | ErrorKind::Unavailable
            | ErrorKind::Internal => "server_error",
        }
    }

    /// Anthropic `error.type`.
    pub fn anthropic_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::InsufficientBalance => "billing_error",
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => "rate_limit_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::BadGateway | ErrorKind::Unavailable | ErrorKind::Internal => "api_error",
        }
    }

    /// The error `code`: the one set, or the conventional one for the kind.
    fn code(&self) -> Option<&'static str> {
        self.code.or(match self.kind {
            ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => Some("rate_limit_exceeded"),
            ErrorKind::InsufficientBalance => Some("insufficient_balance"),
            _ => None,
        })
    }

    /// The JSON body in the client's envelope.
    pub fn body(&self, format: Wire, request_id: Option<&str>) -> serde_json::Value {
        match format {
            Wire::Anthropic => json!({
                "type": "error",
                "error": { "type": self.anthropic_type(), "message": self.message },
                "request_id": request_id,
            }),
            _ => json!({
                "error": {
                    "message": self.message,
                    "type": self.openai_type(),
                    "param": self.param,
                    "code": self.code(),
                }
            }),
        }
    }

    /// Headers that tell SDKs whether and when to retry.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        // Throttling and overload always say when to come back (1 s when nobody said).
        let wait = match self.kind {
            ErrorKind::RateLimited
            | ErrorKind::UpstreamRateLimited
            | ErrorKind::Overloaded
            | ErrorKind::Unavailable => Some(self.retry_after.unwrap_or(1)),
            _ => self.retry_after,
        };
        if let Some(secs) = wait {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Balance problems and caller mistakes do not get better by retrying.
        let no_retry = matches!(
            self.kind,
            ErrorKind::InsufficientBalance
                | ErrorKind::InvalidRequest
                | ErrorKind::PayloadTooLarge
                | ErrorKind::Authentication
                | ErrorKind::PermissionDenied
                | ErrorKind::NotFound
        ) || self.code == Some("spend_cap_reached");
        if no_retry {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        h
    }

    /// A complete HTTP response in the client's format.
    pub fn to_response(&self, format: Wire, request_id: Option<&str>) -> Response {
        let body = self.body(format, request_id);
        let mut resp = (self.status(format), axum::Json(body)).into_response();
        resp.headers_mut().extend(self.headers());
        resp
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let e = GatewayError::model_not_found("nope/x");
        assert_eq!(e.status(Wire::OpenAi), StatusCode::NOT_FOUND);
        assert_eq!(
            e.body(Wire::OpenAi, None),
            json!({"error":{"message":"The model `nope/x` does not exist or you do not have access to it.",
                "type":"invalid_request_error","param":"model","code":"model_not_found"}})
        );
        assert_eq!(
            e.body(Wire::Anthropic, Some("req_1"))["error"]["type"],
            "not_found_error"
        );
        let o = GatewayError::new(ErrorKind::Overloaded, "busy");
        assert_eq!(o.status(Wire::Anthropic).as_u16(), 529);
        assert_eq!(o.status(Wire::OpenAi).as_u16(), 503);
        let b = GatewayError::new(ErrorKind::InsufficientBalance, "top up");
        assert_eq!(b.headers()["x-should-retry"], "false");
    }
}
