//! The Cohere v2 wire format: `POST /v2/chat`, whole and streamed (`stream: true`: named SSE
//! events, `event: <type>` beside a `data:` object whose `type` is the same name, no `[DONE]`).
//!
//! A whole reply is `{id, finish_reason, message: {role, content | tool_plan + tool_calls},
//! usage: {billed_units, tokens}}`. A stream is `message-start`, then for text `content-start`,
//! one `content-delta` per word and `content-end`, or for a tool call one `tool-plan-delta` per
//! word of the plan, `tool-call-start`, `tool-call-delta`s with the arguments and
//! `tool-call-end`, and last `message-end` with the finish reason and the usage. An empty text
//! reply has no content events at all.
//!
//! Requests are checked as Cohere does where Weir's encoding could go wrong: roles are only
//! `system`, `user`, `assistant` and `tool`; a `tool` message needs a `tool_call_id` that
//! answers a call of an earlier assistant message, and content; `p` is within 0.01–0.99, `k`
//! at most 500, at most five `stop_sequences`, and `REQUIRED` needs tools.
//!
//! `POST /v2/embed` takes `texts` (strings) or `inputs` (`{content: [{type: "text", text}]}`),
//! at most 96 of them, an `input_type` (required, as for every v3+ model; any model name is
//! accepted), `embedding_types` of `float` and/or `base64` (default `float`) and an optional
//! `output_dimension`. The answer is `{id, embeddings: {float, base64}, texts, meta:
//! {api_version, billed_units: {input_tokens}}, response_type: "embeddings_by_type"}`, the
//! vectors those of the OpenAI and Gemini embed routes for the same text, the tokens its words.
//! Faults come from the `x-mock-fault` header, as on the other embed routes.

use std::collections::VecDeque;

use axum::{body::Bytes, extract::Request, response::Response};
use serde::Serialize;
use serde_json::Value;

use super::{
    delivery::{self, event_frame, Pieces, Render, StreamPlan},
    dialect::{Dialect, Refusal},
    embedding,
    generation::{self, count_words, Finish, LastTurn, Output, Prompt, ToolChoice, ToolDef},
    inbound::Inbound,
};

const DIALECT: Dialect = Dialect::Cohere;
/// Most stop sequences Cohere takes.
const MAX_STOP: usize = 5;

