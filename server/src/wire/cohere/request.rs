//! Requests towards Cohere upstreams: canonical → v2 chat body.

use serde_json::{json, Value};

use super::*;
use crate::wire::json::{range_error, Obj};
use crate::{
    canonical::{
        CanonicalRequest, ImageSource, Message, Part, ReasoningEffort, ResponseFormat, Role, Tool,
        ToolCall, ToolChoice,
    },
    error::GatewayError,
};

/// Encodes a request for a Cohere upstream (see the module doc for the choices).
///
/// Messages: every system and developer text is joined (blank line between) into one leading
/// `system` message; consecutive user turns and consecutive assistant turns merge; empty text
/// and turns left empty are dropped. User content is a string when it is one text, else a list
/// of `text` and `image_url` items (inline images as data URLs). An assistant turn that calls
/// tools sends its text as `tool_plan` and its calls as `tool_calls` with the arguments text as
/// sent; reasoning goes back as `thinking` items. Each tool result is a `tool` message with its
/// `tool_call_id` and its text.
pub fn encode_request(req: &CanonicalRequest, upstream_model: &str) -> Result<Value, GatewayError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(range_error(
            "n",
            "Cohere models return a single choice, so n must be 1",
        ));
    }
    let stops: Vec<&str> = req
        .stop
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if stops.len() > MAX_STOP {
        return Err(range_error(
            "stop",
            &format!("Cohere models take at most {MAX_STOP} stop sequences"),
        ));
    }
    let mut m = Obj::new();
    m.insert("model".into(), upstream_model.into());
    m.insert(
        "messages".into(),
        Value::Array(encode_messages(&req.messages)?),
    );

    let (tools, choice) = encode_tools(&req.tools, req.tool_choice.as_ref())?;
    if !tools.is_empty() {
        if req.tools.iter().all(|t| t.strict == Some(true)) {
            m.insert("strict_tools".into(), Value::Bool(true));
        }
        m.insert("tools".into(), Value::Array(tools));
        if let Some(c) = choice {
            m.insert("tool_choice".into(), c.into());
        }
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            m.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            m.insert(
                "response_format".into(),
                json!({"type": "json_object", "json_schema": schema}),
            );
        }
    }
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("max_tokens", req.max_output_tokens.map(Value::from));
    put("temperature", req.temperature.map(|t| t.max(0.0).into()));
    put("p", req.top_p.map(|p| p.clamp(P_RANGE.0, P_RANGE.1).into()));
    put("k", req.top_k.map(|k| k.min(MAX_K).into()));
    put(
        "stop_sequences",
        (!stops.is_empty()).then(|| Value::from(stops)),
    );
    put("seed", req.seed.map(Value::from));
    put(
        "frequency_penalty",
        req.frequency_penalty.map(|x| x.clamp(0.0, 1.0).into()),
    );
    put(
        "presence_penalty",
        req.presence_penalty.map(|x| x.clamp(0.0, 1.0).into()),
    );
    put(
        "thinking",
        req.reasoning_effort
            .and_then(|e| encode_thinking(e, req.max_output_tokens)),
    );
    if req.stream {
        m.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(m))
}

/// `thinking` for a reasoning effort and the client's output limit.
fn encode_thinking(effort: ReasoningEffort, max_tokens: Option<u32>) -> Option<Value> {
    let Some(want) = effort.budget_tokens() else {
        return Some(json!({"type": "disabled"}));
    };
    let budget = match max_tokens {
        Some(max) => want.min(max.saturating_sub(RESPONSE_ROOM)),
        None => want,
    };
    (budget > 0).then(|| json!({"type": "enabled", "token_budget": budget}))
}

/// One Cohere message while the list is assembled.
enum Turn<'r> {
    User(Vec<Value>),
    Assistant {
        text: Vec<&'r str>,
        thinking: Vec<&'r str>,
        calls: Vec<&'r ToolCall>,
    },
    Tool {
        id: &'r str,
        content: Value,
    },
}

