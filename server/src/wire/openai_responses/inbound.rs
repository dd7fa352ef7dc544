//! Requests of the client surface `POST /v1/responses`, decoded into canonical form.

use serde_json::{json, Map, Value};

use super::Echo;
use crate::wire::json::{
    missing, parse_object, range_error, str_field, take, take_array, take_bool, take_f64,
    take_object, take_string, take_u32, type_error, Obj,
};
use crate::wire::openai_chat::parse_image_url;
use crate::{
    canonical::{
        CanonicalRequest, Message, Part, Passthrough, ReasoningEffort, ResponseFormat, Role, Tool,
        ToolCall, ToolChoice, Wire,
    },
    error::GatewayError,
};

/// Built-in tool types of the Responses API, refused by name (hosted web search is dropped
/// instead, see `parse_request`).
const BUILT_IN_TOOLS: &[&str] = &[
    "file_search",
    "computer_use_preview",
    "computer_use",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
];

/// A Responses request read as far as the gateway must know before decoding it: whether it
/// continues a stored response, and whether its answer is stored.
#[derive(Debug)]
pub struct ResponsesRequest {
    pub previous_response_id: Option<String>,
    pub store: bool,
    /// This request's input, as item objects (a string input is one user message).
    pub input: Vec<Value>,
    body: Obj,
}

/// Reads the members that decide what the gateway loads and stores.
pub fn parse_request(body: &[u8]) -> Result<ResponsesRequest, GatewayError> {
    let mut m = parse_object(body)?;
    let input = match take(&mut m, "input") {
        None => return Err(missing("input")),
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(items)) => items,
        Some(_) => return Err(type_error("input", "a string or an array of input items")),
    };
    let previous_response_id = take_string(&mut m, "previous_response_id")?;
    if previous_response_id.as_deref() == Some("") {
        return Err(range_error("previous_response_id", "must not be empty"));
    }
    if previous_response_id.is_some() && m.get("conversation").is_some_and(|c| !c.is_null()) {
        return Err(GatewayError::invalid_param(
            "conversation",
            "'previous_response_id' and 'conversation' cannot be used together.",
        ));
    }
    let store = take_bool(&mut m, "store")?.unwrap_or(true);
    Ok(ResponsesRequest {
        previous_response_id,
        store,
        input,
        body: m,
    })
}

/// A decoded Responses request: the canonical request and what its answer needs.
#[derive(Debug)]
pub struct Decoded {
    pub request: CanonicalRequest,
    pub echo: Echo,
    /// Every input item of the conversation (the stored ones, then this request's), kept with
    /// the answer when it is stored.
    pub conversation: Vec<Value>,
}

impl ResponsesRequest {
    /// Decodes the request; `history` holds the input and output items of the stored response
    /// it continues (empty when it continues none).
    pub fn into_canonical(self, history: Vec<Value>) -> Result<Decoded, GatewayError> {
        let ResponsesRequest {
            previous_response_id,
            store,
            input,
            body: mut m,
        } = self;
        let model = match take_string(&mut m, "model")? {
            Some(s) if !s.is_empty() => s,
            _ => return Err(missing("model")),
        };
        if m.get("conversation").is_some_and(|c| !c.is_null()) {
            return Err(GatewayError::invalid_param(
                "conversation",
                "Conversation objects are not supported; continue with 'previous_response_id'.",
            ));
        }
        let instructions = match take(&mut m, "instructions") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(type_error("instructions", "a string")),
        };

        let mut conv = Conversation::default();
        if let Some(i) = &instructions {
            conv.messages
                .push(Message::new(Role::System, vec![Part::Text(i.clone())]));
        }
        for (i, item) in history.iter().enumerate() {
            conv.item(item.clone(), &format!("previous_response.input[{i}]"))?;
        }
        for (i, item) in input.iter().enumerate() {
            conv.item(item.clone(), &format!("input[{i}]"))?;
        }
        if conv.messages.is_empty() {
            return Err(range_error("input", "must contain at least one item"));
        }

