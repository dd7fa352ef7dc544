//! The Gemini wire format under `/v1beta/models/{model}:{method}`: `generateContent`,
//! `streamGenerateContent` (SSE, CRLF line ends, no `[DONE]`), `countTokens`, `embedContent`
//! and `batchEmbedContents`; plus `GET /v1beta/models`.

use std::collections::VecDeque;

use axum::{
    body::Bytes,
    extract::{Path, Request},
    http::StatusCode,
    response::Response,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    delivery::{self, data_frame, Pieces, Render, StreamPlan},
    dialect::{Dialect, Refusal},
    embedding,
    generation::{self, count_words, Finish, LastTurn, Output, Prompt, ToolChoice, ToolDef},
    inbound::Inbound,
};

const DIALECT: Dialect = Dialect::Gemini;
const SSE_END: &[u8] = b"\r\n\r\n";

/// `POST /v1beta/models/{model}:{method}`; the path tail holds both, split at the last `:`.
pub(super) async fn model_action(
    Path(tail): Path<String>,
    req: Request,
) -> Result<Response, Refusal> {
    let Some((model, method)) = tail.rsplit_once(':') else {
        return unknown_method(req, &tail).await;
    };
    match method {
        "generateContent" => generate(req, model, false).await,
        "streamGenerateContent" => generate(req, model, true).await,
        "countTokens" => count_tokens(req, model).await,
        "embedContent" => embed(req, model, false).await,
        "batchEmbedContents" => embed(req, model, true).await,
        _ => unknown_method(req, &tail).await,
    }
}

async fn unknown_method(req: Request, tail: &str) -> Result<Response, Refusal> {
    Inbound::read(req, DIALECT).await?;
    Err(DIALECT.refuse(
        StatusCode::NOT_FOUND,
        format!("models/{tail} is not found or not supported"),
    ))
}

/// `generateContent` and `streamGenerateContent`.
async fn generate(req: Request, model: &str, stream: bool) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let mut prompt = parse(&json).map_err(|m| inbound.bad_request(m))?;
    inbound.take_directives(&mut prompt.last)?;
    if let Some(response) = inbound.preempt(model).await {
        return Ok(response);
    }
    let reply = generation::reply(&prompt, inbound.directive.words);
    let response_id = format!("mock-{}", super::next_seq());
    let usage = (!inbound.directive.no_usage).then(|| UsageMetadata {
        prompt_token_count: prompt.tokens,
        candidates_token_count: reply.completion_tokens,
        total_token_count: prompt.tokens + reply.completion_tokens,
    });
    let finish = match &reply.output {
        Output::Text {
            finish: Finish::Length,
            ..
        } => "MAX_TOKENS",
        _ => "STOP",
    };
    let reset = inbound.reset.take();
    if stream {
        let (content, pieces, call) = match reply.output {
            Output::Text { text, .. } => (text, Pieces::Words, None),
            Output::Tool(call) => (
                call.arguments,
                Pieces::Fragments(1),
                Some((call.name, call.input)),
            ),
        };
        let render = EventRender {
            model: model.to_owned(),
            response_id,
            finish,
            usage,
            call,
        };
        let plan = StreamPlan {
            render: Render::Gemini(render),
            content,
            pieces,
            choices: 1,
        };
        return Ok(delivery::event_stream(plan, &inbound.directive, reset));
    }
    let part = match &reply.output {
        Output::Text { text, .. } => Part::Text { text },
        Output::Tool(call) => Part::Call {
            function_call: FunctionCall {
                name: &call.name,
                args: &call.input,
            },
        },
    };
    let body = GenerateResponse {
        candidates: [Candidate {
            content: CandidateContent {
                role: "model",
                parts: [part],
            },
            finish_reason: Some(finish),
            index: 0,
        }],
        usage_metadata: usage.as_ref(),
        model_version: model,
        response_id: &response_id,
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Ok(delivery::whole_json(body, &inbound.directive, reset))
}

/// `countTokens`: `{"totalTokens": N}`.
async fn count_tokens(req: Request, model: &str) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    // countTokens may wrap the request: `{"generateContentRequest": {...}}`.
    let request =
        field(&json, "generateContentRequest", "generate_content_request").unwrap_or(&json);
    let mut prompt = parse(request).map_err(|m| inbound.bad_request(m))?;
    inbound.take_directives(&mut prompt.last)?;
    if let Some(response) = inbound.preempt(model).await {
        return Ok(response);
    }
    let body = json!({ "totalTokens": prompt.tokens }).to_string();
    Ok(delivery::whole_json(
        body.into_bytes(),
        &inbound.directive,
        inbound.reset.take(),
    ))
}