impl Turn<'_> {
    fn into_value(self) -> Value {
        match self {
            Turn::User(items) => json!({"role": "user", "content": compact(items)}),
            Turn::Assistant {
                text,
                thinking,
                calls,
            } => {
                let mut o = Obj::new();
                o.insert("role".into(), "assistant".into());
                let thinking = thinking
                    .into_iter()
                    .map(|t| json!({"type": "thinking", "thinking": t}));
                if calls.is_empty() {
                    let items: Vec<Value> = thinking
                        .chain(text.into_iter().map(|t| json!({"type": "text", "text": t})))
                        .collect();
                    o.insert("content".into(), compact(items));
                } else {
                    let thinking: Vec<Value> = thinking.collect();
                    if !thinking.is_empty() {
                        o.insert("content".into(), Value::Array(thinking));
                    }
                    if !text.is_empty() {
                        o.insert("tool_plan".into(), text.join("\n").into());
                    }
                    let calls = calls
                        .into_iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect();
                    o.insert("tool_calls".into(), Value::Array(calls));
                }
                Value::Object(o)
            }
            Turn::Tool { id, content } => {
                json!({"role": "tool", "tool_call_id": id, "content": content})
            }
        }
    }
}

/// Content items as Cohere likes them: a plain string when they are one text.
fn compact(mut items: Vec<Value>) -> Value {
    if items.len() == 1 && items[0].get("type") == Some(&Value::from("text")) {
        if let Some(Value::String(t)) = items[0].get_mut("text").map(Value::take) {
            return Value::String(t);
        }
    }
    Value::Array(items)
}

fn cannot_express(i: usize, j: usize, what: &str) -> GatewayError {
    GatewayError::invalid_param(
        format!("messages[{i}].content[{j}]"),
        format!("messages[{i}].content[{j}] is {what}, which Cohere models cannot take."),
    )
}

fn text_item(t: &str) -> Option<Value> {
    (!t.is_empty()).then(|| json!({"type": "text", "text": t}))
}

fn image_item(source: &ImageSource, detail: Option<&str>) -> Value {
    let url = match source {
        ImageSource::Url(u) => u.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    };
    let mut img = json!({"url": url});
    if let (Some(d), Value::Object(o)) = (detail, &mut img) {
        o.insert("detail".into(), d.into());
    }
    json!({"type": "image_url", "image_url": img})
}

fn encode_messages(messages: &[Message]) -> Result<Vec<Value>, GatewayError> {
    let system: Vec<String> = messages
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::Developer))
        .map(|m| {
            let texts: Vec<&str> = m
                .content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) if !t.trim().is_empty() => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            texts.join("\n")
        })
        .filter(|t| !t.is_empty())
        .collect();
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    for (i, msg) in messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => {}
            Role::User => {
                let mut items = Vec::with_capacity(msg.content.len());
                for (j, p) in msg.content.iter().enumerate() {
                    match p {
                        Part::Text(t) => items.extend(text_item(t)),
                        Part::Image { source, detail } => {
                            items.push(image_item(source, detail.as_deref()))
                        }
                        Part::Thinking { .. } => {}
                        Part::Opaque { .. } => {
                            return Err(cannot_express(i, j, "content of another API format"))
                        }
                    }
                }
                if items.is_empty() {
                    continue;
                }
                match turns.last_mut() {
                    Some(Turn::User(prev)) => prev.extend(items),
                    _ => turns.push(Turn::User(items)),
                }
            }
            Role::Assistant => {
                let (mut text, mut thinking) = (Vec::new(), Vec::new());
                for (j, p) in msg.content.iter().enumerate() {
                    match p {
                        Part::Text(t) if !t.is_empty() => text.push(t.as_str()),
                        Part::Text(_) => {}
                        Part::Thinking { text: t, .. } if !t.is_empty() => {
                            thinking.push(t.as_str())
                        }
                        Part::Thinking { .. } => {}
                        Part::Image { .. } => {
                            return Err(cannot_express(i, j, "an image in an assistant message"))
                        }
                        Part::Opaque { .. } => {
                            return Err(cannot_express(i, j, "content of another API format"))
                        }
                    }
                }
                if text.is_empty() {
                    text.extend(msg.refusal.as_deref().filter(|r| !r.is_empty()));
                }
                let calls: Vec<&ToolCall> = msg.tool_calls.iter().collect();
                if text.is_empty() && thinking.is_empty() && calls.is_empty() {
                    continue;
                }
                match turns.last_mut() {
                    Some(Turn::Assistant {
                        text: t,
                        thinking: th,
                        calls: c,
                    }) => {
                        t.extend(text);
                        th.extend(thinking);
                        c.extend(calls);
                    }
                    _ => turns.push(Turn::Assistant {
                        text,
                        thinking,
                        calls,
                    }),
                }
            }
            Role::Tool => {
                let id = msg.tool_call_id.as_deref().unwrap_or("");
                if !answers_a_call(&turns, id) {
                    return Err(GatewayError::invalid_param(
                        format!("messages[{i}].tool_call_id"),
                        format!(
                            "messages[{i}] is a tool result that does not answer a tool call of the assistant message before it."
                        ),
                    ));
                }
                let content = tool_content(msg, i)?;
                turns.push(Turn::Tool { id, content });
            }
        }
    }
    let mut out = Vec::with_capacity(turns.len() + 1);
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system.join("\n\n")}));
    }
    out.extend(turns.into_iter().map(Turn::into_value));
    Ok(out)
}