/// `POST /v2/chat`.
pub(super) async fn chat(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let mut chat = Chat::parse(&json).map_err(|m| inbound.bad_request(m))?;
    inbound.take_directives(&mut chat.prompt.last)?;
    if let Some(response) = inbound.preempt(chat.model).await {
        return Ok(response);
    }
    let reply = generation::reply(&chat.prompt, inbound.directive.words);
    let id = message_id(super::next_seq());
    let usage = (!inbound.directive.no_usage).then_some(UsageOut {
        billed_units: Units {
            input_tokens: chat.billed_input,
            output_tokens: reply.completion_tokens,
        },
        tokens: Units {
            input_tokens: chat.prompt.tokens,
            output_tokens: reply.completion_tokens,
        },
    });
    let finish = match &reply.output {
        Output::Tool(_) => "TOOL_CALL",
        Output::Text { finish, .. } => match finish {
            Finish::Stop => "COMPLETE",
            Finish::Length => "MAX_TOKENS",
            Finish::StopSequence(_) => "STOP_SEQUENCE",
        },
    };
    let reset = inbound.reset.take();
    if chat.stream {
        let (content, pieces, call) = match reply.output {
            Output::Text { text, .. } => (text, Pieces::Words, None),
            Output::Tool(call) => {
                let id = tool_call_id(&call.name);
                (call.arguments, Pieces::Fragments(3), Some((id, call.name)))
            }
        };
        let render = EventRender {
            id,
            finish,
            usage,
            text: (call.is_none() && !content.is_empty()),
            call,
        };
        let plan = StreamPlan {
            render: Render::Cohere(render),
            content,
            pieces,
            choices: 1,
        };
        return Ok(delivery::event_stream(plan, &inbound.directive, reset));
    }
    // A tool call's plan and id, here for the message to borrow.
    let (plan, call_id) = match &reply.output {
        Output::Tool(call) => (tool_plan(&call.name), tool_call_id(&call.name)),
        Output::Text { .. } => (String::new(), String::new()),
    };
    let message = match &reply.output {
        Output::Tool(call) => MessageOut {
            role: "assistant",
            content: Vec::new(),
            tool_plan: Some(&plan),
            tool_calls: Some([ToolCallOut {
                id: &call_id,
                kind: "function",
                function: FunctionOut {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            }]),
        },
        Output::Text { text, .. } => MessageOut {
            role: "assistant",
            content: (!text.is_empty())
                .then_some(TextItem { kind: "text", text })
                .into_iter()
                .collect(),
            tool_plan: None,
            tool_calls: None,
        },
    };
    let body = ChatResponse {
        id: &id,
        message,
        finish_reason: finish,
        usage: usage.as_ref(),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Ok(delivery::whole_json(body, &inbound.directive, reset))
}

/// Most inputs Cohere embeds in one request.
const MAX_EMBED_INPUTS: usize = 96;
/// Cohere's `input_type`s.
const INPUT_TYPES: &[&str] = &[
    "search_document",
    "search_query",
    "classification",
    "clustering",
    "image",
];

/// `POST /v2/embed`.
pub(super) async fn embed(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let embed = Embed::parse(&json).map_err(|m| inbound.bad_request(m))?;
    if let Some(response) = inbound.preempt(embed.model).await {
        return Ok(response);
    }
    let vectors: Vec<Vec<f32>> = embed
        .texts
        .iter()
        .map(|t| embedding::vector(t.as_bytes(), embed.dimensions))
        .collect();
    let tokens: u64 = embed.texts.iter().map(|t| count_words(t)).sum();
    let body = EmbedResponse {
        id: message_id(super::next_seq()),
        embeddings: EmbeddingsByType {
            base64: embed
                .base64
                .then(|| vectors.iter().map(|v| embedding::to_base64(v)).collect()),
            float: embed.float.then_some(vectors),
        },
        texts: &embed.texts,
        meta: EmbedMeta {
            api_version: ApiVersion { version: "2" },
            billed_units: BilledInput {
                input_tokens: tokens,
            },
        },
        response_type: "embeddings_by_type",
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Ok(delivery::whole_json(
        body,
        &inbound.directive,
        inbound.reset.take(),
    ))
}

/// The parts of a v2 embed request the mock uses.
struct Embed<'a> {
    model: &'a str,
    texts: Vec<&'a str>,
    dimensions: usize,
    float: bool,
    base64: bool,
}

impl<'a> Embed<'a> {
    fn parse(v: &'a Value) -> Result<Embed<'a>, String> {
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or("invalid request: model must be a string")?;
        let texts: Vec<&str> = match (v.get("texts"), v.get("inputs")) {
            (Some(texts), _) => texts
                .as_array()
                .ok_or("invalid request: texts must be an array of strings")?
                .iter()
                .map(|t| t.as_str().ok_or("invalid request: texts must be strings"))
                .collect::<Result<_, _>>()?,
            (None, Some(inputs)) => inputs
                .as_array()
                .ok_or("invalid request: inputs must be an array")?
                .iter()
                .map(|input| {
                    input
                        .get("content")
                        .and_then(Value::as_array)
                        .and_then(|c| c.iter().find_map(|p| p.get("text")?.as_str()))
                        .ok_or("invalid request: inputs must have text content")
                })
                .collect::<Result<_, _>>()?,
            (None, None) => {
                return Err("invalid request: one of texts or inputs must be specified".to_owned())
            }
        };
        if texts.is_empty() {
            return Err("invalid request: texts must not be empty".to_owned());
        }
        if texts.len() > MAX_EMBED_INPUTS {
            return Err(format!(
                "invalid request: texts can have at most {MAX_EMBED_INPUTS} items"
            ));
        }
        match v.get("input_type").and_then(Value::as_str) {
            None => {
                return Err(
                    "invalid request: input_type is required for embed models v3 and higher."
                        .to_owned(),
                )
            }
            Some(t) if !INPUT_TYPES.contains(&t) => {
                return Err(format!(
                    "invalid request: input_type must be one of {}",
                    INPUT_TYPES.join(", ")
                ))
            }
            Some(_) => {}
        }
        let (mut float, mut base64) = (false, false);
        match v.get("embedding_types") {
            None => float = true,
            Some(types) => {
                let types = types
                    .as_array()
                    .filter(|t| !t.is_empty())
                    .ok_or("invalid request: embedding_types must be a non-empty array")?;
                for t in types {
                    match t.as_str() {
                        Some("float") => float = true,
                        Some("base64") => base64 = true,
                        Some("int8" | "uint8" | "binary" | "ubinary") => {
                            return Err(
                                "invalid request: the mock serves only float and base64 embeddings"
                                    .to_owned(),
                            )
                        }
                        _ => {
                            return Err(
                                "invalid request: embedding_types must be of float, int8, uint8, binary, ubinary, base64"
                                    .to_owned(),
                            )
                        }
                    }
                }
            }
        }
        let dimensions = match v.get("output_dimension") {
            None | Some(Value::Null) => embedding::DEFAULT_DIMENSIONS,
            Some(d) => match d.as_u64().and_then(|d| usize::try_from(d).ok()) {
                Some(d @ 1..=embedding::MAX_DIMENSIONS) => d,
                _ => {
                    return Err(
                        "invalid request: output_dimension must be between 1 and 65536".to_owned(),
                    )
                }
            },
        };
        Ok(Embed {
            model,
            texts,
            dimensions,
            float,
            base64,
        })
    }
}

#[derive(Serialize)]
struct EmbedResponse<'a> {
    id: String,
    embeddings: EmbeddingsByType,
    texts: &'a [&'a str],
    meta: EmbedMeta,
    response_type: &'static str,
}

#[derive(Serialize)]
struct EmbeddingsByType {
    #[serde(skip_serializing_if = "Option::is_none")]
    float: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<Vec<String>>,
}

#[derive(Serialize)]
struct EmbedMeta {
    api_version: ApiVersion,
    billed_units: BilledInput,
}

#[derive(Serialize)]
struct ApiVersion {
    version: &'static str,
}

#[derive(Serialize)]
struct BilledInput {
    input_tokens: u64,
}

/// Cohere's ids are UUIDs; the mock's are UUID-shaped and count up.
fn message_id(seq: u64) -> String {
    format!("00000000-0000-4000-8000-{:012}", seq % 1_000_000_000_000)
}

/// Cohere names a call after its function: `<name>_<suffix>`.
fn tool_call_id(name: &str) -> String {
    format!("{name}_mock_{}", super::next_seq())
}

/// The `tool_plan` that comes with a call.
fn tool_plan(name: &str) -> String {
    format!("I will call {name}.")
}

/// The parts of a v2 chat request the mock uses.
struct Chat<'a> {
    model: &'a str,
    stream: bool,
    /// `billed_units.input_tokens`: the prompt without the system messages, so that tests can
    /// tell the two counts apart (`tokens.input_tokens` is `prompt.tokens`).
    billed_input: u64,
    prompt: Prompt<'a>,
}

