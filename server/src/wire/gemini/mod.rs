//! Google Gemini (`generativelanguage.googleapis.com/v1beta`): an upstream format only (no
//! client surface speaks it). Pure functions and small state machines, no IO.
//!
//! [`encode_request`] turns a [`CanonicalRequest`](crate::canonical::CanonicalRequest) into a
//! `generateContent` body (the same body serves `streamGenerateContent?alt=sse`);
//! [`decode_response`] and [`StreamDecoder`] turn the answer into canonical form, and
//! [`response_usage`] reads only `usageMetadata`; `embed` serves `batchEmbedContents`.
//! Answers and stream events are read through
//! the borrowed serde types of `types`; [`error_status`] and [`retry_delay`] read Google's
//! error envelope for the upstream error classification.
//!
//! Choices where the protocol leaves room:
//! - Gemini gives function calls no id (or one the client must echo), so every call gets a
//!   synthesised one, [`call_id`]: `call_<responseId>_<n>`, unique across the conversation
//!   and identical whether the answer was streamed or not. The call's `thoughtSignature`
//!   (Gemini 3 rejects a tool loop whose calls come back without it) and a Gemini-given id
//!   ride inside it, so that every client surface carries them back without server state;
//!   [`encode_request`] unpacks them onto the same `functionCall` part. A call with a foreign
//!   id (history from another model) gets Google's documented placeholder signature on the
//!   first call of each model turn of the current step.
//! - Signatures on text and thought parts are not carried: Gemini validates only those of
//!   function calls, and a Gemini signature shown as an Anthropic `signature` would break the
//!   conversation on an Anthropic channel. Thinking sent back by clients is therefore dropped.
//! - A tool result goes back as a `functionResponse` with the name of the call it answers,
//!   found in the assistant turn before it; all results for one turn go in one `user` content,
//!   in call order. A result without a call, or a call left unanswered, is a 400.
//! - JSON Schemas (tool parameters, `response_format`) are reduced to the OpenAPI subset
//!   `parameters`/`responseSchema` take ([`request::gemini_schema`]): local `$ref`s inlined,
//!   `const` → `enum`, `oneOf` → `anyOf`, `type: [T, "null"]` → `nullable`, and every member
//!   Gemini rejects dropped. Gemini wants a `type` on every schema that is not a union, so one
//!   is inferred from the members (`properties` → object, `minimum` → number, a `default`'s
//!   value, …), and a schema below the root that constrains nothing becomes a `string` (text
//!   can hold any value). Recursion is bounded: a `$ref` cycle ends as an object of any shape
//!   where it recurs, nesting past 32 levels or 5,000 nodes as a string.
//! - Reasoning effort becomes `thinkingConfig.thinkingBudget` (`none` → 0, as Google's own
//!   OpenAI compatibility layer does), kept below the client's output limit, with
//!   `includeThoughts` so the client sees the thought summaries.
//! - Penalties are sent only when non-zero (several models reject them outright); logit bias,
//!   logprobs and the end-user id have no equivalent and are dropped.
//! - Tool parameters go as `parameters` (the OpenAPI subset) rather than the newer
//!   `parametersJsonSchema`, so that one encoding serves `parameters` and `responseSchema`
//!   alike; the price is the schema reduction below.
//! - Finish reasons of the "error" class (`MALFORMED_FUNCTION_CALL`, `OTHER`, …) become `stop`
//!   when the answer has content, else an upstream error; the safety family becomes
//!   `content_filter`, as does a prompt blocked before any candidate.

mod embed;
mod request;
mod response;
mod stream;
mod types;

pub use embed::*;
pub use request::*;
pub use response::*;
pub use stream::*;
use types::*;

use std::borrow::Cow;

use base64::Engine as _;

use crate::canonical::{FinishReason, StreamErrorKind};
use crate::error::{ErrorKind, GatewayError};

/// Google's documented stand-in for a lost thought signature (Gemini 3 thought-signature
/// guide): it tells the validator to let the call through.
pub const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

/// Most stop sequences Gemini accepts.
const MAX_STOP: usize = 5;

fn bad_gateway(message: impl Into<Cow<'static, str>>) -> GatewayError {
    GatewayError::new(ErrorKind::BadGateway, message)
}

// ---------------------------------------------------------------------------------------------
// Tool-call ids
// ---------------------------------------------------------------------------------------------

/// What a tool-call id synthesised by [`call_id`] carries back to Gemini.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallKey {
    /// The `functionCall.id` Gemini gave, to echo in the call and its `functionResponse`.
    pub gemini_id: Option<String>,
    /// The part's `thoughtSignature`, exactly as Gemini sent it.
    pub signature: Option<String>,
}

/// Longest responseId prefix used in an id (Gemini's are about 24 characters).
const ID_RESPONSE_CHARS: usize = 24;
/// Longest Gemini-given call id carried (longer ones are not echoed).
const MAX_GEMINI_ID: usize = 64;

