//! The client surface `POST /v1/chat/completions`: requests decoded into canonical form, every
//! field OpenAI documents validated.

use serde_json::{json, Value};

use super::*;
use crate::wire::json::{
    int_value, missing, parse_object, range_error, str_field, take, take_array, take_bool,
    take_f64, take_int, take_object, take_str_field, take_string, take_u32, type_error,
};
use crate::{
    canonical::{
        CanonicalRequest, ImageSource, Message, Part, Passthrough, ReasoningEffort, ResponseFormat,
        Role, Tool, ToolCall, ToolChoice, Wire,
    },
    error::GatewayError,
};

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
    req.route = crate::routing::hints::take(&mut m)?;
    // What remains (including `stream_options`, `metadata`, `store`, `service_tier`, …) is
    // passed untouched to OpenAI-compatible upstreams.
    req.passthrough = Passthrough {
        format: Some(Wire::OpenAi),
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
    ReasoningEffort::parse(s).ok_or_else(|| {
        range_error(
            "reasoning_effort",
            "must be one of none, minimal, low, medium, high, xhigh, max",
        )
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
                format: Wire::OpenAi,
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
}