/// `embedContent` (`{"embedding":{"values":[…]}}`) and `batchEmbedContents`.
async fn embed(req: Request, model: &str, batch: bool) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    let json = inbound.json()?;
    let requests: Vec<&Value> = if batch {
        match json.get("requests").and_then(Value::as_array) {
            Some(requests) if !requests.is_empty() => requests.iter().collect(),
            _ => {
                return Err(
                    inbound.bad_request("* BatchEmbedContentsRequest.requests: must not be empty")
                )
            }
        }
    } else {
        vec![&json]
    };
    let mut embeddings = Vec::with_capacity(requests.len());
    for request in requests {
        let text = parts_text(field(request, "content", "content").and_then(|c| c.get("parts")));
        if text.is_empty() {
            return Err(
                inbound.bad_request("* EmbedContentRequest.content: contents must not be empty")
            );
        }
        let dimensions = match field(request, "outputDimensionality", "output_dimensionality")
            .and_then(Value::as_u64)
        {
            None => embedding::DEFAULT_DIMENSIONS,
            Some(d) => match usize::try_from(d) {
                Ok(d @ 1..=embedding::MAX_DIMENSIONS) => d,
                _ => {
                    return Err(
                        inbound.bad_request("outputDimensionality must be between 1 and 65536")
                    )
                }
            },
        };
        embeddings.push(Values {
            values: embedding::vector(text.as_bytes(), dimensions),
        });
    }
    if let Some(response) = inbound.preempt(model).await {
        return Ok(response);
    }
    let body = if batch {
        serde_json::to_vec(&Batch { embeddings })
    } else {
        serde_json::to_vec(&Single {
            embedding: embeddings.pop(),
        })
    };
    Ok(delivery::whole_json(
        body.unwrap_or_default(),
        &inbound.directive,
        inbound.reset.take(),
    ))
}

#[derive(Serialize)]
struct Values {
    values: Vec<f32>,
}

#[derive(Serialize)]
struct Single {
    embedding: Option<Values>,
}

#[derive(Serialize)]
struct Batch {
    embeddings: Vec<Values>,
}

/// `GET /v1beta/models`.
pub(super) async fn list_models(req: Request) -> Result<Response, Refusal> {
    let mut inbound = Inbound::read(req, DIALECT).await?;
    if let Some(response) = inbound.preempt("").await {
        return Ok(response);
    }
    let body = json!({"models": [
        {"name": "models/mock-gemini", "displayName": "Mock Gemini", "inputTokenLimit": 1_048_576,
         "outputTokenLimit": 65_536, "supportedGenerationMethods": ["generateContent", "countTokens"]},
        {"name": "models/mock-embedding", "displayName": "Mock Embedding", "inputTokenLimit": 2048,
         "outputTokenLimit": 1, "supportedGenerationMethods": ["embedContent"]},
    ]});
    Ok(delivery::whole_json(
        body.to_string().into_bytes(),
        &inbound.directive,
        inbound.reset.take(),
    ))
}

/// A field under its camelCase name or, as the REST API also accepts, its snake_case one.
fn field<'v>(v: &'v Value, camel: &str, snake: &str) -> Option<&'v Value> {
    v.get(camel).or_else(|| v.get(snake))
}

/// A `generateContent` request reduced to the mock's prompt.
fn parse(v: &Value) -> Result<Prompt<'_>, String> {
    let contents = match v.get("contents").and_then(Value::as_array) {
        Some(contents) if !contents.is_empty() => contents,
        _ => return Err("* GenerateContentRequest.contents: contents is not specified".to_owned()),
    };
    let system = field(v, "systemInstruction", "system_instruction")
        .map_or(0, |s| parts_words(s.get("parts")));
    let tokens = system
        + contents
            .iter()
            .map(|c| parts_words(c.get("parts")).max(1))
            .sum::<u64>();
    let tools = v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| field(t, "functionDeclarations", "function_declarations"))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|f| {
            Some(ToolDef {
                name: f.get("name")?.as_str()?,
                schema: f
                    .get("parameters")
                    .or_else(|| field(f, "parametersJsonSchema", "parameters_json_schema")),
            })
        })
        .collect::<Vec<_>>();
    if let Some(t) = tools
        .iter()
        .find(|t| !super::anthropic::tool_name_ok(t.name))
    {
        return Err(format!(
            "* GenerateContentRequest.tools[0].function_declarations: Invalid function name `{}`",
            t.name
        ));
    }
    let config = field(v, "generationConfig", "generation_config");
    let max_tokens = config
        .and_then(|c| field(c, "maxOutputTokens", "max_output_tokens"))
        .and_then(Value::as_u64);
    let stop = config
        .and_then(|c| field(c, "stopSequences", "stop_sequences"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Ok(Prompt {
        tokens,
        last: last_turn(contents),
        tools,
        choice: tool_choice(v),
        max_tokens,
        stop,
    })
}

/// Words of a content's parts: text, function-call arguments and function responses.
fn parts_words(parts: Option<&Value>) -> u64 {
    parts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|part| {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                count_words(text)
            } else if let Some(call) = field(part, "functionCall", "function_call") {
                call.get("args")
                    .map_or(0, |args| count_words(&args.to_string()))
            } else if let Some(response) = field(part, "functionResponse", "function_response") {
                count_words(&response_text(response))
            } else {
                0
            }
        })
        .sum()
}

