//! Requests towards Anthropic upstreams: canonical → Messages, within Anthropic's ordering rules.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::*;
use crate::wire::json::{range_error, Obj};
use crate::{
    canonical::{
        CanonicalRequest, ImageSource, Message, Part, ReasoningEffort, ResponseFormat, Role, Tool,
        ToolChoice, Wire,
    },
    error::GatewayError,
};

/// An Anthropic client's own request for an Anthropic upstream: the body as the client sent
/// it with only `model` replaced by the channel's name, so every block keeps its
/// `cache_control` and `citations`, and every member Weir does not model reaches Anthropic
/// untouched. `body` has already been decoded (and so validated) by
/// [`super::decode_request`].
pub fn relay_request(body: &[u8], upstream_model: &str) -> Result<Value, GatewayError> {
    let mut m = crate::wire::json::parse_object(body)?;
    m.insert("model".into(), upstream_model.into());
    // Weir's routing hints are for Weir (decoding already checked them).
    for k in ["weir", "provider", "models"] {
        m.remove(k);
    }
    Ok(Value::Object(m))
}

/// Encodes a request for an Anthropic upstream.
///
/// `default_max_tokens` is used when the client gave no limit (the caller passes
/// `min(model max, 4096)`). Reasoning effort becomes `thinking: {type: enabled, budget_tokens}`
/// unless the request came from an Anthropic client (whose own `thinking` is passed through),
/// a tool is forced (Anthropic rejects `any`/`tool` with thinking), or the last assistant turn
/// calls tools without starting with a signed thinking block (Anthropic rejects that during a
/// tool loop; the last rule also removes a passed-through `thinking`). The budget:
/// - with a client limit, `max_tokens` stays the client's (it includes reasoning in OpenAI's
///   terms too) and the budget is cut to `max_tokens - 1`;
/// - with the default, `max_tokens` grows by the budget so the answer keeps its default room,
///   up to [`THINKING_MAX_TOKENS_CAP`];
///
/// and thinking is left out when the budget ends up under 1024. With thinking on, `temperature`
/// and `top_k` are dropped and `top_p` is kept only within 0.95–1, which is all Anthropic
/// allows. `temperature` is clamped to 0–1; `top_p` is dropped when `temperature` is sent
/// (newer models reject both), except for Anthropic clients. Whitespace-only stop sequences
/// are dropped (Anthropic rejects them), and so is `strict` on tools (model-dependent).
pub fn encode_request(
    req: &CanonicalRequest,
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Value, GatewayError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(range_error(
            "n",
            "Anthropic models return a single choice, so n must be 1",
        ));
    }
    let passthrough =
        (req.passthrough.format == Some(Wire::Anthropic)).then_some(&req.passthrough.fields);
    let turns = encode_turns(&req.messages)?;
    let forced_tool = matches!(
        req.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Function(_))
    );
    let tool_loop_without_thinking = last_tool_turn_lacks_thinking(&turns);

    let mut m = Obj::new();
    m.insert("model".into(), upstream_model.into());

    let (max_tokens, budget) = match passthrough {
        // An Anthropic client's own `thinking` (or its absence) is authoritative.
        Some(_) => (req.max_output_tokens.unwrap_or(default_max_tokens), None),
        None if forced_tool || tool_loop_without_thinking => {
            (req.max_output_tokens.unwrap_or(default_max_tokens), None)
        }
        None => plan_thinking(
            req.max_output_tokens,
            default_max_tokens,
            req.reasoning_effort
                .and_then(ReasoningEffort::budget_tokens),
        ),
    };
    m.insert("max_tokens".into(), max_tokens.into());

    let system = encode_system(&req.messages);
    if !system.is_empty() {
        m.insert("system".into(), system.into());
    }
    m.insert(
        "messages".into(),
        Value::Array(turns.into_iter().map(Turn::into_value).collect()),
    );

    let mut tools: Vec<Value> = req.tools.iter().map(encode_tool).collect();
    // Server tools (web search, code execution…) of an Anthropic client ride in passthrough.
    if let Some(Value::Array(extra)) = passthrough.and_then(|p| p.get("tools")) {
        tools.extend(extra.iter().cloned());
    }
    if !tools.is_empty() {
        if let Some(choice) = encode_tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)
        {
            m.insert("tool_choice".into(), choice);
        }
        m.insert("tools".into(), Value::Array(tools));
    }

    let thinking_on = budget.is_some();
    let temperature = req.temperature.filter(|_| !thinking_on);
    if let Some(t) = temperature {
        m.insert("temperature".into(), t.clamp(0.0, 1.0).into());
    }
    // Claude Opus 4.1 and later reject `temperature` together with `top_p`, and OpenAI clients
    // often send both; temperature is kept. An Anthropic client's own pair is left alone.
    if let Some(p) = req
        .top_p
        .filter(|p| !thinking_on || (0.95..=1.0).contains(p))
        .filter(|_| temperature.is_none() || passthrough.is_some())
    {
        m.insert("top_p".into(), p.into());
    }
    if let Some(k) = req.top_k.filter(|_| !thinking_on) {
        m.insert("top_k".into(), k.into());
    }
    // Anthropic rejects stop sequences made only of whitespace (OpenAI clients like "\n").
    let stops: Vec<Value> = req
        .stop
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Value::from(s.as_str()))
        .collect();
    if !stops.is_empty() {
        m.insert("stop_sequences".into(), Value::Array(stops));
    }
    if let Some(b) = budget {
        m.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": b}),
        );
    }
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &req.response_format {
        let mut oc = match passthrough.and_then(|p| p.get("output_config")) {
            Some(Value::Object(o)) => o.clone(),
            _ => Obj::new(),
        };
        oc.insert(
            "format".into(),
            json!({"type": "json_schema", "schema": schema}),
        );
        m.insert("output_config".into(), Value::Object(oc));
    }
    if let Some(user) = &req.user {
        let mut md = match passthrough.and_then(|p| p.get("metadata")) {
            Some(Value::Object(o)) => o.clone(),
            _ => Obj::new(),
        };
        md.insert("user_id".into(), user.as_str().into());
        m.insert("metadata".into(), Value::Object(md));
    }
    if req.stream {
        m.insert("stream".into(), Value::Bool(true));
    }
    if let Some(p) = passthrough {
        for (k, v) in p {
            let skip = matches!(k.as_str(), "stream" | "tools")
                || (k == "thinking" && tool_loop_without_thinking);
            if !skip && !m.contains_key(k) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::Object(m))
}