impl<'a> Chat<'a> {
    fn parse(v: &'a Value) -> Result<Chat<'a>, String> {
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or("invalid request: model must be a string")?;
        let messages = match v.get("messages").and_then(Value::as_array) {
            Some(messages) if !messages.is_empty() => messages,
            _ => return Err("invalid request: messages must not be empty".to_owned()),
        };
        let (mut tokens, mut billed_input) = (0, 0);
        let mut call_ids: Vec<&str> = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let role = message.get("role").and_then(Value::as_str);
            if !matches!(role, Some("system" | "user" | "assistant" | "tool")) {
                return Err(format!(
                    "invalid request: messages[{i}].role must be one of system, user, assistant, tool"
                ));
            }
            if role == Some("assistant") {
                call_ids.extend(
                    message
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.get("id").and_then(Value::as_str)),
                );
            }
            if role == Some("tool") {
                let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
                    return Err(format!(
                        "invalid request: messages[{i}].tool_call_id is required"
                    ));
                };
                if !call_ids.contains(&id) {
                    return Err(format!(
                        "invalid request: messages[{i}].tool_call_id '{id}' answers no tool call"
                    ));
                }
                if message.get("content").is_none_or(Value::is_null) {
                    return Err(format!(
                        "invalid request: messages[{i}].content is required"
                    ));
                }
            }
            let words = message_words(message).max(1);
            tokens += words;
            if role != Some("system") {
                billed_input += words;
            }
        }
        if let Some(p) = v.get("p").and_then(Value::as_f64) {
            if !(0.01..=0.99).contains(&p) {
                return Err("invalid request: p must be between 0.01 and 0.99".to_owned());
            }
        }
        if let Some(k) = v.get("k").and_then(Value::as_u64) {
            if k > 500 {
                return Err("invalid request: k must be between 0 and 500".to_owned());
            }
        }
        let stop: Vec<&str> = v
            .get("stop_sequences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if stop.len() > MAX_STOP {
            return Err(format!(
                "invalid request: stop_sequences can have at most {MAX_STOP} items"
            ));
        }
        let tools: Vec<ToolDef<'a>> = v
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let function = t.get("function")?;
                Some(ToolDef {
                    name: function.get("name")?.as_str()?,
                    schema: function.get("parameters"),
                })
            })
            .collect();
        let choice = match v.get("tool_choice").and_then(Value::as_str) {
            Some(c) if c.eq_ignore_ascii_case("required") => ToolChoice::Any { allowed: vec![] },
            Some(c) if c.eq_ignore_ascii_case("none") => ToolChoice::None,
            _ => ToolChoice::Auto,
        };
        if matches!(choice, ToolChoice::Any { .. }) && tools.is_empty() {
            return Err(
                "invalid request: tool_choice REQUIRED can only be used with tools".to_owned(),
            );
        }
        Ok(Chat {
            model,
            stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
            billed_input,
            prompt: Prompt {
                tokens,
                last: last_turn(messages),
                tools,
                choice,
                max_tokens: v.get("max_tokens").and_then(Value::as_u64),
                stop,
            },
        })
    }
}

