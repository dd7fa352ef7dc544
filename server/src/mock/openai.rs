//! The OpenAI wire format: `POST /v1/chat/completions` (whole and streamed),
//! `POST /v1/embeddings`, `GET /v1/models`, and the 404 for unknown paths.

use std::collections::VecDeque;

use axum::{
    body::{to_bytes, Bytes},
    extract::Request,
    http::{HeaderValue, StatusCode},
    response::Response,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    delivery::{self, data_frame, Pieces, Render, StreamPlan},
    dialect::{Dialect, Refusal},
    embedding,
    generation::{self, count_words, Finish, LastTurn, Output, Prompt, ToolChoice, ToolDef},
    inbound::{Inbound, BODY_LIMIT},
};

const DIALECT: Dialect = Dialect::OpenAi;
/// Most choices one request may ask for.
const MAX_CHOICES: u64 = 128;
const FINGERPRINT: &str = "fp_mock";
const SSE_END: &[u8] = b"\n\n";

/// `POST /v1/chat/completions`.
pub(super) async fn chat_completions(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let mut chat = Chat::parse(&json).map_err(|m| inbound.bad_request(m))?;
    inbound.take_directives(&mut chat.prompt.last)?;
    if let Some(response) = inbound.preempt(chat.model).await {
        return Ok(response);
    }
    let reply = generation::reply(&chat.prompt, inbound.directive.words);
    let seq = super::next_seq();
    let id = format!("chatcmpl-mock-{seq}");
    let created = super::unix_now();
    let choices = chat.n;
    let finish = match &reply.output {
        Output::Text { finish, .. } => finish_reason(finish),
        Output::Tool(_) => "tool_calls",
    };
    let tool_ids: Vec<String> = match &reply.output {
        Output::Tool(_) => (0..choices)
            .map(|_| format!("call_mock_{}", super::next_seq()))
            .collect(),
        Output::Text { .. } => Vec::new(),
    };
    let usage = (!inbound.directive.no_usage)
        .then(|| Usage::new(chat.prompt.tokens, reply.completion_tokens * choices as u64));
    let reset = inbound.reset.take();
    let mut response = if chat.stream {
        let (content, pieces, tool_name) = match reply.output {
            Output::Text { text, .. } => (text, Pieces::Words, None),
            Output::Tool(call) => (call.arguments, Pieces::Fragments(3), Some(call.name)),
        };
        let render = ChunkRender {
            id,
            created,
            model: chat.model.to_owned(),
            finish,
            include_usage: chat.include_usage,
            usage,
            choices,
            tool_name,
            tool_ids,
        };
        let plan = StreamPlan {
            render: Render::OpenAi(render),
            content,
            pieces,
            choices,
        };
        delivery::event_stream(plan, &inbound.directive, reset)
    } else {
        let message = match &reply.output {
            Output::Text { text, .. } => Message {
                role: "assistant",
                content: Some(text),
                refusal: None,
                annotations: [],
                tool_calls: None,
            },
            Output::Tool(call) => Message {
                role: "assistant",
                content: None,
                refusal: None,
                annotations: [],
                // Each choice sets its own id below.
                tool_calls: Some(vec![ToolCallOut {
                    id: "",
                    kind: "function",
                    function: FunctionOut {
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                }]),
            },
        };
        let body = Completion {
            id: &id,
            object: "chat.completion",
            created,
            model: chat.model,
            system_fingerprint: FINGERPRINT,
            service_tier: "default",
            choices: (0..choices)
                .map(|index| CompletionChoice {
                    index,
                    message: message.for_choice(tool_ids.get(index).map(String::as_str)),
                    logprobs: None,
                    finish_reason: finish,
                })
                .collect(),
            usage: usage.as_ref(),
        };
        delivery::whole_json(to_json(&body), &inbound.directive, reset)
    };
    set_request_id(&mut response, seq);
    Ok(response)
}

/// The parts of a chat request the mock uses.
struct Chat<'a> {
    model: &'a str,
    stream: bool,
    include_usage: bool,
    n: usize,
    prompt: Prompt<'a>,
}

