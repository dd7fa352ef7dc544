//! Non-streamed Messages responses: decoded from Anthropic upstreams, rendered for Anthropic
//! clients, and the usage conventions between the two.

use serde_json::{json, Value};

use super::*;
use crate::wire::openai_chat::unix_now;
use crate::{
    canonical::{CanonicalResponse, Choice, FinishReason, ToolCall, Usage},
    error::GatewayError,
};

// ---------------------------------------------------------------------------------------------
// Responses: Anthropic → canonical
// ---------------------------------------------------------------------------------------------

/// Reads Anthropic usage into the canonical inclusive convention: `input` counts uncached,
/// cache-read and cache-write tokens together.
pub fn decode_usage(u: &Value) -> Option<Usage> {
    let o = u.as_object()?;
    let n = |k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    let read = n("cache_read_input_tokens");
    let write = n("cache_creation_input_tokens");
    Some(Usage {
        input: n("input_tokens").saturating_add(read).saturating_add(write),
        cached_input: read,
        cache_write: write,
        output: n("output_tokens"),
        reasoning: o
            .get("output_tokens_details")
            .and_then(|d| d.get("thinking_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

pub(super) fn decode_stop_reason(s: &str) -> FinishReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => FinishReason::Stop,
    }
}

/// Decodes an upstream's non-streamed message. Text blocks are concatenated, thinking becomes
/// `reasoning`, `tool_use` becomes a tool call with its input as compact JSON; other blocks
/// (redacted thinking, server tools) have no canonical place and are skipped.
pub fn decode_response(body: &[u8]) -> Result<CanonicalResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| bad_gateway("The upstream returned invalid JSON."))?;
    let Value::Object(o) = &v else {
        return Err(bad_gateway("The upstream returned an unexpected response."));
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    // The signature is kept only when one thinking block came: two blocks concatenated under
    // one signature would not verify.
    let (mut thinking_blocks, mut signature) = (0u32, None::<&str>);
    let mut tool_calls = Vec::new();
    for b in o
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
        match field("type") {
            "text" => text.get_or_insert_with(String::new).push_str(field("text")),
            "thinking" => {
                thinking_blocks += 1;
                signature = Some(field("signature")).filter(|s| !s.is_empty());
                reasoning
                    .get_or_insert_with(String::new)
                    .push_str(field("thinking"));
            }
            "tool_use" => tool_calls.push(ToolCall {
                id: field("id").to_owned(),
                name: field("name").to_owned(),
                arguments: b
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            }),
            _ => {}
        }
    }
    let finish_reason = o
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(decode_stop_reason)
        .map(|r| match r {
            FinishReason::Stop if !tool_calls.is_empty() => FinishReason::ToolCalls,
            r => r,
        });
    Ok(CanonicalResponse {
        id: s("id"),
        model: s("model"),
        created: unix_now(),
        choices: vec![Choice {
            index: 0,
            text,
            reasoning,
            reasoning_signature: signature
                .filter(|_| thinking_blocks == 1)
                .map(str::to_owned),
            tool_calls,
            refusal: None,
            finish_reason,
        }],
        usage: o.get("usage").and_then(decode_usage),
    })
}

// ---------------------------------------------------------------------------------------------
// Client surface: canonical → Anthropic responses
// ---------------------------------------------------------------------------------------------

/// Anthropic's `stop_reason` for a finish reason.
pub fn stop_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Anthropic `usage` from canonical inclusive counts: `input_tokens` is only what was neither
/// read from nor written to the cache.
pub fn encode_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cached_input).saturating_sub(u.cache_write),
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached_input,
        "output_tokens": u.output,
    })
}

