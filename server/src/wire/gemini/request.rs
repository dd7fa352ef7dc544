//! Requests towards Gemini upstreams: canonical → `generateContent` body (camelCase), within
//! Gemini's rules (system hoisted, `user`/`model` turns, function responses named after their
//! calls and answered in the next user turn, schemas in the OpenAPI subset).

use serde_json::{json, Map, Value};

use super::*;
use crate::wire::anthropic::arguments_to_input;
use crate::wire::json::{range_error, Obj};
use crate::{
    canonical::{
        CanonicalRequest, ImageSource, Message, Part as CanonicalPart, ReasoningEffort,
        ResponseFormat, Role, Tool, ToolChoice,
    },
    error::GatewayError,
};

/// The path of the request for `model` under a channel's base URL (`…/v1beta`):
/// `/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` (without `alt=sse`
/// Gemini streams one JSON array). A `models/` or `tunedModels/` prefix in the configured
/// name is kept as the resource name.
pub fn request_path(model: &str, stream: bool) -> String {
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    format!("/{}:{method}", super::embed::resource(model))
}

/// Encodes a request for a Gemini upstream (see the module doc for the choices made).
pub fn encode_request(req: &CanonicalRequest) -> Result<Value, GatewayError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(range_error(
            "n",
            "this model returns a single choice, so n must be 1",
        ));
    }
    if req.stop.len() > MAX_STOP {
        return Err(range_error(
            "stop",
            "Gemini models take at most 5 stop sequences",
        ));
    }
    let mut m = Obj::new();
    let contents = encode_contents(&req.messages)?;
    m.insert("contents".into(), Value::Array(contents));
    let system = encode_system(&req.messages);
    if !system.is_empty() {
        m.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system}]}),
        );
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req.tools.iter().map(encode_tool).collect();
        m.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        if let Some(choice) = &req.tool_choice {
            m.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": encode_tool_choice(choice)}),
            );
        }
    }
    let config = generation_config(req);
    if !config.is_empty() {
        m.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(m))
}

fn generation_config(req: &CanonicalRequest) -> Obj {
    let mut g = Obj::new();
    if let Some(t) = req.temperature {
        g.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        g.insert("topP".into(), p.into());
    }
    if let Some(k) = req.top_k {
        g.insert("topK".into(), k.into());
    }
    if let Some(max) = req.max_output_tokens {
        g.insert("maxOutputTokens".into(), max.into());
    }
    if !req.stop.is_empty() {
        g.insert("stopSequences".into(), req.stop.clone().into());
    }
    if req.n == Some(1) {
        g.insert("candidateCount".into(), 1.into());
    }
    if let Some(seed) = req.seed {
        // `seed` is an int32 on Gemini; larger seeds are folded into its range.
        let seed = i32::try_from(seed)
            .unwrap_or_else(|_| i32::try_from(seed.rem_euclid(1 << 31)).unwrap_or(0));
        g.insert("seed".into(), seed.into());
    }
    // Several Gemini models reject penalties outright ("Penalty is not enabled"), so a zero
    // (what many OpenAI clients send by default) is not forwarded.
    if let Some(p) = req.presence_penalty.filter(|p| *p != 0.0) {
        g.insert("presencePenalty".into(), p.into());
    }
    if let Some(p) = req.frequency_penalty.filter(|p| *p != 0.0) {
        g.insert("frequencyPenalty".into(), p.into());
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            g.insert("responseMimeType".into(), "application/json".into());
            g.insert("responseSchema".into(), gemini_schema(schema));
        }
        Some(ResponseFormat::Text) | None => {}
    }
    if let Some(t) = thinking_config(req.reasoning_effort, req.max_output_tokens) {
        g.insert("thinkingConfig".into(), t);
    }
    g
}

/// `thinkingConfig` for a reasoning effort: its budget (translation.md §2), below the
/// client's output limit (which on Gemini includes the thinking), with the thought summaries
/// shown; `none`, or no room left, turns thinking off (`thinkingBudget: 0`).
fn thinking_config(effort: Option<ReasoningEffort>, max_output: Option<u32>) -> Option<Value> {
    let effort = effort?;
    let mut budget = effort.budget_tokens().unwrap_or(0);
    if let Some(max) = max_output {
        budget = budget.min(max.saturating_sub(1));
    }
    Some(if budget == 0 {
        json!({"thinkingBudget": 0})
    } else {
        json!({"thinkingBudget": budget, "includeThoughts": true})
    })
}

/// All system and developer text, in order, joined with a blank line.
fn encode_system(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::Developer))
    {
        let text = m.text();
        if text.trim().is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&text);
    }
    out
}

/// A function call of a model turn while the contents are assembled.
struct Call<'m> {
    /// The id the client knows it by.
    id: &'m str,
    name: &'m str,
    /// The Gemini id to echo, unpacked from `id`.
    gemini_id: Option<String>,
    /// The canonical message that made the call.
    msg: usize,
}

/// One Gemini content while it is assembled. Function responses are kept apart so that they
/// come first, in call order, whatever order the client sent them in.
struct Turn<'m> {
    model: bool,
    /// `functionResponse` parts: the call's position in the previous model turn, the
    /// canonical message, the part.
    results: Vec<(usize, usize, Value)>,
    parts: Vec<Value>,
    calls: Vec<Call<'m>>,
}

