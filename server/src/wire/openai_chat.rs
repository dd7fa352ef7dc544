//! OpenAI Chat Completions: the client surface `POST /v1/chat/completions` and the upstream
//! format of every OpenAI-compatible host. Pure functions and small state machines, no IO.
//!
//! Requests decode into [`CanonicalRequest`] with every field OpenAI documents validated (a
//! bad one is a 400 naming the parameter); fields Weir does not model are kept in
//! [`Passthrough`] and sent untouched to OpenAI-compatible upstreams. Responses and stream
//! chunks decode into [`CanonicalResponse`] / [`StreamEvent`]s and are rendered back from them.

use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

use super::json::{
    int_value, missing, parse_object, range_error, str_field, take, take_array, take_bool,
    take_f64, take_int, take_object, take_str_field, take_string, take_u32, type_error, Obj,
};
use crate::{
    canonical::{
        CanonicalRequest, CanonicalResponse, Choice, FinishReason, ImageSource, Message, Part,
        Passthrough, ReasoningEffort, ResponseFormat, Role, StreamErrorKind, StreamEvent, Tool,
        ToolCall, ToolChoice, Usage, WireFormat,
    },
    error::GatewayError,
};

/// Largest `n` accepted.
const MAX_N: u32 = 128;
/// Most stop sequences accepted (OpenAI allows 4; other hosts more).
const MAX_STOP: usize = 16;

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Decodes a client's chat completion request.
pub fn decode_request(body: &[u8]) -> Result<CanonicalRequest, GatewayError> {
    let mut m = parse_object(body)?;
    let model = match take_string(&mut m, "model")? {
        Some(s) if !s.is_empty() => s,
        _ => return Err(missing("model")),
    };
    let raw_messages = take_array(&mut m, "messages")?.ok_or_else(|| missing("messages"))?;
    if raw_messages.is_empty() {
        return Err(range_error("messages", "must contain at least one message"));
    }
    let messages = raw_messages
        .into_iter()
        .enumerate()
        .map(|(i, v)| decode_message(v, i))
        .collect::<Result<Vec<_>, _>>()?;

    let mut req = CanonicalRequest::new(model, messages);
    req.temperature = take_f64(&mut m, "temperature", 0.0, 2.0)?;
    req.top_p = take_f64(&mut m, "top_p", 0.0, 1.0)?;
    req.n = take_u32(&mut m, "n", 1, MAX_N)?;
    req.stop = decode_stop(take(&mut m, "stop"))?;
    let max_completion = take_u32(&mut m, "max_completion_tokens", 1, u32::MAX)?;
    let max_tokens = take_u32(&mut m, "max_tokens", 1, u32::MAX)?;
    req.max_output_tokens = max_completion.or(max_tokens);
    req.presence_penalty = take_f64(&mut m, "presence_penalty", -2.0, 2.0)?;
    req.frequency_penalty = take_f64(&mut m, "frequency_penalty", -2.0, 2.0)?;
    req.logit_bias = take_object(&mut m, "logit_bias")?;
    if let Some(bias) = &req.logit_bias {
        for (k, v) in bias {
            int_value(v, format!("logit_bias.{k}"), -100, 100)?;
        }
    }
    req.logprobs = take_bool(&mut m, "logprobs")?;
    req.top_logprobs = take_u32(&mut m, "top_logprobs", 0, 20)?;
    req.seed = take_int(&mut m, "seed", i64::MIN, i64::MAX)?;
    req.user = take_string(&mut m, "user")?;
    if let Some(tools) = take_array(&mut m, "tools")? {
        req.tools = tools
            .into_iter()
            .enumerate()
            .map(|(i, t)| decode_tool(t, i))
            .collect::<Result<_, _>>()?;
    }
    req.tool_choice = take(&mut m, "tool_choice")
        .map(decode_tool_choice)
        .transpose()?;
    req.parallel_tool_calls = take_bool(&mut m, "parallel_tool_calls")?;
    req.response_format = take(&mut m, "response_format")
        .map(decode_response_format)
        .transpose()?;
    req.reasoning_effort = take_string(&mut m, "reasoning_effort")?
        .map(|s| decode_effort(&s))
        .transpose()?;
    req.stream = take_bool(&mut m, "stream")?.unwrap_or(false);
    if let Some(opts) = m.get("stream_options").filter(|v| !v.is_null()) {
        let Value::Object(o) = opts else {
            return Err(type_error("stream_options", "an object"));
        };
        if !req.stream {
            return Err(GatewayError::invalid_param(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ));
        }
        req.include_usage = match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(type_error("stream_options.include_usage", "a boolean")),
        };
    }
    // What remains (including `stream_options`, `metadata`, `store`, `service_tier`, …) is
    // passed untouched to OpenAI-compatible upstreams.
    req.passthrough = Passthrough {
        format: Some(WireFormat::OpenAiChat),
        fields: m,
    };
    Ok(req)
}