        let mut echo = Map::new();
        let mut req = CanonicalRequest::new(model, conv.messages);
        req.temperature = take_f64(&mut m, "temperature", 0.0, 2.0)?;
        req.top_p = take_f64(&mut m, "top_p", 0.0, 1.0)?;
        req.max_output_tokens = take_u32(&mut m, "max_output_tokens", 1, u32::MAX)?;
        req.top_logprobs = take_u32(&mut m, "top_logprobs", 0, 20)?;
        req.parallel_tool_calls = take_bool(&mut m, "parallel_tool_calls")?;
        let user = take_string(&mut m, "user")?;
        let safety_identifier = take_string(&mut m, "safety_identifier")?;
        req.user = safety_identifier.clone().or_else(|| user.clone());
        let raw_tools = take_array(&mut m, "tools")?.unwrap_or_default();
        let mut namespaces = Vec::new();
        for (i, t) in raw_tools.iter().enumerate() {
            let path = format!("tools[{i}]");
            match t.get("type").and_then(Value::as_str) {
                // Hosted web search, which Codex always offers: no provider behind this
                // gateway runs it, so the model is not offered it (it answers without
                // searching) instead of the whole request being refused.
                Some(ty) if ty.starts_with("web_search") => {}
                // A group of function tools (Codex's sub-agent tools): offered as plain
                // function tools, and a call to one names the namespace again.
                Some("namespace") => {
                    let ns = str_field(t.as_object().unwrap_or(&Map::new()), "name", &path)?
                        .unwrap_or_default()
                        .to_owned();
                    let Some(Value::Array(inner)) = t.get("tools") else {
                        return Err(type_error(
                            format!("{path}.tools"),
                            "an array of function tools",
                        ));
                    };
                    for (j, f) in inner.iter().enumerate() {
                        let tool = decode_tool(f, format!("{path}.tools[{j}]"))?;
                        namespaces.push((tool.name.clone(), ns.clone()));
                        req.tools.push(tool);
                    }
                }
                _ => req.tools.push(decode_tool(t, path)?),
            }
        }
        let raw_choice = take(&mut m, "tool_choice");
        if let Some(c) = &raw_choice {
            let (choice, allowed) = decode_tool_choice(c)?;
            if let Some(allowed) = allowed {
                req.tools.retain(|t| allowed.contains(&t.name));
            }
            req.tool_choice = Some(choice);
        }
        let text = take_object(&mut m, "text")?;
        if let Some(t) = &text {
            if let Some(f) = t.get("format").filter(|f| !f.is_null()) {
                req.response_format = Some(decode_format(f)?);
            }
        }
        let reasoning = take_object(&mut m, "reasoning")?;
        if let Some(r) = &reasoning {
            if let Some(e) = str_field(r, "effort", "reasoning")? {
                req.reasoning_effort = Some(decode_effort(e)?);
            }
        }
        let metadata = take_object(&mut m, "metadata")?;
        let include = take_array(&mut m, "include")?.unwrap_or_default();
        let mut reasoning_content = false;
        for (i, v) in include.iter().enumerate() {
            match v.as_str() {
                Some("reasoning.encrypted_content") => reasoning_content = true,
                Some(_) => {}
                None => return Err(type_error(format!("include[{i}]"), "a string")),
            }
        }
        let truncation = match take_string(&mut m, "truncation")?.as_deref() {
            None | Some("disabled") => "disabled",
            Some("auto") => "auto",
            Some(_) => return Err(range_error("truncation", "must be 'auto' or 'disabled'")),
        };
        req.stream = take_bool(&mut m, "stream")?.unwrap_or(false);
        m.remove("stream_options");
        if take_bool(&mut m, "background")? == Some(true) {
            return Err(GatewayError::invalid_param(
                "background",
                "Background responses are not supported; stream the response instead.",
            ));
        }