impl Turn<'_> {
    fn is_empty(&self) -> bool {
        self.results.is_empty() && self.parts.is_empty()
    }

    fn into_value(self) -> Value {
        let role = if self.model { "model" } else { "user" };
        let mut parts: Vec<Value> = self.results.into_iter().map(|(_, _, p)| p).collect();
        parts.extend(self.parts);
        json!({"role": role, "parts": parts})
    }
}

/// The user turn put in front of a conversation that starts with the model.
const LEADING_USER_TEXT: &str = ".";

/// Folds canonical messages into alternating `user`/`model` contents and pairs every function
/// call with its response.
fn encode_contents(messages: &[Message]) -> Result<Vec<Value>, GatewayError> {
    let mut turns: Vec<Turn<'_>> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let turn = match msg.role {
            Role::System | Role::Developer => continue,
            Role::User => Turn {
                model: false,
                results: Vec::new(),
                parts: user_parts(&msg.content, i)?,
                calls: Vec::new(),
            },
            Role::Assistant => model_turn(msg, i)?,
            Role::Tool => tool_turn(msg, i, &turns)?,
        };
        if turn.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.model == turn.model => {
                last.results.extend(turn.results);
                last.parts.extend(turn.parts);
                last.calls.extend(turn.calls);
            }
            _ => turns.push(turn),
        }
    }
    pair_results(&mut turns)?;
    sign_current_step(&mut turns);
    if turns.first().is_some_and(|t| t.model) {
        turns.insert(
            0,
            Turn {
                model: false,
                results: Vec::new(),
                parts: vec![json!({"text": LEADING_USER_TEXT})],
                calls: Vec::new(),
            },
        );
    }
    if turns.is_empty() {
        return Err(range_error(
            "messages",
            "Gemini models need at least one user or assistant message with content",
        ));
    }
    Ok(turns.into_iter().map(Turn::into_value).collect())
}

fn cannot_express(i: usize, j: usize, what: &str) -> GatewayError {
    GatewayError::invalid_param(
        format!("messages[{i}].content[{j}]"),
        format!("messages[{i}].content[{j}] is {what}, which Gemini models cannot take."),
    )
}

/// Text and images of a user message or tool result.
fn user_parts(parts: &[CanonicalPart], i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        match p {
            // Gemini rejects empty text parts.
            CanonicalPart::Text(t) if t.is_empty() => {}
            CanonicalPart::Text(t) => out.push(json!({"text": t})),
            CanonicalPart::Image { source, .. } => out.push(image_part(source)),
            CanonicalPart::Opaque { .. } => {
                return Err(cannot_express(i, j, "content of another API format"))
            }
            // Reasoning only belongs to model turns.
            CanonicalPart::Thinking { .. } => {}
        }
    }
    Ok(out)
}

fn image_part(source: &ImageSource) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => {
            let mut mt = media_type.trim().to_ascii_lowercase();
            if mt == "image/jpg" {
                mt = "image/jpeg".into();
            }
            json!({"inlineData": {"mimeType": mt, "data": data}})
        }
        ImageSource::Url(url) => {
            let mut fd = Obj::new();
            if let Some(mt) = image_type_of(url) {
                fd.insert("mimeType".into(), mt.into());
            }
            fd.insert("fileUri".into(), url.as_str().into());
            json!({"fileData": fd})
        }
    }
}

/// The image media type a URL's extension names, if any.
fn image_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

fn model_turn(msg: &Message, i: usize) -> Result<Turn<'_>, GatewayError> {
    let mut parts = Vec::new();
    for (j, p) in msg.content.iter().enumerate() {
        match p {
            CanonicalPart::Text(t) if t.is_empty() => {}
            CanonicalPart::Text(t) => parts.push(json!({"text": t})),
            // Thought summaries are not needed back (the call's signature carries the state),
            // and a signature from another provider would be rejected.
            CanonicalPart::Thinking { .. } => {}
            CanonicalPart::Image { .. } => {
                return Err(cannot_express(i, j, "an image in an assistant message"))
            }
            CanonicalPart::Opaque { .. } => {
                return Err(cannot_express(i, j, "content of another API format"))
            }
        }
    }
    if let Some(r) = msg.refusal.as_deref().filter(|r| !r.is_empty()) {
        if parts.is_empty() {
            parts.push(json!({"text": r}));
        }
    }
    let mut calls = Vec::with_capacity(msg.tool_calls.len());
    for c in &msg.tool_calls {
        let key = parse_call_id(&c.id).unwrap_or_default();
        let mut call = Obj::new();
        if let Some(g) = &key.gemini_id {
            call.insert("id".into(), g.as_str().into());
        }
        call.insert("name".into(), c.name.as_str().into());
        call.insert("args".into(), arguments_to_input(&c.arguments));
        let mut part = Obj::new();
        part.insert("functionCall".into(), Value::Object(call));
        if let Some(sig) = key.signature {
            part.insert("thoughtSignature".into(), sig.into());
        }
        parts.push(Value::Object(part));
        calls.push(Call {
            id: &c.id,
            name: &c.name,
            gemini_id: key.gemini_id,
            msg: i,
        });
    }
    Ok(Turn {
        model: true,
        results: Vec::new(),
        parts,
        calls,
    })
}