/// Renders a canonical response (its first choice) as an Anthropic message.
///
/// Reasoning becomes a `thinking` block with its signature when the upstream gave one, else an
/// empty one ([`encode_request`] drops unsigned thinking if the client sends the block back).
/// Arguments that are not a JSON object get the [`arguments_to_input`] fallback.
pub fn encode_response(r: &CanonicalResponse) -> Value {
    let mut content = Vec::new();
    let mut finish = FinishReason::Stop;
    if let Some(c) = r
        .choices
        .iter()
        .find(|c| c.index == 0)
        .or(r.choices.first())
    {
        if let Some(t) = c.reasoning.as_deref().filter(|t| !t.is_empty()) {
            let signature = c.reasoning_signature.as_deref().unwrap_or("");
            content.push(json!({"type": "thinking", "thinking": t, "signature": signature}));
        }
        let text = c.text.as_deref().filter(|t| !t.is_empty());
        if let Some(t) = text.or(c.refusal.as_deref().filter(|t| !t.is_empty())) {
            content.push(json!({"type": "text", "text": t}));
        }
        for tc in &c.tool_calls {
            content.push(json!({
                "type": "tool_use", "id": tc.id, "name": tc.name,
                "input": arguments_to_input(&tc.arguments),
            }));
        }
        finish = match c.finish_reason {
            Some(f) => f,
            None if !c.tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
    }
    json!({
        "id": r.id,
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": encode_usage(&r.usage.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_inclusive() {
        let u = decode_usage(&json!({"input_tokens": 10, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5, "output_tokens": 40,
            "output_tokens_details": {"thinking_tokens": 30}}))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input: 115,
                cached_input: 100,
                cache_write: 5,
                output: 40,
                reasoning: 30
            }
        );
        let bare = decode_usage(&json!({"input_tokens": 7, "output_tokens": 1})).unwrap();
        assert_eq!((bare.input, bare.cached_input, bare.reasoning), (7, 0, 0));
    }

    #[test]
    fn doc_response_decodes() {
        // anthropic-messages.md §3.
        let body = r#"{"id":"msg_01XFD…","type":"message","role":"assistant","model":"claude-sonnet-4-5",
 "content":[{"type":"text","text":"Let me check."},
            {"type":"tool_use","id":"toolu_01A…","name":"get_weather","input":{"city":"Paris"}}],
 "stop_reason":"tool_use","stop_sequence":null,
 "usage":{"input_tokens":472,"output_tokens":91,"cache_creation_input_tokens":0,
          "cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},
          "service_tier":"standard"}}"#;
        let mut r = decode_response(body.as_bytes()).unwrap();
        r.created = 0;
        insta::assert_debug_snapshot!("anthropic_response_decoded", r);
    }

    #[test]
    fn response_blocks_and_reasons() {
        let body = json!({"id": "m", "model": "c", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "redacted_thinking", "data": "x"},
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"b": [1, 2], "a": "x y"}}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2}});
        let r = decode_response(body.to_string().as_bytes()).unwrap();
        let c = &r.choices[0];
        assert_eq!(c.text.as_deref(), Some("ab"));
        assert_eq!(c.reasoning.as_deref(), Some("hmm"));
        assert_eq!(c.tool_calls[0].arguments, r#"{"b":[1,2],"a":"x y"}"#);
        // Calls decide tool_calls, whatever the stop reason says.
        assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
        for (reason, want) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("pause_turn", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("refusal", FinishReason::ContentFilter),
            ("something_new", FinishReason::Stop),
        ] {
            let b = json!({"content": [], "stop_reason": reason});
            let r = decode_response(b.to_string().as_bytes()).unwrap();
            assert_eq!(r.choices[0].finish_reason, Some(want), "{reason}");
            assert_eq!(r.choices[0].text, None);
        }
        for bad in [&b"{"[..], b"[1]", b""] {
            assert_eq!(
                decode_response(bad).unwrap_err().kind,
                ErrorKind::BadGateway
            );
        }
    }

    #[test]
    fn response_encodes_for_anthropic_clients() {
        let r = CanonicalResponse {
            id: "msg_weir1".into(),
            model: "openai/gpt-4o".into(),
            created: 1,
            choices: vec![Choice {
                index: 0,
                text: Some("It is 18C.".into()),
                reasoning: Some("Check the tool.".into()),
                reasoning_signature: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }],
                refusal: None,
                finish_reason: Some(FinishReason::ToolCalls),
            }],
            usage: Some(Usage {
                input: 120,
                cached_input: 100,
                cache_write: 5,
                output: 30,
                reasoning: 10,
            }),
        };
        insta::assert_json_snapshot!("anthropic_response_encoded", encode_response(&r));
    }

    #[test]
    fn usage_round_trips_between_conventions() {
        let anthropic = json!({"input_tokens": 15, "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 100, "output_tokens": 30});
        let canonical = decode_usage(&anthropic).unwrap();
        assert_eq!(
            (
                canonical.input,
                canonical.cached_input,
                canonical.cache_write
            ),
            (120, 100, 5)
        );
        assert_eq!(encode_usage(&canonical), anthropic);
        // Inconsistent counts from elsewhere never go negative.
        let odd = Usage {
            input: 3,
            cached_input: 5,
            cache_write: 1,
            output: 0,
            reasoning: 0,
        };
        assert_eq!(encode_usage(&odd)["input_tokens"], 0);
    }
}