        // What every response object repeats (openai-responses.md §2), with OpenAI's defaults.
        let mut put = |k: &str, v: Value| {
            echo.insert(k.to_owned(), v);
        };
        put(
            "instructions",
            instructions.map_or(Value::Null, Value::String),
        );
        put(
            "max_output_tokens",
            req.max_output_tokens.map_or(Value::Null, Value::from),
        );
        put(
            "parallel_tool_calls",
            Value::Bool(req.parallel_tool_calls.unwrap_or(true)),
        );
        put(
            "previous_response_id",
            previous_response_id.map_or(Value::Null, Value::String),
        );
        put("store", Value::Bool(store));
        put("temperature", json!(req.temperature.unwrap_or(1.0)));
        put("top_p", json!(req.top_p.unwrap_or(1.0)));
        put("tool_choice", raw_choice.unwrap_or_else(|| json!("auto")));
        put("tools", Value::Array(raw_tools));
        put("truncation", json!(truncation));
        let mut text = text.unwrap_or_default();
        text.entry("format").or_insert(json!({"type": "text"}));
        text.entry("verbosity").or_insert(json!("medium"));
        put("text", Value::Object(text));
        let mut reasoning = reasoning.unwrap_or_default();
        reasoning.entry("effort").or_insert(Value::Null);
        reasoning.entry("summary").or_insert(Value::Null);
        put("reasoning", Value::Object(reasoning));
        put("metadata", Value::Object(metadata.unwrap_or_default()));
        put("user", user.map_or(Value::Null, Value::String));
        put(
            "safety_identifier",
            safety_identifier.map_or(Value::Null, Value::String),
        );
        put(
            "top_logprobs",
            req.top_logprobs.map_or(Value::Null, Value::from),
        );
        put("background", Value::Bool(false));

        req.route = crate::routing::hints::take(&mut m)?;
        req.passthrough = Passthrough {
            format: Some(Wire::Responses),
            fields: m,
        };
        let mut conversation = history;
        conversation.extend(input);
        Ok(Decoded {
            request: req,
            echo: Echo {
                members: echo,
                reasoning_content,
                namespaces,
            },
            conversation,
        })
    }
}

/// Input items folded into canonical messages.
#[derive(Default)]
struct Conversation {
    messages: Vec<Message>,
}

impl Conversation {
    /// The assistant message a `function_call` or `reasoning` item belongs to: the last
    /// message if it is the assistant's, else a new one.
    fn assistant(&mut self) -> &mut Message {
        if self
            .messages
            .last()
            .is_none_or(|m| m.role != Role::Assistant)
        {
            self.messages
                .push(Message::new(Role::Assistant, Vec::new()));
        }
        let last = self.messages.len() - 1;
        &mut self.messages[last]
    }