fn decode_stop(v: Option<Value>) -> Result<Vec<String>, GatewayError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(a)) => {
            if a.len() > MAX_STOP {
                return Err(range_error(
                    "stop",
                    &format!("at most {MAX_STOP} sequences"),
                ));
            }
            a.into_iter()
                .map(|s| match s {
                    Value::String(s) => Ok(s),
                    _ => Err(type_error("stop", "a string or an array of strings")),
                })
                .collect()
        }
        Some(_) => Err(type_error("stop", "a string or an array of strings")),
    }
}

fn decode_effort(s: &str) -> Result<ReasoningEffort, GatewayError> {
    Ok(match s {
        "none" => ReasoningEffort::None,
        "minimal" => ReasoningEffort::Minimal,
        "low" => ReasoningEffort::Low,
        "medium" => ReasoningEffort::Medium,
        "high" => ReasoningEffort::High,
        "xhigh" => ReasoningEffort::XHigh,
        "max" => ReasoningEffort::Max,
        _ => {
            return Err(range_error(
                "reasoning_effort",
                "must be one of none, minimal, low, medium, high, xhigh, max",
            ))
        }
    })
}

fn decode_message(v: Value, i: usize) -> Result<Message, GatewayError> {
    let path = format!("messages[{i}]");
    let Value::Object(mut m) = v else {
        return Err(type_error(path, "an object"));
    };
    let role = match take_str_field(&mut m, "role", &path)?.as_deref() {
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some("function") => {
            return Err(GatewayError::invalid_param(
                format!("{path}.role"),
                "The legacy 'function' role is not supported; use 'tool' messages.",
            ))
        }
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(GatewayError::invalid_param(
                format!("{path}.role"),
                format!("Invalid value for '{path}.role': '{shown}' is not one of system, developer, user, assistant, tool."),
            ));
        }
        None => {
            return Err(GatewayError::invalid_param(
                format!("{path}.role"),
                format!("Missing required parameter: '{path}.role'."),
            ))
        }
    };
    let content = match m.remove("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![Part::Text(s)],
        Some(Value::Array(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(j, p)| decode_part(p, &format!("{path}.content[{j}]"), role))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(type_error(
                format!("{path}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    let mut msg = Message::new(role, content);
    msg.name = take_str_field(&mut m, "name", &path)?;
    match role {
        Role::Assistant => {
            msg.refusal = take_str_field(&mut m, "refusal", &path)?;
            if let Some(calls) = m.remove("tool_calls").filter(|v| !v.is_null()) {
                let Value::Array(calls) = calls else {
                    return Err(type_error(format!("{path}.tool_calls"), "an array"));
                };
                msg.tool_calls = calls
                    .into_iter()
                    .enumerate()
                    .map(|(j, c)| decode_tool_call(c, &format!("{path}.tool_calls[{j}]")))
                    .collect::<Result<_, _>>()?;
            }
            if msg.content.is_empty() && msg.tool_calls.is_empty() && msg.refusal.is_none() {
                // An empty assistant turn is legal in OpenAI; keep it as empty text.
                msg.content.push(Part::Text(String::new()));
            }
        }
        Role::Tool => {
            msg.tool_call_id = Some(take_str_field(&mut m, "tool_call_id", &path)?.ok_or_else(
                || {
                    GatewayError::invalid_param(
                        format!("{path}.tool_call_id"),
                        format!("Missing required parameter: '{path}.tool_call_id'."),
                    )
                },
            )?);
        }
        Role::System | Role::Developer | Role::User => {
            if msg.content.is_empty() {
                return Err(GatewayError::invalid_param(
                    format!("{path}.content"),
                    format!("Missing required parameter: '{path}.content'."),
                ));
            }
        }
    }
    Ok(msg)
}

fn decode_part(v: Value, path: &str, role: Role) -> Result<Part, GatewayError> {
    let Value::Object(mut p) = v else {
        return Err(type_error(path.to_owned(), "an object"));
    };
    let ty = str_field(&p, "type", path)?.unwrap_or("").to_owned();
    match ty.as_str() {
        "text" => match p.remove("text") {
            Some(Value::String(t)) => Ok(Part::Text(t)),
            _ => Err(type_error(format!("{path}.text"), "a string")),
        },
        "refusal" if role == Role::Assistant => match p.remove("refusal") {
            Some(Value::String(t)) => Ok(Part::Text(t)),
            _ => Err(type_error(format!("{path}.refusal"), "a string")),
        },
        "image_url" if role == Role::User => {
            let Some(Value::Object(mut img)) = p.remove("image_url") else {
                return Err(type_error(format!("{path}.image_url"), "an object"));
            };
            let url = take_str_field(&mut img, "url", &format!("{path}.image_url"))?
                .ok_or_else(|| type_error(format!("{path}.image_url.url"), "a string"))?;
            let detail = take_str_field(&mut img, "detail", &format!("{path}.image_url"))?;
            Ok(Part::Image {
                source: parse_image_url(url),
                detail,
            })
        }
        "input_audio" | "file" if role == Role::User => {
            p.insert("type".into(), Value::String(ty));
            Ok(Part::Opaque {
                format: WireFormat::OpenAiChat,
                value: Value::Object(p),
            })
        }
        _ => Err(GatewayError::invalid_param(
            format!("{path}.type"),
            format!(
                "Invalid value for '{path}.type': '{}' is not a content part type allowed in a {} message.",
                ty.chars().take(40).collect::<String>(),
                role.as_str()
            ),
        )),
    }
}

/// Splits a `data:` URL into media type and base64 data; anything else is a remote URL.
pub fn parse_image_url(url: String) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            if let Some(media_type) = meta.strip_suffix(";base64") {
                return ImageSource::Base64 {
                    media_type: media_type.to_owned(),
                    data: data.to_owned(),
                };
            }
        }
    }
    ImageSource::Url(url)
}

fn decode_tool_call(v: Value, path: &str) -> Result<ToolCall, GatewayError> {
    let Value::Object(mut c) = v else {
        return Err(type_error(path.to_owned(), "an object"));
    };
    let id = take_str_field(&mut c, "id", path)?
        .ok_or_else(|| type_error(format!("{path}.id"), "a string"))?;
    let Some(Value::Object(mut f)) = c.remove("function") else {
        return Err(type_error(format!("{path}.function"), "an object"));
    };
    let fpath = format!("{path}.function");
    let name = take_str_field(&mut f, "name", &fpath)?
        .ok_or_else(|| type_error(format!("{fpath}.name"), "a string"))?;
    let arguments = take_str_field(&mut f, "arguments", &fpath)?.unwrap_or_default();
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b':')
}

