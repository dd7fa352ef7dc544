//! Anthropic Messages: the upstream format of `api.anthropic.com` (and Anthropic-compatible
//! hosts) and the client surface `POST /v1/messages`. Pure functions and small state machines,
//! no IO.
//!
//! Upstream direction: [`encode_request`] turns a [`CanonicalRequest`] into a Messages request
//! that satisfies Anthropic's ordering rules (system hoisted, roles alternating from `user`,
//! every `tool_use` answered first thing in the next user turn), [`decode_response`] and
//! [`StreamDecoder`] turn the answer into canonical form. Client direction: [`decode_request`],
//! [`encode_response`] and [`StreamEncoder`].
//!
//! Choices where the protocol leaves room (see the function docs for detail):
//! - Tool-call ids outside `^[A-Za-z0-9_-]+$` are rewritten by [`sanitize_tool_id`], a pure
//!   function of the id, so a call and its result always agree.
//! - Arguments that are not a JSON object become `{}` when empty and `{"_raw": "<text>"}`
//!   otherwise, so the model still sees what it sent.
//! - A conversation that starts with an assistant turn gets a `"."` user turn in front
//!   (Anthropic: "first message must use the user role").
//! - A tool result without a matching call in the previous assistant turn, or a call without a
//!   result in the next user turn, is a 400 naming the message: OpenAI rejects both too, and
//!   guessing would change what the model sees.
//! - Reasoning effort becomes a thinking budget that fits `max_tokens` (details on
//!   [`encode_request`]); an Anthropic client's own `thinking` is passed through instead.
//! - `response_format: json_object` has no Anthropic equivalent and is left to the prompt.
//! - Penalties, seed, logit bias and logprobs have no equivalent and are dropped.
//! - Towards Anthropic clients, reasoning from a non-streamed response is a `thinking` block
//!   with an empty signature (canonical responses carry none); sent back, it is dropped.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde_json::{json, Value};

use super::json::{
    missing, parse_object, range_error, str_field, take, take_array, take_bool, take_f64,
    take_object, take_str_field, take_string, take_u32, type_error, Obj,
};
use super::openai_chat::unix_now;
use crate::{
    canonical::{
        CanonicalRequest, CanonicalResponse, Choice, FinishReason, ImageSource, Message, Part,
        Passthrough, ReasoningEffort, ResponseFormat, Role, StreamErrorKind, StreamEvent, Tool,
        ToolCall, ToolChoice, Usage, WireFormat,
    },
    error::{ErrorKind, GatewayError},
};

/// The `anthropic-version` header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Image media types Anthropic accepts inline.
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Smallest `thinking.budget_tokens` Anthropic accepts.
const MIN_THINKING_BUDGET: u32 = 1024;

/// When Weir raises a defaulted `max_tokens` to make room for thinking, it stays at or below
/// this: the smallest output limit of the thinking-capable Claude models (Opus 4 / 4.1).
const THINKING_MAX_TOKENS_CAP: u32 = 32_000;

/// The user turn put in front of a conversation that starts with the assistant.
const LEADING_USER_TEXT: &str = ".";

fn bad_gateway(message: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::BadGateway, message)
}

// ---------------------------------------------------------------------------------------------
// Requests: canonical → Anthropic
// ---------------------------------------------------------------------------------------------

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
        (req.passthrough.format == Some(WireFormat::Anthropic)).then_some(&req.passthrough.fields);
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
                format: WireFormat::Anthropic,
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
                format: WireFormat::Anthropic,
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

fn decode_stop_reason(s: &str) -> FinishReason {
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
            "thinking" => reasoning
                .get_or_insert_with(String::new)
                .push_str(field("thinking")),
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
            tool_calls,
            refusal: None,
            finish_reason,
        }],
        usage: o.get("usage").and_then(decode_usage),
    })
}

// ---------------------------------------------------------------------------------------------
// Streams: Anthropic → canonical
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Block {
    Text,
    Thinking,
    /// A `tool_use` block and its tool-call index.
    Tool(u32),
    /// Redacted thinking, server tools and anything new: not surfaced.
    Other,
}

/// Turns an Anthropic upstream's SSE events into [`StreamEvent`]s.
///
/// Tool calls are numbered from 0 in the order they start, independent of Anthropic's block
/// indexes. Usage is reported on `message_start` (input and cache counts, provisional output)
/// and again on `message_delta` with the cumulative output count; each report replaces the
/// last.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// Raw Anthropic counts, each the last value seen.
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
    thinking: u64,
    /// Open content blocks by Anthropic block index.
    blocks: Vec<(u64, Block)>,
    next_tool: u32,
    /// Tool calls started and not yet ended.
    open_tools: Vec<u32>,
}