/// Text parts joined with a space.
fn parts_text(parts: Option<&Value>) -> String {
    parts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a `functionResponse`: its `result`/`output`/`content` string, else its JSON.
fn response_text(function_response: &Value) -> String {
    let response = function_response.get("response");
    match response {
        Some(Value::String(text)) => text.clone(),
        Some(response) => ["result", "output", "content"]
            .iter()
            .find_map(|key| response.get(key).and_then(Value::as_str))
            .map_or_else(|| response.to_string(), str::to_owned),
        None => String::new(),
    }
}

/// The last non-model content: its final `functionResponse` if it has one, else its text.
fn last_turn(contents: &[Value]) -> LastTurn {
    let Some(content) = contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str) != Some("model"))
    else {
        return LastTurn::User(String::new());
    };
    let parts = content.get("parts");
    let response = parts.and_then(Value::as_array).and_then(|parts| {
        parts
            .iter()
            .rev()
            .find_map(|p| field(p, "functionResponse", "function_response"))
    });
    match response {
        Some(response) => LastTurn::ToolResult(response_text(response)),
        None => LastTurn::User(parts_text(parts)),
    }
}

/// `toolConfig.functionCallingConfig`: `ANY` (with `allowedFunctionNames`) forces a call.
fn tool_choice(v: &Value) -> ToolChoice<'_> {
    let Some(config) = field(v, "toolConfig", "tool_config")
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"))
    else {
        return ToolChoice::Auto;
    };
    match config.get("mode").and_then(Value::as_str) {
        Some(mode) if mode.eq_ignore_ascii_case("any") => {
            let allowed = field(config, "allowedFunctionNames", "allowed_function_names")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            ToolChoice::Any { allowed }
        }
        Some(mode) if mode.eq_ignore_ascii_case("none") => ToolChoice::None,
        _ => ToolChoice::Auto,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    candidates: [Candidate<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<&'a UsageMetadata>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: CandidateContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct CandidateContent<'a> {
    role: &'static str,
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text {
        text: &'a str,
    },
    Call {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
    },
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: &'a Value,
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
}

/// Encodes `streamGenerateContent` events: one per word, `finishReason` and `usageMetadata`
/// on the last; a tool call is one whole `functionCall` event.
pub(super) struct EventRender {
    model: String,
    response_id: String,
    finish: &'static str,
    /// `None` under `no_usage`.
    usage: Option<UsageMetadata>,
    /// The call's name and arguments when the reply is a tool call.
    call: Option<(String, Value)>,
}

impl EventRender {
    fn event(&self, part: Part<'_>, last: bool) -> Bytes {
        let response = GenerateResponse {
            candidates: [Candidate {
                content: CandidateContent {
                    role: "model",
                    parts: [part],
                },
                finish_reason: last.then_some(self.finish),
                index: 0,
            }],
            usage_metadata: self.usage.as_ref().filter(|_| last),
            model_version: &self.model,
            response_id: &self.response_id,
        };
        data_frame(&response, SSE_END)
    }

    /// A word (or the whole tool call); the last one carries the finish and usage.
    pub(super) fn content(&self, fragment: &str, last: bool) -> Bytes {
        let part = match &self.call {
            Some((name, args)) => Part::Call {
                function_call: FunctionCall { name, args },
            },
            None => Part::Text { text: fragment },
        };
        self.event(part, last)
    }

    /// For an empty reply, the one event that carries the finish.
    pub(super) fn closing(&self, out: &mut VecDeque<Bytes>, sent_content: bool) {
        if !sent_content {
            out.push_back(self.event(Part::Text { text: "" }, true));
        }
    }
}

/// The in-stream error event.
pub(super) fn stream_error() -> Bytes {
    Bytes::from_static(
        b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later. (mock fault)\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n",
    )
}
