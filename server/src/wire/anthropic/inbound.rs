//! The client surface `POST /v1/messages`: Anthropic requests → canonical.

use serde_json::{json, Value};

use crate::wire::json::{
    missing, parse_object, range_error, str_field, take, take_array, take_bool, take_f64,
    take_object, take_str_field, take_string, take_u32, type_error, Obj,
};
use crate::{
    canonical::{
        CanonicalRequest, ImageSource, Message, Part, Passthrough, ReasoningEffort, ResponseFormat,
        Role, Tool, ToolCall, ToolChoice, Wire,
    },
    error::GatewayError,
};

/// Content block types Weir does not model but Anthropic channels take as they are.
const OPAQUE_BLOCKS: [&str; 14] = [
    "document",
    "redacted_thinking",
    "search_result",
    "container_upload",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "image",
];

/// Decodes a client's Messages request.
///
/// `system` (string or text blocks) becomes one system message per block; `tool_result`
/// blocks become tool messages placed before the rest of their user turn; `tool_use` inputs
/// become arguments as compact JSON; thinking keeps its signature. Blocks the canonical types
/// cannot hold (documents, redacted thinking, server-tool blocks: [`OPAQUE_BLOCKS`]) are kept as
/// [`Part::Opaque`] for Anthropic upstreams; an unknown type is a 400. Server tools, `thinking`, `output_config.effort`
/// and every unmodelled field stay in [`Passthrough`]; `thinking` and `output_config.effort`
/// also set `reasoning_effort` for other upstreams. `cache_control` and `citations` on blocks
/// are not kept in the canonical request: Anthropic channels get the client's body itself
/// ([`super::relay_request`]).
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
    req.route = crate::routing::hints::take(&mut m)?;
    req.passthrough = Passthrough {
        format: Some(Wire::Anthropic),
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
        // Mid-conversation system messages (beta `mid-conversation-system-2026-04-07`, which
        // Claude Code sends): text only, kept where they stand.
        Some("system") => Role::System,
        _ => {
            return Err(GatewayError::invalid_param(
                format!("{path}.role"),
                format!(
                    "Invalid value for '{path}.role': must be 'user', 'assistant' or 'system'."
                ),
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
        if role == Role::System && ty != "text" {
            return Err(GatewayError::invalid_param(
                format!("{bpath}.type"),
                format!("{bpath}: a system message holds text blocks only, not '{ty}'."),
            ));
        }
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
            // Documents, redacted thinking and server-tool blocks: only an Anthropic upstream
            // can take them.
            (_, ty) if OPAQUE_BLOCKS.contains(&ty) => parts.push(Part::Opaque {
                format: Wire::Anthropic,
                value: Value::Object(b),
            }),
            (_, ty) => {
                return Err(GatewayError::invalid_param(
                    format!("{bpath}.type"),
                    format!(
                        "{bpath}: Input tag '{ty}' found using 'type' does not match any of the expected tags for a {} message.",
                        role.as_str()
                    ),
                ))
            }
        }
    }
    match role {
        Role::Assistant => {
            let mut msg = Message::new(Role::Assistant, parts);
            msg.tool_calls = calls;
            out.push(msg);
        }
        Role::System => {
            if !parts.is_empty() {
                out.push(Message::new(Role::System, parts));
            }
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
                format: Wire::Anthropic,
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
                        format: Wire::Anthropic,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::anthropic::request::tests::assert_order;
    use crate::{error::ErrorKind, wire::anthropic::encode_request};

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
    fn mid_conversation_system_messages_stay_where_they_are() {
        // As Claude Code sends them (beta `mid-conversation-system-2026-04-07`).
        let body = json!({"model": "m", "max_tokens": 10, "system": "top", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "agents: a, b", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "go"},
        ]});
        let req = decode_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::System, Role::User],
            "{req:?}"
        );
        assert_eq!(req.messages[2].content, [Part::Text("agents: a, b".into())]);
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
                with("messages", json!([{"role": "tool", "content": "x"}])),
                "messages[0].role",
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": "x"}, {"role": "system", "content": [{"type": "image", "source": {}}]}]),
                ),
                "messages[1].content[0].type",
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
}