/// Words of a message: its content, its tool plan and its tool-call arguments.
fn message_words(message: &Value) -> u64 {
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|call| call.pointer("/function/arguments"))
        .filter_map(Value::as_str)
        .map(count_words)
        .sum::<u64>();
    let plan = message
        .get("tool_plan")
        .and_then(Value::as_str)
        .map_or(0, count_words);
    content_words(message.get("content")) + plan + calls
}

/// Words of a content string or of its items: text, thinking and tool-result documents.
fn content_words(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(text)) => count_words(text),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.get("type").and_then(Value::as_str) {
                Some("text") => item
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, count_words),
                Some("thinking") => item
                    .get("thinking")
                    .and_then(Value::as_str)
                    .map_or(0, count_words),
                Some("document") => item
                    .pointer("/document/data")
                    .map_or(0, |d| count_words(&d.to_string())),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// A content string, or its text items joined with a space (images ignored).
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|i| i.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The final tool message, or else the last user message.
fn last_turn(messages: &[Value]) -> LastTurn {
    for message in messages.iter().rev() {
        match message.get("role").and_then(Value::as_str) {
            Some("tool") => return LastTurn::ToolResult(content_text(message.get("content"))),
            Some("user") => return LastTurn::User(content_text(message.get("content"))),
            _ => {}
        }
    }
    LastTurn::User(String::new())
}

#[derive(Serialize)]
struct ChatResponse<'a> {
    id: &'a str,
    message: MessageOut<'a>,
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a UsageOut>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    content: Vec<TextItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

#[derive(Serialize)]
struct TextItem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize, Clone, Debug)]
struct UsageOut {
    billed_units: Units,
    tokens: Units,
}

#[derive(Serialize, Clone, Debug)]
struct Units {
    input_tokens: u64,
    output_tokens: u64,
}

/// Encodes the named stream events.
pub(super) struct EventRender {
    id: String,
    finish: &'static str,
    /// `None` under `no_usage`.
    usage: Option<UsageOut>,
    /// The reply is non-empty text: it has a content block.
    text: bool,
    /// The call's id and name when the reply is a tool call.
    call: Option<(String, String)>,
}

#[derive(Serialize)]
struct StreamEvent<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<D>,
}

/// `{"message": …}`.
#[derive(Serialize)]
struct MessageDelta<M: Serialize> {
    message: M,
}

#[derive(Serialize)]
struct StartMessage {
    role: &'static str,
    content: [(); 0],
    tool_plan: &'static str,
    tool_calls: [(); 0],
    citations: [(); 0],
}

#[derive(Serialize)]
struct ContentOf<C: Serialize> {
    content: C,
}

#[derive(Serialize)]
struct StartContent {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'static str,
}