/// A tool message as a `functionResponse` in a user turn, named after the call it answers in
/// the last model turn.
fn tool_turn<'m>(msg: &'m Message, i: usize, turns: &[Turn<'m>]) -> Result<Turn<'m>, GatewayError> {
    let id = msg.tool_call_id.as_deref().unwrap_or("");
    let calls = turns
        .iter()
        .rev()
        .find(|t| t.model)
        .map_or(&[][..], |t| t.calls.as_slice());
    let Some((pos, call)) = calls.iter().enumerate().find(|(_, c)| c.id == id) else {
        return Err(GatewayError::invalid_param(
            format!("messages[{i}].tool_call_id"),
            format!(
                "messages[{i}] is a tool result that does not answer a tool call of the assistant message right before it."
            ),
        ));
    };
    let text = msg.text();
    let response = if msg.is_error {
        json!({"error": text})
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({"result": text}),
        }
    };
    let mut fr = Obj::new();
    if let Some(g) = &call.gemini_id {
        fr.insert("id".into(), g.as_str().into());
    }
    fr.insert("name".into(), call.name.into());
    fr.insert("response".into(), response);
    // Images a tool returned follow the responses in the same user turn.
    let images: Vec<&CanonicalPart> = msg
        .content
        .iter()
        .filter(|p| matches!(p, CanonicalPart::Image { .. }))
        .collect();
    let mut parts = Vec::with_capacity(images.len());
    for p in images {
        if let CanonicalPart::Image { source, .. } = p {
            parts.push(image_part(source));
        }
    }
    Ok(Turn {
        model: false,
        results: vec![(pos, i, json!({"functionResponse": fr}))],
        parts,
        calls: Vec::new(),
    })
}