/// `(max_tokens, thinking budget)` for a request that may think; see [`encode_request`].
fn plan_thinking(explicit: Option<u32>, default: u32, budget: Option<u32>) -> (u32, Option<u32>) {
    let Some(want) = budget else {
        return (explicit.unwrap_or(default), None);
    };
    let (max, budget) = match explicit {
        Some(max) => (max, want.min(max.saturating_sub(1))),
        None => {
            let max = default
                .saturating_add(want)
                .min(default.max(THINKING_MAX_TOKENS_CAP));
            (max, want.min(max - default))
        }
    };
    if budget >= MIN_THINKING_BUDGET {
        (max, Some(budget))
    } else {
        (explicit.unwrap_or(default), None)
    }
}

/// All system and developer text, in order, joined with a blank line.
fn encode_system(messages: &[Message]) -> String {
    messages
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::Developer))
        .map(|m| {
            m.content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) if !t.trim().is_empty() => Some(t.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// One Anthropic turn while it is being assembled. Tool results are kept apart from the other
/// blocks so that they always come first, whatever order the client interleaved them in.
struct Turn {
    role: Role,
    /// `tool_result` blocks: sanitised id, index of the canonical message, block.
    results: Vec<(String, usize, Value)>,
    blocks: Vec<Value>,
    /// `tool_use` ids (sanitised) with the index of the canonical message that made the call.
    calls: Vec<(String, usize)>,
}

impl Turn {
    fn is_empty(&self) -> bool {
        self.results.is_empty() && self.blocks.is_empty()
    }

    fn into_value(self) -> Value {
        let role = if self.role == Role::Assistant {
            "assistant"
        } else {
            "user"
        };
        let mut content: Vec<Value> = self.results.into_iter().map(|(_, _, b)| b).collect();
        content.extend(self.blocks);
        json!({"role": role, "content": content})
    }
}

/// Folds canonical messages into alternating Anthropic turns and checks the tool pairing.
fn encode_turns(messages: &[Message]) -> Result<Vec<Turn>, GatewayError> {
    let mut turns: Vec<Turn> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let turn = match msg.role {
            Role::System | Role::Developer => continue,
            Role::User => Turn {
                role: Role::User,
                results: Vec::new(),
                blocks: user_blocks(&msg.content, i)?,
                calls: Vec::new(),
            },
            Role::Assistant => assistant_turn(msg, i)?,
            Role::Tool => {
                let id = sanitize_tool_id(msg.tool_call_id.as_deref().unwrap_or("")).into_owned();
                let block = tool_result_block(msg, &id, i)?;
                Turn {
                    role: Role::User,
                    results: vec![(id, i, block)],
                    blocks: Vec::new(),
                    calls: Vec::new(),
                }
            }
        };
        if turn.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == turn.role => {
                last.results.extend(turn.results);
                last.blocks.extend(turn.blocks);
                last.calls.extend(turn.calls);
            }
            _ => turns.push(turn),
        }
    }

    // A final assistant turn is a prefill, which must not end in whitespace.
    if let Some(last) = turns.last_mut().filter(|t| t.role == Role::Assistant) {
        if let Some(Value::Object(b)) = last.blocks.last_mut() {
            if let Some(Value::String(t)) = b.get_mut("text") {
                let trimmed = t.trim_end().len();
                t.truncate(trimmed);
            }
        }
    }

    pair_tool_results(&mut turns)?;

    if turns.first().is_some_and(|t| t.role == Role::Assistant) {
        turns.insert(
            0,
            Turn {
                role: Role::User,
                results: Vec::new(),
                blocks: vec![json!({"type": "text", "text": LEADING_USER_TEXT})],
                calls: Vec::new(),
            },
        );
    }
    if turns.is_empty() {
        return Err(range_error(
            "messages",
            "Anthropic models need at least one user or assistant message with content",
        ));
    }
    Ok(turns)
}

