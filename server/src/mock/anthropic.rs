//! The Anthropic Messages wire format: `POST /v1/messages` (whole and streamed, `?beta=true`
//! accepted) and `POST /v1/messages/count_tokens`.

use std::collections::VecDeque;

use axum::{body::Bytes, extract::Request, http::HeaderValue, response::Response};
use serde::Serialize;
use serde_json::Value;

use super::{
    delivery::{self, event_frame, Pieces, Render, StreamPlan},
    dialect::{Dialect, Refusal},
    generation::{self, count_words, Finish, LastTurn, Output, Prompt, ToolChoice, ToolDef},
    inbound::Inbound,
};

const DIALECT: Dialect = Dialect::Anthropic;

/// `POST /v1/messages`.
pub(super) async fn messages(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let mut request = MessagesRequest::parse(&json, true).map_err(|m| inbound.bad_request(m))?;
    inbound.take_directives(&mut request.prompt.last)?;
    if let Some(response) = inbound.preempt(request.model).await {
        return Ok(response);
    }
    let reply = generation::reply(&request.prompt, inbound.directive.words);
    let thinking = request
        .thinking
        .then(|| Thinking::about(&request.prompt.last));
    let thinking_tokens = thinking.as_ref().map_or(0, |t| count_words(&t.text));
    let seq = super::next_seq();
    let id = format!("msg_mock_{seq}");
    let no_usage = inbound.directive.no_usage;
    let cache = request.cache;
    // Thinking counts as output, as Anthropic bills it.
    let usage = |output_tokens: u64| {
        if no_usage {
            Usage::new(0, 0)
        } else {
            Usage::new(request.prompt.tokens, output_tokens + thinking_tokens).with_cache(cache)
        }
    };
    let (stop_reason, stop_sequence) = match &reply.output {
        Output::Tool(_) => ("tool_use", None),
        Output::Text { finish, .. } => match finish {
            Finish::Stop => ("end_turn", None),
            Finish::Length => ("max_tokens", None),
            Finish::StopSequence(seq) => ("stop_sequence", Some(seq.clone())),
        },
    };
    let tool_id = match &reply.output {
        Output::Tool(_) => format!("toolu_mock_{}", super::next_seq()),
        Output::Text { .. } => String::new(),
    };
    let reset = inbound.reset.take();
    let mut response = if request.stream {
        let (content, pieces, block) = match reply.output {
            Output::Text { text, .. } => (text, Pieces::Words, Block::Text),
            Output::Tool(call) => (
                call.arguments,
                Pieces::Fragments(3),
                Block::ToolUse {
                    id: tool_id,
                    name: call.name,
                },
            ),
        };
        let render = EventRender {
            start_usage: Usage {
                output_tokens: u64::from(!no_usage),
                ..usage(0)
            },
            final_usage: (!no_usage).then(|| {
                let u = usage(reply.completion_tokens);
                DeltaUsage {
                    input_tokens: u.input_tokens,
                    cache_creation_input_tokens: u.cache_creation_input_tokens,
                    cache_read_input_tokens: u.cache_read_input_tokens,
                    output_tokens: u.output_tokens,
                }
            }),
            id,
            model: request.model.to_owned(),
            block: (!content.is_empty()).then_some(block),
            thinking,
            stop_reason,
            stop_sequence,
        };
        let plan = StreamPlan {
            render: Render::Anthropic(render),
            content,
            pieces,
            choices: 1,
        };
        delivery::event_stream(plan, &inbound.directive, reset)
    } else {
        let mut content: Vec<ContentBlock> = thinking
            .iter()
            .map(|t| ContentBlock::Thinking {
                thinking: &t.text,
                signature: &t.signature,
            })
            .collect();
        match &reply.output {
            Output::Text { text, .. } if text.is_empty() => {}
            Output::Text { text, .. } => content.push(ContentBlock::Text { text }),
            Output::Tool(call) => content.push(ContentBlock::ToolUse {
                id: &tool_id,
                name: &call.name,
                input: &call.input,
            }),
        }
        let body = MessageOut {
            id: &id,
            kind: "message",
            role: "assistant",
            model: request.model,
            content,
            stop_reason: Some(stop_reason),
            stop_sequence: stop_sequence.as_deref(),
            usage: usage(reply.completion_tokens),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        delivery::whole_json(body, &inbound.directive, reset)
    };
    set_request_id(&mut response, seq);
    Ok(response)
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
pub(super) async fn count_tokens(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let mut request = MessagesRequest::parse(&json, false).map_err(|m| inbound.bad_request(m))?;
    inbound.take_directives(&mut request.prompt.last)?;
    if let Some(response) = inbound.preempt(request.model).await {
        return Ok(response);
    }
    let body = serde_json::json!({ "input_tokens": request.prompt.tokens }).to_string();
    let seq = super::next_seq();
    let mut response =
        delivery::whole_json(body.into_bytes(), &inbound.directive, inbound.reset.take());
    set_request_id(&mut response, seq);
    Ok(response)
}

/// The parts of a Messages request the mock uses.
struct MessagesRequest<'a> {
    model: &'a str,
    stream: bool,
    prompt: Prompt<'a>,
    /// Prompt tokens up to the last `cache_control` breakpoint, and whether that prefix was
    /// cached by an earlier request.
    cache: PromptCache,
    /// `thinking: {type: enabled | adaptive}`: the reply opens with a signed thinking block.
    thinking: bool,
}

impl<'a> MessagesRequest<'a> {
    fn parse(v: &'a Value, needs_max_tokens: bool) -> Result<MessagesRequest<'a>, String> {
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or("model: Field required")?;
        let max_tokens = v.get("max_tokens").and_then(Value::as_u64);
        if needs_max_tokens && max_tokens.is_none() {
            return Err("max_tokens: Field required".to_owned());
        }
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .ok_or("messages: Field required")?;
        let tokens = blocks_words(v.get("system"))
            + messages
                .iter()
                .map(|m| blocks_words(m.get("content")).max(1))
                .sum::<u64>();
        let tools = v
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tool| {
                Some(ToolDef {
                    name: tool.get("name")?.as_str()?,
                    schema: tool.get("input_schema"),
                })
            })
            .collect::<Vec<_>>();
        // Anthropic refuses tool names outside its pattern.
        if let Some(i) = tools.iter().position(|t| !tool_name_ok(t.name)) {
            return Err(format!(
                "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            ));
        }
        let stop = v
            .get("stop_sequences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        Thinking::verify(messages)?;
        let thinking = matches!(
            v.pointer("/thinking/type").and_then(Value::as_str),
            Some("enabled" | "adaptive")
        );
        let cache = PromptCache::lookup(model, v.get("system"), messages);
        Ok(MessagesRequest {
            model,
            cache,
            thinking,
            stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
            prompt: Prompt {
                tokens,
                last: last_turn(messages),
                tools,
                choice: tool_choice(v.get("tool_choice")),
                max_tokens,
                stop,
            },
        })
    }
}

/// Words of a content string or block list: text, thinking, tool inputs and tool results.
fn blocks_words(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(text)) => count_words(text),
        Some(Value::Array(blocks)) => blocks.iter().map(block_words).sum(),
        _ => 0,
    }
}

/// Words of one content block.
fn block_words(block: &Value) -> u64 {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => block
            .get("text")
            .and_then(Value::as_str)
            .map_or(0, count_words),
        Some("thinking") => block
            .get("thinking")
            .and_then(Value::as_str)
            .map_or(0, count_words),
        Some("tool_use") => block
            .get("input")
            .map_or(0, |input| count_words(&input.to_string())),
        Some("tool_result") => blocks_words(block.get("content")),
        _ => 0,
    }
}

/// A content string, or its text blocks joined with a space.
fn blocks_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The last user message: its final `tool_result` if it has one, else its text.
fn last_turn(messages: &[Value]) -> LastTurn {
    let Some(user) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return LastTurn::User(String::new());
    };
    let content = user.get("content");
    let tool_result = content.and_then(Value::as_array).and_then(|blocks| {
        blocks
            .iter()
            .rev()
            .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
    });
    match tool_result {
        Some(result) => LastTurn::ToolResult(blocks_text(result.get("content"))),
        None => LastTurn::User(blocks_text(content)),
    }
}