    fn item(&mut self, v: Value, path: &str) -> Result<(), GatewayError> {
        let Value::Object(mut o) = v else {
            return Err(type_error(path.to_owned(), "an object"));
        };
        let ty = match str_field(&o, "type", path)? {
            Some(t) => t.to_owned(),
            None if o.contains_key("role") => "message".to_owned(),
            None => {
                return Err(GatewayError::invalid_param(
                    format!("{path}.type"),
                    format!("Missing required parameter: '{path}.type'."),
                ))
            }
        };
        match ty.as_str() {
            "message" => self.message(o, path),
            "function_call" => {
                let call_id = required_str(&mut o, "call_id", path)?;
                let name = required_str(&mut o, "name", path)?;
                let arguments = match o.remove("arguments") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s,
                    Some(_) => return Err(type_error(format!("{path}.arguments"), "a string")),
                };
                // A call after a tool result opens the next assistant turn.
                self.assistant().tool_calls.push(ToolCall {
                    id: call_id,
                    name,
                    arguments,
                });
                Ok(())
            }
            "function_call_output" => {
                let call_id = required_str(&mut o, "call_id", path)?;
                let content = match o.remove("output") {
                    Some(Value::String(s)) => vec![Part::Text(s)],
                    Some(Value::Array(parts)) => parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, p)| input_part(p, &format!("{path}.output[{j}]")))
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(type_error(
                            format!("{path}.output"),
                            "a string or an array of content parts",
                        ))
                    }
                };
                let mut msg = Message::new(Role::Tool, content);
                msg.tool_call_id = Some(call_id);
                self.messages.push(msg);
                Ok(())
            }
            "reasoning" => {
                let mut text = String::new();
                if let Some(Value::Array(summary)) = o.get("summary") {
                    for s in summary {
                        if let Some(t) = s.get("text").and_then(Value::as_str) {
                            if !text.is_empty() {
                                text.push_str("\n\n");
                            }
                            text.push_str(t);
                        }
                    }
                }
                let signature = o
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if !text.is_empty() || signature.is_some() {
                    let msg = self.assistant();
                    if !msg.tool_calls.is_empty() || msg.content.iter().any(is_text) {
                        // Reasoning begins a new step of the turn.
                        self.messages.push(Message::new(Role::Assistant, Vec::new()));
                    }
                    self.assistant()
                        .content
                        .push(Part::Thinking { text, signature });
                }
                Ok(())
            }
            "item_reference" => Err(GatewayError::invalid_param(
                format!("{path}.type"),
                "Item references are not supported; continue a conversation with 'previous_response_id'.",
            )),
            other => Err(GatewayError::invalid_param(
                format!("{path}.type"),
                format!(
                    "Invalid value for '{path}.type': '{}' is not a supported input item type (message, function_call, function_call_output, reasoning).",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    fn message(&mut self, mut o: Obj, path: &str) -> Result<(), GatewayError> {
        let role = match str_field(&o, "role", path)? {
            Some("user") => Role::User,
            Some("system") => Role::System,
            Some("developer") => Role::Developer,
            Some("assistant") => Role::Assistant,
            Some(other) => {
                return Err(GatewayError::invalid_param(
                    format!("{path}.role"),
                    format!(
                        "Invalid value for '{path}.role': '{}' is not one of user, system, developer, assistant.",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
            None => {
                return Err(GatewayError::invalid_param(
                    format!("{path}.role"),
                    format!("Missing required parameter: '{path}.role'."),
                ))
            }
        };
        let mut refusal = None;
        let content: Vec<Part> = match o.remove("content") {
            Some(Value::String(s)) => vec![Part::Text(s)],
            Some(Value::Array(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for (j, p) in parts.into_iter().enumerate() {
                    let ppath = format!("{path}.content[{j}]");
                    if role == Role::Assistant {
                        match output_part(p, &ppath)? {
                            OutputPart::Text(t) => out.push(Part::Text(t)),
                            OutputPart::Refusal(r) => refusal = Some(r),
                        }
                    } else {
                        out.push(input_part(p, &ppath)?);
                    }
                }
                out
            }
            _ => {
                return Err(type_error(
                    format!("{path}.content"),
                    "a string or an array of content parts",
                ))
            }
        };
        if role == Role::Assistant {
            // Text after this turn's reasoning joins its message; after tool calls it is a
            // new step.
            let last = self.messages.last();
            let joins = last.is_some_and(|m| {
                m.role == Role::Assistant
                    && m.tool_calls.is_empty()
                    && m.content.iter().all(|p| matches!(p, Part::Thinking { .. }))
                    && m.refusal.is_none()
            });
            if !joins {
                self.messages
                    .push(Message::new(Role::Assistant, Vec::new()));
            }
            let msg = self.assistant();
            msg.content.extend(content);
            if refusal.is_some() {
                msg.refusal = refusal;
            }
            if msg.content.is_empty() && msg.refusal.is_none() {
                msg.content.push(Part::Text(String::new()));
            }
        } else {
            if content.is_empty() {
                return Err(GatewayError::invalid_param(
                    format!("{path}.content"),
                    format!("Missing required parameter: '{path}.content'."),
                ));
            }
            self.messages.push(Message::new(role, content));
        }
        Ok(())
    }
}

fn is_text(p: &Part) -> bool {
    matches!(p, Part::Text(_))
}

fn required_str(o: &mut Obj, key: &str, path: &str) -> Result<String, GatewayError> {
    match o.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(GatewayError::invalid_param(
            format!("{path}.{key}"),
            format!("Missing required parameter: '{path}.{key}'."),
        )),
        Some(_) => Err(type_error(format!("{path}.{key}"), "a string")),
    }
}

enum OutputPart {
    Text(String),
    Refusal(String),
}

/// A content part of an assistant message sent back as history.
fn output_part(v: Value, path: &str) -> Result<OutputPart, GatewayError> {
    let Value::Object(mut p) = v else {
        return Err(type_error(path.to_owned(), "an object"));
    };
    match str_field(&p, "type", path)? {
        Some("output_text") | Some("input_text") | Some("text") => match p.remove("text") {
            Some(Value::String(t)) => Ok(OutputPart::Text(t)),
            _ => Err(type_error(format!("{path}.text"), "a string")),
        },
        Some("refusal") => match p.remove("refusal") {
            Some(Value::String(t)) => Ok(OutputPart::Refusal(t)),
            _ => Err(type_error(format!("{path}.refusal"), "a string")),
        },
        other => Err(bad_part_type(path, other, "an assistant")),
    }
}

/// A content part of a user, system or developer message, or of a function call's output.
fn input_part(v: Value, path: &str) -> Result<Part, GatewayError> {
    let Value::Object(mut p) = v else {
        return Err(type_error(path.to_owned(), "an object"));
    };
    let ty = str_field(&p, "type", path)?.map(str::to_owned);
    match ty.as_deref() {
        Some("input_text") | Some("output_text") | Some("text") => match p.remove("text") {
            Some(Value::String(t)) => Ok(Part::Text(t)),
            _ => Err(type_error(format!("{path}.text"), "a string")),
        },
        Some("input_image") => {
            let detail = match p.remove("detail") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) => Some(d),
                Some(_) => return Err(type_error(format!("{path}.detail"), "a string")),
            };
            match p.remove("image_url") {
                Some(Value::String(url)) if !url.is_empty() => Ok(Part::Image {
                    source: parse_image_url(url),
                    detail,
                }),
                None | Some(Value::Null) if p.contains_key("file_id") => {
                    Err(GatewayError::invalid_param(
                        format!("{path}.file_id"),
                        "File ids are not supported; send the image as 'image_url' (a URL or a data: URL).",
                    ))
                }
                _ => Err(type_error(format!("{path}.image_url"), "a string")),
            }
        }
        Some("input_file") => {
            let mut file = Map::new();
            for key in ["file_data", "file_id", "filename"] {
                match p.remove(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => {
                        file.insert(key.to_owned(), Value::String(s));
                    }
                    Some(_) => return Err(type_error(format!("{path}.{key}"), "a string")),
                }
            }
            if !file.contains_key("file_data") && !file.contains_key("file_id") {
                return Err(GatewayError::invalid_param(
                    format!("{path}.file_data"),
                    "An input_file needs 'file_data' (base64) or 'file_id'; 'file_url' is not supported.",
                ));
            }
            // As a Chat Completions `file` part: what OpenAI-compatible channels take.
            Ok(Part::Opaque {
                format: Wire::OpenAi,
                value: json!({"type": "file", "file": file}),
            })
        }
        other => Err(bad_part_type(path, other, "an input")),
    }
}

fn bad_part_type(path: &str, ty: Option<&str>, what: &str) -> GatewayError {
    GatewayError::invalid_param(
        format!("{path}.type"),
        format!(
            "Invalid value for '{path}.type': '{}' is not a content part type allowed in {what} message.",
            ty.unwrap_or("").chars().take(40).collect::<String>()
        ),
    )
}

fn decode_tool(v: &Value, path: String) -> Result<Tool, GatewayError> {
    let Value::Object(t) = v else {
        return Err(type_error(path, "an object"));
    };
    match str_field(t, "type", &path)? {
        Some("function") => {}
        Some(other) if BUILT_IN_TOOLS.contains(&other) => {
            return Err(GatewayError::invalid_param(
                format!("{path}.type"),
                format!("The built-in tool '{other}' is not supported by this gateway's providers; pass it as a function tool instead."),
            ))
        }
        other => {
            return Err(GatewayError::invalid_param(
                format!("{path}.type"),
                format!(
                    "Invalid value for '{path}.type': '{}' is not a supported tool type.",
                    other.unwrap_or("").chars().take(40).collect::<String>()
                ),
            ))
        }
    }
    let name = str_field(t, "name", &path)?.unwrap_or_default().to_owned();
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b':')
    {
        return Err(GatewayError::invalid_param(
            format!("{path}.name"),
            format!("Invalid '{path}.name': must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes."),
        ));
    }
    let description = str_field(t, "description", &path)?.map(str::to_owned);
    let parameters = match t.get("parameters") {
        None | Some(Value::Null) => None,
        Some(p @ Value::Object(_)) => Some(p.clone()),
        Some(_) => return Err(type_error(format!("{path}.parameters"), "an object")),
    };
    let strict = match t.get("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(type_error(format!("{path}.strict"), "a boolean")),
    };
    Ok(Tool {
        name,
        description,
        parameters,
        strict,
    })
}

/// The tool choice, and the names of `allowed_tools` when the choice limits the tools.
fn decode_tool_choice(v: &Value) -> Result<(ToolChoice, Option<Vec<String>>), GatewayError> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok((ToolChoice::None, None)),
            "auto" => Ok((ToolChoice::Auto, None)),
            "required" => Ok((ToolChoice::Required, None)),
            _ => Err(range_error(
                "tool_choice",
                "must be 'none', 'auto', 'required' or a tool choice object",
            )),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => match o.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => Ok((ToolChoice::Function(n.to_owned()), None)),
                _ => Err(missing("tool_choice.name")),
            },
            Some("allowed_tools") => {
                let choice = match o.get("mode").and_then(Value::as_str) {
                    Some("required") => ToolChoice::Required,
                    Some("auto") | None => ToolChoice::Auto,
                    Some(_) => {
                        return Err(range_error(
                            "tool_choice.mode",
                            "must be 'auto' or 'required'",
                        ))
                    }
                };
                let Some(Value::Array(tools)) = o.get("tools") else {
                    return Err(missing("tool_choice.tools"));
                };
                let names = tools
                    .iter()
                    .map(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .ok_or_else(|| type_error("tool_choice.tools", "function tools"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((choice, Some(names)))
            }
            Some(other) => Err(GatewayError::invalid_param(
                "tool_choice",
                format!(
                    "The built-in tool choice '{}' is not supported by this gateway's providers.",
                    other.chars().take(40).collect::<String>()
                ),
            )),
            None => Err(missing("tool_choice.type")),
        },
        _ => Err(type_error("tool_choice", "a string or an object")),
    }
}

fn decode_format(v: &Value) -> Result<ResponseFormat, GatewayError> {
    let Value::Object(o) = v else {
        return Err(type_error("text.format", "an object"));
    };
    match str_field(o, "type", "text.format")? {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let name = str_field(o, "name", "text.format")?
                .ok_or_else(|| missing("text.format.name"))?
                .to_owned();
            let description = str_field(o, "description", "text.format")?.map(str::to_owned);
            let schema = match o.get("schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                None | Some(Value::Null) => return Err(missing("text.format.schema")),
                Some(_) => return Err(type_error("text.format.schema", "an object")),
            };
            let strict = match o.get("strict") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(type_error("text.format.strict", "a boolean")),
            };
            Ok(ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            })
        }
        _ => Err(range_error(
            "text.format.type",
            "must be 'text', 'json_object' or 'json_schema'",
        )),
    }
}

