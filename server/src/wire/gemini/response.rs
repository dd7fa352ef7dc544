//! Non-streamed `generateContent` answers: decoded into canonical form, and their usage read
//! alone.

use std::borrow::Cow;

use serde::Deserialize;

use super::*;
use crate::wire::openai_chat::unix_now;
use crate::{
    canonical::{CanonicalResponse, Choice, FinishReason, ToolCall, Usage},
    error::GatewayError,
};

/// The key tool-call ids of one answer are made from: its `responseId`, or (for a host that
/// sends none) a random one, so that ids stay unique across a conversation.
pub(crate) fn response_key(response_id: Option<&Str<'_>>) -> Cow<'static, str> {
    match response_id.map(Str::as_str) {
        Some(r) if r.bytes().any(|b| b.is_ascii_alphanumeric()) => Cow::Owned(
            r.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(24)
                .collect(),
        ),
        _ => Cow::Owned(uuid::Uuid::new_v4().simple().to_string()),
    }
}

/// The upstream message for an error-class finish with nothing to show.
pub(crate) fn failed_message(reason: &str) -> String {
    let shown: String = reason.chars().take(40).collect();
    format!("The upstream model stopped without an answer ({shown}).")
}

/// Decodes a `generateContent` answer (its first candidate). Text parts are concatenated,
/// thought parts become `reasoning`, each `functionCall` a tool call with a [`call_id`] and
/// its `args` as compact JSON; other parts (code execution, inline data) have no canonical
/// place and are skipped. See the module doc for finish reasons.
pub fn decode_response(body: &[u8]) -> Result<CanonicalResponse, GatewayError> {
    let a = Answer::parse(body).map_err(|_| bad_gateway("The upstream returned invalid JSON."))?;
    if a.error.is_some() {
        return Err(bad_gateway("The upstream reported an error."));
    }
    let key = response_key(a.response_id.as_ref());
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    let finish = match a.first_candidate() {
        None if a.blocked() => Some(Ok(FinishReason::ContentFilter)),
        None => return Err(bad_gateway("The upstream returned no candidates.")),
        Some(c) => {
            for p in c.parts() {
                if let Some(fc) = &p.function_call {
                    let n = u32::try_from(tool_calls.len()).unwrap_or(u32::MAX);
                    tool_calls.push(ToolCall {
                        id: call_id(
                            &key,
                            n,
                            fc.id.as_ref().map(Str::as_str),
                            p.thought_signature.as_ref().map(Str::as_str),
                        ),
                        name: fc.name().to_owned(),
                        arguments: fc.arguments(),
                    });
                } else if let Some(t) = &p.text {
                    let into = if p.is_thought() {
                        &mut reasoning
                    } else {
                        &mut text
                    };
                    into.get_or_insert_with(String::new).push_str(t.as_str());
                }
            }
            c.finish_reason
                .as_ref()
                .map(|r| decode_finish(r.as_str()).map_err(|()| r.as_str()))
        }
    };
    let has_content = text.as_deref().is_some_and(|t| !t.is_empty()) || !tool_calls.is_empty();
    let finish_reason = match finish {
        None => None,
        Some(Ok(FinishReason::Stop)) if !tool_calls.is_empty() => Some(FinishReason::ToolCalls),
        Some(Ok(r)) => Some(r),
        Some(Err(_)) if has_content => Some(FinishReason::Stop),
        Some(Err(reason)) => return Err(bad_gateway(failed_message(reason))),
    };
    Ok(CanonicalResponse {
        id: a
            .response_id
            .as_ref()
            .map_or_else(String::new, |r| r.0.clone().into_owned()),
        model: a
            .model_version
            .as_ref()
            .map_or_else(String::new, |m| m.0.clone().into_owned()),
        created: unix_now(),
        choices: vec![Choice {
            index: 0,
            text,
            reasoning,
            reasoning_signature: None,
            tool_calls,
            refusal: None,
            finish_reason,
        }],
        usage: a.usage_metadata.as_ref().map(UsageMetadata::usage),
    })
}

/// The usage of a `generateContent` answer relayed as it is (`None` without
/// `usageMetadata`), read without building the rest; a count that is not a non-negative
/// integer reads as 0.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OnlyUsage {
        #[serde(default)]
        usage_metadata: Option<UsageMetadata>,
    }
    let o: OnlyUsage = serde_json::from_slice(body)?;
    Ok(o.usage_metadata.as_ref().map(UsageMetadata::usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINKING_TOOLS: &str = include_str!("fixtures/response_thinking_tools.json");

    #[test]
    fn thinking_tool_answer_decodes() {
        let mut r = decode_response(THINKING_TOOLS.as_bytes()).unwrap();
        r.created = 0;
        insta::assert_debug_snapshot!("gemini_response_decoded", r);
        let c = &r.choices[0];
        assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
        // The signature of the first call rides in its id; the second has none.
        let key = parse_call_id(&c.tool_calls[0].id).unwrap();
        assert_eq!(
            key.signature.as_deref(),
            Some("CiQBjz1rX2F0aG91Z2h0c2lnbmF0dXJlYnl0ZXM=")
        );
        assert_eq!(
            parse_call_id(&c.tool_calls[1].id).unwrap(),
            CallKey::default()
        );
        assert_eq!(
            r.usage,
            Some(Usage {
                input: 1100,
                cached_input: 1024,
                cache_write: 0,
                output: 130,
                reasoning: 120
            })
        );
    }

    #[test]
    fn doc_response_decodes() {
        // translation.md §9.
        let body = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"It is 18C."}]},"finishReason":"STOP","index":0}],
   "usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":6,"thoughtsTokenCount":120,"totalTokenCount":166},
   "modelVersion":"gemini-2.5-flash","responseId":"abc"}"#;
        let r = decode_response(body.as_bytes()).unwrap();
        assert_eq!(r.id, "abc");
        assert_eq!(r.model, "gemini-2.5-flash");
        assert_eq!(r.choices[0].text.as_deref(), Some("It is 18C."));
        assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
        let u = r.usage.unwrap();
        assert_eq!(
            (u.input, u.output, u.reasoning, u.cached_input),
            (40, 126, 120, 0)
        );
        assert_eq!(response_usage(body.as_bytes()).unwrap(), Some(u));
    }

    #[test]
    fn finish_reasons_and_edges() {
        let answer = |parts: &str, reason: &str| {
            format!(
                r#"{{"candidates":[{{"content":{{"role":"model","parts":[{parts}]}},"finishReason":"{reason}"}}],"responseId":"r"}}"#
            )
        };
        for (reason, want) in [
            ("MAX_TOKENS", FinishReason::Length),
            ("SAFETY", FinishReason::ContentFilter),
            ("RECITATION", FinishReason::ContentFilter),
            ("OTHER", FinishReason::Stop),
            ("NEW_REASON", FinishReason::Stop),
        ] {
            let r = decode_response(answer(r#"{"text":"hi"}"#, reason).as_bytes()).unwrap();
            assert_eq!(r.choices[0].finish_reason, Some(want), "{reason}");
        }
        // An error-class finish with nothing to show is an upstream failure.
        let err = decode_response(answer("", "MALFORMED_FUNCTION_CALL").as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadGateway);
        assert!(
            err.message.contains("MALFORMED_FUNCTION_CALL"),
            "{}",
            err.message
        );
        // A blocked prompt: no candidates, content filter.
        let blocked = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#;
        let r = decode_response(blocked.as_bytes()).unwrap();
        assert_eq!(
            r.choices[0].finish_reason,
            Some(FinishReason::ContentFilter)
        );
        assert_eq!(r.choices[0].text, None);
        assert_eq!(r.usage.unwrap().input, 5);
        // Text split over parts, code execution skipped, odd counts read as 0.
        let odd = r#"{"candidates":[{"content":{"parts":[{"text":"a"},{"executableCode":{"code":"1"}},{"text":"b\n"}]}}],
            "usageMetadata":{"promptTokenCount":"12","candidatesTokenCount":-1,"thoughtsTokenCount":{"x":1}}}"#;
        let r = decode_response(odd.as_bytes()).unwrap();
        assert_eq!(r.choices[0].text.as_deref(), Some("ab\n"));
        assert_eq!(r.choices[0].finish_reason, None);
        assert_eq!(
            r.usage.unwrap(),
            Usage {
                input: 12,
                ..Usage::default()
            }
        );
        // Random ids when the host sends no responseId, still unique per answer.
        let anon = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP"}]}"#;
        let a = decode_response(anon.as_bytes()).unwrap();
        let b = decode_response(anon.as_bytes()).unwrap();
        assert_ne!(a.choices[0].tool_calls[0].id, b.choices[0].tool_calls[0].id);
        assert_eq!(a.choices[0].tool_calls[0].arguments, "{}");
        for bad in [
            &b"{"[..],
            b"[1]",
            b"",
            br#"{"candidates":[]}"#,
            br#"{"error":{"code":500}}"#,
        ] {
            assert_eq!(
                decode_response(bad).unwrap_err().kind,
                ErrorKind::BadGateway
            );
        }
        assert_eq!(response_usage(br#"{"candidates":[]}"#).unwrap(), None);
        assert!(response_usage(b"{").is_err());
    }
}