/// Checks that every `tool_use` is answered exactly once in the next user turn and every
/// result answers a call of the turn before, and puts the results in call order.
fn pair_tool_results(turns: &mut [Turn]) -> Result<(), GatewayError> {
    let shown = |id: &str| id.chars().take(64).collect::<String>();
    for k in 0..turns.len() {
        if turns[k].role == Role::Assistant {
            let calls = &turns[k].calls;
            for (n, (id, i)) in calls.iter().enumerate() {
                if calls[..n].iter().any(|(c, _)| c == id) {
                    return Err(GatewayError::invalid_param(
                        format!("messages[{i}].tool_calls"),
                        format!(
                            "The tool call id '{}' is used twice in messages[{i}].",
                            shown(id)
                        ),
                    ));
                }
                let answered = turns
                    .get(k + 1)
                    .is_some_and(|next| next.results.iter().any(|(r, _, _)| r == id));
                if !answered {
                    return Err(GatewayError::invalid_param(
                        format!("messages[{i}].tool_calls"),
                        format!(
                            "The tool call '{}' in messages[{i}] must be answered by a tool message before the next user or assistant message.",
                            shown(id)
                        ),
                    ));
                }
            }
            continue;
        }
        let prev: Vec<String> = match k.checked_sub(1) {
            Some(p) => turns[p].calls.iter().map(|(c, _)| c.clone()).collect(),
            None => Vec::new(),
        };
        let position = |id: &str| prev.iter().position(|c| c == id);
        let results = &turns[k].results;
        for (n, (id, i, _)) in results.iter().enumerate() {
            if position(id).is_none() {
                return Err(GatewayError::invalid_param(
                    format!("messages[{i}].tool_call_id"),
                    format!(
                        "messages[{i}] is a tool result that does not answer a tool call of the assistant message right before it."
                    ),
                ));
            }
            if results[..n].iter().any(|(r, _, _)| r == id) {
                return Err(GatewayError::invalid_param(
                    format!("messages[{i}].tool_call_id"),
                    format!(
                        "messages[{i}] answers the tool call '{}' a second time.",
                        shown(id)
                    ),
                ));
            }
        }
        turns[k].results.sort_by_key(|(id, _, _)| position(id));
    }
    Ok(())
}

/// Anthropic requires the last assistant turn of a tool loop to start with its thinking block
/// when thinking is on; history from another model (or without signatures) cannot.
fn last_tool_turn_lacks_thinking(turns: &[Turn]) -> bool {
    let Some(last) = turns.iter().rev().find(|t| t.role == Role::Assistant) else {
        return false;
    };
    let starts_with_thinking = last.blocks.first().is_some_and(|b| {
        matches!(
            b.get("type").and_then(Value::as_str),
            Some("thinking" | "redacted_thinking")
        )
    });
    !last.calls.is_empty() && !starts_with_thinking
}

fn text_block(t: &str) -> Option<Value> {
    // Anthropic rejects empty and whitespace-only text blocks.
    (!t.trim().is_empty()).then(|| json!({"type": "text", "text": t}))
}

fn cannot_express(i: usize, j: usize, what: &str) -> GatewayError {
    GatewayError::invalid_param(
        format!("messages[{i}].content[{j}]"),
        format!("messages[{i}].content[{j}] is {what}, which Anthropic models cannot take."),
    )
}

/// Content of a user message or tool result: text, images and Anthropic's own blocks.
fn user_blocks(parts: &[Part], i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        match p {
            Part::Text(t) => out.extend(text_block(t)),
            Part::Image { source, .. } => out.push(image_block(source, i, j)?),
            Part::Opaque {
                format: Wire::Anthropic,
                value,
            } => out.push(value.clone()),
            Part::Opaque { .. } => {
                return Err(cannot_express(i, j, "content of another API format"))
            }
            // Reasoning only belongs to assistant turns.
            Part::Thinking { .. } => {}
        }
    }
    Ok(out)
}