impl<'a> Chat<'a> {
    fn parse(v: &'a Value) -> Result<Chat<'a>, String> {
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or("you must provide a model parameter")?;
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .ok_or("'messages' is a required property")?;
        if messages.is_empty() {
            return Err("'messages' must contain at least one message".to_owned());
        }
        let tokens = messages.iter().map(|m| message_words(m).max(1)).sum();
        let n = match v.get("n").and_then(Value::as_u64) {
            None => 1,
            Some(n @ 1..=MAX_CHOICES) => usize::try_from(n).unwrap_or(1),
            Some(n) => return Err(format!("n must be between 1 and {MAX_CHOICES}, got {n}")),
        };
        let tools = v
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| tools.iter().filter_map(tool_def).collect())
            .unwrap_or_default();
        let stop = match v.get("stop") {
            Some(Value::String(stop)) => vec![stop.as_str()],
            Some(Value::Array(stops)) => stops.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let max_tokens = v
            .get("max_completion_tokens")
            .and_then(Value::as_u64)
            .or_else(|| v.get("max_tokens").and_then(Value::as_u64));
        Ok(Chat {
            model,
            stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: v
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            n,
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

/// Words of a message: its text, and its tool-call arguments.
fn message_words(message: &Value) -> u64 {
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|call| call.pointer("/function/arguments"))
        .chain(message.pointer("/function_call/arguments"))
        .filter_map(Value::as_str)
        .map(count_words)
        .sum::<u64>();
    content_words(message.get("content")) + calls
}

/// Words of a `content` string or of the text of its parts.
fn content_words(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(text)) => count_words(text),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").or_else(|| p.get("refusal")))
            .filter_map(Value::as_str)
            .map(count_words)
            .sum(),
        _ => 0,
    }
}

/// A `content` string, or its text parts joined with a space (images and audio ignored).
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The final tool message, or else the last user message.
fn last_turn(messages: &[Value]) -> LastTurn {
    for message in messages.iter().rev() {
        match message.get("role").and_then(Value::as_str) {
            Some("tool" | "function") => {
                return LastTurn::ToolResult(content_text(message.get("content")))
            }
            Some("user") => return LastTurn::User(content_text(message.get("content"))),
            _ => {}
        }
    }
    LastTurn::User(String::new())
}

/// A `{"type":"function","function":{name,parameters}}` tool.
fn tool_def(tool: &Value) -> Option<ToolDef<'_>> {
    if tool
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function")
        != "function"
    {
        return None;
    }
    let function = tool.get("function")?;
    Some(ToolDef {
        name: function.get("name")?.as_str()?,
        schema: function.get("parameters"),
    })
}

fn tool_choice(choice: Option<&Value>) -> ToolChoice<'_> {
    let Some(choice) = choice else {
        return ToolChoice::Auto;
    };
    match choice.as_str() {
        Some("none") => return ToolChoice::None,
        Some("required") => return ToolChoice::Any { allowed: vec![] },
        Some(_) => return ToolChoice::Auto,
        None => {}
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("function") => choice
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map_or(ToolChoice::Auto, ToolChoice::Named),
        Some("allowed_tools")
            if choice
                .pointer("/allowed_tools/mode")
                .and_then(Value::as_str)
                == Some("required") =>
        {
            let allowed = choice
                .pointer("/allowed_tools/tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .collect();
            ToolChoice::Any { allowed }
        }
        _ => ToolChoice::Auto,
    }
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::StopSequence(_) => "stop",
        Finish::Length => "length",
    }
}

fn set_request_id(response: &mut Response, seq: u64) {
    if let Ok(value) = HeaderValue::try_from(format!("req_mock_{seq}")) {
        response.headers_mut().insert("x-request-id", value);
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    service_tier: &'static str,
    choices: Vec<CompletionChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: usize,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize, Clone)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallOut<'a>>>,
}

impl<'a> Message<'a> {
    /// This message with the choice's own tool-call id.
    fn for_choice(&self, tool_id: Option<&'a str>) -> Message<'a> {
        let mut message = self.clone();
        if let (Some(calls), Some(id)) = (message.tool_calls.as_mut(), tool_id) {
            calls.iter_mut().for_each(|call| call.id = id);
        }
        message
    }
}

#[derive(Serialize, Clone)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize, Clone)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// Full OpenAI usage, detail objects included.
#[derive(Serialize, Clone, Debug)]
pub(super) struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptDetails::default(),
            completion_tokens_details: CompletionDetails::default(),
        }
    }
}

#[derive(Serialize, Clone, Debug, Default)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Clone, Debug, Default)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