/// Whether `id` is a call of the assistant turn right before the current run of tool results.
fn answers_a_call(turns: &[Turn], id: &str) -> bool {
    match turns.iter().rev().find(|t| !matches!(t, Turn::Tool { .. })) {
        Some(Turn::Assistant { calls, .. }) => calls.iter().any(|c| c.id == id),
        _ => false,
    }
}

/// A tool result's content: its text as a string, or a list when there are several texts.
fn tool_content(msg: &Message, i: usize) -> Result<Value, GatewayError> {
    let mut items = Vec::with_capacity(msg.content.len());
    for (j, p) in msg.content.iter().enumerate() {
        match p {
            Part::Text(t) => items.extend(text_item(t)),
            Part::Thinking { .. } => {}
            Part::Image { .. } => return Err(cannot_express(i, j, "an image in a tool result")),
            Part::Opaque { .. } => {
                return Err(cannot_express(i, j, "content of another API format"))
            }
        }
    }
    Ok(match items.len() {
        0 => Value::from(""),
        _ => compact(items),
    })
}

/// Tools in the OpenAI shape (Cohere requires `parameters`), and the `tool_choice`.
fn encode_tools(
    tools: &[Tool],
    choice: Option<&ToolChoice>,
) -> Result<(Vec<Value>, Option<&'static str>), GatewayError> {
    let one = |t: &Tool| {
        let parameters = t
            .parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        let mut f = Obj::new();
        f.insert("name".into(), t.name.as_str().into());
        if let Some(d) = &t.description {
            f.insert("description".into(), d.as_str().into());
        }
        f.insert("parameters".into(), parameters);
        json!({"type": "function", "function": f})
    };
    Ok(match choice {
        None | Some(ToolChoice::Auto) => (tools.iter().map(one).collect(), None),
        Some(ToolChoice::None) => (tools.iter().map(one).collect(), Some("NONE")),
        Some(ToolChoice::Required) => (tools.iter().map(one).collect(), Some("REQUIRED")),
        Some(ToolChoice::Function(name)) => {
            let Some(t) = tools.iter().find(|t| &t.name == name) else {
                return Err(GatewayError::invalid_param(
                    "tool_choice",
                    "tool_choice names a function that is not among the tools.",
                ));
            };
            (vec![one(t)], Some("REQUIRED"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Passthrough, Wire};
    use crate::error::ErrorKind;
    use crate::wire::{anthropic, openai_chat};

    fn openai(v: Value) -> CanonicalRequest {
        openai_chat::decode_request(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn fixture_request() -> Value {
        serde_json::from_str(include_str!("fixtures/openai_request.json")).unwrap()
    }

    #[test]
    fn rich_conversation_encodes() {
        let v = encode_request(&openai(fixture_request()), "command-a-03-2025").unwrap();
        insta::assert_json_snapshot!("cohere_request_from_openai", v);
    }

    #[test]
    fn sampling_is_brought_into_cohere_ranges() {
        let v = encode_request(
            &openai(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "top_p": 1.0, "presence_penalty": -1.5, "frequency_penalty": 2, "temperature": 0,
                "stream": true, "stream_options": {"include_usage": true}}),
            ),
            "c",
        )
        .unwrap();
        assert_eq!(v["p"], 0.99);
        assert_eq!(v["presence_penalty"], 0.0);
        assert_eq!(v["frequency_penalty"], 1.0);
        assert_eq!(v["temperature"], 0.0);
        assert_eq!(v["stream"], true);
        assert!(v.get("stream_options").is_none());
        let mut req = openai(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "top_p": 0.001}),
        );
        req.top_k = Some(900);
        let v = encode_request(&req, "c").unwrap();
        assert_eq!((v["p"].as_f64(), v["k"].as_u64()), (Some(0.01), Some(500)));
        assert!(v.get("stream").is_none() && v.get("max_tokens").is_none());
        assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
    }

    #[test]
    fn tool_choice_maps_to_required_none_or_one_tool() {
        let base = |choice: Value| {
            openai(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {"type": "function", "function": {"name": "a", "strict": true,
                        "parameters": {"type": "object"}}},
                    {"type": "function", "function": {"name": "b", "description": "B"}}],
                "tool_choice": choice}),
            )
        };
        let v = encode_request(&base(json!("auto")), "c").unwrap();
        assert!(v.get("tool_choice").is_none());
        assert_eq!(v["tools"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["tools"][1],
            json!({"type": "function", "function": {"name": "b", "description": "B",
                "parameters": {"type": "object", "properties": {}}}})
        );
        assert!(v.get("strict_tools").is_none(), "only one of two is strict");
        let v = encode_request(&base(json!("none")), "c").unwrap();
        assert_eq!(v["tool_choice"], "NONE");
        let v = encode_request(&base(json!("required")), "c").unwrap();
        assert_eq!(v["tool_choice"], "REQUIRED");
        let v = encode_request(
            &base(json!({"type": "function", "function": {"name": "b"}})),
            "c",
        )
        .unwrap();
        assert_eq!(v["tool_choice"], "REQUIRED");
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["tools"][0]["function"]["name"], "b");
        let err = encode_request(
            &base(json!({"type": "function", "function": {"name": "zz"}})),
            "c",
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tool_choice"));
        // No tools: no choice either.
        let v = encode_request(
            &openai(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tool_choice": "required"}),
            ),
            "c",
        )
        .unwrap();
        assert!(v.get("tool_choice").is_none() && v.get("tools").is_none());
    }

    #[test]
    fn reasoning_effort_becomes_thinking() {
        let with = |effort: &str, max: Option<u32>| {
            let mut req = openai(json!({"model": "m", "reasoning_effort": effort,
                "messages": [{"role": "user", "content": "hi"}]}));
            req.max_output_tokens = max;
            encode_request(&req, "c").unwrap().get("thinking").cloned()
        };
        assert_eq!(
            with("high", None),
            Some(json!({"type": "enabled", "token_budget": 24576}))
        );
        assert_eq!(
            with("high", Some(4096)),
            Some(json!({"type": "enabled", "token_budget": 4096 - RESPONSE_ROOM}))
        );
        assert_eq!(with("low", Some(1024)), None);
        assert_eq!(with("none", None), Some(json!({"type": "disabled"})));
        let plain = openai(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        assert!(encode_request(&plain, "c")
            .unwrap()
            .get("thinking")
            .is_none());
    }

    #[test]
    fn response_formats() {
        let with = |f: Value| {
            encode_request(
                &openai(json!({"model": "m", "response_format": f,
                    "messages": [{"role": "user", "content": "hi"}]})),
                "c",
            )
            .unwrap()
            .get("response_format")
            .cloned()
        };
        assert_eq!(with(json!({"type": "text"})), None);
        assert_eq!(
            with(json!({"type": "json_object"})),
            Some(json!({"type": "json_object"}))
        );
        assert_eq!(
            with(
                json!({"type": "json_schema", "json_schema": {"name": "w", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
            ),
            Some(json!({"type": "json_object", "json_schema":
                {"type": "object", "properties": {"a": {"type": "string"}}}}))
        );
    }

    #[test]
    fn an_anthropic_tool_loop_keeps_its_ids_plan_and_thinking() {
        let body = json!({"model": "m", "max_tokens": 100, "system": [{"type": "text", "text": "S"}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": ""},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "get_weather_abc", "name": "get_weather",
                        "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "get_weather_abc", "content": "18C",
                        "is_error": true},
                    {"type": "text", "text": "And now?"}]}]});
        let req = anthropic::decode_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        let v = encode_request(&req, "c").unwrap();
        assert_eq!(
            v["messages"],
            json!([
                {"role": "system", "content": "S"},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "Use the tool."}],
                    "tool_plan": "Checking.",
                    "tool_calls": [{"id": "get_weather_abc", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "get_weather_abc", "content": "18C"},
                {"role": "user", "content": "And now?"}
            ])
        );
        assert_eq!(v["max_tokens"], 100);
    }

    #[test]
    fn unanswerable_requests_are_rejected() {
        let user = |t: &str| Message::new(Role::User, vec![Part::Text(t.into())]);
        let mut req = CanonicalRequest::new("m".into(), vec![user("hi")]);
        req.n = Some(2);
        let err = encode_request(&req, "c").unwrap_err();
        assert_eq!(
            (err.kind, err.param.as_deref()),
            (ErrorKind::InvalidRequest, Some("n"))
        );
        req.n = None;
        req.stop = (0..6).map(|i| format!("s{i}")).collect();
        assert_eq!(
            encode_request(&req, "c").unwrap_err().param.as_deref(),
            Some("stop")
        );
        req.stop.truncate(5);
        req.stop.push(String::new());
        assert_eq!(
            encode_request(&req, "c").unwrap()["stop_sequences"]
                .as_array()
                .unwrap()
                .len(),
            5
        );

        let mut orphan = Message::new(Role::Tool, vec![Part::Text("x".into())]);
        orphan.tool_call_id = Some("call_9".into());
        let req = CanonicalRequest::new("m".into(), vec![user("hi"), orphan.clone()]);
        let err = encode_request(&req, "c").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));

        let opaque = Message::new(
            Role::User,
            vec![Part::Opaque {
                format: Wire::OpenAi,
                value: json!({"type": "input_audio"}),
            }],
        );
        let err =
            encode_request(&CanonicalRequest::new("m".into(), vec![opaque]), "c").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0]"));

        let mut call = Message::new(Role::Assistant, Vec::new());
        call.tool_calls = vec![ToolCall {
            id: "call_9".into(),
            name: "f".into(),
            arguments: "{}".into(),
        }];
        orphan.content.push(Part::Image {
            source: ImageSource::Url("https://x/y.png".into()),
            detail: None,
        });
        let req = CanonicalRequest::new("m".into(), vec![user("hi"), call, orphan]);
        let err = encode_request(&req, "c").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[2].content[1]"));
        // Passthrough of other formats never reaches Cohere.
        let mut req = CanonicalRequest::new("m".into(), vec![user("hi")]);
        req.passthrough = Passthrough {
            format: Some(Wire::OpenAi),
            fields: json!({"store": true}).as_object().cloned().unwrap(),
        };
        assert!(encode_request(&req, "c").unwrap().get("store").is_none());
    }
}
