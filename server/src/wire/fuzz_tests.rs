//! Property tests over the client-facing decoders: any bytes, and any JSON that looks roughly
//! like a request, decode or fail with a 400 in the caller's envelope; they never panic and
//! never produce another error class.

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
