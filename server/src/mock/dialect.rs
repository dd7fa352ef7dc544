//! The wire formats the mock speaks, and each one's HTTP error envelope.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// A request the mock turns down; answers in its route's error envelope.
#[derive(Debug)]
pub(super) struct Refusal {
    dialect: Dialect,
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.dialect.error(self.status, &self.message)
    }
}

/// Which provider's wire format a route speaks; decides envelopes and header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
    Cohere,
}

impl Dialect {
    /// A complete error response in this format's envelope, with the error type the real
    /// provider uses for `status`.
    pub(super) fn error(self, status: StatusCode, message: &str) -> Response {
        let body = match self {
            Dialect::OpenAi => {
                let (kind, code) = openai_kind(status);
                serde_json::to_string(&OpenAiEnvelope {
                    error: OpenAiError {
                        message,
                        kind,
                        param: None,
                        code,
                    },
                })
            }
            Dialect::Anthropic => serde_json::to_string(&AnthropicEnvelope {
                kind: "error",
                error: AnthropicError {
                    kind: anthropic_kind(status),
                    message,
                },
                request_id: &format!("req_mock_{}", super::next_seq()),
            }),
            Dialect::Gemini => serde_json::to_string(&GeminiEnvelope {
                error: GeminiError {
                    code: status.as_u16(),
                    message,
                    status: gemini_status(status),
                },
            }),
            Dialect::Cohere => serde_json::to_string(&CohereEnvelope {
                id: &cohere_error_id(),
                message,
            }),
        };
        // Serializing these plain structs cannot fail.
        let mut response = (status, body.unwrap_or_default()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// A refusal with `status` in this format's envelope.
    pub(super) fn refuse(self, status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            dialect: self,
            status,
            message: message.into(),
        }
    }

    /// The message a real provider sends with a fault status, so SDK error text looks familiar.
    pub(super) fn fault_message(self, status: StatusCode) -> String {
        match (self, status.as_u16()) {
            (Dialect::Anthropic, 529) => "Overloaded".to_owned(),
            (_, 429) => "Rate limit reached (mock fault)".to_owned(),
            (_, code) => format!("mock fault: upstream answered {code}"),
        }
    }
}

#[derive(Serialize)]
struct OpenAiEnvelope<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

#[derive(Serialize)]
struct AnthropicEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct GeminiEnvelope<'a> {
    error: GeminiError<'a>,
}

#[derive(Serialize)]
struct GeminiError<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
}

/// Cohere's error body: `{"id": "<uuid>", "message": "…"}`, whatever the status.
#[derive(Serialize)]
struct CohereEnvelope<'a> {
    id: &'a str,
    message: &'a str,
}

fn cohere_error_id() -> String {
    format!(
        "00000000-0000-4000-9000-{:012}",
        super::next_seq() % 1_000_000_000_000
    )
}

/// OpenAI `error.type` and `error.code` for a status.
fn openai_kind(status: StatusCode) -> (&'static str, Option<&'static str>) {
    match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        429 => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
        500.. => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// Anthropic `error.type` for a status (anthropic-messages.md §5).
fn anthropic_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}

/// Gemini `error.status` for a status (translation.md §8).
fn gemini_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500.. => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_follow_the_references() {
        assert_eq!(
            anthropic_kind(StatusCode::from_u16(529).unwrap()),
            "overloaded_error"
        );
        assert_eq!(
            anthropic_kind(StatusCode::TOO_MANY_REQUESTS),
            "rate_limit_error"
        );
        assert_eq!(anthropic_kind(StatusCode::BAD_GATEWAY), "api_error");
        assert_eq!(
            gemini_status(StatusCode::SERVICE_UNAVAILABLE),
            "UNAVAILABLE"
        );
        assert_eq!(
            gemini_status(StatusCode::TOO_MANY_REQUESTS),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(
            openai_kind(StatusCode::TOO_MANY_REQUESTS),
            ("rate_limit_exceeded", Some("rate_limit_exceeded"))
        );
        assert_eq!(openai_kind(StatusCode::BAD_GATEWAY), ("server_error", None));
    }
}
