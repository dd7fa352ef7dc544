//! Requests towards OpenAI-compatible upstreams.

use serde_json::{json, Value};

use crate::canonical::{
    CanonicalRequest, ImageSource, Message, Part, ResponseFormat, Role, Tool, ToolChoice, Wire,
};
use crate::wire::json::Obj;

/// Encodes a request for an OpenAI-compatible upstream. Streams always ask for usage, so that
/// Weir can bill from the upstream's own count.
pub fn encode_request(req: &CanonicalRequest, upstream_model: &str) -> Value {
    let mut m = Obj::new();
    if req.passthrough.format == Some(Wire::OpenAi) {
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
            format: Wire::OpenAi,
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
