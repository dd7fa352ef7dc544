//! Non-streamed Responses answers: the response object rendered from a canonical response.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{item_id, Echo};
use crate::canonical::{CanonicalResponse, FinishReason, ToolCall, Usage};

/// The Responses `usage` object (input includes cached, output includes reasoning).
pub fn encode_usage(u: &Usage) -> Value {
    let mut input_details = json!({"cached_tokens": u.cached_input});
    if u.cache_write > 0 {
        input_details["cache_write_tokens"] = u.cache_write.into();
    }
    json!({
        "input_tokens": u.input,
        "input_tokens_details": input_details,
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total(),
    })
}

/// `status` and `incomplete_details` for how generation ended.
pub(super) fn status_of(finish: Option<FinishReason>) -> (&'static str, Value) {
    match finish {
        Some(FinishReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(FinishReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A response object: the canonical members, then what the request echoes.
pub(super) fn response_object(
    id: &str,
    created_at: i64,
    model: &str,
    status: &str,
    echo: &Echo,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    let mut o = Map::with_capacity(12 + echo.members.len());
    o.insert("id".into(), id.into());
    o.insert("object".into(), "response".into());
    o.insert("created_at".into(), created_at.into());
    o.insert("status".into(), status.into());
    o.insert("model".into(), model.into());
    o.insert("error".into(), Value::Null);
    o.insert("incomplete_details".into(), Value::Null);
    o.insert("output".into(), Value::Array(output));
    o.insert("usage".into(), usage);
    for (k, v) in &echo.members {
        o.insert(k.clone(), v.clone());
    }
    Value::Object(o)
}

pub(super) fn reasoning_item(
    id: String,
    text: &str,
    signature: Option<&str>,
    echo: &Echo,
) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    };
    let mut item = json!({"type": "reasoning", "id": id, "summary": summary});
    if let (true, Some(sig)) = (echo.reasoning_content, signature) {
        item["encrypted_content"] = sig.into();
    }
    item
}

/// The copy of an answer to store: its reasoning items keep their signatures
/// (`encrypted_content`, given as `(output index, signature)`) even when the client did not ask
/// to see them, so that continuing with `previous_response_id` sends the upstream its signed
/// thinking back (OpenAI keeps reasoning server-side the same way); [`hide_signatures`] takes
/// them out again when the stored answer is retrieved without asking for them.
pub fn stored_copy<'a>(
    answer: &'a Value,
    signatures: &[(usize, &str)],
    echo: &Echo,
) -> Cow<'a, Value> {
    if echo.reasoning_content || signatures.is_empty() {
        return Cow::Borrowed(answer);
    }
    let mut copy = answer.clone();
    if let Some(Value::Array(items)) = copy.get_mut("output") {
        for (index, sig) in signatures {
            if let Some(item) = items.get_mut(*index).filter(|i| i["type"] == "reasoning") {
                item["encrypted_content"] = (*sig).into();
            }
        }
    }
    Cow::Owned(copy)
}

/// Removes `encrypted_content` from the reasoning items of a response object.
pub fn hide_signatures(response: &mut Value) {
    if let Some(Value::Array(items)) = response.get_mut("output") {
        for item in items.iter_mut().filter(|i| i["type"] == "reasoning") {
            if let Value::Object(o) = item {
                o.remove("encrypted_content");
            }
        }
    }
}

/// The signature of a response's reasoning item, where [`encode_response`] puts it.
pub fn reasoning_signature(r: &CanonicalResponse) -> Option<(usize, &str)> {
    let c = r.choices.first()?;
    c.reasoning.as_deref().filter(|t| !t.is_empty())?;
    Some((0, c.reasoning_signature.as_deref()?))
}