/// Encodes `chat.completion.chunk` events.
pub(super) struct ChunkRender {
    id: String,
    created: u64,
    model: String,
    finish: &'static str,
    include_usage: bool,
    /// `None` under `no_usage`.
    usage: Option<Usage>,
    choices: usize,
    /// Set when the reply is a tool call; the content is then its arguments.
    tool_name: Option<String>,
    /// The tool-call id of each choice.
    tool_ids: Vec<String>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on every chunk but the usage one with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: usize,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(None)` is an explicit `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl ChunkRender {
    fn chunk(&self, choices: &[ChunkChoice<'_>], usage: Option<&Usage>) -> Bytes {
        let usage = match (self.include_usage, usage) {
            (false, _) => None,
            (true, usage) => Some(usage),
        };
        data_frame(
            &Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                system_fingerprint: FINGERPRINT,
                choices,
                usage,
            },
            SSE_END,
        )
    }

    fn one(&self, index: usize, delta: Delta<'_>, finish: Option<&'static str>) -> Bytes {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: finish,
        };
        self.chunk(std::slice::from_ref(&choice), None)
    }

    /// The role chunk of every choice (with the tool-call head when calling a tool).
    pub(super) fn opening(&self, out: &mut VecDeque<Bytes>) {
        for index in 0..self.choices {
            let delta = match &self.tool_name {
                None => Delta {
                    role: Some("assistant"),
                    content: Some(Some("")),
                    refusal: Some(None),
                    ..Delta::default()
                },
                Some(name) => Delta {
                    role: Some("assistant"),
                    content: Some(None),
                    tool_calls: Some([ToolCallDelta {
                        index: 0,
                        id: self.tool_ids.get(index).map(String::as_str),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(name),
                            arguments: "",
                        },
                    }]),
                    refusal: Some(None),
                },
            };
            out.push_back(self.one(index, delta, None));
        }
    }

    /// A text or tool-arguments fragment for one choice.
    pub(super) fn content(&self, index: usize, fragment: &str) -> Bytes {
        let delta = match self.tool_name {
            None => Delta {
                content: Some(Some(fragment)),
                ..Delta::default()
            },
            Some(_) => Delta {
                tool_calls: Some([ToolCallDelta {
                    index: 0,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: fragment,
                    },
                }]),
                ..Delta::default()
            },
        };
        self.one(index, delta, None)
    }

    /// The finish chunk of every choice, the usage chunk when asked for, and `[DONE]`.
    pub(super) fn closing(&self, out: &mut VecDeque<Bytes>) {
        for index in 0..self.choices {
            out.push_back(self.one(index, Delta::default(), Some(self.finish)));
        }
        if let Some(usage) = self.usage.as_ref().filter(|_| self.include_usage) {
            out.push_back(self.chunk(&[], Some(usage)));
        }
        out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    }
}

/// The in-stream error line (the SDK raises on a chunk with a top-level `error`).
pub(super) fn stream_error() -> Bytes {
    Bytes::from_static(
        b"data: {\"error\":{\"message\":\"The server had an error while processing your request. (mock fault)\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    )
}

/// `POST /v1/embeddings`.
pub(super) async fn embeddings(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let Some(model) = json.get("model").and_then(Value::as_str) else {
        return Err(inbound.bad_request("you must provide a model parameter"));
    };
    let items = embedding_inputs(json.get("input")).map_err(|m| inbound.bad_request(m))?;
    let dimensions = match json.get("dimensions").and_then(Value::as_u64) {
        None => embedding::DEFAULT_DIMENSIONS,
        Some(d) => match usize::try_from(d) {
            Ok(d @ 1..=embedding::MAX_DIMENSIONS) => d,
            _ => return Err(inbound.bad_request("dimensions must be between 1 and 65536")),
        },
    };
    if let Some(response) = inbound.preempt(model).await {
        return Ok(response);
    }
    let base64 = json.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let tokens: u64 = items.iter().map(EmbeddingInput::tokens).sum();
    let data: Vec<EmbeddingOut> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let vector = embedding::vector(&item.seed(), dimensions);
            EmbeddingOut {
                object: "embedding",
                index,
                embedding: if base64 {
                    Vector::Base64(embedding::to_base64(&vector))
                } else {
                    Vector::Floats(vector)
                },
            }
        })
        .collect();
    let body = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let seq = super::next_seq();
    let mut response =
        delivery::whole_json(to_json(&body), &inbound.directive, inbound.reset.take());
    set_request_id(&mut response, seq);
    Ok(response)
}

/// One item of the embeddings `input`.
enum EmbeddingInput<'a> {
    Text(&'a str),
    Tokens(Vec<u64>),
}