fn tool_choice(choice: Option<&Value>) -> ToolChoice<'_> {
    let Some(choice) = choice else {
        return ToolChoice::Auto;
    };
    match choice.get("type").and_then(Value::as_str) {
        Some("none") => ToolChoice::None,
        Some("any") => ToolChoice::Any { allowed: vec![] },
        Some("tool") => choice
            .get("name")
            .and_then(Value::as_str)
            .map_or(ToolChoice::Auto, ToolChoice::Named),
        _ => ToolChoice::Auto,
    }
}

fn set_request_id(response: &mut Response, seq: u64) {
    if let Ok(value) = HeaderValue::try_from(format!("req_mock_{seq}")) {
        response.headers_mut().insert("request-id", value);
    }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<ContentBlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: Usage,
}

/// The mock's reasoning: a sentence about the last turn, signed so that the mock can refuse
/// a thinking block sent back altered or unsigned, as Anthropic does.
pub(super) struct Thinking {
    text: String,
    signature: String,
}

impl Thinking {
    fn about(last: &LastTurn) -> Thinking {
        let (LastTurn::User(t) | LastTurn::ToolResult(t)) = last;
        let words = t.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
        let text = if words.is_empty() {
            "Thinking about the request.".to_owned()
        } else {
            format!("Thinking about: {words}")
        };
        let signature = Self::sign(&text);
        Thinking { text, signature }
    }