impl StreamDecoder {
    /// Decodes one SSE event. `event` is the `event:` name (may be empty: then the JSON `type`
    /// decides); `data` is the `data:` payload.
    pub fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), GatewayError> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|_| bad_gateway("The upstream sent a malformed stream event."))?;
        let ty = match event {
            "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "ping"
            | "error" => event,
            _ => v.get("type").and_then(Value::as_str).unwrap_or(""),
        };
        match ty {
            "message_start" => {
                let msg = v.get("message");
                if !self.started {
                    self.started = true;
                    let s = |k: &str| {
                        msg.and_then(|m| m.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    };
                    out.push(StreamEvent::Start {
                        id: s("id"),
                        model: s("model"),
                    });
                }
                if let Some(u) = msg.and_then(|m| m.get("usage")) {
                    self.update_usage(u);
                    out.push(StreamEvent::Usage(self.usage()));
                }
            }
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => self.block_delta(&v, out),
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64);
                if let Some(pos) = self.blocks.iter().position(|(i, _)| Some(*i) == index) {
                    if let (_, Block::Tool(call)) = self.blocks.remove(pos) {
                        self.end_tool(call, out);
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.close_tools(out);
                    let reason = match decode_stop_reason(reason) {
                        FinishReason::Stop if self.next_tool > 0 => FinishReason::ToolCalls,
                        r => r,
                    };
                    out.push(StreamEvent::Finish(reason));
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.update_usage(u);
                    out.push(StreamEvent::Usage(self.usage()));
                }
            }
            "message_stop" => self.close_tools(out),
            "error" => {
                let err = v.get("error");
                let kind = match err.and_then(|e| e.get("type")).and_then(Value::as_str) {
                    Some("overloaded_error") => StreamErrorKind::Overloaded,
                    Some("rate_limit_error") => StreamErrorKind::RateLimited,
                    Some("invalid_request_error") => StreamErrorKind::InvalidRequest,
                    _ => StreamErrorKind::Server,
                };
                let message = err
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_owned();
                out.push(StreamEvent::Error { kind, message });
            }
            // ping and event types newer than this code.
            _ => {}
        }
        Ok(())
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let (Some(index), Some(cb)) = (
            v.get("index").and_then(Value::as_u64),
            v.get("content_block"),
        ) else {
            return;
        };
        let field = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("");
        let block = match field("type") {
            "text" => {
                if !field("text").is_empty() {
                    out.push(StreamEvent::TextDelta(field("text").to_owned()));
                }
                Block::Text
            }
            "thinking" => {
                if !field("thinking").is_empty() {
                    out.push(StreamEvent::ReasoningDelta(field("thinking").to_owned()));
                }
                if !field("signature").is_empty() {
                    out.push(StreamEvent::ReasoningSignature(
                        field("signature").to_owned(),
                    ));
                }
                Block::Thinking
            }
            "tool_use" => {
                let call = self.next_tool;
                self.next_tool += 1;
                self.open_tools.push(call);
                out.push(StreamEvent::ToolCallStart {
                    index: call,
                    id: field("id").to_owned(),
                    name: field("name").to_owned(),
                });
                // Anthropic starts with `{}` and streams the input; some compatible hosts send
                // the whole input here instead.
                if let Some(input) = cb
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    out.push(StreamEvent::ToolArgsDelta {
                        index: call,
                        fragment: input.to_string(),
                    });
                }
                Block::Tool(call)
            }
            _ => Block::Other,
        };
        self.blocks.retain(|(i, _)| *i != index);
        self.blocks.push((index, block));
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let index = v.get("index").and_then(Value::as_u64);
        let Some(block) = self
            .blocks
            .iter()
            .find(|(i, _)| Some(*i) == index)
            .map(|(_, b)| *b)
        else {
            return;
        };
        let Some(delta) = v.get("delta") else {
            return;
        };
        let field = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
        let ev = match (field("type"), block) {
            ("text_delta", _) if !field("text").is_empty() => {
                StreamEvent::TextDelta(field("text").to_owned())
            }
            ("thinking_delta", _) if !field("thinking").is_empty() => {
                StreamEvent::ReasoningDelta(field("thinking").to_owned())
            }
            ("signature_delta", _) if !field("signature").is_empty() => {
                StreamEvent::ReasoningSignature(field("signature").to_owned())
            }
            ("input_json_delta", Block::Tool(call)) if !field("partial_json").is_empty() => {
                StreamEvent::ToolArgsDelta {
                    index: call,
                    fragment: field("partial_json").to_owned(),
                }
            }
            // Empty fragments, citations, server-tool input.
            _ => return,
        };
        out.push(ev);
    }

    fn update_usage(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        // Every count is cumulative: the last value wins, nothing is summed.
        if let Some(x) = n("input_tokens") {
            self.input = x;
        }
        if let Some(x) = n("cache_read_input_tokens") {
            self.cache_read = x;
        }
        if let Some(x) = n("cache_creation_input_tokens") {
            self.cache_creation = x;
        }
        if let Some(x) = n("output_tokens") {
            self.output = x;
        }
        if let Some(x) = u
            .get("output_tokens_details")
            .and_then(|d| d.get("thinking_tokens"))
            .and_then(Value::as_u64)
        {
            self.thinking = x;
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            input: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            cached_input: self.cache_read,
            cache_write: self.cache_creation,
            output: self.output,
            reasoning: self.thinking,
        }
    }

    fn end_tool(&mut self, call: u32, out: &mut Vec<StreamEvent>) {
        if let Some(pos) = self.open_tools.iter().position(|c| *c == call) {
            self.open_tools.remove(pos);
            out.push(StreamEvent::ToolCallEnd { index: call });
        }
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        for index in self.open_tools.drain(..) {
            out.push(StreamEvent::ToolCallEnd { index });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client surface: Anthropic requests → canonical
// ---------------------------------------------------------------------------------------------

/// Decodes a client's Messages request.
///
/// `system` (string or text blocks) becomes one system message per block; `tool_result`
/// blocks become tool messages placed before the rest of their user turn; `tool_use` inputs
/// become arguments as compact JSON; thinking keeps its signature. Blocks the canonical types
/// cannot hold (documents, redacted thinking, server-tool blocks, anything new) are kept as
/// [`Part::Opaque`] for Anthropic upstreams. Server tools, `thinking`, `output_config.effort`
/// and every unmodelled field stay in [`Passthrough`]; `thinking` and `output_config.effort`
/// also set `reasoning_effort` for other upstreams. `cache_control` and `citations` on blocks
/// are not kept.
pub fn decode_request(body: &[u8]) -> Result<CanonicalRequest, GatewayError> {
    let mut m = parse_object(body)?;
    let model = match take_string(&mut m, "model")? {
        Some(s) if !s.is_empty() => s,
        _ => return Err(missing("model")),
    };
    let max_tokens =
        take_u32(&mut m, "max_tokens", 0, u32::MAX)?.ok_or_else(|| missing("max_tokens"))?;
    let raw_messages = take_array(&mut m, "messages")?.ok_or_else(|| missing("messages"))?;
    if raw_messages.is_empty() {
        return Err(range_error("messages", "must contain at least one message"));
    }
    let mut messages = Vec::new();
    if let Some(system) = take(&mut m, "system") {
        decode_system(system, &mut messages)?;
    }
    for (i, v) in raw_messages.into_iter().enumerate() {
        decode_message(v, i, &mut messages)?;
    }

    let mut req = CanonicalRequest::new(model, messages);
    req.max_output_tokens = Some(max_tokens);
    req.temperature = take_f64(&mut m, "temperature", 0.0, 1.0)?;
    req.top_p = take_f64(&mut m, "top_p", 0.0, 1.0)?;
    req.top_k = take_u32(&mut m, "top_k", 0, u32::MAX)?;
    if let Some(stops) = take_array(&mut m, "stop_sequences")? {
        req.stop = stops
            .into_iter()
            .map(|s| match s {
                Value::String(s) => Ok(s),
                _ => Err(type_error("stop_sequences", "an array of strings")),
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(mut md) = take_object(&mut m, "metadata")? {
        req.user = take_str_field(&mut md, "user_id", "metadata")?;
        if !md.is_empty() {
            m.insert("metadata".into(), Value::Object(md));
        }
    }
    req.stream = take_bool(&mut m, "stream")?.unwrap_or(false);
    // Anthropic streams always end with usage.
    req.include_usage = req.stream;
    if let Some(tools) = take_array(&mut m, "tools")? {
        let mut server_tools = Vec::new();
        for (i, t) in tools.into_iter().enumerate() {
            match decode_tool(t, i)? {
                Ok(tool) => req.tools.push(tool),
                Err(server) => server_tools.push(server),
            }
        }
        if !server_tools.is_empty() {
            m.insert("tools".into(), Value::Array(server_tools));
        }
    }
    if let Some(tc) = take_object(&mut m, "tool_choice")? {
        let (choice, disable_parallel) = decode_tool_choice(tc)?;
        req.tool_choice = Some(choice);
        if disable_parallel {
            req.parallel_tool_calls = Some(false);
        }
    }
    let thinking_effort = match m.get("thinking") {
        Some(Value::Object(t)) if t.get("type").and_then(Value::as_str) == Some("enabled") => t
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .map(effort_for_budget),
        _ => None,
    };
    let mut output_effort = None;
    if let Some(mut oc) = take_object(&mut m, "output_config")? {
        if let Some(format) = take(&mut oc, "format") {
            req.response_format = Some(decode_output_format(format)?);
        }
        output_effort = oc
            .get("effort")
            .and_then(Value::as_str)
            .and_then(decode_effort);
        if !oc.is_empty() {
            m.insert("output_config".into(), Value::Object(oc));
        }
    }
    req.reasoning_effort = output_effort.or(thinking_effort);
    req.passthrough = Passthrough {
        format: Some(WireFormat::Anthropic),
        fields: m,
    };
    Ok(req)
}

/// The effort closest to a thinking budget, within the levels every OpenAI reasoning model
/// accepts.
fn effort_for_budget(budget: u64) -> ReasoningEffort {
    match budget {
        0..=4096 => ReasoningEffort::Low,
        4097..=16384 => ReasoningEffort::Medium,
        _ => ReasoningEffort::High,
    }
}

fn decode_effort(s: &str) -> Option<ReasoningEffort> {
    match s {
        "low" => Some(ReasoningEffort::Low),
        "medium" => Some(ReasoningEffort::Medium),
        "high" => Some(ReasoningEffort::High),
        "xhigh" => Some(ReasoningEffort::XHigh),
        "max" => Some(ReasoningEffort::Max),
        _ => None,
    }
}

fn decode_system(v: Value, out: &mut Vec<Message>) -> Result<(), GatewayError> {
    match v {
        Value::String(s) => {
            if !s.is_empty() {
                out.push(Message::new(Role::System, vec![Part::Text(s)]));
            }
        }
        Value::Array(blocks) => {
            for (j, b) in blocks.into_iter().enumerate() {
                match b.get("text").and_then(Value::as_str) {
                    Some(t) if b.get("type").and_then(Value::as_str) == Some("text") => {
                        out.push(Message::new(Role::System, vec![Part::Text(t.to_owned())]));
                    }
                    _ => return Err(type_error(format!("system[{j}]"), "a text block")),
                }
            }
        }
        _ => return Err(type_error("system", "a string or an array of text blocks")),
    }
    Ok(())
}

fn decode_message(v: Value, i: usize, out: &mut Vec<Message>) -> Result<(), GatewayError> {
    let path = format!("messages[{i}]");
    let Value::Object(mut mo) = v else {
        return Err(type_error(path, "an object"));
    };
    let role = match take_str_field(&mut mo, "role", &path)?.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => {
            return Err(GatewayError::invalid_param(
                format!("{path}.role"),
                format!("Invalid value for '{path}.role': must be 'user' or 'assistant'."),
            ))
        }
    };
    let blocks = match mo.remove("content") {
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(a)) => a,
        _ => {
            return Err(type_error(
                format!("{path}.content"),
                "a string or an array of content blocks",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let bpath = format!("{path}.content[{j}]");
        let Value::Object(mut b) = b else {
            return Err(type_error(bpath, "an object"));
        };
        let ty = str_field(&b, "type", &bpath)?.unwrap_or("").to_owned();
        match (role, ty.as_str()) {
            (_, "text") => {
                let text = take_str_field(&mut b, "text", &bpath)?
                    .ok_or_else(|| type_error(format!("{bpath}.text"), "a string"))?;
                parts.push(Part::Text(text));
            }
            (Role::User, "image") => parts.push(decode_image(b, &bpath)?),
            (Role::User, "tool_result") => results.push(decode_tool_result(b, &bpath)?),
            (Role::Assistant, "tool_use") => {
                let id = take_str_field(&mut b, "id", &bpath)?
                    .ok_or_else(|| type_error(format!("{bpath}.id"), "a string"))?;
                let name = take_str_field(&mut b, "name", &bpath)?
                    .ok_or_else(|| type_error(format!("{bpath}.name"), "a string"))?;
                let arguments = match b.remove("input") {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(v @ Value::Object(_)) => v.to_string(),
                    Some(_) => return Err(type_error(format!("{bpath}.input"), "an object")),
                };
                calls.push(ToolCall {
                    id,
                    name,
                    arguments,
                });
            }
            (Role::Assistant, "thinking") => {
                let text = take_str_field(&mut b, "thinking", &bpath)?.unwrap_or_default();
                let signature =
                    take_str_field(&mut b, "signature", &bpath)?.filter(|s| !s.is_empty());
                parts.push(Part::Thinking { text, signature });
            }
            (_, "") => {
                return Err(GatewayError::invalid_param(
                    format!("{bpath}.type"),
                    format!("Missing required parameter: '{bpath}.type'."),
                ))
            }
            // Documents, redacted thinking, server-tool blocks and newer types: only an
            // Anthropic upstream can take them.
            _ => parts.push(Part::Opaque {
                format: WireFormat::Anthropic,
                value: Value::Object(b),
            }),
        }
    }
    match role {
        Role::Assistant => {
            let mut msg = Message::new(Role::Assistant, parts);
            msg.tool_calls = calls;
            out.push(msg);
        }
        _ => {
            // Anthropic puts results first in the user turn; canonical tool messages precede
            // the user's own content.
            out.extend(results);
            if !parts.is_empty() {
                out.push(Message::new(Role::User, parts));
            }
        }
    }
    Ok(())
}

fn decode_image(mut b: Obj, path: &str) -> Result<Part, GatewayError> {
    let Some(Value::Object(mut src)) = b.remove("source") else {
        return Err(type_error(format!("{path}.source"), "an object"));
    };
    let spath = format!("{path}.source");
    let need = |src: &mut Obj, k: &str| {
        take_str_field(src, k, &spath)?
            .ok_or_else(|| type_error(format!("{spath}.{k}"), "a string"))
    };
    let source = match str_field(&src, "type", &spath)? {
        Some("base64") => ImageSource::Base64 {
            media_type: need(&mut src, "media_type")?,
            data: need(&mut src, "data")?,
        },
        Some("url") => ImageSource::Url(need(&mut src, "url")?),
        // File ids and newer sources.
        _ => {
            b.insert("type".into(), "image".into());
            b.insert("source".into(), Value::Object(src));
            return Ok(Part::Opaque {
                format: WireFormat::Anthropic,
                value: Value::Object(b),
            });
        }
    };
    Ok(Part::Image {
        source,
        detail: None,
    })
}

fn decode_tool_result(mut b: Obj, path: &str) -> Result<Message, GatewayError> {
    let id = take_str_field(&mut b, "tool_use_id", path)?
        .ok_or_else(|| type_error(format!("{path}.tool_use_id"), "a string"))?;
    let content = match b.remove("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![Part::Text(s)],
        Some(Value::Array(blocks)) => blocks
            .into_iter()
            .enumerate()
            .map(|(k, v)| {
                let bpath = format!("{path}.content[{k}]");
                let Value::Object(mut o) = v else {
                    return Err(type_error(bpath, "an object"));
                };
                match str_field(&o, "type", &bpath)? {
                    Some("text") => Ok(Part::Text(
                        take_str_field(&mut o, "text", &bpath)?
                            .ok_or_else(|| type_error(format!("{bpath}.text"), "a string"))?,
                    )),
                    Some("image") => decode_image(o, &bpath),
                    _ => Ok(Part::Opaque {
                        format: WireFormat::Anthropic,
                        value: Value::Object(o),
                    }),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(type_error(
                format!("{path}.content"),
                "a string or an array of content blocks",
            ))
        }
    };
    let mut msg = Message::new(Role::Tool, content);
    msg.tool_call_id = Some(id);
    msg.is_error = match b.remove("is_error") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(x)) => x,
        Some(_) => return Err(type_error(format!("{path}.is_error"), "a boolean")),
    };
    Ok(msg)
}

/// A client tool, or (as `Err`) a server tool such as web search, kept verbatim.
fn decode_tool(v: Value, i: usize) -> Result<Result<Tool, Value>, GatewayError> {
    let path = format!("tools[{i}]");
    let Value::Object(mut t) = v else {
        return Err(type_error(path, "an object"));
    };
    match str_field(&t, "type", &path)? {
        None | Some("custom") => {}
        Some(_) => return Ok(Err(Value::Object(t))),
    }
    let name = take_str_field(&mut t, "name", &path)?.unwrap_or_default();
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(GatewayError::invalid_param(
            format!("{path}.name"),
            format!("Invalid '{path}.name': must be 1 to 128 characters of a-z, A-Z, 0-9, underscores and dashes."),
        ));
    }
    let description = take_str_field(&mut t, "description", &path)?;
    let parameters = match t.remove("input_schema") {
        Some(s @ Value::Object(_)) => s,
        _ => return Err(type_error(format!("{path}.input_schema"), "an object")),
    };
    let strict = match t.remove("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(type_error(format!("{path}.strict"), "a boolean")),
    };
    Ok(Ok(Tool {
        name,
        description,
        parameters: Some(parameters),
        strict,
    }))
}

/// The choice and whether parallel tool use is disabled.
fn decode_tool_choice(mut tc: Obj) -> Result<(ToolChoice, bool), GatewayError> {
    let choice = match take_str_field(&mut tc, "type", "tool_choice")?.as_deref() {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        Some("tool") => ToolChoice::Function(
            take_str_field(&mut tc, "name", "tool_choice")?
                .ok_or_else(|| missing("tool_choice.name"))?,
        ),
        _ => {
            return Err(range_error(
                "tool_choice.type",
                "must be one of auto, any, tool, none",
            ))
        }
    };
    let disable = match tc.remove("disable_parallel_tool_use") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(type_error(
                "tool_choice.disable_parallel_tool_use",
                "a boolean",
            ))
        }
    };
    Ok((choice, disable))
}

fn decode_output_format(v: Value) -> Result<ResponseFormat, GatewayError> {
    let Value::Object(mut f) = v else {
        return Err(type_error("output_config.format", "an object"));
    };
    if str_field(&f, "type", "output_config.format")? != Some("json_schema") {
        return Err(range_error(
            "output_config.format.type",
            "must be 'json_schema'",
        ));
    }
    match f.remove("schema") {
        Some(schema @ Value::Object(_)) => Ok(ResponseFormat::JsonSchema {
            name: "response".into(),
            description: None,
            schema,
            strict: None,
        }),
        _ => Err(type_error("output_config.format.schema", "an object")),
    }
}

// ---------------------------------------------------------------------------------------------
// Client surface: canonical → Anthropic responses and streams
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
/// Reasoning becomes a `thinking` block with an empty signature: a canonical response carries
/// none, and [`encode_request`] drops unsigned thinking if the client sends the block back.
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
            content.push(json!({"type": "thinking", "thinking": t, "signature": ""}));
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

/// A keep-alive event; Anthropic sends these on long streams and clients ignore them.
pub const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";

/// Writes one named SSE event (`event: X\ndata: {…}\n\n`); Anthropic SDKs dispatch on the name.
pub fn write_event(name: &str, v: &Value, out: &mut BytesMut) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    let mut w = out.writer();
    // Writing a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, v);
    w.into_inner().put_slice(b"\n\n");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum OpenBlock {
    Text,
    Thinking,
    /// A `tool_use` block and its tool-call index.
    Tool(u32),
}

/// Renders [`StreamEvent`]s as an Anthropic Messages stream (translation.md §7).
///
/// `message_start` is written before the first content (so a `Usage` right after `Start`
/// fills in its input counts). Text and thinking blocks open lazily; a new block closes the
/// open one; block indexes count every block from 0. `message_delta` waits for a `Usage` that
/// follows `Finish` (OpenAI upstreams send usage after the finish reason) or for
/// [`StreamEncoder::finish`], which also writes `message_stop`. After an `Error` nothing more
/// is written, as on Anthropic.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    usage: Option<Usage>,
    started: bool,
    /// The open block and its index.
    open: Option<(u32, OpenBlock)>,
    next_block: u32,
    /// `(tool-call index, block index)` of every tool call.
    tool_blocks: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
    delta_sent: bool,
    /// `message_stop` or an error was written.
    ended: bool,
}

impl StreamEncoder {
    /// `id` is the message id shown to the client; `model` may be empty to take the upstream's.
    pub fn new(id: String, model: String) -> StreamEncoder {
        StreamEncoder {
            id,
            model,
            usage: None,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            finish: None,
            delta_sent: false,
            ended: false,
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { model, .. } => {
                if self.model.is_empty() && !model.is_empty() {
                    self.model = model.clone();
                }
            }
            StreamEvent::TextDelta(t) => {
                if !t.is_empty() {
                    let index = self.open_block(OpenBlock::Text, out);
                    self.block_delta(index, json!({"type": "text_delta", "text": t}), out);
                }
            }
            StreamEvent::ReasoningDelta(t) => {
                if !t.is_empty() {
                    let index = self.open_block(OpenBlock::Thinking, out);
                    self.block_delta(index, json!({"type": "thinking_delta", "thinking": t}), out);
                }
            }
            StreamEvent::ReasoningSignature(sig) => {
                // A signature may come without thinking text (display "omitted").
                let index = self.open_block(OpenBlock::Thinking, out);
                self.block_delta(
                    index,
                    json!({"type": "signature_delta", "signature": sig}),
                    out,
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let block = self.start_block(
                    OpenBlock::Tool(*index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.tool_blocks.push((*index, block));
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                // Deltas of an interleaved call whose block was closed keep that block's index.
                let block = self.tool_blocks.iter().find(|(c, _)| c == index);
                if let (Some(&(_, block)), false) = (block, fragment.is_empty()) {
                    self.block_delta(
                        block,
                        json!({"type": "input_json_delta", "partial_json": fragment}),
                        out,
                    );
                }
            }
            StreamEvent::ToolCallEnd { index } => {
                if matches!(self.open, Some((_, OpenBlock::Tool(c))) if c == *index) {
                    self.close_block(out);
                }
            }
            StreamEvent::Finish(reason) => {
                self.ensure_started(out);
                self.close_block(out);
                self.finish = Some(*reason);
            }
            StreamEvent::Usage(u) => {
                self.usage = Some(*u);
                if self.finish.is_some() && !self.delta_sent {
                    self.write_delta(out);
                }
            }
            StreamEvent::Error { kind, message } => {
                let ty = match kind {
                    StreamErrorKind::Overloaded => "overloaded_error",
                    StreamErrorKind::RateLimited => "rate_limit_error",
                    StreamErrorKind::InvalidRequest => "invalid_request_error",
                    StreamErrorKind::Server => "api_error",
                };
                write_event(
                    "error",
                    &json!({"type": "error", "error": {"type": ty, "message": message}}),
                    out,
                );
                self.ended = true;
            }
        }
    }

    /// Ends a stream that finished normally: closes what is open, writes `message_delta` if
    /// it is still held, and `message_stop`.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.ensure_started(out);
        self.close_block(out);
        if !self.delta_sent {
            self.write_delta(out);
        }
        write_event("message_stop", &json!({"type": "message_stop"}), out);
        self.ended = true;
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = self.usage.unwrap_or_default();
        write_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": encode_usage(&usage),
            }}),
            out,
        );
    }

    /// Makes a text or thinking block the open one, starting it unless it already is;
    /// returns its index.
    fn open_block(&mut self, kind: OpenBlock, out: &mut BytesMut) -> u32 {
        match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                let block = if kind == OpenBlock::Thinking {
                    json!({"type": "thinking", "thinking": "", "signature": ""})
                } else {
                    json!({"type": "text", "text": ""})
                };
                self.start_block(kind, block, out)
            }
        }
    }

    /// Closes the open block and starts a new one; returns its index.
    fn start_block(&mut self, kind: OpenBlock, block: Value, out: &mut BytesMut) -> u32 {
        self.ensure_started(out);
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        write_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
        self.open = Some((index, kind));
        index
    }

    fn block_delta(&self, index: u32, delta: Value, out: &mut BytesMut) {
        write_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            out,
        );
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            write_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn write_delta(&mut self, out: &mut BytesMut) {
        self.delta_sent = true;
        let reason = stop_reason(self.finish.unwrap_or(FinishReason::Stop));
        write_event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": encode_usage(&self.usage.unwrap_or_default())}),
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        req.passthrough.format = Some(WireFormat::Anthropic);
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
            format: Some(WireFormat::Anthropic),
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
            format: Some(WireFormat::OpenAiChat),
            fields: json!({"store": true}).as_object().cloned().unwrap(),
        };
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("store").is_none());
        req.passthrough.format = Some(WireFormat::Anthropic);
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
                format: WireFormat::OpenAiChat,
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

    /// The capture in anthropic-messages.md §4, as (event, data) pairs.
    const CAPTURE: &[(&str, &str)] = &[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_…","type":"message","role":"assistant","model":"claude-…","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("ping", r#"{"type": "ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_…","name":"get_weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];

    #[test]
    fn capture_stream_decodes() {
        let mut d = StreamDecoder::default();
        let mut ev = Vec::new();
        for (event, data) in CAPTURE {
            d.decode(event, data, &mut ev).unwrap();
        }
        insta::assert_debug_snapshot!("anthropic_capture_to_events", ev);

        // Without `event:` names the JSON `type` decides, with the same result.
        let mut d = StreamDecoder::default();
        let mut unnamed = Vec::new();
        for (_, data) in CAPTURE {
            d.decode("", data, &mut unnamed).unwrap();
        }
        assert_eq!(unnamed, ev);
    }

    #[test]
    fn stream_thinking_and_parallel_tools() {
        let mut d = StreamDecoder::default();
        let mut ev = Vec::new();
        let events = [
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":5,"cache_read_input_tokens":50,"cache_creation_input_tokens":7,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"a","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t2","name":"b","input":{}}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"some_future_event","x":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":40}}"#,
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":60,"input_tokens":5}}"#,
        ];
        for e in events {
            d.decode("", e, &mut ev).unwrap();
        }
        assert_eq!(
            ev[1..],
            [
                StreamEvent::Usage(Usage {
                    input: 62,
                    cached_input: 50,
                    cache_write: 7,
                    output: 1,
                    reasoning: 0
                }),
                StreamEvent::ReasoningDelta("Let me".into()),
                StreamEvent::ReasoningSignature("EqQB".into()),
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "t1".into(),
                    name: "a".into()
                },
                StreamEvent::ToolArgsDelta {
                    index: 0,
                    fragment: "{}".into()
                },
                StreamEvent::ToolCallEnd { index: 0 },
                StreamEvent::ToolCallStart {
                    index: 1,
                    id: "t2".into(),
                    name: "b".into()
                },
                StreamEvent::ToolCallEnd { index: 1 },
                StreamEvent::Finish(FinishReason::ToolCalls),
                StreamEvent::Usage(Usage {
                    input: 62,
                    cached_input: 50,
                    cache_write: 7,
                    output: 40,
                    reasoning: 0
                }),
                // Cumulative: the last value replaces, never adds.
                StreamEvent::Usage(Usage {
                    input: 62,
                    cached_input: 50,
                    cache_write: 7,
                    output: 60,
                    reasoning: 0
                }),
            ]
        );
    }

    #[test]
    fn stream_errors() {
        for (ty, kind) in [
            ("overloaded_error", StreamErrorKind::Overloaded),
            ("rate_limit_error", StreamErrorKind::RateLimited),
            ("invalid_request_error", StreamErrorKind::InvalidRequest),
            ("api_error", StreamErrorKind::Server),
            ("brand_new_error", StreamErrorKind::Server),
        ] {
            let mut ev = Vec::new();
            let data = json!({"type": "error", "error": {"type": ty, "message": "Overloaded"}});
            StreamDecoder::default()
                .decode("error", &data.to_string(), &mut ev)
                .unwrap();
            assert_eq!(
                ev,
                [StreamEvent::Error {
                    kind,
                    message: "Overloaded".into()
                }],
                "{ty}"
            );
        }
        let mut d = StreamDecoder::default();
        let mut ev = Vec::new();
        let err = d
            .decode("content_block_delta", "{not json", &mut ev)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadGateway);
        d.decode("ping", "", &mut ev).unwrap();
        assert!(ev.is_empty());
    }

    // -----------------------------------------------------------------------------------------
    // Client surface
    // -----------------------------------------------------------------------------------------

    fn rich_anthropic_body() -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 8000,
            "system": [
                {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Use metric units."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Lyon?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Two calls.", "signature": "EqQBCkYIBxgCKkA"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Lyon"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": [{"type": "text", "text": "unavailable"}], "is_error": true},
                    {"type": "text", "text": "And tomorrow?"}
                ]}
            ],
            "tools": [
                {"name": "get_weather", "description": "Current weather",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 4000},
            "output_config": {"effort": "medium", "format": {"type": "json_schema", "schema": {"type": "object"}}},
            "metadata": {"user_id": "u-1"},
            "stop_sequences": ["END"],
            "temperature": 1,
            "stream": true,
            "service_tier": "auto"
        })
    }

    #[test]
    fn anthropic_client_request_decodes() {
        let req = decode_request(&serde_json::to_vec(&rich_anthropic_body()).unwrap()).unwrap();
        assert_eq!(req.max_output_tokens, Some(8000));
        assert_eq!(req.reasoning_effort, Some(ReasoningEffort::Medium));
        assert_eq!(req.parallel_tool_calls, Some(false));
        assert_eq!(req.user.as_deref(), Some("u-1"));
        assert!(req.include_usage);
        insta::assert_debug_snapshot!("anthropic_client_request_canonical", req);
        // Back to an Anthropic upstream: the same request, but for the choices documented on
        // `encode_request` (system as one string, cache_control not kept).
        let v = encode_request(&req, "claude-sonnet-4-5-20250929", 4096).unwrap();
        assert_order(&v).unwrap();
        insta::assert_json_snapshot!("anthropic_client_request_to_upstream", v);
    }

    #[test]
    fn anthropic_client_errors_name_the_parameter() {
        let ok_msgs = json!([{"role": "user", "content": "hi"}]);
        let with = |k: &str, v: Value| {
            let mut b = json!({"model": "m", "max_tokens": 10, "messages": ok_msgs});
            b[k] = v;
            b
        };
        let cases = [
            (json!({"model": "m", "messages": ok_msgs}), "max_tokens"),
            (json!({"max_tokens": 1, "messages": ok_msgs}), "model"),
            (with("messages", json!([])), "messages"),
            (
                with("messages", json!([{"role": "system", "content": "x"}])),
                "messages[0].role",
            ),
            (
                with("messages", json!([{"role": "user", "content": 3}])),
                "messages[0].content",
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"text": "x"}]}]),
                ),
                "messages[0].content[0].type",
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"type": "image", "source": "x"}]}]),
                ),
                "messages[0].content[0].source",
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}]),
                ),
                "messages[1].content[0].input",
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"type": "tool_result"}]}]),
                ),
                "messages[0].content[0].tool_use_id",
            ),
            (with("temperature", json!(1.5)), "temperature"),
            (with("max_tokens", json!(-1)), "max_tokens"),
            (with("system", json!(5)), "system"),
            (with("system", json!([{"type": "image"}])), "system[0]"),
            (
                with("tool_choice", json!({"type": "sometimes"})),
                "tool_choice.type",
            ),
            (
                with("tool_choice", json!({"type": "tool"})),
                "tool_choice.name",
            ),
            (
                with("tools", json!([{"name": "f"}])),
                "tools[0].input_schema",
            ),
            (
                with("tools", json!([{"name": "bad name", "input_schema": {}}])),
                "tools[0].name",
            ),
            (with("stop_sequences", json!([1])), "stop_sequences"),
            (
                with("output_config", json!({"format": {"type": "json_object"}})),
                "output_config.format.type",
            ),
        ];
        for (body, param) in cases {
            let err = decode_request(&serde_json::to_vec(&body).unwrap()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
        }
    }

    #[test]
    fn anthropic_client_effort_and_thinking() {
        let decode = |extra: Value| {
            let mut b = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            decode_request(&serde_json::to_vec(&b).unwrap()).unwrap()
        };
        for (budget, effort) in [
            (1024, ReasoningEffort::Low),
            (8000, ReasoningEffort::Medium),
            (30000, ReasoningEffort::High),
        ] {
            let req = decode(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}));
            assert_eq!(req.reasoning_effort, Some(effort));
            assert!(req.passthrough.fields.contains_key("thinking"));
        }
        let req = decode(json!({"thinking": {"type": "disabled"}}));
        assert_eq!(req.reasoning_effort, None);
        // Only the client's own `thinking` reaches an Anthropic upstream; effort alone does
        // not switch thinking on.
        let req = decode(json!({"output_config": {"effort": "high"}}));
        assert_eq!(req.reasoning_effort, Some(ReasoningEffort::High));
        let v = encode_request(&req, "c", 4096).unwrap();
        assert!(v.get("thinking").is_none());
        assert_eq!(v["output_config"], json!({"effort": "high"}));
        assert_eq!(v["max_tokens"], 10);
    }

    /// Splits SSE bytes into (event, data) pairs.
    fn sse_events(bytes: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|e| {
                let (event, data) = e.split_once('\n').unwrap();
                (
                    event.strip_prefix("event: ").unwrap().to_owned(),
                    data.strip_prefix("data: ").unwrap().to_owned(),
                )
            })
            .collect()
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

    #[test]
    fn events_encode_to_anthropic_sse() {
        let events = vec![
            StreamEvent::Start {
                id: "chatcmpl-1".into(),
                model: "gpt-4o".into(),
            },
            StreamEvent::ReasoningDelta("Think".into()),
            StreamEvent::ReasoningSignature("sig".into()),
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 0,
                fragment: "{\"city\":".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 0,
                fragment: "\"Paris\"}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "get_time".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                fragment: "{}".into(),
            },
            StreamEvent::ToolCallEnd { index: 0 },
            StreamEvent::ToolCallEnd { index: 1 },
            StreamEvent::Finish(FinishReason::ToolCalls),
        ];
        let mut enc = StreamEncoder::new("msg_weir1".into(), String::new());
        let mut out = BytesMut::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        // message_delta is held until usage arrives after the finish reason.
        assert!(!String::from_utf8_lossy(&out).contains("message_delta"));
        enc.encode(
            &StreamEvent::Usage(Usage {
                input: 44,
                cached_input: 4,
                cache_write: 0,
                output: 16,
                reasoning: 0,
            }),
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out).contains("message_delta"));
        enc.finish(&mut out);
        enc.finish(&mut out);
        insta::assert_snapshot!(
            "events_to_anthropic_sse",
            String::from_utf8(out.to_vec()).unwrap()
        );
    }

    #[test]
    fn stream_encoder_edges() {
        // Nothing but a finish: a complete, empty message with the default stop reason.
        let mut enc = StreamEncoder::new("m".into(), "c".into());
        let mut out = BytesMut::new();
        enc.finish(&mut out);
        let names: Vec<String> = sse_events(&out).into_iter().map(|(e, _)| e).collect();
        assert_eq!(names, ["message_start", "message_delta", "message_stop"]);

        // Usage before any content fills in message_start; an error ends the stream.
        let mut enc = StreamEncoder::new("m".into(), "c".into());
        let mut out = BytesMut::new();
        enc.encode(
            &StreamEvent::Usage(Usage {
                input: 9,
                ..Usage::default()
            }),
            &mut out,
        );
        assert!(out.is_empty());
        enc.encode(&StreamEvent::TextDelta("a".into()), &mut out);
        enc.encode(
            &StreamEvent::Error {
                kind: StreamErrorKind::Overloaded,
                message: "Overloaded".into(),
            },
            &mut out,
        );
        enc.encode(&StreamEvent::TextDelta("b".into()), &mut out);
        enc.finish(&mut out);
        let ev = sse_events(&out);
        assert_eq!(ev[0].0, "message_start");
        assert!(ev[0].1.contains("\"input_tokens\":9"), "{}", ev[0].1);
        assert_eq!(
            ev.last().unwrap(),
            &(
                "error".to_owned(),
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                    .to_owned()
            )
        );
        assert_eq!(ev.len(), 4);

        // A signed thinking block without text still reaches the client.
        let mut d = StreamDecoder::default();
        let mut events = Vec::new();
        for data in [
            r#"{"type":"message_start","message":{"id":"m","model":"c"}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":"sig1"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
        ] {
            d.decode("", data, &mut events).unwrap();
        }
        let mut enc = StreamEncoder::new("m".into(), "c".into());
        let mut out = BytesMut::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        let ev = sse_events(&out);
        assert!(ev[1].1.contains(r#""type":"thinking""#), "{}", ev[1].1);
        assert!(ev[2].1.contains(r#""signature":"sig1""#), "{}", ev[2].1);
    }

    #[test]
    fn capture_survives_decode_encode_decode() {
        let mut d = StreamDecoder::default();
        let mut first = Vec::new();
        for (event, data) in CAPTURE {
            d.decode(event, data, &mut first).unwrap();
        }
        let mut enc = StreamEncoder::new("msg_…".into(), String::new());
        let mut out = BytesMut::new();
        for e in &first {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        let rendered = sse_events(&out);
        let mut d = StreamDecoder::default();
        let mut second = Vec::new();
        for (event, data) in &rendered {
            d.decode(event, data, &mut second).unwrap();
        }
        assert_eq!(first, second);
        // Same event sequence as the capture, minus the ping.
        let names: Vec<&str> = rendered.iter().map(|(e, _)| e.as_str()).collect();
        let want: Vec<&str> = CAPTURE
            .iter()
            .map(|(e, _)| *e)
            .filter(|e| *e != "ping")
            .collect();
        let want: Vec<&str> = want
            .into_iter()
            .enumerate()
            // The capture's empty first fragment is not repeated.
            .filter(|(i, _)| *i != 5)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(names, want);
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
    fn assert_order(v: &Value) -> Result<(), String> {
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
