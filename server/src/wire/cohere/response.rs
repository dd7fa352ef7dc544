//! Non-streamed v2 chat answers: decoded from Cohere upstreams, and their usage alone for
//! relayed bodies.

use super::types::{ChatResponse, Obj, UsageOnly};
use super::*;
use crate::wire::openai_chat::unix_now;
use crate::{
    canonical::{CanonicalResponse, Choice, FinishReason, ToolCall, Usage},
    error::GatewayError,
};

/// How a Cohere generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    Finished(FinishReason),
    /// `ERROR` or `TIMEOUT`: the generation failed.
    Failed {
        timeout: bool,
    },
}

/// Reads a `finish_reason`; `calls` says whether the answer called tools, which decides
/// `tool_calls` whatever Cohere reported (translation.md §5).
pub(super) fn decode_finish(s: &str, calls: bool) -> Ending {
    let reason = match s {
        "MAX_TOKENS" => FinishReason::Length,
        "TOOL_CALL" => FinishReason::ToolCalls,
        "ERROR" => return Ending::Failed { timeout: false },
        "TIMEOUT" => return Ending::Failed { timeout: true },
        // COMPLETE, STOP_SEQUENCE and anything new.
        _ if calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    };
    Ending::Finished(reason)
}

/// The usage of an answer that is relayed as it is, reading nothing else (`None` when the
/// answer reports none).
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    let v: Obj<UsageOnly> = serde_json::from_slice(body)?;
    Ok(v.0.and_then(|v| v.usage.0).and_then(|u| u.canonical()))
}

/// Decodes a non-streamed answer: text items are joined, with the `tool_plan` in front (it is
/// the text a tool-calling answer has); thinking items become reasoning; tool calls keep their
/// ids and arguments text. A finish of `ERROR`/`TIMEOUT` is a retryable upstream error.
pub fn decode_response(body: &[u8]) -> Result<CanonicalResponse, GatewayError> {
    let v: Obj<ChatResponse> = serde_json::from_slice(body)
        .map_err(|_| bad_gateway("The upstream returned invalid JSON."))?;
    let Some(r) = v.0 else {
        return Err(bad_gateway("The upstream returned an unexpected response."));
    };
    let msg = r.message.0.unwrap_or_default();
    let mut text: Option<String> = msg.tool_plan.non_empty().map(|p| p.into_owned());
    let mut reasoning: Option<String> = None;
    for item in msg.content.0 {
        match item.kind.as_str() {
            "text" => {
                if let Some(t) = item.text.non_empty() {
                    text.get_or_insert_with(String::new).push_str(&t);
                }
            }
            "thinking" => {
                if let Some(t) = item.thinking.non_empty() {
                    reasoning.get_or_insert_with(String::new).push_str(&t);
                }
            }
            _ => {}
        }
    }
    let tool_calls: Vec<ToolCall> = msg
        .tool_calls
        .0
        .into_iter()
        .map(|c| {
            let f = c.function.0.unwrap_or_default();
            ToolCall {
                id: c.id.into_string(),
                name: f.name.into_string(),
                arguments: f.arguments.into_string(),
            }
        })
        .collect();
    let finish_reason = match decode_finish(r.finish_reason.as_str(), !tool_calls.is_empty()) {
        Ending::Finished(f) => f,
        Ending::Failed { timeout } => {
            let kind = if timeout {
                ErrorKind::Timeout
            } else {
                ErrorKind::BadGateway
            };
            return Err(
                GatewayError::new(kind, "The upstream failed to generate an answer.")
                    .retryable(true),
            );
        }
    };
    Ok(CanonicalResponse {
        id: r.id.into_string(),
        model: String::new(),
        created: unix_now(),
        choices: vec![Choice {
            index: 0,
            text,
            reasoning,
            reasoning_signature: None,
            tool_calls,
            refusal: None,
            finish_reason: Some(finish_reason),
        }],
        usage: r.usage.0.and_then(|u| u.canonical()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn text_answer_decodes() {
        let body = include_str!("fixtures/response_text.json");
        let mut r = decode_response(body.as_bytes()).unwrap();
        r.created = 0;
        insta::assert_debug_snapshot!("cohere_response_text", r);
        let u = r.usage.unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output),
            (71, 64, 9),
            "tokens, not billed_units"
        );
        assert_eq!(response_usage(body.as_bytes()).unwrap(), Some(u));
    }

    #[test]
    fn tool_call_answer_decodes() {
        let body = include_str!("fixtures/response_tool_call.json");
        let mut r = decode_response(body.as_bytes()).unwrap();
        r.created = 0;
        insta::assert_debug_snapshot!("cohere_response_tool_call", r);
    }

    #[test]
    fn thinking_answer_decodes() {
        let body = include_str!("fixtures/response_thinking.json");
        let r = decode_response(body.as_bytes()).unwrap();
        let c = &r.choices[0];
        assert_eq!(c.reasoning.as_deref(), Some("Alice is a sister too, so 3."));
        assert_eq!(c.text.as_deref(), Some("Alice's brother has 3 sisters."));
        assert_eq!(c.finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn finish_reasons_and_failures() {
        for (reason, want) in [
            ("COMPLETE", FinishReason::Stop),
            ("STOP_SEQUENCE", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("TOOL_CALL", FinishReason::ToolCalls),
            ("SOMETHING_NEW", FinishReason::Stop),
        ] {
            let b = json!({"id": "x", "finish_reason": reason,
                "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}]}});
            let r = decode_response(b.to_string().as_bytes()).unwrap();
            assert_eq!(r.choices[0].finish_reason, Some(want), "{reason}");
            assert_eq!(r.usage, None);
        }
        // Calls decide tool_calls, whatever the finish says.
        let b = json!({"finish_reason": "COMPLETE", "message": {"tool_calls": [
            {"id": "f_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}});
        let r = decode_response(b.to_string().as_bytes()).unwrap();
        assert_eq!(r.choices[0].finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.choices[0].text, None);
        for (reason, kind) in [
            ("ERROR", ErrorKind::BadGateway),
            ("TIMEOUT", ErrorKind::Timeout),
        ] {
            let b = json!({"finish_reason": reason, "message": {"content": [{"type": "text", "text": "par"}]}});
            let e = decode_response(b.to_string().as_bytes()).unwrap_err();
            assert_eq!((e.kind, e.retryable), (kind, true), "{reason}");
        }
        for bad in [&b"{"[..], b"", b"{} x"] {
            assert_eq!(
                decode_response(bad).unwrap_err().kind,
                ErrorKind::BadGateway
            );
            assert!(response_usage(bad).is_err());
        }
        // Any well-formed JSON decodes, however odd.
        for odd in [&b"[1]"[..], b"42", br#"{"message": "x", "usage": []}"#] {
            assert!(response_usage(odd).unwrap().is_none());
        }
        assert_eq!(
            decode_response(b"[1]").unwrap_err().kind,
            ErrorKind::BadGateway
        );
        let odd: Value = json!({"message": {"content": "plain", "tool_calls": {"id": 1}}});
        let r = decode_response(odd.to_string().as_bytes()).unwrap();
        assert_eq!(
            (r.choices[0].text.as_deref(), r.choices[0].tool_calls.len()),
            (None, 0)
        );
    }
}