fn decode_tool(v: Value, i: usize) -> Result<Tool, GatewayError> {
    let path = format!("tools[{i}]");
    let Value::Object(mut t) = v else {
        return Err(type_error(path, "an object"));
    };
    match str_field(&t, "type", &path)? {
        Some("function") => {}
        _ => {
            return Err(GatewayError::invalid_param(
                format!("{path}.type"),
                format!("Invalid value for '{path}.type': only 'function' tools are supported."),
            ))
        }
    }
    let Some(Value::Object(mut f)) = t.remove("function") else {
        return Err(type_error(format!("{path}.function"), "an object"));
    };
    let fpath = format!("{path}.function");
    let name = take_str_field(&mut f, "name", &fpath)?.unwrap_or_default();
    if !valid_tool_name(&name) {
        return Err(GatewayError::invalid_param(
            format!("{fpath}.name"),
            format!("Invalid '{fpath}.name': must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes."),
        ));
    }
    let description = take_str_field(&mut f, "description", &fpath)?;
    let parameters = match f.remove("parameters") {
        None | Some(Value::Null) => None,
        Some(p @ Value::Object(_)) => Some(p),
        Some(_) => return Err(type_error(format!("{fpath}.parameters"), "an object")),
    };
    let strict = match f.remove("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(type_error(format!("{fpath}.strict"), "a boolean")),
    };
    Ok(Tool {
        name,
        description,
        parameters,
        strict,
    })
}

fn decode_tool_choice(v: Value) -> Result<ToolChoice, GatewayError> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            _ => Err(range_error(
                "tool_choice",
                "must be 'none', 'auto', 'required' or a function object",
            )),
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(n)) => Ok(ToolChoice::Function(n.to_owned())),
                _ => Err(range_error(
                    "tool_choice",
                    "an object must be {\"type\":\"function\",\"function\":{\"name\":…}}",
                )),
            }
        }
        _ => Err(type_error("tool_choice", "a string or an object")),
    }
}

fn decode_response_format(v: Value) -> Result<ResponseFormat, GatewayError> {
    let Value::Object(mut o) = v else {
        return Err(type_error("response_format", "an object"));
    };
    match str_field(&o, "type", "response_format")? {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let Some(Value::Object(mut js)) = o.remove("json_schema") else {
                return Err(missing("response_format.json_schema"));
            };
            let p = "response_format.json_schema";
            let name = take_str_field(&mut js, "name", p)?.ok_or_else(|| {
                GatewayError::invalid_param(
                    "response_format.json_schema.name",
                    "Missing required parameter: 'response_format.json_schema.name'.",
                )
            })?;
            let description = take_str_field(&mut js, "description", p)?;
            let schema = match js.remove("schema") {
                None | Some(Value::Null) => json!({}),
                Some(s @ Value::Object(_)) => s,
                Some(_) => {
                    return Err(type_error(
                        "response_format.json_schema.schema",
                        "an object",
                    ))
                }
            };
            let strict = match js.remove("strict") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(b),
                Some(_) => {
                    return Err(type_error(
                        "response_format.json_schema.strict",
                        "a boolean",
                    ))
                }
            };
            Ok(ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            })
        }
        _ => Err(range_error(
            "response_format.type",
            "must be 'text', 'json_object' or 'json_schema'",
        )),
    }
}

