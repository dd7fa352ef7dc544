//! The canonical request, response, usage and stream events: every client format decodes into
//! these and every upstream format is encoded from and decoded into them, so that after
//! decoding nothing in the request path depends on which format the client spoke.

use serde_json::{Map, Value};

/// The wire formats Weir speaks, as a client surface or towards an upstream: one closed enum,
/// the same one a channel's kind is stored as.
pub use weir_core::catalog::Wire;

/// What the request asks for: a chat completion or embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageSource {
    /// A remote URL (http or https).
    Url(String),
    /// Inline bytes, already base64 (without any `data:` prefix).
    Base64 { media_type: String, data: String },
}

/// One piece of message content.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Image {
        source: ImageSource,
        detail: Option<String>,
    },
    /// Reasoning text from a model (Anthropic `thinking`), with the signature needed to send it
    /// back.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// Content only the client's own format can express (e.g. OpenAI `input_audio`, `file`):
    /// kept verbatim for upstreams of that format, refused for others.
    Opaque {
        format: Wire,
        value: Value,
    },
}

/// A call the assistant made to a tool. `arguments` is JSON text, as OpenAI sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
    pub name: Option<String>,
    /// Assistant messages: the tool calls it made.
    pub tool_calls: Vec<ToolCall>,
    /// Tool messages: the call this answers.
    pub tool_call_id: Option<String>,
    /// Tool messages: the tool reported an error (Anthropic `is_error`).
    pub is_error: bool,
    /// Assistant messages: a refusal text.
    pub refusal: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: Vec<Part>) -> Message {
        Message {
            role,
            content,
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
            refusal: None,
        }
    }

    /// All text parts joined, for token estimates and formats that take plain text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.content {
            if let Part::Text(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments; `None` means no arguments.
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    None,
    Auto,
    /// Must call some tool.
    Required,
    /// Must call this tool.
    Function(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningEffort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::None => "none",
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
            ReasoningEffort::XHigh => "xhigh",
            ReasoningEffort::Max => "max",
        }
    }

    /// The inverse of [`ReasoningEffort::as_str`] (OpenAI's names).
    pub fn parse(s: &str) -> Option<ReasoningEffort> {
        Some(match s {
            "none" => ReasoningEffort::None,
            "minimal" => ReasoningEffort::Minimal,
            "low" => ReasoningEffort::Low,
            "medium" => ReasoningEffort::Medium,
            "high" => ReasoningEffort::High,
            "xhigh" => ReasoningEffort::XHigh,
            "max" => ReasoningEffort::Max,
            _ => return None,
        })
    }

    /// A thinking budget in tokens for formats that take one (translation.md §2).
    pub fn budget_tokens(self) -> Option<u32> {
        match self {
            ReasoningEffort::None => None,
            ReasoningEffort::Minimal => Some(1024),
            ReasoningEffort::Low => Some(2048),
            ReasoningEffort::Medium => Some(8192),
            ReasoningEffort::High => Some(24576),
            ReasoningEffort::XHigh | ReasoningEffort::Max => Some(32768),
        }
    }
}

/// Fields the client sent that Weir does not model, in the client's own format. Encoders
/// include them only for upstreams of that same format ("pass through untouched").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Passthrough {
    pub format: Option<Wire>,
    pub fields: Map<String, Value>,
}

/// A chat request in Weir's own terms.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalRequest {
    /// The model name as the client sent it (resolved against the catalog later).
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop: Vec<String>,
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub logit_bias: Option<Map<String, Value>>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub user: Option<String>,
    pub stream: bool,
    /// The client asked for a usage report at the end of the stream.
    pub include_usage: bool,
    pub passthrough: Passthrough,
    /// Routing hints (`weir`, `provider`, `models`), taken out of the body.
    pub route: Option<Box<crate::routing::Hints>>,
}

impl CanonicalRequest {
    pub fn new(model: String, messages: Vec<Message>) -> CanonicalRequest {
        CanonicalRequest {
            model,
            messages,
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            max_output_tokens: None,
            temperature: None,
            top_p: None,
            top_k: None,
            stop: Vec::new(),
            n: None,
            presence_penalty: None,
            frequency_penalty: None,
            seed: None,
            logit_bias: None,
            logprobs: None,
            top_logprobs: None,
            reasoning_effort: None,
            user: None,
            stream: false,
            include_usage: false,
            passthrough: Passthrough::default(),
            route: None,
        }
    }
}

/// Input of an embeddings request.
#[derive(Clone, Debug, PartialEq)]
pub enum EmbeddingInput {
    Texts(Vec<String>),
    Tokens(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Texts(t) => t.len(),
            EmbeddingInput::Tokens(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// The client wants base64 (little-endian f32) rather than float arrays.
    pub base64: bool,
    pub dimensions: Option<u32>,
    pub user: Option<String>,
    pub passthrough: Passthrough,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingResponse {
    pub model: String,
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    pub usage: Usage,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn openai(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Token counts of one request, in OpenAI's inclusive convention: `input` includes cached and
/// cache-write tokens, `output` includes reasoning tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl Usage {
    /// The largest count an upstream may report before Weir treats the report as corrupt.
    pub const SANE_MAX: u64 = 100_000_000;

    /// Clamps absurd or inconsistent counts so that a bad upstream report cannot distort a bill.
    pub fn sanitized(self) -> Usage {
        let input = self.input.min(Self::SANE_MAX);
        let output = self.output.min(Self::SANE_MAX);
        let cached_input = self.cached_input.min(input);
        let cache_write = self.cache_write.min(input - cached_input);
        Usage {
            input,
            cached_input,
            cache_write,
            output,
            reasoning: self.reasoning.min(output),
        }
    }

    pub fn total(&self) -> u64 {
        self.input + self.output
    }
}

/// One generated choice of a non-streamed response.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub text: Option<String>,
    pub reasoning: Option<String>,
    /// The signature of `reasoning` when it came as one signed block (Anthropic `thinking`),
    /// so a client of another format can send it back and the upstream accepts it.
    pub reasoning_signature: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub refusal: Option<String>,
    pub finish_reason: Option<FinishReason>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalResponse {
    pub id: String,
    /// The model the upstream reports having used.
    pub model: String,
    pub created: i64,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
}

/// Classes of error an upstream can report in the middle of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamErrorKind {
    Overloaded,
    RateLimited,
    InvalidRequest,
    Server,
}

/// What an upstream stream says, in order. A closed set: every format decodes into these and
/// every client format is rendered from them.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The response began. Ids and model as the upstream reports them.
    Start {
        id: String,
        model: String,
    },
    TextDelta(String),
    ReasoningDelta(String),
    /// A signature that closes a reasoning block (Anthropic `signature_delta`).
    ReasoningSignature(String),
    /// A tool call begins; `index` counts tool calls from 0 within the response.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    ToolArgsDelta {
        index: u32,
        fragment: String,
    },
    ToolCallEnd {
        index: u32,
    },
    Finish(FinishReason),
    /// Usage so far; the last one seen is the final report (never summed).
    Usage(Usage),
    Error {
        kind: StreamErrorKind,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_clamped() {
        let u = Usage {
            input: 10,
            cached_input: 50,
            cache_write: 5,
            output: u64::MAX,
            reasoning: u64::MAX,
        }
        .sanitized();
        assert_eq!(u.cached_input, 10);
        assert_eq!(u.cache_write, 0);
        assert_eq!(u.output, Usage::SANE_MAX);
        assert_eq!(u.reasoning, Usage::SANE_MAX);
    }
}