/// Checks that every call is answered exactly once in the next user turn, and puts the
/// responses in call order (Gemini pairs them by position and name).
fn pair_results(turns: &mut [Turn<'_>]) -> Result<(), GatewayError> {
    let shown = |id: &str| id.chars().take(64).collect::<String>();
    for k in 0..turns.len() {
        if turns[k].model {
            let calls = &turns[k].calls;
            for (n, c) in calls.iter().enumerate() {
                if calls[..n].iter().any(|d| d.id == c.id) {
                    return Err(GatewayError::invalid_param(
                        format!("messages[{}].tool_calls", c.msg),
                        format!(
                            "The tool call id '{}' is used twice in messages[{}].",
                            shown(c.id),
                            c.msg
                        ),
                    ));
                }
                let answered = turns
                    .get(k + 1)
                    .is_some_and(|next| next.results.iter().any(|(p, _, _)| *p == n));
                if !answered {
                    return Err(GatewayError::invalid_param(
                        format!("messages[{}].tool_calls", c.msg),
                        format!(
                            "The tool call '{}' in messages[{}] must be answered by a tool message before the next user or assistant message.",
                            shown(c.id),
                            c.msg
                        ),
                    ));
                }
            }
            continue;
        }
        let results = &mut turns[k].results;
        for n in 0..results.len() {
            let (pos, i, _) = &results[n];
            if results[..n].iter().any(|(p, _, _)| p == pos) {
                return Err(GatewayError::invalid_param(
                    format!("messages[{i}].tool_call_id"),
                    format!("messages[{i}] answers a tool call a second time."),
                ));
            }
        }
        results.sort_by_key(|(pos, _, _)| *pos);
    }
    Ok(())
}

/// Gemini 3 rejects the current step's model turns (those after the last user input) when
/// their first function call lacks its thought signature. A call with a foreign id (made by
/// another model, or by the client) cannot have one, so it gets Google's placeholder; a call
/// with a Weir id was not signed by Gemini and is left as it came.
fn sign_current_step(turns: &mut [Turn<'_>]) {
    let step_start = turns
        .iter()
        .rposition(|t| !t.model && !t.parts.is_empty())
        .map_or(0, |k| k + 1);
    for turn in &mut turns[step_start..] {
        if !turn.model {
            continue;
        }
        let Some(first) = turn.calls.first() else {
            continue;
        };
        if parse_call_id(first.id).is_some() {
            continue;
        }
        let part = turn
            .parts
            .iter_mut()
            .find(|p| p.get("functionCall").is_some());
        if let Some(Value::Object(p)) = part {
            p.entry("thoughtSignature")
                .or_insert_with(|| PLACEHOLDER_SIGNATURE.into());
        }
    }
}

fn encode_tool(t: &Tool) -> Value {
    let mut d = Obj::new();
    d.insert("name".into(), t.name.as_str().into());
    if let Some(desc) = t.description.as_deref().filter(|d| !d.is_empty()) {
        d.insert("description".into(), desc.into());
    }
    // Gemini rejects an OBJECT schema without properties, so a function that takes no
    // arguments has no `parameters` at all.
    if let Some(p) = &t.parameters {
        let schema = gemini_schema(p);
        let has_properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_properties {
            d.insert("parameters".into(), schema);
        }
    }
    Value::Object(d)
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::None => json!({"mode": "NONE"}),
        ToolChoice::Auto => json!({"mode": "AUTO"}),
        ToolChoice::Required => json!({"mode": "ANY"}),
        ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Schema → Gemini's OpenAPI subset
// ---------------------------------------------------------------------------------------------

/// Deepest nesting (and `$ref` chain) converted; deeper schemas become `{}` (any value).
const MAX_SCHEMA_DEPTH: usize = 32;

/// Members of Gemini's `Schema` copied as they are (python-genai `types.Schema`).
const KEPT: [&str; 14] = [
    "title",
    "description",
    "nullable",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "pattern",
    "default",
    "propertyOrdering",
];

/// A JSON Schema as the OpenAPI-3.0 subset Gemini's `parameters` and `responseSchema` take:
/// local `$ref`s (`#/$defs/…`, `#/definitions/…`) inlined, `allOf` merged, `oneOf` read as
/// `anyOf`, a `null` alternative or type turned into `nullable`, `const` into a one-value
/// `enum`, `examples` into `example`; `format` kept only where Gemini knows it, `enum` only
/// when every value is a string (other values keep the type they imply), `required` only for
/// listed properties, a `type` inferred below the root where the schema has none; every
/// other member
/// (`$schema`, `additionalProperties`, `patternProperties`, `not`, `if`, …) dropped, since
/// Gemini rejects unknown members.
pub fn gemini_schema(schema: &Value) -> Value {
    let mut cx = SchemaCx {
        root: schema,
        nodes_left: MAX_SCHEMA_NODES,
        expanding: Vec::new(),
    };
    cx.convert(schema, 0, false)
}

/// Most schema nodes one conversion produces: `$ref`s may expand a small schema into a huge
/// one (two references to the same recursive definition double at every level).
const MAX_SCHEMA_NODES: usize = 5_000;

struct SchemaCx<'s> {
    root: &'s Value,
    nodes_left: usize,
    /// The `$ref`s being expanded, outermost first: a reference to one of them is a cycle.
    expanding: Vec<&'s str>,
}

impl<'s> SchemaCx<'s> {
    /// Converts `s`, found `depth` levels below the root; `merged` when it is a `$ref` target or
    /// an `allOf` member, whose members go into the schema that names it (which then decides the
    /// type).
    fn convert(&mut self, s: &'s Value, depth: usize, merged: bool) -> Value {
        // Below the root, a schema that allows anything (`true`, `{}`) or one past the limits
        // still needs a type; text can hold any value.
        let any = || {
            if depth == 0 || merged {
                json!({})
            } else {
                json!({"type": "string"})
            }
        };
        let Value::Object(o) = s else {
            return any();
        };
        if depth > MAX_SCHEMA_DEPTH || self.nodes_left == 0 {
            return any();
        }
        self.nodes_left -= 1;
        let root = self.root;
        let mut out = Obj::new();
        // A reference first, so that the schema's own members refine it. Gemini's subset has no
        // references, so a recursive one ends, where it recurs, as an object of any shape.
        if let Some(r) = o.get("$ref").and_then(Value::as_str) {
            if self.expanding.contains(&r) {
                return json!({"type": "object"});
            }
            if let Some(target) = r.strip_prefix('#').and_then(|ptr| root.pointer(ptr)) {
                self.expanding.push(r);
                merge_into(&mut out, self.convert(target, depth + 1, true));
                self.expanding.pop();
            }
        }
        for sub in o
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            merge_into(&mut out, self.convert(sub, depth + 1, true));
        }
        for key in KEPT {
            match o.get(key) {
                // A `null` default says nothing Gemini can use, and it rejects it on typed
                // schemas.
                None | Some(Value::Null) => {}
                Some(v) => {
                    out.insert(key.into(), v.clone());
                }
            }
        }
        if !out.contains_key("example") {
            if let Some(v) = o
                .get("example")
                .or_else(|| o.get("examples").and_then(Value::as_array)?.first())
            {
                out.insert("example".into(), v.clone());
            }
        }
        match o.get("type") {
            Some(Value::String(t)) if t.eq_ignore_ascii_case("null") => {
                out.insert("nullable".into(), true.into());
            }
            Some(Value::String(t)) if is_type_name(t) => {
                out.insert("type".into(), t.as_str().into());
            }
            Some(Value::Array(types)) => {
                let mut named: Vec<&str> = Vec::new();
                for t in types.iter().filter_map(Value::as_str) {
                    if t.eq_ignore_ascii_case("null") {
                        out.insert("nullable".into(), true.into());
                    } else if is_type_name(t) && !named.contains(&t) {
                        named.push(t);
                    }
                }
                match named.as_slice() {
                    [] => {}
                    [one] => {
                        out.insert("type".into(), (*one).into());
                    }
                    many => {
                        let alts = many.iter().map(|t| json!({"type": t})).collect();
                        out.insert("anyOf".into(), Value::Array(alts));
                    }
                }
            }
            _ => {}
        }
        // Gemini's `enum` holds strings only: other values keep just the type they imply.
        let values: Option<Vec<&Value>> = match (o.get("const"), o.get("enum")) {
            (Some(c), _) => Some(vec![c]),
            (None, Some(Value::Array(values))) => Some(values.iter().collect()),
            _ => None,
        };
        if let Some(values) = values {
            let present: Vec<&Value> = values.iter().copied().filter(|v| !v.is_null()).collect();
            if values.len() != present.len() {
                out.insert("nullable".into(), true.into());
            }
            if !present.is_empty() && present.iter().all(|v| v.is_string()) {
                out.insert("enum".into(), present.into_iter().cloned().collect());
                out.entry("type").or_insert_with(|| "string".into());
            } else if let [first, rest @ ..] = present.as_slice() {
                let t = value_type(first);
                if rest.iter().all(|v| value_type(v) == t) {
                    out.entry("type").or_insert_with(|| t.into());
                }
            }
        }
        let alternatives = o
            .get("anyOf")
            .or_else(|| o.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(alts) = alternatives {
            let mut kept = Vec::with_capacity(alts.len());
            for a in alts {
                if is_null_schema(a) {
                    out.insert("nullable".into(), true.into());
                } else {
                    kept.push(self.convert(a, depth + 1, false));
                }
            }
            match kept.len() {
                0 => {}
                // `Optional[X]`: X itself, nullable.
                1 => {
                    if let Some(Value::Object(only)) = kept.pop() {
                        for (k, v) in only {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
                _ => {
                    out.insert("anyOf".into(), Value::Array(kept));
                }
            }
        }
        if let Some(Value::Object(props)) = o.get("properties") {
            let converted: Map<String, Value> = props
                .iter()
                .map(|(k, v)| (k.clone(), self.convert(v, depth + 1, false)))
                .collect();
            out.insert("properties".into(), Value::Object(converted));
        }
        match o.get("items") {
            Some(items @ Value::Object(_)) => {
                out.insert("items".into(), self.convert(items, depth + 1, false));
            }
            Some(Value::Array(tuple)) => {
                if let Some(first) = tuple.first() {
                    out.insert("items".into(), self.convert(first, depth + 1, false));
                }
            }
            _ => {}
        }
        if let Some(Value::Array(req)) = o.get("required") {
            let listed = |name: &str| {
                out.get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|p| p.contains_key(name))
            };
            let req: Vec<Value> = req
                .iter()
                .filter(|r| r.as_str().is_some_and(listed))
                .cloned()
                .collect();
            if !req.is_empty() {
                out.insert("required".into(), Value::Array(req));
            }
        }
        // Gemini requires a type on every schema that is not a union ("schema didn't specify
        // the schema type field"): one implied by the members is made explicit.
        if !out.contains_key("type") && !out.contains_key("anyOf") {
            if let Some(t) = implied_type(&out) {
                out.insert("type".into(), t.into());
            } else if depth > 0 && !merged {
                // Nothing constrains the value: text can hold any of them.
                out.insert("type".into(), "string".into());
            }
        }
        if let Some(f) = o.get("format").and_then(Value::as_str) {
            let known = match out
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(t) if t == "string" => matches!(f, "enum" | "date-time"),
                Some(t) if t == "integer" => matches!(f, "int32" | "int64"),
                Some(t) if t == "number" => matches!(f, "float" | "double"),
                _ => false,
            };
            if known {
                out.insert("format".into(), f.into());
            }
        }
        Value::Object(out)
    }
}

/// The OpenAPI type names Gemini knows (it reads them in any case).
fn is_type_name(t: &str) -> bool {
    ["string", "number", "integer", "boolean", "array", "object"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(t))
}

/// `{"type": "null"}` (or `["null"]`, or a `null` const): the alternative that makes a union
/// nullable.
fn is_null_schema(s: &Value) -> bool {
    let null = |v: &Value| v.as_str().is_some_and(|t| t.eq_ignore_ascii_case("null"));
    match s.get("type") {
        Some(Value::Array(types)) => !types.is_empty() && types.iter().all(null),
        Some(t) => null(t),
        None => s.get("const").is_some_and(Value::is_null),
    }
}

/// The schema type of a JSON value.
fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Array(_) => "array",
        Value::Object(_) | Value::Null => "object",
    }
}

/// The type a converted schema's members imply: its structure, its bounds, else its
/// `default` or `example`.
fn implied_type(out: &Obj) -> Option<&'static str> {
    let has = |keys: &[&str]| keys.iter().any(|k| out.contains_key(*k));
    if has(&["properties", "required", "minProperties", "maxProperties"]) {
        Some("object")
    } else if has(&["items", "minItems", "maxItems"]) {
        Some("array")
    } else if has(&["minLength", "maxLength", "pattern", "enum"]) {
        Some("string")
    } else if has(&["minimum", "maximum"]) {
        Some("number")
    } else {
        out.get("default")
            .or_else(|| out.get("example"))
            .filter(|v| !v.is_null())
            .map(value_type)
    }
}