fn decode_effort(s: &str) -> Result<ReasoningEffort, GatewayError> {
    ReasoningEffort::parse(s).ok_or_else(|| {
        range_error(
            "reasoning.effort",
            "must be one of none, minimal, low, medium, high, xhigh, max",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn decode(v: Value) -> Result<Decoded, GatewayError> {
        parse_request(&serde_json::to_vec(&v).unwrap())?.into_canonical(Vec::new())
    }

    #[test]
    fn codex_namespace_and_web_search_tools_are_accepted() {
        // As Codex 0.171 sends them.
        let d = decode(json!({
            "model": "demo/echo", "input": "hi",
            "tools": [
                {"type": "function", "name": "exec_command", "strict": false, "parameters": {"type": "object"}},
                {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
                    {"type": "function", "name": "close_agent", "parameters": {"type": "object"}},
                    {"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}
                ]},
                {"type": "web_search", "external_web_access": false}
            ]
        }))
        .unwrap();
        let names: Vec<&str> = d.request.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["exec_command", "close_agent", "spawn_agent"]);
        assert_eq!(d.echo.namespace_of("spawn_agent"), Some("multi_agent_v1"));
        assert_eq!(d.echo.namespace_of("exec_command"), None);
    }

    #[test]
    fn a_codex_style_request_decodes() {
        let d = decode(json!({
            "model": "demo/echo",
            "instructions": "You are a coding agent.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "env: linux"}]},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is in this image?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                    {"type": "input_file", "file_data": "JVBER", "filename": "a.pdf"}
                ]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think"}], "encrypted_content": "sig=="},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "ok"}]},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [{"type": "function", "name": "shell", "description": "Run", "parameters": {"type": "object"}, "strict": false}],
            "tool_choice": "auto", "parallel_tool_calls": false, "store": false, "stream": true,
            "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}},
            "max_output_tokens": 100, "temperature": 0.5, "prompt_cache_key": "abc", "metadata": {"k": "v"}
        }))
        .unwrap();
        let r = &d.request;
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::Developer,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::User
            ]
        );
        let a = &r.messages[3];
        assert_eq!(
            a.content,
            vec![
                Part::Thinking {
                    text: "Think".into(),
                    signature: Some("sig==".into())
                },
                Part::Text("Let me look.".into())
            ]
        );
        assert_eq!(a.tool_calls.len(), 2);
        assert_eq!(r.messages[4].tool_call_id.as_deref(), Some("call_1"));
        assert!(
            matches!(&r.messages[2].content[2], Part::Opaque { format: Wire::OpenAi, value } if value["file"]["filename"] == "a.pdf")
        );
        assert!(r.stream);
        assert_eq!(r.max_output_tokens, Some(100));
        assert_eq!(r.reasoning_effort, Some(ReasoningEffort::Low));
        assert!(matches!(
            r.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
        assert!(d.echo.reasoning_content);
        assert_eq!(d.echo.members["store"], false);
        assert_eq!(d.echo.members["parallel_tool_calls"], false);
        assert_eq!(d.echo.members["tools"][0]["name"], "shell");
        assert_eq!(d.conversation.len(), 9);
        assert!(r.passthrough.fields.contains_key("prompt_cache_key"));
    }

    #[test]
    fn history_comes_first_and_instructions_are_not_inherited() {
        let history = vec![
            json!({"type": "message", "role": "user", "content": "hi"}),
            json!({"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                   "content": [{"type": "output_text", "text": "echo: hi", "annotations": []}]}),
        ];
        let p = parse_request(br#"{"model":"m","input":"again","previous_response_id":"resp_1"}"#)
            .unwrap();
        assert_eq!(p.previous_response_id.as_deref(), Some("resp_1"));
        assert!(p.store);
        let d = p.into_canonical(history).unwrap();
        let texts: Vec<String> = d.request.messages.iter().map(|m| m.text()).collect();
        assert_eq!(texts, ["hi", "echo: hi", "again"]);
        assert_eq!(d.conversation.len(), 3);
        assert_eq!(d.echo.members["previous_response_id"], "resp_1");
        assert_eq!(d.echo.members["tool_choice"], "auto");
    }

    #[test]
    fn allowed_tools_limit_the_tools() {
        let d = decode(json!({"model": "m", "input": "x",
            "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}],
            "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "b"}]}}))
        .unwrap();
        assert_eq!(d.request.tools.len(), 1);
        assert_eq!(d.request.tools[0].name, "b");
        assert_eq!(d.request.tool_choice, Some(ToolChoice::Required));
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (json!({"input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": 3}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (
                json!({"model": "m", "input": [{"type": "wizardry"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": [{"type": "message", "role": "king", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"type": "message", "role": "user", "content": [{"type": "input_video"}]}]}),
                "input[0].content[0].type",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
                "input[0].call_id",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}),
                "input[0].output",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
                "input[0].content[0].file_id",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "function", "name": "a b"}]}]}),
                "tools[0].tools[0].name",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "bad name"}]}),
                "tools[0].name",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": -5}),
                "max_output_tokens",
            ),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": 1e300}),
                "max_output_tokens",
            ),
            (
                json!({"model": "m", "input": "x", "temperature": "warm"}),
                "temperature",
            ),
            (
                json!({"model": "m", "input": "x", "reasoning": {"effort": "huge"}}),
                "reasoning.effort",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}),
                "text.format.type",
            ),
            (json!({"model": "m", "input": "x", "store": "yes"}), "store"),
            (
                json!({"model": "m", "input": "x", "previous_response_id": 5}),
                "previous_response_id",
            ),
            (
                json!({"model": "m", "input": "x", "background": true}),
                "background",
            ),
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1", "conversation": "c"}),
                "conversation",
            ),
        ];
        for (body, param) in cases {
            let err = decode(body.clone()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
        }
        for raw in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            b"{\"model\":\"m\",\"input\":\"x\",}",
        ] {
            assert_eq!(
                parse_request(raw).unwrap_err().kind,
                ErrorKind::InvalidRequest
            );
        }
    }
}