/// The client-facing id of the `n`-th function call (from 0) of the answer `response_id`:
/// `call_<responseId>_<n>`, then `_i<hex of Gemini's id>` when Gemini gave one, then the
/// signature: `_b<base64url of its bytes>` when it is canonical base64 (as Gemini sends it:
/// no longer than the original), else `_s<base64url of its text>`. Only `[A-Za-z0-9_-]`, so
/// Anthropic accepts it unchanged. [`parse_call_id`] is the inverse.
pub fn call_id(
    response_id: &str,
    n: u32,
    gemini_id: Option<&str>,
    signature: Option<&str>,
) -> String {
    use std::fmt::Write as _;
    let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut id = String::with_capacity(32 + signature.map_or(0, str::len));
    id.push_str("call_");
    let start = id.len();
    id.extend(
        response_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(ID_RESPONSE_CHARS),
    );
    if id.len() == start {
        id.push('g');
    }
    // Writing to a String cannot fail.
    let _ = write!(id, "_{n}");
    if let Some(g) = gemini_id.filter(|g| !g.is_empty() && g.len() <= MAX_GEMINI_ID) {
        id.push_str("_i");
        for b in g.bytes() {
            let _ = write!(id, "{b:02x}");
        }
    }
    if let Some(sig) = signature.filter(|s| !s.is_empty()) {
        let std = &base64::engine::general_purpose::STANDARD;
        match std.decode(sig) {
            Ok(bytes) if std.encode(&bytes) == sig => {
                id.push_str("_b");
                b64.encode_string(&bytes, &mut id);
            }
            _ => {
                id.push_str("_s");
                b64.encode_string(sig.as_bytes(), &mut id);
            }
        }
    }
    id
}