/// Merges a converted sub-schema (a `$ref` target or an `allOf` member) into `out`:
/// properties and `required` are united, other members already set are kept.
fn merge_into(out: &mut Obj, sub: Value) {
    let Value::Object(sub) = sub else {
        return;
    };
    for (k, v) in sub {
        match (k.as_str(), out.get_mut(&k), v) {
            ("properties", Some(Value::Object(have)), Value::Object(more)) => {
                for (pk, pv) in more {
                    have.entry(pk).or_insert(pv);
                }
            }
            ("required", Some(Value::Array(have)), Value::Array(more)) => {
                for r in more {
                    if !have.contains(&r) {
                        have.push(r);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, v) => {
                out.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Passthrough, ToolCall, Wire};
    use crate::error::ErrorKind;
    use crate::wire::openai_chat;

    fn openai(v: Value) -> CanonicalRequest {
        openai_chat::decode_request(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn user(t: &str) -> Message {
        Message::new(Role::User, vec![CanonicalPart::Text(t.into())])
    }

    fn assistant(t: &str, calls: &[(&str, &str)]) -> Message {
        let mut m = Message::new(Role::Assistant, vec![CanonicalPart::Text(t.into())]);
        m.tool_calls = calls
            .iter()
            .map(|(id, name)| ToolCall {
                id: (*id).into(),
                name: (*name).into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            })
            .collect();
        m
    }

    fn tool(id: &str, t: &str) -> Message {
        let mut m = Message::new(Role::Tool, vec![CanonicalPart::Text(t.into())]);
        m.tool_call_id = Some(id.into());
        m
    }

    fn request(messages: Vec<Message>) -> CanonicalRequest {
        CanonicalRequest::new("m".into(), messages)
    }

    const SIG: &str = "CiQBjz1rX0p5bWFnaWNzaWduYXR1cmVieXRlcw==";

    fn rich_openai_body() -> Value {
        let signed = call_id("resp1", 0, None, Some(SIG));
        json!({
            "model": "gemini/gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Compare these two cities."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/lyon.JPG?size=2"}}
                ]},
                {"role": "user", "content": "Paris first, then Lyon."},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": signed, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_resp1_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_resp1_1", "content": "{\"time\": \"10:00\"}"},
                {"role": "tool", "tool_call_id": signed, "content": "18C"},
                {"role": "user", "content": "Which is warmer?"},
                {"role": "assistant", "content": "Lyon."},
                {"role": "user", "content": "Log it."}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                    "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                        "properties": {"city": {"type": "string", "format": "uri"}, "unit": {"enum": ["c", "f"]}},
                        "required": ["city", "missing"], "additionalProperties": false}}},
                {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
                {"type": "function", "function": {"name": "log_note"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "log_note"}},
            "parallel_tool_calls": false,
            "stop": ["END"],
            "temperature": 1.6,
            "top_p": 0.9,
            "max_tokens": 2048,
            "reasoning_effort": "high",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}}},
            "user": "user-42",
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    }

    #[test]
    fn rich_conversation_encodes() {
        let v = encode_request(&openai(rich_openai_body())).unwrap();
        insta::assert_json_snapshot!("gemini_request_from_openai", v);
        // The signature is back on the very part that carried it, the responses are in call
        // order and named after their calls.
        let contents = v["contents"].as_array().unwrap();
        assert_eq!(contents[1]["parts"][0]["thoughtSignature"], SIG);
        assert!(contents[1]["parts"][1].get("thoughtSignature").is_none());
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"],
            json!({"name": "get_weather", "response": {"result": "18C"}})
        );
        assert_eq!(
            contents[2]["parts"][1]["functionResponse"],
            json!({"name": "get_time", "response": {"time": "10:00"}})
        );
    }

    #[test]
    fn anthropic_conversation_keeps_ids_and_drops_thinking() {
        let body = json!({"model": "g", "max_tokens": 100, "system": [{"type": "text", "text": "Sys"}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me check.", "signature": "EqQBclaude"},
                {"type": "tool_use", "id": call_id("r9", 0, Some("fc-1"), Some(SIG)), "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call_id("r9", 0, Some("fc-1"), Some(SIG)), "content": "bad city", "is_error": true},
                {"type": "text", "text": "and tomorrow?"}]}
        ]});
        let req =
            crate::wire::anthropic::decode_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        let v = encode_request(&req).unwrap();
        assert_eq!(v["systemInstruction"], json!({"parts": [{"text": "Sys"}]}));
        assert_eq!(
            v["contents"],
            json!([
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "fc-1", "name": "get_weather", "response": {"error": "bad city"}}},
                    {"text": "and tomorrow?"}]}
            ])
        );
        assert_eq!(v["generationConfig"], json!({"maxOutputTokens": 100}));
    }

    #[test]
    fn foreign_calls_of_the_current_step_get_the_placeholder() {
        let req = request(vec![
            user("hi"),
            assistant("", &[("toolu_1", "a")]),
            tool("toolu_1", "x"),
            user("again"),
            assistant("", &[("call_abc", "a"), ("call_def", "b")]),
            tool("call_abc", "1"),
            tool("call_def", "2"),
            assistant("", &[(&call_id("r", 0, None, None), "a")]),
            tool(&call_id("r", 0, None, None), "3"),
        ]);
        let v = encode_request(&req).unwrap();
        let c = &v["contents"];
        assert_eq!(c.as_array().unwrap().len(), 7);
        // Before the last user input ("again", merged after the results): left alone.
        assert!(c[1]["parts"][0].get("thoughtSignature").is_none());
        assert_eq!(c[2]["parts"][1], json!({"text": "again"}));
        // The current step: the first call of a foreign turn only.
        assert_eq!(c[3]["parts"][0]["thoughtSignature"], PLACEHOLDER_SIGNATURE);
        assert!(c[3]["parts"][1].get("thoughtSignature").is_none());
        // A Weir id that Gemini did not sign stays unsigned.
        assert!(c[5]["parts"][0].get("thoughtSignature").is_none());
    }

    #[test]
    fn tool_pairing_is_checked() {
        let orphan = request(vec![user("hi"), tool("call_9", "x")]);
        let err = encode_request(&orphan).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));

        let unanswered = request(vec![
            user("hi"),
            assistant("", &[("a", "f"), ("b", "f")]),
            tool("a", "x"),
            user("next"),
        ]);
        let err = encode_request(&unanswered).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls"));
        assert!(err.message.contains("'b'"), "{}", err.message);

        let twice = request(vec![
            user("hi"),
            assistant("", &[("a", "f")]),
            tool("a", "x"),
            tool("a", "y"),
        ]);
        let err = encode_request(&twice).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[3].tool_call_id"));
        let same_id = request(vec![user("hi"), assistant("", &[("a", "f"), ("a", "g")])]);
        let err = encode_request(&same_id).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls"));

        // A user text between the results joins the same user turn, after them.
        let between = request(vec![
            user("hi"),
            assistant("", &[("a", "f"), ("b", "g")]),
            tool("b", "2"),
            user("note"),
            tool("a", "1"),
        ]);
        let v = encode_request(&between).unwrap();
        let parts = &v["contents"][2]["parts"];
        assert_eq!(parts[0]["functionResponse"]["name"], "f");
        assert_eq!(parts[1]["functionResponse"]["name"], "g");
        assert_eq!(parts[2], json!({"text": "note"}));
    }

    #[test]
    fn turns_merge_and_empty_text_is_dropped() {
        let req = request(vec![
            Message::new(Role::System, vec![CanonicalPart::Text(String::new())]),
            assistant("Hello!", &[]),
            user("a"),
            user(""),
            user("b"),
            assistant("", &[]),
        ]);
        let v = encode_request(&req).unwrap();
        assert!(v.get("systemInstruction").is_none());
        assert!(v.get("generationConfig").is_none());
        assert_eq!(
            v["contents"],
            json!([
                {"role": "user", "parts": [{"text": "."}]},
                {"role": "model", "parts": [{"text": "Hello!"}]},
                {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}
            ])
        );
        let err = encode_request(&request(vec![user("")])).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
    }

    #[test]
    fn unanswerable_requests_are_rejected() {
        let mut req = request(vec![user("hi")]);
        req.n = Some(2);
        let err = encode_request(&req).unwrap_err();
        assert_eq!(
            (err.kind, err.param.as_deref()),
            (ErrorKind::InvalidRequest, Some("n"))
        );
        req.n = Some(1);
        assert_eq!(
            encode_request(&req).unwrap()["generationConfig"],
            json!({"candidateCount": 1})
        );
        req.n = None;
        req.stop = (0..6).map(|i| i.to_string()).collect();
        assert_eq!(
            encode_request(&req).unwrap_err().param.as_deref(),
            Some("stop")
        );

        let opaque = request(vec![Message::new(
            Role::User,
            vec![CanonicalPart::Opaque {
                format: Wire::OpenAi,
                value: json!({"type": "input_audio"}),
            }],
        )]);
        let err = encode_request(&opaque).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0]"));
        // Passthrough of another format is never sent.
        let mut req = request(vec![user("hi")]);
        req.passthrough = Passthrough {
            format: Some(Wire::OpenAi),
            fields: json!({"store": true}).as_object().cloned().unwrap(),
        };
        assert_eq!(
            encode_request(&req).unwrap(),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
    }

    #[test]
    fn thinking_follows_the_effort() {
        let mut req = request(vec![user("hi")]);
        for (effort, max, want) in [
            (ReasoningEffort::None, None, json!({"thinkingBudget": 0})),
            (
                ReasoningEffort::Low,
                None,
                json!({"thinkingBudget": 2048, "includeThoughts": true}),
            ),
            (
                ReasoningEffort::High,
                Some(1000),
                json!({"thinkingBudget": 999, "includeThoughts": true}),
            ),
            (
                ReasoningEffort::Medium,
                Some(1),
                json!({"thinkingBudget": 0}),
            ),
        ] {
            req.reasoning_effort = Some(effort);
            req.max_output_tokens = max;
            let v = encode_request(&req).unwrap();
            assert_eq!(v["generationConfig"]["thinkingConfig"], want, "{effort:?}");
        }
    }

    #[test]
    fn tool_choices_and_formats() {
        let mut req = request(vec![user("hi")]);
        req.tool_choice = Some(ToolChoice::Required);
        // No tools, no toolConfig.
        assert!(encode_request(&req).unwrap().get("toolConfig").is_none());
        req.tools = vec![Tool {
            name: "f".into(),
            description: None,
            parameters: None,
            strict: Some(true),
        }];
        for (choice, want) in [
            (ToolChoice::None, json!({"mode": "NONE"})),
            (ToolChoice::Auto, json!({"mode": "AUTO"})),
            (ToolChoice::Required, json!({"mode": "ANY"})),
            (
                ToolChoice::Function("f".into()),
                json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
            ),
        ] {
            req.tool_choice = Some(choice);
            let v = encode_request(&req).unwrap();
            assert_eq!(v["toolConfig"]["functionCallingConfig"], want);
            assert_eq!(
                v["tools"],
                json!([{"functionDeclarations": [{"name": "f"}]}])
            );
        }
        req.response_format = Some(ResponseFormat::JsonObject);
        req.seed = Some(i64::MAX);
        req.presence_penalty = Some(0.0);
        let g = &encode_request(&req).unwrap()["generationConfig"];
        assert_eq!(
            g,
            &json!({"seed": i64::MAX.rem_euclid(1 << 31), "responseMimeType": "application/json"})
        );
    }

    #[test]
    fn request_paths() {
        assert_eq!(
            request_path("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            request_path("models/gemini-2.5-flash", true),
            "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            request_path("tunedModels/mine-1", false),
            "/tunedModels/mine-1:generateContent"
        );
    }

    #[test]
    fn schemas_reduce_to_the_openapi_subset() {
        // A Pydantic-style schema: $defs, Optional, Literal, allOf, tuples, odd formats.
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Order",
            "type": "object",
            "additionalProperties": false,
            "$defs": {
                "Item": {"type": "object", "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]+$"},
                    "qty": {"type": "integer", "format": "int32", "exclusiveMinimum": 0}
                }, "required": ["sku"]},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
            },
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
                "kind": {"const": "order"},
                "size": {"enum": ["s", "m", null]},
                "level": {"enum": [1, 2, 3], "type": "integer"},
                "when": {"type": "string", "format": "date-time"},
                "site": {"type": "string", "format": "uri"},
                "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
                "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                                   {"properties": {"b": {"type": "number"}}, "required": ["b"]}]},
                "multi": {"type": ["string", "integer", "null"]},
                "chain": {"$ref": "#/$defs/Node"},
                "free": {"type": "object", "patternProperties": {".*": {"type": "string"}}},
                "ex": {"type": "string", "examples": ["x", "y"]}
            },
            "required": ["items", "ghost"]
        });
        insta::assert_json_snapshot!("gemini_schema_reduced", gemini_schema(&schema));
        // Non-object schemas and junk are harmless.
        assert_eq!(gemini_schema(&json!(true)), json!({}));
        assert_eq!(
            gemini_schema(&json!({"$ref": "#/nowhere", "type": "string"})),
            json!({"type": "string"})
        );
        // A self-reference ends where it recurs; references that fan out stay bounded.
        assert_eq!(
            gemini_schema(&json!({"$ref": "#"})),
            json!({"type": "object"})
        );
        let fan = json!({"$defs": {
            "A": {"properties": {"x": {"$ref": "#/$defs/B"}, "y": {"$ref": "#/$defs/B"}}},
            "B": {"properties": {"x": {"$ref": "#/$defs/C"}, "y": {"$ref": "#/$defs/C"}}},
            "C": {"properties": {"x": {"$ref": "#/$defs/D"}, "y": {"$ref": "#/$defs/D"}}},
            "D": {"properties": {"x": {"$ref": "#/$defs/A"}, "y": {"$ref": "#/$defs/A"}}}},
            "$ref": "#/$defs/A"});
        assert!(gemini_schema(&fan).to_string().len() < 2000);
        // Deep chains are cut, still typed.
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"type": "array", "items": deep});
        }
        let mut v = &gemini_schema(&deep);
        let mut levels = 0;
        while let Some(items) = v.get("items") {
            assert_eq!(v["type"], "array");
            v = items;
            levels += 1;
        }
        assert!(levels <= MAX_SCHEMA_DEPTH + 1, "{levels}");
        assert_eq!(v, &json!({"type": "string"}));
        let mut wide = json!({"type": "string"});
        for _ in 0..13 {
            wide = json!({"type": "object", "properties": {"a": wide, "b": wide}});
        }
        assert!(gemini_schema(&wide).to_string().len() < 500_000);
    }

    #[test]
    fn every_schema_below_the_root_gets_a_type() {
        let schema = json!({"type": "object", "properties": {
            "any": {},
            "yes": true,
            "described": {"description": "anything"},
            "bounded": {"minimum": 0},
            "text": {"maxLength": 3},
            "list": {"minItems": 1},
            "obj": {"required": ["x"], "properties": {"x": {"type": "boolean"}}},
            "by_default": {"default": 1.5},
            "ints": {"enum": [1, 2]},
            "mixed": {"enum": [1, "a"]},
            "flag": {"const": true},
            "nothing": {"type": "null"},
            "bad_type": {"type": "any", "maxLength": 2},
            "opt": {"anyOf": [{"$ref": "#/$defs/D"}, {"type": "null"}]},
            "via_ref": {"$ref": "#/$defs/D", "description": "refined"},
            "via_all_of": {"allOf": [{"description": "a"}, {"properties": {"y": {}}}]}
        }, "$defs": {"D": {"description": "a def"}}});
        let v = gemini_schema(&schema);
        let p = &v["properties"];
        for (name, want) in [
            ("any", json!({"type": "string"})),
            ("yes", json!({"type": "string"})),
            (
                "described",
                json!({"description": "anything", "type": "string"}),
            ),
            ("bounded", json!({"minimum": 0, "type": "number"})),
            ("text", json!({"maxLength": 3, "type": "string"})),
            ("list", json!({"minItems": 1, "type": "array"})),
            ("by_default", json!({"default": 1.5, "type": "number"})),
            ("ints", json!({"type": "integer"})),
            ("mixed", json!({"type": "string"})),
            ("flag", json!({"type": "boolean"})),
            ("nothing", json!({"nullable": true, "type": "string"})),
            ("bad_type", json!({"maxLength": 2, "type": "string"})),
            (
                "opt",
                json!({"nullable": true, "description": "a def", "type": "string"}),
            ),
            (
                "via_ref",
                json!({"description": "refined", "type": "string"}),
            ),
        ] {
            assert_eq!(p[name], want, "{name}");
        }
        assert_eq!(p["obj"]["type"], "object");
        assert_eq!(p["obj"]["required"], json!(["x"]));
        assert_eq!(
            p["via_all_of"],
            json!({"description": "a", "properties": {"y": {"type": "string"}}, "type": "object"})
        );
        // The root may stay untyped: a tool without parameters.
        assert_eq!(gemini_schema(&json!({})), json!({}));
        assert_eq!(
            gemini_schema(&json!({"description": "d"})),
            json!({"description": "d"})
        );
    }
}