    /// An opaque, deterministic signature of the thinking text (FNV-1a, base64-looking).
    fn sign(text: &str) -> String {
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("EqMock{hash:016x}")
    }

    /// Every `thinking` block in the history must carry the signature of its text.
    fn verify(messages: &[Value]) -> Result<(), String> {
        for (i, m) in messages.iter().enumerate() {
            let blocks = m.get("content").and_then(Value::as_array).into_iter();
            for (j, b) in blocks.flatten().enumerate() {
                if b.get("type").and_then(Value::as_str) != Some("thinking") {
                    continue;
                }
                let text = b.get("thinking").and_then(Value::as_str).unwrap_or("");
                let signature = b.get("signature").and_then(Value::as_str).unwrap_or("");
                if signature != Self::sign(text) {
                    return Err(format!(
                        "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

/// Usage with every cache field present and zero.
#[derive(Serialize, Clone, Debug)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
}

impl Usage {
    fn new(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            cache_creation: CacheCreation::default(),
            output_tokens,
            service_tier: "standard",
        }
    }
}

impl Usage {
    /// Moves the cached prefix out of `input_tokens`: written to the cache the first time
    /// (5-minute entries), read from it after.
    fn with_cache(mut self, cache: PromptCache) -> Usage {
        let n = cache.prefix_tokens.min(self.input_tokens);
        self.input_tokens -= n;
        if cache.hit {
            self.cache_read_input_tokens = n;
        } else {
            self.cache_creation_input_tokens = n;
            self.cache_creation.ephemeral_5m_input_tokens = n;
        }
        self
    }
}

/// Anthropic's prompt caching, as far as usage shows it: the prompt up to the last block that
/// carries `cache_control` (system blocks, then message blocks, in order; tools are not
/// counted in the mock's prompt tokens) is a cache entry keyed by the model and that prefix's
/// JSON. The first request with a prefix writes it, later ones read it. No minimum length and
/// no expiry: the entries live as long as the process (bounded to [`PromptCache::MAX`]).
#[derive(Clone, Copy, Debug, Default)]
struct PromptCache {
    prefix_tokens: u64,
    hit: bool,
}

impl PromptCache {
    const MAX: usize = 10_000;

    fn lookup(model: &str, system: Option<&Value>, messages: &[Value]) -> PromptCache {
        use std::hash::{Hash, Hasher};
        static SEEN: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<u64>>> =
            std::sync::LazyLock::new(Default::default);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        model.hash(&mut hasher);
        let (mut words, mut breakpoint) = (0u64, None);
        // The system prompt, then each message (which counts at least one word, as in
        // `MessagesRequest::parse`), block by block.
        let turns = std::iter::once((None, system))
            .chain(messages.iter().map(|m| (m.get("role"), m.get("content"))));
        for (i, (role, content)) in turns.enumerate() {
            let floor = if i == 0 { 0 } else { words + 1 };
            role.map(Value::to_string).hash(&mut hasher);
            match content {
                Some(Value::Array(blocks)) => {
                    for b in blocks {
                        words += block_words(b);
                        b.to_string().hash(&mut hasher);
                        if b.get("cache_control").is_some() {
                            breakpoint = Some((words.max(floor), hasher.finish()));
                        }
                    }
                }
                other => {
                    words += blocks_words(other);
                    other.map(Value::to_string).hash(&mut hasher);
                }
            }
            words = words.max(floor);
        }
        let Some((prefix_tokens, key)) = breakpoint else {
            return PromptCache::default();
        };
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        let hit = !seen.insert(key);
        if seen.len() > Self::MAX {
            seen.clear();
        }
        PromptCache { prefix_tokens, hit }
    }
}

#[derive(Serialize, Clone, Debug, Default)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

/// The reply's single content block.
pub(super) enum Block {
    Text,
    ToolUse { id: String, name: String },
}

/// Encodes the named Messages stream events.
pub(super) struct EventRender {
    id: String,
    model: String,
    /// `message_start` usage: input and a provisional 1 output token (zeros under `no_usage`).
    start_usage: Usage,
    /// `message_delta` usage (cumulative); `None` under `no_usage`.
    final_usage: Option<DeltaUsage>,
    /// `None` when the reply is empty text: no content block at all.
    block: Option<Block>,
    /// A thinking block sent whole before `block` (which then has index 1).
    thinking: Option<Thinking>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
}

#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageOut<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    content_block: StartBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaBody<'a> {
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
}

#[derive(Serialize)]
struct MessageDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a DeltaUsage>,
}

/// `message_delta` usage: final counts, input repeated.
#[derive(Serialize, Clone, Debug)]
struct DeltaUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct StopDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

impl EventRender {
    /// `message_start`, `content_block_start` and a `ping`.
    pub(super) fn opening(&self, out: &mut VecDeque<Bytes>) {
        let start = MessageStart {
            kind: "message_start",
            message: MessageOut {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: self.start_usage.clone(),
            },
        };
        out.push_back(event_frame("message_start", &start));
        if let Some(t) = &self.thinking {
            let start = BlockStart {
                kind: "content_block_start",
                index: 0,
                content_block: StartBlock::Thinking {
                    thinking: "",
                    signature: "",
                },
            };
            out.push_back(event_frame("content_block_start", &start));
            out.push_back(event_frame("ping", &TypeOnly { kind: "ping" }));
            for delta in [
                DeltaBody::Thinking { thinking: &t.text },
                DeltaBody::Signature {
                    signature: &t.signature,
                },
            ] {
                let event = BlockDelta {
                    kind: "content_block_delta",
                    index: 0,
                    delta,
                };
                out.push_back(event_frame("content_block_delta", &event));
            }
            let stop = BlockStop {
                kind: "content_block_stop",
                index: 0,
            };
            out.push_back(event_frame("content_block_stop", &stop));
        }
        if let Some(block) = &self.block {
            let content_block = match block {
                Block::Text => StartBlock::Text { text: "" },
                Block::ToolUse { id, name } => StartBlock::ToolUse {
                    id,
                    name,
                    input: EmptyObject {},
                },
            };
            let start = BlockStart {
                kind: "content_block_start",
                index: self.block_index(),
                content_block,
            };
            out.push_back(event_frame("content_block_start", &start));
        }
        if self.thinking.is_none() {
            out.push_back(event_frame("ping", &TypeOnly { kind: "ping" }));
        }
    }

    /// The index of the reply's block: after the thinking block when there is one.
    fn block_index(&self) -> usize {
        usize::from(self.thinking.is_some())
    }

    /// A `text_delta` or `input_json_delta`.
    pub(super) fn content(&self, fragment: &str) -> Bytes {
        let delta = match self.block {
            Some(Block::ToolUse { .. }) => DeltaBody::InputJson {
                partial_json: fragment,
            },
            _ => DeltaBody::Text { text: fragment },
        };
        let event = BlockDelta {
            kind: "content_block_delta",
            index: self.block_index(),
            delta,
        };
        event_frame("content_block_delta", &event)
    }

    /// `content_block_stop`, `message_delta` and `message_stop`.
    pub(super) fn closing(&self, out: &mut VecDeque<Bytes>) {
        if self.block.is_some() {
            let stop = BlockStop {
                kind: "content_block_stop",
                index: self.block_index(),
            };
            out.push_back(event_frame("content_block_stop", &stop));
        }
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: self.stop_reason,
                stop_sequence: self.stop_sequence.as_deref(),
            },
            usage: self.final_usage.as_ref(),
        };
        out.push_back(event_frame("message_delta", &delta));
        out.push_back(event_frame(
            "message_stop",
            &TypeOnly {
                kind: "message_stop",
            },
        ));
    }
}

/// The in-stream `overloaded_error` event.
pub(super) fn stream_error() -> Bytes {
    Bytes::from_static(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    )
}

/// `^[a-zA-Z0-9_-]{1,64}$`, the tool names Anthropic and Gemini take.
pub(super) fn tool_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