/// Unpacks an id made by [`call_id`]; `None` for any other id.
pub fn parse_call_id(id: &str) -> Option<CallKey> {
    let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let rest = id.strip_prefix("call_")?;
    let (rid, rest) = rest.split_once('_')?;
    if rid.is_empty() || !rid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (n, mut rest) = match rest.split_once('_') {
        Some((n, r)) => (n, Some(r)),
        None => (rest, None),
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut key = CallKey::default();
    if let Some(hex) = rest.and_then(|r| r.strip_prefix('i')) {
        let (hex, after) = match hex.split_once('_') {
            Some((h, a)) => (h, Some(a)),
            None => (hex, None),
        };
        if hex.is_empty() || hex.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        key.gemini_id = Some(String::from_utf8(bytes).ok()?);
        rest = after;
    }
    if let Some(r) = rest {
        let (mode, payload) = (r.get(..1)?, r.get(1..)?);
        let bytes = b64.decode(payload).ok()?;
        key.signature = Some(match mode {
            "b" => base64::engine::general_purpose::STANDARD.encode(bytes),
            "s" => String::from_utf8(bytes).ok()?,
            _ => return None,
        });
    }
    Some(key)
}

// ---------------------------------------------------------------------------------------------
// Finish reasons, usage, error statuses
// ---------------------------------------------------------------------------------------------

/// A Gemini `finishReason` in canonical terms: `Err` for the reasons that mean the model
/// failed (translation.md §5 "error" class). `STOP` with function calls is decided by the
/// caller.
pub(crate) fn decode_finish(reason: &str) -> Result<FinishReason, ()> {
    match reason {
        "MAX_TOKENS" => Ok(FinishReason::Length),
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => Ok(FinishReason::ContentFilter),
        "MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL"
        | "TOO_MANY_TOOL_CALLS"
        | "OTHER"
        | "LANGUAGE"
        | "IMAGE_OTHER"
        | "NO_IMAGE" => Err(()),
        // STOP, FINISH_REASON_UNSPECIFIED and reasons newer than this code.
        _ => Ok(FinishReason::Stop),
    }
}

/// The canonical class of a Gemini error `status` (in a stream's error object).
pub(crate) fn stream_error_kind(status: &str) -> StreamErrorKind {
    match status {
        "RESOURCE_EXHAUSTED" => StreamErrorKind::RateLimited,
        "UNAVAILABLE" => StreamErrorKind::Overloaded,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => {
            StreamErrorKind::InvalidRequest
        }
        _ => StreamErrorKind::Server,
    }
}

/// The HTTP status Google's `error.status` stands for (translation.md §8), so that an error
/// is classified by what it says rather than by a status code Google chose loosely (a bad
/// API key is a 400 with reason `API_KEY_INVALID`). `None` for other envelopes.
pub fn error_status(body: &[u8]) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let reasons = err
        .get("details")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("reason").and_then(serde_json::Value::as_str));
    if reasons.into_iter().any(|r| r == "API_KEY_INVALID") {
        return Some(401);
    }
    Some(match err.get("status")?.as_str()? {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

/// The wait Google asks for in a `google.rpc.RetryInfo` detail (`"retryDelay": "37s"`), in
/// whole seconds rounded up; Gemini sends it instead of a `retry-after` header.
pub fn retry_delay(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let delay = v
        .pointer("/error/details")?
        .as_array()?
        .iter()
        .find_map(|d| d.get("retryDelay").and_then(serde_json::Value::as_str))?;
    let secs = delay.strip_suffix('s')?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    let whole: u64 = whole.parse().ok()?;
    let up = frac.bytes().any(|b| b != b'0');
    Some((whole + u64::from(up)).min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_round_trip() {
        let sig = "CiQBjz1rX2VxYW1wbGUgc2lnbmF0dXJlIGJ5dGVzIGFuZCBtb3JlPz8/Pw==";
        let id = call_id("mT9aaI3pE4uhnvgPyo7PsQo", 2, None, Some(sig));
        assert!(id.starts_with("call_mT9aaI3pE4uhnvgPyo7PsQo_2_b"), "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        // Canonical base64 costs no more than the signature itself.
        assert!(id.len() <= "call_mT9aaI3pE4uhnvgPyo7PsQo_2_b".len() + sig.len());
        assert_eq!(
            parse_call_id(&id),
            Some(CallKey {
                gemini_id: None,
                signature: Some(sig.into())
            })
        );

        for (rid, gid, sig) in [
            ("", None, None),
            ("r-1/x", Some("fc_01:a"), None),
            ("r", Some("x"), Some(PLACEHOLDER_SIGNATURE)),
            ("r", None, Some("not base64 ✓ _-")),
            ("r", None, Some("QUJD")),
            ("r", None, Some("QUJDRA")),
        ] {
            let id = call_id(rid, 7, gid, sig);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{id}"
            );
            let key = parse_call_id(&id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(key.gemini_id.as_deref(), gid, "{id}");
            assert_eq!(key.signature.as_deref(), sig, "{id}");
        }
        // Distinct answers and positions give distinct ids.
        assert_ne!(call_id("a", 0, None, None), call_id("b", 0, None, None));
        assert_ne!(call_id("a", 0, None, None), call_id("a", 1, None, None));
        assert_eq!(call_id("", 0, None, None), "call_g_0");

        for foreign in [
            "call_abc123",
            "toolu_01A",
            "call_x_",
            "call__1",
            "call_a_1_q",
            "call_a_1_iz",
            "call_a_1_b@@",
            "call_a_b",
            "",
        ] {
            assert_eq!(parse_call_id(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn google_error_statuses() {
        let body = |status: &str| {
            format!(r#"{{"error":{{"code":400,"message":"m","status":"{status}"}}}}"#)
        };
        assert_eq!(
            error_status(body("RESOURCE_EXHAUSTED").as_bytes()),
            Some(429)
        );
        assert_eq!(error_status(body("UNAVAILABLE").as_bytes()), Some(503));
        assert_eq!(error_status(body("INVALID_ARGUMENT").as_bytes()), Some(400));
        assert_eq!(
            error_status(body("PERMISSION_DENIED").as_bytes()),
            Some(403)
        );
        assert_eq!(error_status(body("SOMETHING_NEW").as_bytes()), None);
        assert_eq!(
            error_status(br#"{"error":{"message":"x","type":"y"}}"#),
            None
        );
        assert_eq!(error_status(b"nope"), None);
        let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert_eq!(error_status(bad_key), Some(401));

        let quota = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(retry_delay(quota), Some(37));
        let frac = br#"{"error":{"details":[{"retryDelay":"1.25s"}]}}"#;
        assert_eq!(retry_delay(frac), Some(2));
        assert_eq!(
            retry_delay(br#"{"error":{"details":[{"retryDelay":"0.000s"}]}}"#),
            Some(0)
        );
        assert_eq!(retry_delay(br#"{"error":{}}"#), None);
    }

    #[test]
    fn finish_reasons() {
        for (r, want) in [
            ("STOP", Ok(FinishReason::Stop)),
            ("FINISH_REASON_UNSPECIFIED", Ok(FinishReason::Stop)),
            ("BRAND_NEW", Ok(FinishReason::Stop)),
            ("MAX_TOKENS", Ok(FinishReason::Length)),
            ("SAFETY", Ok(FinishReason::ContentFilter)),
            ("RECITATION", Ok(FinishReason::ContentFilter)),
            ("PROHIBITED_CONTENT", Ok(FinishReason::ContentFilter)),
            ("IMAGE_SAFETY", Ok(FinishReason::ContentFilter)),
            ("MALFORMED_FUNCTION_CALL", Err(())),
            ("OTHER", Err(())),
        ] {
            assert_eq!(decode_finish(r), want, "{r}");
        }
    }
}