/// Encodes a request for an OpenAI-compatible upstream. Streams always ask for usage, so that
/// Weir can bill from the upstream's own count.
pub fn encode_request(req: &CanonicalRequest, upstream_model: &str) -> Value {
    let mut m = Obj::new();
    if req.passthrough.format == Some(WireFormat::OpenAiChat) {
        m = req.passthrough.fields.clone();
    } else {
        m.remove("stream_options");
    }
    m.insert("model".into(), upstream_model.into());
    m.insert(
        "messages".into(),
        Value::Array(req.messages.iter().map(encode_message).collect()),
    );
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("temperature", req.temperature.map(Value::from));
    put("top_p", req.top_p.map(Value::from));
    put("n", req.n.map(Value::from));
    put(
        "stop",
        (!req.stop.is_empty()).then(|| Value::from(req.stop.clone())),
    );
    put(
        "max_completion_tokens",
        req.max_output_tokens.map(Value::from),
    );
    put("presence_penalty", req.presence_penalty.map(Value::from));
    put("frequency_penalty", req.frequency_penalty.map(Value::from));
    put("logit_bias", req.logit_bias.clone().map(Value::Object));
    put("logprobs", req.logprobs.map(Value::from));
    put("top_logprobs", req.top_logprobs.map(Value::from));
    put("seed", req.seed.map(Value::from));
    put("user", req.user.clone().map(Value::from));
    put(
        "tools",
        (!req.tools.is_empty()).then(|| Value::Array(req.tools.iter().map(encode_tool).collect())),
    );
    put(
        "tool_choice",
        req.tool_choice.as_ref().map(encode_tool_choice),
    );
    put(
        "parallel_tool_calls",
        req.parallel_tool_calls.map(Value::from),
    );
    put(
        "response_format",
        req.response_format.as_ref().map(encode_response_format),
    );
    put(
        "reasoning_effort",
        req.reasoning_effort.map(|e| Value::from(e.as_str())),
    );
    if req.stream {
        m.insert("stream".into(), Value::Bool(true));
        let opts = m
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Obj::new()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        } else {
            *opts = json!({"include_usage": true});
        }
    } else {
        m.remove("stream_options");
        m.remove("stream");
    }
    Value::Object(m)
}

fn encode_part(p: &Part) -> Option<Value> {
    match p {
        Part::Text(t) => Some(json!({"type": "text", "text": t})),
        Part::Image { source, detail } => {
            let url = match source {
                ImageSource::Url(u) => u.clone(),
                ImageSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
            };
            let mut img = json!({"url": url});
            if let (Some(d), Value::Object(o)) = (detail, &mut img) {
                o.insert("detail".into(), d.clone().into());
            }
            Some(json!({"type": "image_url", "image_url": img}))
        }
        Part::Opaque {
            format: WireFormat::OpenAiChat,
            value,
        } => Some(value.clone()),
        // OpenAI has no place for reasoning blocks or other formats' opaque parts.
        Part::Thinking { .. } | Part::Opaque { .. } => None,
    }
}

/// Content as OpenAI likes it: a plain string when it is only text.
fn encode_content(parts: &[Part]) -> Value {
    if parts
        .iter()
        .all(|p| matches!(p, Part::Text(_) | Part::Thinking { .. }))
    {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        if texts.len() <= 1 {
            return Value::from(texts.first().copied().unwrap_or(""));
        }
    }
    Value::Array(parts.iter().filter_map(encode_part).collect())
}

fn encode_message(msg: &Message) -> Value {
    let mut m = Obj::new();
    m.insert("role".into(), msg.role.as_str().into());
    let has_content = msg
        .content
        .iter()
        .any(|p| !matches!(p, Part::Thinking { .. }));
    if msg.role == Role::Assistant && !has_content {
        m.insert("content".into(), Value::Null);
    } else {
        m.insert("content".into(), encode_content(&msg.content));
    }
    if let Some(n) = &msg.name {
        m.insert("name".into(), n.clone().into());
    }
    if !msg.tool_calls.is_empty() {
        m.insert(
            "tool_calls".into(),
            msg.tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect(),
        );
    }
    if let Some(r) = &msg.refusal {
        m.insert("refusal".into(), r.clone().into());
    }
    if let Some(id) = &msg.tool_call_id {
        m.insert("tool_call_id".into(), id.clone().into());
    }
    Value::Object(m)
}

fn encode_tool(t: &Tool) -> Value {
    let mut f = Obj::new();
    f.insert("name".into(), t.name.clone().into());
    if let Some(d) = &t.description {
        f.insert("description".into(), d.clone().into());
    }
    if let Some(p) = &t.parameters {
        f.insert("parameters".into(), p.clone());
    }
    if let Some(s) = t.strict {
        f.insert("strict".into(), s.into());
    }
    json!({"type": "function", "function": f})
}