fn image_block(source: &ImageSource, i: usize, j: usize) -> Result<Value, GatewayError> {
    match source {
        ImageSource::Url(url) => {
            Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
        }
        ImageSource::Base64 { media_type, data } => {
            let mut mt = media_type.trim().to_ascii_lowercase();
            if mt == "image/jpg" {
                mt = "image/jpeg".into();
            }
            if !IMAGE_MEDIA_TYPES.contains(&mt.as_str()) {
                let shown: String = media_type.chars().take(40).collect();
                return Err(GatewayError::invalid_param(
                    format!("messages[{i}].content[{j}]"),
                    format!("Unsupported image type '{shown}' in messages[{i}].content[{j}]: Anthropic models accept image/jpeg, image/png, image/gif and image/webp."),
                ));
            }
            Ok(
                json!({"type": "image", "source": {"type": "base64", "media_type": mt, "data": data}}),
            )
        }
    }
}

fn assistant_turn(msg: &Message, i: usize) -> Result<Turn, GatewayError> {
    let mut blocks = Vec::new();
    for (j, p) in msg.content.iter().enumerate() {
        match p {
            Part::Text(t) => blocks.extend(text_block(t)),
            // Only a signed block can be sent back; unsigned reasoning (from another model)
            // is dropped.
            Part::Thinking {
                text,
                signature: Some(sig),
            } if !sig.is_empty() => blocks.push(json!({
                "type": "thinking", "thinking": text, "signature": sig,
            })),
            Part::Thinking { .. } => {}
            Part::Image { .. } => {
                return Err(cannot_express(i, j, "an image in an assistant message"))
            }
            Part::Opaque {
                format: Wire::Anthropic,
                value,
            } => blocks.push(value.clone()),
            Part::Opaque { .. } => {
                return Err(cannot_express(i, j, "content of another API format"))
            }
        }
    }
    if let Some(r) = &msg.refusal {
        if !blocks
            .iter()
            .any(|b| b.get("type") == Some(&Value::from("text")))
        {
            blocks.extend(text_block(r));
        }
    }
    let mut calls = Vec::new();
    for c in &msg.tool_calls {
        let id = sanitize_tool_id(&c.id).into_owned();
        blocks.push(json!({
            "type": "tool_use", "id": id, "name": c.name, "input": arguments_to_input(&c.arguments),
        }));
        calls.push((id, i));
    }
    Ok(Turn {
        role: Role::Assistant,
        results: Vec::new(),
        blocks,
        calls,
    })
}

fn tool_result_block(msg: &Message, id: &str, i: usize) -> Result<Value, GatewayError> {
    let blocks = user_blocks(&msg.content, i)?;
    let mut b = json!({"type": "tool_result", "tool_use_id": id});
    if let Value::Object(o) = &mut b {
        match blocks.as_slice() {
            [] => {}
            [only] if only.get("type") == Some(&Value::from("text")) => {
                o.insert(
                    "content".into(),
                    only.get("text").cloned().unwrap_or_default(),
                );
            }
            _ => {
                o.insert("content".into(), Value::Array(blocks));
            }
        }
        if msg.is_error {
            o.insert("is_error".into(), Value::Bool(true));
        }
    }
    Ok(b)
}

/// Rewrites a tool-call id to match `^[A-Za-z0-9_-]+$`, as Anthropic requires. Valid ids are
/// kept; others become their valid characters (others replaced by `_`, at most 40) plus `_` and
/// a 64-bit FNV-1a hash of the original, so the result depends only on the id (a call and its
/// result agree) and distinct ids stay distinct.
pub fn sanitize_tool_id(id: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(valid) {
        return Cow::Borrowed(id);
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let cleaned: String = id
        .chars()
        .take(40)
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    Cow::Owned(format!("{cleaned}_{hash:016x}"))
}

/// OpenAI-style arguments text as an Anthropic `input` object: a JSON object is used as is,
/// empty text becomes `{}`, and anything else is kept as `{"_raw": "<text>"}` so the model can
/// see (and correct) what it sent.
pub fn arguments_to_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_raw": arguments}),
    }
}

fn encode_tool(t: &Tool) -> Value {
    let schema = match &t.parameters {
        Some(Value::Object(o)) => {
            let mut o = o.clone();
            o.entry("type").or_insert_with(|| "object".into());
            Value::Object(o)
        }
        _ => json!({"type": "object", "properties": {}}),
    };
    // `strict` is left out: it is model-dependent on Anthropic and unknown fields are a 400.
    let mut out = json!({"name": t.name});
    if let Value::Object(o) = &mut out {
        if let Some(d) = &t.description {
            o.insert("description".into(), d.as_str().into());
        }
        o.insert("input_schema".into(), schema);
    }
    out
}