#[derive(Serialize)]
struct DeltaText<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct PlanOf<'a> {
    tool_plan: &'a str,
}

#[derive(Serialize)]
struct CallsOf<C: Serialize> {
    tool_calls: C,
}

#[derive(Serialize)]
struct ArgumentsOf<'a> {
    function: Arguments<'a>,
}

#[derive(Serialize)]
struct Arguments<'a> {
    arguments: &'a str,
}

#[derive(Serialize)]
struct EndDelta<'a> {
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a UsageOut>,
}

/// Frames one event under its own name.
fn frame<D: Serialize>(
    kind: &'static str,
    id: Option<&str>,
    index: Option<u32>,
    delta: Option<D>,
) -> Bytes {
    event_frame(
        kind,
        &StreamEvent {
            kind,
            id,
            index,
            delta,
        },
    )
}

impl EventRender {
    /// `message-start`, then `content-start`, or the tool plan and `tool-call-start`.
    pub(super) fn opening(&self, out: &mut VecDeque<Bytes>) {
        let start = MessageDelta {
            message: StartMessage {
                role: "assistant",
                content: [],
                tool_plan: "",
                tool_calls: [],
                citations: [],
            },
        };
        out.push_back(frame("message-start", Some(&self.id), None, Some(start)));
        if self.text {
            let delta = MessageDelta {
                message: ContentOf {
                    content: StartContent {
                        kind: "text",
                        text: "",
                    },
                },
            };
            out.push_back(frame("content-start", None, Some(0), Some(delta)));
        }
        if let Some((id, name)) = &self.call {
            let plan = tool_plan(name);
            let mut rest = plan.as_str();
            // One event per word, each word after the first with its leading space.
            while let Some(first) = rest.chars().next() {
                let skip = first.len_utf8();
                let end = rest[skip..].find(' ').map_or(rest.len(), |at| at + skip);
                let delta = MessageDelta {
                    message: PlanOf {
                        tool_plan: &rest[..end],
                    },
                };
                out.push_back(frame("tool-plan-delta", None, None, Some(delta)));
                rest = &rest[end..];
            }
            let delta = MessageDelta {
                message: CallsOf {
                    tool_calls: ToolCallOut {
                        id,
                        kind: "function",
                        function: FunctionOut {
                            name,
                            arguments: "",
                        },
                    },
                },
            };
            out.push_back(frame("tool-call-start", None, Some(0), Some(delta)));
        }
    }

    /// A `content-delta` word or a `tool-call-delta` fragment of the arguments.
    pub(super) fn content(&self, fragment: &str) -> Bytes {
        if self.call.is_some() {
            let delta = MessageDelta {
                message: CallsOf {
                    tool_calls: ArgumentsOf {
                        function: Arguments {
                            arguments: fragment,
                        },
                    },
                },
            };
            return frame("tool-call-delta", None, Some(0), Some(delta));
        }
        let delta = MessageDelta {
            message: ContentOf {
                content: DeltaText { text: fragment },
            },
        };
        frame("content-delta", None, Some(0), Some(delta))
    }

    /// `content-end` or `tool-call-end`, then `message-end`.
    pub(super) fn closing(&self, out: &mut VecDeque<Bytes>) {
        if self.text {
            out.push_back(frame::<()>("content-end", None, Some(0), None));
        }
        if self.call.is_some() {
            out.push_back(frame::<()>("tool-call-end", None, Some(0), None));
        }
        let end = EndDelta {
            finish_reason: self.finish,
            usage: self.usage.as_ref(),
        };
        out.push_back(frame("message-end", Some(&self.id), None, Some(end)));
    }
}

/// The in-stream error: a `message-end` whose finish reason is `ERROR`, with its message.
pub(super) fn stream_error() -> Bytes {
    Bytes::from_static(
        b"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"error\":\"internal server error, this has been reported to our developers (mock fault)\",\"finish_reason\":\"ERROR\"}}\n\n",
    )
}

/// A `content-delta` whose JSON is cut short.
pub(super) fn malformed() -> Bytes {
    Bytes::from_static(
        b"event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"\n\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_cohere_ones() {
        assert_eq!(message_id(42), "00000000-0000-4000-8000-000000000042");
        assert!(tool_call_id("get_weather").starts_with("get_weather_mock_"));
    }
}