fn encode_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::None => "none".into(),
        ToolChoice::Auto => "auto".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Function(n) => json!({"type": "function", "function": {"name": n}}),
    }
}

fn encode_response_format(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => {
            let mut js = json!({"name": name, "schema": schema});
            if let Value::Object(o) = &mut js {
                if let Some(d) = description {
                    o.insert("description".into(), d.clone().into());
                }
                if let Some(s) = strict {
                    o.insert("strict".into(), (*s).into());
                }
            }
            json!({"type": "json_schema", "json_schema": js})
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Reads OpenAI usage (inclusive counts) from a `usage` object.
pub fn decode_usage(u: &Value) -> Option<Usage> {
    let o = u.as_object()?;
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let pd = o.get("prompt_tokens_details");
    let cd = o.get("completion_tokens_details");
    Some(Usage {
        input: n(o.get("prompt_tokens")),
        cached_input: n(pd.and_then(|d| d.get("cached_tokens"))),
        cache_write: n(pd.and_then(|d| d.get("cache_write_tokens"))),
        output: n(o.get("completion_tokens")),
        reasoning: n(cd.and_then(|d| d.get("reasoning_tokens"))),
    })
}

/// The `usage` of a non-streamed chat completion that is relayed as it is: the body is
/// checked to be JSON and only `usage` is read, without building the whole document
/// (`None` when there is no usage object). Same leniency as [`decode_usage`]: a count that
/// is not a non-negative integer reads as 0.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    serde_json::from_slice::<lenient::Envelope>(body).map(|e| e.0)
}

mod lenient {
    //! Visitors that read `usage` from a chat completion and skip everything else.

    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

    use crate::canonical::Usage;

    macro_rules! ignore_scalars {
        ($out:expr) => {
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok($out)
            }
        };
    }

    /// The top level: `usage` if it is an object; anything else is accepted and ignored.
    pub struct Envelope(pub Option<Usage>);

    impl<'de> de::Deserialize<'de> for Envelope {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Envelope;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Envelope, A::Error> {
                    let mut usage = None;
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        if k == "usage" {
                            // The last one counts, as when the document is parsed whole.
                            usage = m.next_value::<UsageObj>()?.0;
                        } else {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(Envelope(usage))
                }
                fn visit_u64<E>(self, _: u64) -> Result<Envelope, E> {
                    Ok(Envelope(None))
                }
                ignore_scalars!(Envelope(None));
            }
            d.deserialize_any(V)
        }
    }

    /// `usage`: the counts when it is an object, `None` otherwise.
    struct UsageObj(Option<Usage>);

    /// `*_tokens_details`: (cached or reasoning, cache write).
    #[derive(Default)]
    struct Details {
        cached: u64,
        cache_write: u64,
        reasoning: u64,
    }

    /// A count: a non-negative integer, anything else reads as 0.
    struct Count(u64);

    impl<'de> de::Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Count;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a count")
                }
                fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                    Ok(Count(v))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Count, A::Error> {
                    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Count(0))
                }
                ignore_scalars!(Count(0));
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> de::Deserialize<'de> for Details {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Details;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("token details")
                }
                fn visit_u64<E>(self, _: u64) -> Result<Details, E> {
                    Ok(Details::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Details, A::Error> {
                    let mut d = Details::default();
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        match &*k {
                            "cached_tokens" => d.cached = m.next_value::<Count>()?.0,
                            "cache_write_tokens" => d.cache_write = m.next_value::<Count>()?.0,
                            "reasoning_tokens" => d.reasoning = m.next_value::<Count>()?.0,
                            _ => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(d)
                }
                ignore_scalars!(Details::default());
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> de::Deserialize<'de> for UsageObj {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = UsageObj;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("usage")
                }
                fn visit_u64<E>(self, _: u64) -> Result<UsageObj, E> {
                    Ok(UsageObj(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<UsageObj, A::Error> {
                    let mut u = Usage::default();
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        match &*k {
                            "prompt_tokens" => u.input = m.next_value::<Count>()?.0,
                            "completion_tokens" => u.output = m.next_value::<Count>()?.0,
                            "prompt_tokens_details" => {
                                let d = m.next_value::<Details>()?;
                                u.cached_input = d.cached;
                                u.cache_write = d.cache_write;
                            }
                            "completion_tokens_details" => {
                                u.reasoning = m.next_value::<Details>()?.reasoning;
                            }
                            _ => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(UsageObj(Some(u)))
                }
                ignore_scalars!(UsageObj(None));
            }
            d.deserialize_any(V)
        }
    }
}

fn decode_finish(s: Option<&str>) -> Option<FinishReason> {
    match s? {
        "stop" => Some(FinishReason::Stop),
        "length" => Some(FinishReason::Length),
        "tool_calls" | "function_call" => Some(FinishReason::ToolCalls),
        "content_filter" => Some(FinishReason::ContentFilter),
        _ => Some(FinishReason::Stop),
    }
}

/// Decodes an upstream's non-streamed chat completion.
pub fn decode_response(body: &[u8]) -> Result<CanonicalResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        GatewayError::new(
            crate::error::ErrorKind::BadGateway,
            "The upstream returned invalid JSON.",
        )
    })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .enumerate()
                .map(|(i, c)| {
                    let msg = c.get("message");
                    let get = |k: &str| {
                        msg.and_then(|m| m.get(k))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    let tool_calls = msg
                        .and_then(|m| m.get("tool_calls"))
                        .and_then(Value::as_array)
                        .map(|calls| {
                            calls
                                .iter()
                                .map(|tc| ToolCall {
                                    id: tc
                                        .get("id")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                    name: tc
                                        .pointer("/function/name")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                    arguments: tc
                                        .pointer("/function/arguments")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Choice {
                        index: c
                            .get("index")
                            .and_then(Value::as_u64)
                            .and_then(|x| u32::try_from(x).ok())
                            .unwrap_or(i as u32),
                        text: get("content"),
                        reasoning: get("reasoning_content").or_else(|| get("reasoning")),
                        tool_calls,
                        refusal: get("refusal"),
                        finish_reason: decode_finish(
                            c.get("finish_reason").and_then(Value::as_str),
                        ),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CanonicalResponse {
        id: s("id"),
        model: s("model"),
        created: v
            .get("created")
            .and_then(Value::as_i64)
            .unwrap_or_else(unix_now),
        choices,
        usage: v.get("usage").and_then(decode_usage),
    })
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The OpenAI `usage` object for a usage report.
pub fn encode_usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_input, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

fn encode_tool_calls(calls: &[ToolCall]) -> Value {
    calls
        .iter()
        .map(|c| {
            json!({"id": c.id, "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments}})
        })
        .collect()
}

/// Renders a canonical response as an OpenAI chat completion.
pub fn encode_response(r: &CanonicalResponse) -> Value {
    let choices: Vec<Value> = r
        .choices
        .iter()
        .map(|c| {
            let mut msg = json!({
                "role": "assistant",
                "content": c.text,
                "refusal": c.refusal,
                "annotations": [],
            });
            if let Value::Object(o) = &mut msg {
                if !c.tool_calls.is_empty() {
                    o.insert("tool_calls".into(), encode_tool_calls(&c.tool_calls));
                }
                if let Some(r) = &c.reasoning {
                    o.insert("reasoning_content".into(), r.clone().into());
                }
            }
            json!({
                "index": c.index,
                "message": msg,
                "logprobs": null,
                "finish_reason": c.finish_reason.unwrap_or(FinishReason::Stop).openai(),
            })
        })
        .collect();
    json!({
        "id": r.id,
        "object": "chat.completion",
        "created": r.created,
        "model": r.model,
        "choices": choices,
        "usage": r.usage.as_ref().map(encode_usage),
        "system_fingerprint": null,
    })
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// What one upstream SSE `data:` payload was.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// An ordinary chunk (content, tool calls, finish).
    Content,
    /// The trailing `choices: []` chunk that only carries usage.
    UsageOnly,
    /// `[DONE]`.
    Done,
    /// A top-level `error` object.
    Error,
}

/// Turns an OpenAI-compatible upstream's stream chunks into [`StreamEvent`]s.
#[derive(Default)]
pub struct ChunkDecoder {
    started: bool,
    /// Tool call indexes that have started and not yet ended.
    open_tools: Vec<u32>,
}

impl ChunkDecoder {
    /// Decodes one `data:` payload, appending events to `out`.
    pub fn decode(
        &mut self,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkKind, GatewayError> {
        if data.trim() == "[DONE]" {
            self.close_tools(out);
            return Ok(ChunkKind::Done);
        }
        let v: Value = serde_json::from_str(data).map_err(|_| {
            GatewayError::new(
                crate::error::ErrorKind::BadGateway,
                "The upstream sent a malformed stream chunk.",
            )
        })?;
        if let Some(err) = v.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error")
                .to_owned();
            let kind = match err.get("type").and_then(Value::as_str) {
                Some(t) if t.contains("rate_limit") => StreamErrorKind::RateLimited,
                Some(t) if t.contains("overloaded") => StreamErrorKind::Overloaded,
                Some("invalid_request_error") => StreamErrorKind::InvalidRequest,
                _ => StreamErrorKind::Server,
            };
            out.push(StreamEvent::Error { kind, message });
            return Ok(ChunkKind::Error);
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                model: v
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        let choices = v.get("choices").and_then(Value::as_array);
        let mut kind = ChunkKind::Content;
        match choices {
            Some(cs) if !cs.is_empty() => {
                for c in cs {
                    // Translation serves one choice; n > 1 is only relayed to OpenAI clients.
                    if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                        continue;
                    }
                    self.decode_choice(c, out);
                }
            }
            _ => {
                if v.get("usage").is_some_and(|u| !u.is_null()) {
                    kind = ChunkKind::UsageOnly;
                }
            }
        }
        if let Some(u) = v.get("usage").and_then(decode_usage) {
            out.push(StreamEvent::Usage(u));
        }
        Ok(kind)
    }

    fn decode_choice(&mut self, c: &Value, out: &mut Vec<StreamEvent>) {
        if let Some(delta) = c.get("delta") {
            for key in ["reasoning_content", "reasoning"] {
                if let Some(t) = delta.get(key).and_then(Value::as_str) {
                    if !t.is_empty() {
                        out.push(StreamEvent::ReasoningDelta(t.to_owned()));
                    }
                    break;
                }
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                if !t.is_empty() {
                    out.push(StreamEvent::TextDelta(t.to_owned()));
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for tc in calls {
                    let index = tc
                        .get("index")
                        .and_then(Value::as_u64)
                        .and_then(|x| u32::try_from(x).ok())
                        .unwrap_or(0);
                    if !self.open_tools.contains(&index) {
                        self.open_tools.push(index);
                        out.push(StreamEvent::ToolCallStart {
                            index,
                            id: tc
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            name: tc
                                .pointer("/function/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        });
                    }
                    if let Some(frag) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                        if !frag.is_empty() {
                            out.push(StreamEvent::ToolArgsDelta {
                                index,
                                fragment: frag.to_owned(),
                            });
                        }
                    }
                }
            }
        }
        if let Some(reason) = decode_finish(c.get("finish_reason").and_then(Value::as_str)) {
            self.close_tools(out);
            out.push(StreamEvent::Finish(reason));
        }
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        for index in self.open_tools.drain(..) {
            out.push(StreamEvent::ToolCallEnd { index });
        }
    }
}

/// Renders [`StreamEvent`]s as OpenAI chat completion chunks (`data: …\n\n`).
pub struct ChunkEncoder {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    started: bool,
    usage: Option<Usage>,
    /// Extra fields merged into the final usage object (e.g. the cost of the request).
    usage_extra: Map<String, Value>,
}

impl ChunkEncoder {
    pub fn new(id: String, model: String, include_usage: bool) -> ChunkEncoder {
        ChunkEncoder {
            id,
            model,
            created: unix_now(),
            include_usage,
            started: false,
            usage: None,
            usage_extra: Map::new(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut BytesMut) {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            if let Value::Object(o) = &mut c {
                o.insert("usage".into(), Value::Null);
            }
        }
        write_data(&c, out);
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
                out,
            );
        }
    }

    /// Adds fields to the final usage object.
    pub fn set_usage_extra(&mut self, extra: Map<String, Value>) {
        self.usage_extra = extra;
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match ev {
            StreamEvent::Start { model, .. } => {
                if self.model.is_empty() && !model.is_empty() {
                    self.model = model.clone();
                }
                self.ensure_started(out);
            }
            StreamEvent::TextDelta(t) => {
                self.ensure_started(out);
                self.chunk(json!({"content": t}), None, out);
            }
            StreamEvent::ReasoningDelta(t) => {
                self.ensure_started(out);
                self.chunk(json!({"reasoning_content": t}), None, out);
            }
            StreamEvent::ReasoningSignature(_) | StreamEvent::ToolCallEnd { .. } => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                self.chunk(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}),
                    None,
                    out,
                );
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                self.chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                    None,
                    out,
                );
            }
            StreamEvent::Finish(reason) => {
                self.ensure_started(out);
                self.chunk(json!({}), Some(reason.openai()), out);
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Error { message, kind } => {
                let ty = match kind {
                    StreamErrorKind::Overloaded | StreamErrorKind::Server => "server_error",
                    StreamErrorKind::RateLimited => "rate_limit_exceeded",
                    StreamErrorKind::InvalidRequest => "invalid_request_error",
                };
                write_data(
                    &json!({"error": {"message": message, "type": ty, "param": null, "code": null}}),
                    out,
                );
            }
        }
    }

    /// The usage chunk (when asked for) and `[DONE]`, after a normal end.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.include_usage {
            if let Some(u) = &self.usage {
                let mut usage = encode_usage(u);
                if let Value::Object(o) = &mut usage {
                    o.extend(self.usage_extra.clone());
                }
                write_data(
                    &json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": null,
                        "choices": [],
                        "usage": usage,
                    }),
                    out,
                );
            }
        }
        out.put_slice(b"data: [DONE]\n\n");
    }
}

/// Writes one SSE `data:` event.
pub fn write_data(v: &Value, out: &mut BytesMut) {
    out.put_slice(b"data: ");
    let mut w = out.writer();
    // Writing a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, v);
    w.into_inner().put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: Value) -> Result<CanonicalRequest, GatewayError> {
        decode_request(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn full_request_round_trips_to_upstream() {
        let body = json!({
            "model": "demo/echo",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Dev note"}]},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
            "n": 2, "stop": "END", "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 7,
            "logit_bias": {"50256": -100}, "logprobs": true, "top_logprobs": 3, "user": "u1",
            "max_tokens": 50, "reasoning_effort": "low", "temperature": 0.2, "top_p": 0.9,
            "stream": true, "stream_options": {"include_usage": false, "include_obfuscation": false},
            "metadata": {"k": "v"}, "service_tier": "flex"
        });
        let req = decode(body).unwrap();
        assert_eq!(req.messages.len(), 5);
        assert_eq!(req.max_output_tokens, Some(50));
        assert!(!req.include_usage);
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Function("get_weather".into()))
        );
        insta::assert_json_snapshot!("openai_request_to_upstream", encode_request(&req, "echo"));
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 3}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 9223372036854775807i64}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
                "temperature",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
                "temperature",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}),
                "n",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "bad name!"}}]}),
                "tools[0].function.name",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 500}}),
                "logit_bias.1",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"}),
                "reasoning_effort",
            ),
        ];
        for (body, param) in cases {
            let err = decode(body.clone()).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::InvalidRequest, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
        }
        for raw in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],}",
        ] {
            assert_eq!(
                decode_request(raw).unwrap_err().kind,
                crate::error::ErrorKind::InvalidRequest
            );
        }
    }

    #[test]
    fn nested_depth_is_bounded() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let body = format!("{{\"model\":\"m\",\"messages\":{deep}}}");
        assert!(decode_request(body.as_bytes()).is_err());
    }

    #[test]
    fn stream_chunks_decode_to_events() {
        let mut d = ChunkDecoder::default();
        let mut ev = Vec::new();
        let chunks = [
            r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_4Xz","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-X","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-X","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city\":\"Paris\"}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-X","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"chatcmpl-X","choices":[],"usage":{"prompt_tokens":44,"completion_tokens":16,"total_tokens":60,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        ];
        let mut kinds = Vec::new();
        for c in chunks {
            kinds.push(d.decode(c, &mut ev).unwrap());
        }
        kinds.push(d.decode("[DONE]", &mut ev).unwrap());
        assert_eq!(kinds[4], ChunkKind::UsageOnly);
        assert_eq!(kinds[5], ChunkKind::Done);
        insta::assert_debug_snapshot!("openai_chunks_to_events", ev);
        assert!(d.decode("{not json", &mut ev).is_err());
    }

    #[test]
    fn events_encode_to_chunks() {
        let events = vec![
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "claude".into(),
            },
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
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
            StreamEvent::ToolCallEnd { index: 0 },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input: 10,
                cached_input: 2,
                cache_write: 0,
                output: 5,
                reasoning: 0,
            }),
        ];
        let mut enc = ChunkEncoder::new("chatcmpl-weir".into(), "anthropic/claude".into(), true);
        enc.created = 1_700_000_000;
        let mut out = BytesMut::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        insta::assert_snapshot!(
            "events_to_openai_sse",
            String::from_utf8(out.to_vec()).unwrap()
        );
    }

    #[test]
    fn response_usage_reads_what_decode_usage_reads() {
        let bodies = [
            r#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            r#"{"usage":{"prompt_tokens":1.5,"completion_tokens":-3,"prompt_tokens_details":null}}"#,
            r#"{"usage":null,"choices":[]}"#,
            r#"{"usage":[1,2],"x":{"usage":{"prompt_tokens":9}}}"#,
            r#"{"usage":{"prompt_tokens":"7","completion_tokens":{"a":1},"prompt_tokens_details":{"cache_write_tokens":5}}}"#,
            r#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
            r#"[1,{"usage":{}}]"#,
            r#"{"choices":[]}"#,
            r#"42"#,
        ];
        for b in bodies {
            let v: Value = serde_json::from_slice(b.as_bytes()).unwrap();
            let want = v.get("usage").and_then(decode_usage);
            assert_eq!(response_usage(b.as_bytes()).unwrap(), want, "{b}");
        }
        for bad in [
            r#"{"usage":{"prompt_tokens":1}"#,
            "",
            "{} x",
            r#"{"a":tru}"#,
        ] {
            assert!(response_usage(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_round_trip() {
        let upstream = json!({"id":"chatcmpl-abc","object":"chat.completion","created":1727346182,"model":"gpt-4o-2024-08-06",
            "choices":[{"index":0,"finish_reason":"stop","logprobs":null,"message":{"role":"assistant","content":"Hi!","refusal":null}}],
            "usage":{"prompt_tokens":19,"completion_tokens":3,"total_tokens":22,"prompt_tokens_details":{"cached_tokens":4}}});
        let r = decode_response(&serde_json::to_vec(&upstream).unwrap()).unwrap();
        assert_eq!(r.usage.unwrap().cached_input, 4);
        insta::assert_json_snapshot!("openai_response_encoded", encode_response(&r));
    }
}
