//! Property tests over the decoders: any bytes, and any JSON that looks roughly like a request,
//! decode or fail with a 400 in the caller's envelope; any upstream answer or stream event
//! decodes or fails as a bad gateway. They never panic and never produce another error class.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::error::ErrorKind;

/// Arbitrary JSON values, a few levels deep, with awkward numbers and strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("tool"),
            Just("system"),
            Just("text"),
            Just("image_url"),
            Just("function"),
            Just("message"),
            Just("function_call"),
            Just("function_call_output"),
            Just("reasoning"),
            Just("input_text"),
            Just("input_image"),
            Just("input_file")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("tools".to_owned()),
                    Just("tool_calls".to_owned()),
                    Just("max_tokens".to_owned()),
                    Just("temperature".to_owned()),
                    Just("stop".to_owned()),
                    Just("input".to_owned()),
                    Just("type".to_owned()),
                    Just("function".to_owned()),
                    Just("tool_choice".to_owned()),
                    Just("stream".to_owned()),
                    Just("n".to_owned()),
                    Just("call_id".to_owned()),
                    Just("output".to_owned()),
                    Just("text".to_owned()),
                    Just("format".to_owned()),
                    ".{0,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Request-shaped objects whose fields are arbitrary.
fn requestish() -> impl Strategy<Value = Value> {
    (any_json(), any_json(), any_json(), any_json()).prop_map(|(messages, max_tokens, tools, extra)| {
        json!({"model": "m", "messages": messages, "max_tokens": max_tokens, "tools": tools, "extra": extra})
    })
}

fn only_400<T>(r: Result<T, crate::error::GatewayError>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert_eq!(e.kind, ErrorKind::InvalidRequest, "{}", e.message);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn openai_chat_decoder_never_panics(v in prop_oneof![any_json(), requestish()]) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        only_400(super::openai_chat::decode_request(&bytes))?;
    }

    #[test]
    fn anthropic_decoder_never_panics(v in prop_oneof![any_json(), requestish()]) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        only_400(super::anthropic::decode_request(&bytes))?;
    }

    #[test]
    fn responses_decoder_never_panics(
        input in any_json(),
        tools in any_json(),
        extra in any_json(),
        history in prop::collection::vec(any_json(), 0..3),
    ) {
        let v = json!({"model": "m", "input": input, "tools": tools, "text": extra.clone(),
            "tool_choice": extra.clone(), "reasoning": extra});
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        only_400(super::openai_responses::parse_request(&bytes)
            .and_then(|r| r.into_canonical(history)))?;
    }

    #[test]
    fn embeddings_decoder_never_panics(v in any_json(), input in any_json()) {
        let bytes = serde_json::to_vec(&json!({"model": "m", "input": input, "junk": v})).unwrap_or_default();
        only_400(super::openai_embeddings::decode_request(&bytes))?;
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        only_400(super::openai_chat::decode_request(&bytes))?;
        only_400(super::openai_embeddings::decode_request(&bytes))?;
        only_400(super::anthropic::decode_request(&bytes))?;
        only_400(super::decode_request(super::Wire::Responses, &bytes))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream decoders: Cohere answers and stream events
// ---------------------------------------------------------------------------------------------

const COHERE_EVENTS: [&str; 13] = [
    "message-start",
    "content-start",
    "content-delta",
    "content-end",
    "tool-plan-delta",
    "tool-call-start",
    "tool-call-delta",
    "tool-call-end",
    "citation-start",
    "citation-end",
    "message-end",
    "debug",
    "",
];

/// Arbitrary JSON, a few levels deep, whose strings are often one of `values` (else short and
/// arbitrary) and whose members are mostly named from `keys`: close enough to an upstream's
/// documents to reach deep into its decoder.
fn json_from(
    values: Vec<&'static str>,
    keys: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::from),
        prop::sample::select(values).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    4 => prop::sample::select(keys).prop_map(str::to_owned),
                    1 => ".{0,4}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON built from Cohere's member names and values.
fn cohere_json() -> impl Strategy<Value = Value> {
    let words = [
        "text",
        "thinking",
        "function",
        "COMPLETE",
        "MAX_TOKENS",
        "TOOL_CALL",
        "ERROR",
        "TIMEOUT",
        "{\"a\":",
    ];
    json_from(
        [&words[..], &COHERE_EVENTS[..]].concat(),
        &[
            "type",
            "id",
            "index",
            "delta",
            "message",
            "content",
            "text",
            "thinking",
            "tool_plan",
            "tool_calls",
            "function",
            "name",
            "arguments",
            "finish_reason",
            "error",
            "usage",
            "tokens",
            "billed_units",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
        ],
    )
}

/// Event-shaped objects: a known type, a small index, and arbitrary deltas.
fn cohere_event() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(COHERE_EVENTS.to_vec()),
        prop_oneof![
            Just(json!(0)),
            Just(json!(1)),
            Just(Value::Null),
            cohere_json()
        ],
        cohere_json(),
        cohere_json(),
    )
        .prop_map(|(ty, index, message, rest)| {
            json!({"type": ty, "index": index, "delta": {"message": message,
                "finish_reason": rest.clone(), "usage": rest.clone(), "error": rest}})
        })
}