impl EmbeddingInput<'_> {
    fn tokens(&self) -> u64 {
        match self {
            EmbeddingInput::Text(text) => count_words(text),
            EmbeddingInput::Tokens(ids) => ids.len() as u64,
        }
    }

    /// The bytes hashed into the vector.
    fn seed(&self) -> Vec<u8> {
        match self {
            EmbeddingInput::Text(text) => text.as_bytes().to_vec(),
            EmbeddingInput::Tokens(ids) => ids.iter().flat_map(|id| id.to_le_bytes()).collect(),
        }
    }
}

/// `input`: a string, strings, token ids, or lists of token ids; nothing empty.
fn embedding_inputs(input: Option<&Value>) -> Result<Vec<EmbeddingInput<'_>>, String> {
    const EMPTY: &str = "'$.input' is invalid: input must not be empty";
    fn token_ids(items: &[Value]) -> Result<Vec<u64>, String> {
        if items.is_empty() {
            return Err(EMPTY.to_owned());
        }
        items
            .iter()
            .map(|id| {
                id.as_u64().ok_or_else(|| {
                    "'$.input' is invalid: token ids must be non-negative integers".to_owned()
                })
            })
            .collect()
    }
    match input {
        Some(Value::String(text)) if text.is_empty() => Err(EMPTY.to_owned()),
        Some(Value::String(text)) => Ok(vec![EmbeddingInput::Text(text)]),
        Some(Value::Array(items)) => match items.first() {
            None => Err(EMPTY.to_owned()),
            Some(Value::Number(_)) => Ok(vec![EmbeddingInput::Tokens(token_ids(items)?)]),
            Some(Value::Array(_)) => items
                .iter()
                .map(|item| match item {
                    Value::Array(ids) => Ok(EmbeddingInput::Tokens(token_ids(ids)?)),
                    _ => Err("'$.input' is invalid: mixed item types".to_owned()),
                })
                .collect(),
            Some(_) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) if !text.is_empty() => Ok(EmbeddingInput::Text(text)),
                    Value::String(_) => Err(EMPTY.to_owned()),
                    _ => Err("'$.input' is invalid: mixed item types".to_owned()),
                })
                .collect(),
        },
        _ => Err("'input' is a required property".to_owned()),
    }
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Model ids `GET /v1/models` lists; any model name is accepted all the same.
const MODELS: [&str; 4] = ["mock-gpt", "mock-claude", "mock-gemini", "mock-embedding"];

/// `GET /v1/models`: the OpenAI list, or Anthropic's when `anthropic-version` is sent.
pub(super) async fn models(req: Request) -> Result<Response, Refusal> {
    let anthropic = req.headers().contains_key("anthropic-version");
    let dialect = if anthropic {
        Dialect::Anthropic
    } else {
        DIALECT
    };
    let mut inbound = Inbound::read(req, dialect).await?;
    if let Some(response) = inbound.preempt("").await {
        return Ok(response);
    }
    let body = if anthropic {
        serde_json::json!({
            "data": MODELS.iter().map(|id| serde_json::json!({
                "type": "model", "id": id, "display_name": id,
                "created_at": "2025-01-01T00:00:00Z"
            })).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": MODELS.first(),
            "last_id": MODELS.last(),
        })
    } else {
        serde_json::json!({
            "object": "list",
            "data": MODELS.iter().map(|id| serde_json::json!({
                "id": id, "object": "model", "created": 1_735_689_600, "owned_by": "weir-mock"
            })).collect::<Vec<_>>(),
        })
    };
    Ok(delivery::whole_json(
        to_json(&body),
        &inbound.directive,
        inbound.reset.take(),
    ))
}

/// Any other path: 404 in the OpenAI envelope, after reading the body.
pub(super) async fn not_found(req: Request) -> Response {
    unmatched(req, StatusCode::NOT_FOUND).await
}

/// A known path with another method: 405 in the OpenAI envelope, after reading the body.
pub(super) async fn method_not_allowed(req: Request) -> Response {
    unmatched(req, StatusCode::METHOD_NOT_ALLOWED).await
}

async fn unmatched(req: Request, status: StatusCode) -> Response {
    let (parts, body) = req.into_parts();
    // Drain the body so the keep-alive connection stays usable.
    let _ = to_bytes(body, BODY_LIMIT).await;
    let message = format!("Invalid URL ({} {})", parts.method, parts.uri.path());
    DIALECT.error(status, &message)
}