fn encode_tool_choice(choice: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let mut v = match choice {
        Some(ToolChoice::None) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Function(name)) => json!({"type": "tool", "name": name}),
        None if parallel == Some(false) => json!({"type": "auto"}),
        None => return None,
    };
    if let (Some(false), Value::Object(o)) = (parallel, &mut v) {
        o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Some(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::canonical::{Passthrough, ToolCall};
    use crate::wire::openai_chat;
    use proptest::prelude::*;

    fn openai(v: Value) -> CanonicalRequest {
        openai_chat::decode_request(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn user(t: &str) -> Message {
        Message::new(Role::User, vec![Part::Text(t.into())])
    }

    fn assistant(t: &str, calls: &[(&str, &str)]) -> Message {
        let mut m = Message::new(Role::Assistant, vec![Part::Text(t.into())]);
        m.tool_calls = calls
            .iter()
            .map(|(id, args)| ToolCall {
                id: (*id).into(),
                name: "f".into(),
                arguments: (*args).into(),
            })
            .collect();
        m
    }

    fn tool(id: &str, t: &str) -> Message {
        let mut m = Message::new(Role::Tool, vec![Part::Text(t.into())]);
        m.tool_call_id = Some(id.into());
        m
    }

    fn request(messages: Vec<Message>) -> CanonicalRequest {
        CanonicalRequest::new("m".into(), messages)
    }

    fn rich_openai_body() -> Value {
        json!({
            "model": "anthropic/claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}, {"type": "text", "text": ""}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Compare these two cities."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/lyon.jpg", "detail": "high"}}
                ]},
                {"role": "user", "content": "Paris first, then Lyon."},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_B2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_B2", "content": "21C"},
                {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "18C"},
                {"role": "user", "content": "Which is warmer?"},
                {"role": "assistant", "content": "Lyon."},
                {"role": "user", "content": "Log it."}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "log_note"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "log_note"}},
            "parallel_tool_calls": false,
            "stop": ["END", "\n"],
            "temperature": 1.6,
            "top_p": 0.9,
            "max_tokens": 2048,
            "reasoning_effort": "high",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
            "user": "user-42",
            "seed": 7,
            "presence_penalty": 0.5,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    }

    #[test]
    fn rich_conversation_encodes() {
        let req = openai(rich_openai_body());
        let v = encode_request(&req, "claude-sonnet-4-5", 4096).unwrap();
        assert_order(&v).unwrap();
        insta::assert_json_snapshot!("anthropic_request_from_openai", v);
    }

    #[test]
    fn reasoning_becomes_thinking() {
        let mut body = rich_openai_body();
        body["tool_choice"] = json!("auto");
        body.as_object_mut().unwrap().remove("max_tokens");
        let v = encode_request(&openai(body.clone()), "c", 4096).unwrap();
        // Defaulted limit: raised by the budget so the answer keeps its room.
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 24576})
        );
        assert_eq!(v["max_tokens"], 4096 + 24576);
        assert_eq!(
            v["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        // Thinking allows neither temperature nor top_k, and top_p only from 0.95.
        assert!(v.get("temperature").is_none());
        assert!(v.get("top_p").is_none());

        body["max_tokens"] = json!(3000);
        let v = encode_request(&openai(body.clone()), "c", 4096).unwrap();
        assert_eq!(v["max_tokens"], 3000);
        assert_eq!(v["thinking"]["budget_tokens"], 2999);

        body["max_tokens"] = json!(1000);
        let v = encode_request(&openai(body.clone()), "c", 4096).unwrap();
        assert!(v.get("thinking").is_none());
        assert_eq!(v["temperature"], 1.0);

        body["reasoning_effort"] = json!("max");
        body.as_object_mut().unwrap().remove("max_tokens");
        let v = encode_request(&openai(body), "c", 4096).unwrap();
        assert_eq!(v["max_tokens"], THINKING_MAX_TOKENS_CAP);
        assert_eq!(
            v["thinking"]["budget_tokens"],
            THINKING_MAX_TOKENS_CAP - 4096
        );
    }

    #[test]
    fn temperature_wins_over_top_p() {
        let mut req = request(vec![user("hi")]);
        req.temperature = Some(0.7);
        req.top_p = Some(1.0);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(
            (v["temperature"].as_f64(), v.get("top_p")),
            (Some(0.7), None)
        );
        req.temperature = None;
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(v["top_p"], 1.0);
        req.temperature = Some(0.7);
        req.passthrough.format = Some(Wire::Anthropic);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(
            (v["temperature"].as_f64(), v["top_p"].as_f64()),
            (Some(0.7), Some(1.0))
        );
    }

    #[test]
    fn plan_thinking_bounds() {
        assert_eq!(plan_thinking(None, 4096, None), (4096, None));
        assert_eq!(plan_thinking(Some(10), 4096, None), (10, None));
        assert_eq!(
            plan_thinking(Some(1025), 4096, Some(2048)),
            (1025, Some(1024))
        );
        assert_eq!(plan_thinking(Some(1024), 4096, Some(2048)), (1024, None));
        assert_eq!(plan_thinking(Some(0), 4096, Some(2048)), (0, None));
        assert_eq!(plan_thinking(None, 4096, Some(1024)), (5120, Some(1024)));
        assert_eq!(plan_thinking(None, 40_000, Some(1024)), (40_000, None));
    }

    #[test]
    fn thinking_is_dropped_in_a_tool_loop_without_signed_blocks() {
        let mut req = request(vec![
            user("hi"),
            assistant("", &[("call_1", "{}")]),
            tool("call_1", "ok"),
        ]);
        req.reasoning_effort = Some(ReasoningEffort::Medium);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("thinking").is_none());

        // With the original signed thinking block first, thinking stays on.
        req.messages[1].content = vec![Part::Thinking {
            text: "plan".into(),
            signature: Some("sig".into()),
        }];
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(v["thinking"]["budget_tokens"], 8192);
        assert_eq!(
            v["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "plan", "signature": "sig"})
        );

        // A passed-through `thinking` of an Anthropic client is removed by the same rule.
        req.messages[1].content = vec![Part::Text("calling".into())];
        req.reasoning_effort = None;
        req.passthrough = Passthrough {
            format: Some(Wire::Anthropic),
            fields: json!({"thinking": {"type": "enabled", "budget_tokens": 2000}, "service_tier": "auto"})
                .as_object()
                .cloned()
                .unwrap(),
        };
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("thinking").is_none());
        assert_eq!(v["service_tier"], "auto");
    }

    #[test]
    fn forced_tool_drops_thinking() {
        let mut req = request(vec![user("hi")]);
        req.tools = vec![Tool {
            name: "f".into(),
            description: None,
            parameters: None,
            strict: Some(true),
        }];
        req.reasoning_effort = Some(ReasoningEffort::Low);
        req.tool_choice = Some(ToolChoice::Required);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("thinking").is_none());
        assert_eq!(v["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            v["tools"],
            json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
        );
        req.tool_choice = Some(ToolChoice::None);
        req.parallel_tool_calls = Some(false);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(v["tool_choice"], json!({"type": "none"}));
        assert_eq!(v["thinking"]["budget_tokens"], 2048);
    }

    #[test]
    fn passthrough_only_for_anthropic_clients() {
        let mut req = request(vec![user("hi")]);
        req.passthrough = Passthrough {
            format: Some(Wire::OpenAi),
            fields: json!({"store": true}).as_object().cloned().unwrap(),
        };
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("store").is_none());
        req.passthrough.format = Some(Wire::Anthropic);
        req.passthrough.fields = json!({"store": true, "stream": true, "model": "x"})
            .as_object()
            .cloned()
            .unwrap();
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(v["store"], true);
        assert_eq!(v["model"], "c");
        assert!(v.get("stream").is_none());
    }

    #[test]
    fn tool_ids_are_sanitised_deterministically() {
        assert_eq!(sanitize_tool_id("toolu_01A-b"), "toolu_01A-b");
        let a = sanitize_tool_id("functions.get_weather:0");
        assert_eq!(a, sanitize_tool_id("functions.get_weather:0"));
        assert!(a.starts_with("functions_get_weather_0_"));
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        // Ids that clean up to the same characters stay apart.
        assert_ne!(a, sanitize_tool_id("functions.get_weather.0"));
        assert_ne!(sanitize_tool_id(""), "");
        assert!(sanitize_tool_id(&"é".repeat(500)).len() <= 40 * 2 + 17);

        let req = request(vec![
            user("hi"),
            assistant("", &[("functions.f:0", "{}")]),
            tool("functions.f:0", "ok"),
        ]);
        let v = encode_request(&req, "c", 4096).unwrap();
        let call = &v["messages"][1]["content"][0]["id"];
        assert_eq!(call, &v["messages"][2]["content"][0]["tool_use_id"]);
        assert_eq!(call.as_str(), Some(&*sanitize_tool_id("functions.f:0")));
    }

    #[test]
    fn arguments_fall_back_to_raw() {
        assert_eq!(arguments_to_input(""), json!({}));
        assert_eq!(arguments_to_input("  "), json!({}));
        assert_eq!(arguments_to_input("{\"a\": 1}"), json!({"a": 1}));
        assert_eq!(arguments_to_input("{\"a\": "), json!({"_raw": "{\"a\": "}));
        assert_eq!(arguments_to_input("[1]"), json!({"_raw": "[1]"}));
        let req = request(vec![
            user("hi"),
            assistant("", &[("c1", "{oops")]),
            tool("c1", "bad arguments"),
        ]);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(
            v["messages"][1]["content"][0]["input"],
            json!({"_raw": "{oops"})
        );
    }

    #[test]
    fn empty_text_is_dropped() {
        let mut empty_user = user("");
        empty_user.content.push(Part::Text("  ".into()));
        let req = request(vec![
            Message::new(Role::System, vec![Part::Text(String::new())]),
            user("a"),
            empty_user,
            assistant("", &[]),
            user("b"),
            assistant("prefill  \n", &[]),
        ]);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("system").is_none());
        assert_eq!(
            v["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "prefill"}]}
            ])
        );
        let err = encode_request(&request(vec![user(" ")]), "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
    }

    #[test]
    fn leading_assistant_gets_a_user_turn() {
        let req = request(vec![assistant("Hello! How can I help?", &[]), user("Hi")]);
        let v = encode_request(&req, "c", 4096).unwrap();
        assert_eq!(
            v["messages"][0],
            json!({"role": "user", "content": [{"type": "text", "text": "."}]})
        );
        assert_eq!(v["messages"][1]["role"], "assistant");
    }

    #[test]
    fn unanswerable_requests_are_rejected() {
        let mut req = request(vec![user("hi")]);
        req.n = Some(2);
        let err = encode_request(&req, "c", 4096).unwrap_err();
        assert_eq!(
            (err.kind, err.param.as_deref()),
            (ErrorKind::InvalidRequest, Some("n"))
        );
        req.n = Some(1);
        assert!(encode_request(&req, "c", 4096).is_ok());

        let image = |mt: &str| {
            request(vec![Message::new(
                Role::User,
                vec![
                    Part::Text("see".into()),
                    Part::Image {
                        source: ImageSource::Base64 {
                            media_type: mt.into(),
                            data: "AAAA".into(),
                        },
                        detail: None,
                    },
                ],
            )])
        };
        let err = encode_request(&image("image/bmp"), "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[1]"));
        assert!(err.message.contains("image/bmp"), "{}", err.message);
        let v = encode_request(&image("image/JPG"), "c", 4096).unwrap();
        assert_eq!(
            v["messages"][0]["content"][1]["source"]["media_type"],
            "image/jpeg"
        );

        let opaque = request(vec![Message::new(
            Role::User,
            vec![Part::Opaque {
                format: Wire::OpenAi,
                value: json!({"type": "input_audio"}),
            }],
        )]);
        let err = encode_request(&opaque, "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0]"));

        let orphan = request(vec![user("hi"), tool("call_9", "x")]);
        let err = encode_request(&orphan, "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));

        let unanswered = request(vec![
            user("hi"),
            assistant("", &[("a", "{}"), ("b", "{}")]),
            tool("a", "x"),
            user("next"),
        ]);
        let err = encode_request(&unanswered, "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls"));
        assert!(err.message.contains("'b'"), "{}", err.message);

        let twice = request(vec![
            user("hi"),
            assistant("", &[("a", "{}")]),
            tool("a", "x"),
            tool("a", "y"),
        ]);
        let err = encode_request(&twice, "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[3].tool_call_id"));
        let same_id = request(vec![user("hi"), assistant("", &[("a", "{}"), ("a", "{}")])]);
        let err = encode_request(&same_id, "c", 4096).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls"));
    }

    // -----------------------------------------------------------------------------------------
    // Ordering rules, checked on random conversations
    // -----------------------------------------------------------------------------------------

    fn is_valid_id(id: &str) -> bool {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// Anthropic's rules for `messages`: non-empty, alternating from `user`, no empty blocks,
    /// each assistant turn's `tool_use` answered first thing in the next user turn (in call
    /// order), and no result without a call.
    pub(crate) fn assert_order(v: &Value) -> Result<(), String> {
        let msgs = v["messages"].as_array().ok_or("no messages")?;
        if msgs.is_empty() {
            return Err("empty messages".into());
        }
        let mut prev_calls: Vec<String> = Vec::new();
        for (k, m) in msgs.iter().enumerate() {
            let role = m["role"].as_str().ok_or("no role")?;
            let want = if k % 2 == 0 { "user" } else { "assistant" };
            if role != want {
                return Err(format!("message {k} is {role}, expected {want}"));
            }
            let content = m["content"].as_array().ok_or("content not a list")?;
            if content.is_empty() {
                return Err(format!("message {k} is empty"));
            }
            let mut results = Vec::new();
            let mut calls = Vec::new();
            let mut seen_other = false;
            for b in content {
                match b["type"].as_str() {
                    Some("text") => {
                        if b["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                            return Err(format!("message {k} has a blank text block"));
                        }
                        seen_other = true;
                    }
                    Some("tool_result") => {
                        if seen_other {
                            return Err(format!("message {k}: tool_result after other content"));
                        }
                        results.push(b["tool_use_id"].as_str().unwrap_or("").to_owned());
                    }
                    Some("tool_use") => {
                        calls.push(b["id"].as_str().unwrap_or("").to_owned());
                        seen_other = true;
                    }
                    _ => seen_other = true,
                }
            }
            if role == "user" {
                if results != prev_calls {
                    return Err(format!(
                        "message {k}: results {results:?} do not answer calls {prev_calls:?}"
                    ));
                }
                prev_calls.clear();
            } else {
                if let Some(bad) = calls.iter().find(|c| !is_valid_id(c)) {
                    return Err(format!("invalid id {bad}"));
                }
                prev_calls = calls;
            }
        }
        if !prev_calls.is_empty() {
            return Err("the last assistant turn calls tools".into());
        }
        Ok(())
    }

    const TEXTS: [&str; 4] = ["", " \n", "hi", "a longer text "];
    const ID_PREFIXES: [&str; 5] = ["call_", "toolu_", "functions.f:", "a b/", ""];

    /// One step of a well-formed OpenAI-style conversation.
    #[derive(Clone, Debug)]
    enum Step {
        System(usize),
        User(usize),
        /// Text, number of calls, id prefix, result order rotation, a user text between results.
        Assistant(usize, usize, usize, usize, Option<usize>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..4usize).prop_map(Step::System),
            (0..4usize).prop_map(Step::User),
            (
                0..4usize,
                0..4usize,
                0..5usize,
                0..4usize,
                proptest::option::of(0..4usize)
            )
                .prop_map(|(t, n, p, r, u)| Step::Assistant(t, n, p, r, u)),
        ]
    }

    fn build(steps: &[Step]) -> Vec<Message> {
        let mut out = Vec::new();
        let mut counter = 0;
        for s in steps {
            match *s {
                Step::System(t) => out.push(Message::new(
                    Role::System,
                    vec![Part::Text(TEXTS[t].into())],
                )),
                Step::User(t) => out.push(user(TEXTS[t])),
                Step::Assistant(t, n, p, r, between) => {
                    let ids: Vec<String> = (0..n)
                        .map(|_| {
                            counter += 1;
                            format!("{}{counter}", ID_PREFIXES[p])
                        })
                        .collect();
                    let calls: Vec<(&str, &str)> =
                        ids.iter().map(|i| (i.as_str(), "{\"x\":1}")).collect();
                    out.push(assistant(TEXTS[t], &calls));
                    let mut order = ids.clone();
                    if !order.is_empty() {
                        let len = order.len();
                        order.rotate_left(r % len);
                    }
                    for (j, id) in order.iter().enumerate() {
                        out.push(tool(id, "result"));
                        if j == 0 {
                            if let Some(u) = between {
                                out.push(user(TEXTS[u]));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn has_content(steps: &[Step]) -> bool {
        steps.iter().any(|s| match *s {
            Step::System(_) => false,
            Step::User(t) => !TEXTS[t].trim().is_empty(),
            // The user text between results only exists when there are calls.
            Step::Assistant(t, n, ..) => !TEXTS[t].trim().is_empty() || n > 0,
        })
    }

    proptest! {
        #[test]
        fn wellformed_conversations_satisfy_anthropic_order(steps in proptest::collection::vec(step(), 0..12)) {
            let req = request(build(&steps));
            match encode_request(&req, "c", 4096) {
                Ok(v) => prop_assert!(assert_order(&v).is_ok(), "{:?}\n{}", assert_order(&v), v),
                Err(e) => {
                    prop_assert!(!has_content(&steps), "{e}");
                    prop_assert_eq!(e.param.as_deref(), Some("messages"));
                }
            }
        }

        #[test]
        fn any_conversation_is_valid_or_rejected(
            raw in proptest::collection::vec((0..4usize, 0..4usize, 0..3usize, 0..3usize), 0..12)
        ) {
            // Roles, texts and ids drawn freely from a small pool: orphans and missing
            // results happen often.
            let ids = ["x.1", "y", "z:2"];
            let msgs: Vec<Message> = raw.iter().map(|&(role, t, a, b)| match role {
                0 => user(TEXTS[t]),
                1 => assistant(TEXTS[t], &[(ids[a], "{}"), (ids[b], "")][..usize::from(a != b) + 1]),
                2 => assistant(TEXTS[t], &[]),
                _ => tool(ids[a], TEXTS[t]),
            }).collect();
            match encode_request(&request(msgs), "c", 4096) {
                Ok(v) => prop_assert!(assert_order(&v).is_ok(), "{:?}\n{}", assert_order(&v), v),
                Err(e) => prop_assert_eq!(e.kind, ErrorKind::InvalidRequest),
            }
        }
    }
}