fn only_bad_gateway<T>(r: Result<T, crate::error::GatewayError>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(
            matches!(e.kind, ErrorKind::BadGateway | ErrorKind::Timeout),
            "{:?}: {}",
            e.kind,
            e.message
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn cohere_response_decoder_never_panics(
        v in prop_oneof![cohere_json(), cohere_json().prop_map(|m| json!({"id": "x",
            "finish_reason": "COMPLETE", "message": m.clone(), "usage": m}))],
    ) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        only_bad_gateway(super::cohere::decode_response(&bytes))?;
        prop_assert!(super::cohere::response_usage(&bytes).is_ok());
    }

    /// Any Cohere embed answer decodes to one vector per input or fails as a retryable bad
    /// gateway.
    #[test]
    fn cohere_embed_decoder_never_panics(
        v in prop_oneof![cohere_json(), cohere_json().prop_map(|m| json!({"id": "x",
            "embeddings": {"float": m.clone()}, "meta": {"billed_units": m}}))],
        inputs in 0usize..4,
    ) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        match super::cohere::decode_embed_response(&bytes, inputs) {
            Ok(r) => prop_assert_eq!(r.vectors.len(), inputs),
            Err(e) => prop_assert!(e.retryable && e.kind == ErrorKind::BadGateway, "{:?}", e),
        }
    }

    /// Any sequence of events decodes or fails as a bad gateway, and the tool calls it reports
    /// are well formed: numbered from 0 in order, each argument fragment and end for a call
    /// that started and has not ended.
    #[test]
    fn cohere_stream_decoder_never_panics(
        events in prop::collection::vec(
            (prop::sample::select(COHERE_EVENTS.to_vec()), prop_oneof![cohere_event(), cohere_json()]),
            0..10,
        ),
        raw in ".{0,40}",
    ) {
        use crate::canonical::StreamEvent;
        let mut d = super::cohere::StreamDecoder::default();
        let mut out = Vec::new();
        for (name, v) in &events {
            only_bad_gateway(d.decode(name, &v.to_string(), &mut out))?;
        }
        only_bad_gateway(d.decode("", &raw, &mut out))?;
        let (mut next, mut open) = (0u32, Vec::new());
        for e in &out {
            match e {
                StreamEvent::ToolCallStart { index, .. } => {
                    prop_assert_eq!(*index, next);
                    next += 1;
                    open.push(*index);
                }
                StreamEvent::ToolArgsDelta { index, .. } => prop_assert!(open.contains(index)),
                StreamEvent::ToolCallEnd { index } => {
                    prop_assert!(open.contains(index));
                    open.retain(|i| i != index);
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream decoders: Gemini answers and stream events, and the schema reduction
// ---------------------------------------------------------------------------------------------

/// Arbitrary JSON built from Gemini's member names and values.
fn gemini_json() -> impl Strategy<Value = Value> {
    json_from(
        vec![
            "STOP",
            "MAX_TOKENS",
            "SAFETY",
            "MALFORMED_FUNCTION_CALL",
            "OTHER",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE",
            "model",
            "CiQBjz1rX2E=",
            "skip_thought_signature_validator",
        ],
        &[
            "candidates",
            "content",
            "parts",
            "text",
            "thought",
            "thoughtSignature",
            "functionCall",
            "name",
            "args",
            "id",
            "finishReason",
            "index",
            "promptFeedback",
            "blockReason",
            "usageMetadata",
            "promptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
            "cachedContentTokenCount",
            "responseId",
            "modelVersion",
            "error",
            "status",
            "message",
        ],
    )
}

/// Answer-shaped objects: one candidate with arbitrary parts, finish and usage.
fn gemini_answer() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(gemini_json(), 0..4),
        gemini_json(),
        gemini_json(),
        gemini_json(),
    )
        .prop_map(|(parts, finish, usage, id)| {
            json!({"candidates": [{"content": {"role": "model", "parts": parts},
                "finishReason": finish, "index": 0}], "usageMetadata": usage, "responseId": id})
        })
}

/// Arbitrary JSON built from JSON Schema's member names, with local references.
fn schema_json() -> impl Strategy<Value = Value> {
    json_from(
        vec![
            "object",
            "array",
            "string",
            "integer",
            "null",
            "#",
            "#/$defs/a",
            "#/$defs/b",
            "#/properties/x",
            "date-time",
        ],
        &[
            "type",
            "properties",
            "items",
            "required",
            "$ref",
            "$defs",
            "a",
            "b",
            "x",
            "anyOf",
            "oneOf",
            "allOf",
            "enum",
            "const",
            "format",
            "default",
            "nullable",
        ],
    )
}

/// Every schema below the root of a reduced schema has a type or is a union.
fn typed_below_root(v: &Value, depth: usize) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    if depth > 0 && !o.contains_key("type") && !o.contains_key("anyOf") {
        return false;
    }
    let props = o
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values());
    let alts = o
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    props
        .chain(alts)
        .chain(o.get("items"))
        .all(|s| typed_below_root(s, depth + 1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn gemini_response_decoder_never_panics(v in prop_oneof![gemini_json(), gemini_answer()]) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        only_bad_gateway(super::gemini::decode_response(&bytes))?;
        let _ = super::gemini::response_usage(&bytes);
        let _ = super::gemini::error_status(&bytes);
        let _ = super::gemini::retry_delay(&bytes);
    }

    /// Any Gemini embed answer decodes to one vector per input or fails as a retryable bad
    /// gateway.
    #[test]
    fn gemini_embed_decoder_never_panics(
        v in prop_oneof![gemini_json(), gemini_json().prop_map(|m| json!({
            "embeddings": [{"values": m.clone()}, m]}))],
        inputs in 0usize..4,
    ) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        match super::gemini::decode_embed_response(&bytes, inputs) {
            Ok(r) => prop_assert_eq!(r.vectors.len(), inputs),
            Err(e) => prop_assert!(e.retryable && e.kind == ErrorKind::BadGateway, "{:?}", e),
        }
    }

    /// Any sequence of events decodes or fails as a bad gateway; the tool calls it reports are
    /// numbered from 0 in order, each whole (start, arguments, end) and with an id that
    /// unpacks, and at most one finish is reported.
    #[test]
    fn gemini_stream_decoder_never_panics(
        events in prop::collection::vec(prop_oneof![gemini_answer(), gemini_json()], 0..8),
        raw in ".{0,40}",
    ) {
        use crate::canonical::StreamEvent;
        let mut d = super::gemini::StreamDecoder::default();
        let mut out = Vec::new();
        for v in &events {
            only_bad_gateway(d.decode(&v.to_string(), &mut out))?;
        }
        only_bad_gateway(d.decode(&raw, &mut out))?;
        let mut next = 0u32;
        for (k, e) in out.iter().enumerate() {
            if let StreamEvent::ToolCallStart { index, id, .. } = e {
                prop_assert_eq!(*index, next);
                next += 1;
                prop_assert!(super::gemini::parse_call_id(id).is_some(), "{}", id);
                let whole = matches!(out.get(k + 1),
                    Some(StreamEvent::ToolArgsDelta { index: i, .. }) if i == index)
                    && matches!(out.get(k + 2), Some(StreamEvent::ToolCallEnd { index: i }) if i == index);
                prop_assert!(whole, "{:?}", out);
            }
        }
        let finishes = out.iter().filter(|e| matches!(e, StreamEvent::Finish(_))).count();
        prop_assert!(finishes <= 1);
    }

    /// Any schema, references and cycles included, reduces without panicking to a bounded
    /// schema whose every member below the root is typed.
    #[test]
    fn gemini_schema_reduction_is_total(v in schema_json()) {
        let s = super::gemini::gemini_schema(&v);
        prop_assert!(typed_below_root(&s, 0), "{}", s);
        prop_assert!(s.to_string().len() < 2_000_000);
    }

    /// A request any OpenAI chat client could send encodes for Gemini or is a 400.
    #[test]
    fn gemini_encoder_never_panics(v in requestish(), tools in schema_json()) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        if let Ok(req) = super::openai_chat::decode_request(&bytes) {
            only_400(super::gemini::encode_request(&req))?;
        }
        let with_tools = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": tools}}]});
        if let Ok(req) = super::openai_chat::decode_request(&serde_json::to_vec(&with_tools).unwrap()) {
            only_400(super::gemini::encode_request(&req))?;
        }
    }
}