pub(super) fn message_item(id: String, status: &str, content: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(super) fn function_call_item(id: String, call: &ToolCall, status: &str, echo: &Echo) -> Value {
    let mut item = json!({"type": "function_call", "id": id, "call_id": call.id, "name": call.name,
           "arguments": call.arguments, "status": status});
    if let Some(ns) = echo.namespace_of(&call.name) {
        item["namespace"] = Value::String(ns.to_owned());
    }
    item
}

/// Renders a canonical response as a Responses object (`r.id` is the `resp_` id).
pub fn encode_response(r: &CanonicalResponse, echo: &Echo) -> Value {
    let mut output = Vec::new();
    let choice = r.choices.first();
    if let Some(c) = choice {
        if let Some(text) = c.reasoning.as_deref().filter(|t| !t.is_empty()) {
            output.push(reasoning_item(
                item_id("rs", &r.id, output.len()),
                text,
                c.reasoning_signature.as_deref(),
                echo,
            ));
        }
        let mut content = Vec::new();
        if let Some(t) = c.text.as_deref().filter(|t| !t.is_empty()) {
            content.push(text_part(t));
        }
        if let Some(refusal) = &c.refusal {
            content.push(json!({"type": "refusal", "refusal": refusal}));
        }
        if !content.is_empty() || c.tool_calls.is_empty() {
            output.push(message_item(
                item_id("msg", &r.id, output.len()),
                "completed",
                content,
            ));
        }
        for call in &c.tool_calls {
            output.push(function_call_item(
                item_id("fc", &r.id, output.len()),
                call,
                "completed",
                echo,
            ));
        }
    }
    let (status, incomplete) = status_of(choice.and_then(|c| c.finish_reason));
    let mut v = response_object(
        &r.id,
        r.created,
        &r.model,
        status,
        echo,
        output,
        r.usage.as_ref().map_or(Value::Null, encode_usage),
    );
    v["incomplete_details"] = incomplete;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Choice;

    fn echo() -> Echo {
        let mut members = Map::new();
        members.insert("store".into(), true.into());
        members.insert("tools".into(), json!([]));
        Echo {
            members,
            reasoning_content: false,
            namespaces: vec![("close_agent".into(), "multi_agent_v1".into())],
        }
    }

    #[test]
    fn a_call_to_a_namespaced_tool_names_its_namespace() {
        let r = CanonicalResponse {
            id: "resp_abc".into(),
            model: "demo/echo".into(),
            created: 1,
            choices: vec![Choice {
                index: 0,
                text: None,
                reasoning: None,
                reasoning_signature: None,
                tool_calls: vec![
                    ToolCall {
                        id: "call_1".into(),
                        name: "close_agent".into(),
                        arguments: "{}".into(),
                    },
                    ToolCall {
                        id: "call_2".into(),
                        name: "exec_command".into(),
                        arguments: "{}".into(),
                    },
                ],
                refusal: None,
                finish_reason: Some(FinishReason::ToolCalls),
            }],
            usage: None,
        };
        let v = encode_response(&r, &echo());
        let calls: Vec<&Value> = v["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "function_call")
            .collect();
        assert_eq!(calls[0]["namespace"], "multi_agent_v1");
        assert!(calls[1].get("namespace").is_none(), "{}", calls[1]);
    }

    #[test]
    fn response_objects_render() {
        let r = CanonicalResponse {
            id: "resp_abc".into(),
            model: "demo/echo".into(),
            created: 1_741_476_542,
            choices: vec![Choice {
                index: 0,
                text: Some("Let me check.".into()),
                reasoning: Some("The user wants weather.".into()),
                reasoning_signature: None,
                tool_calls: vec![ToolCall {
                    id: "call_9".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }],
                refusal: None,
                finish_reason: Some(FinishReason::ToolCalls),
            }],
            usage: Some(Usage {
                input: 36,
                cached_input: 4,
                cache_write: 0,
                output: 87,
                reasoning: 10,
            }),
        };
        insta::assert_json_snapshot!("responses_object", encode_response(&r, &echo()));

        let cut = CanonicalResponse {
            choices: vec![Choice {
                index: 0,
                text: Some("partial".into()),
                reasoning: None,
                reasoning_signature: None,
                tool_calls: Vec::new(),
                refusal: None,
                finish_reason: Some(FinishReason::Length),
            }],
            usage: None,
            ..r
        };
        let v = encode_response(&cut, &echo());
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(v["output"][0]["content"][0]["text"], "partial");
        assert_eq!(v["output"][0]["id"], "msg_abc_0");
    }
}
