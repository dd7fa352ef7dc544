//! Cohere v2 Embed (`POST {base}/v2/embed`) for `POST /v1/embeddings` on Cohere channels.
//!
//! - Cohere embeds text only: token-array input is a 400 naming `input`.
//! - `input_type` is `search_document` (what an OpenAI-style client embedding a corpus means)
//!   unless the client sends one of Cohere's `input_type`s as an extra top-level member of the
//!   OpenAI request (`"input_type": "search_query"`); other extra members are dropped.
//! - `dimensions` becomes `output_dimension`; only `float` vectors are asked for (base64 is
//!   rendered by Weir from them, for every upstream alike).
//! - Usage is `meta.billed_units.input_tokens`, falling back to `meta.tokens.input_tokens`;
//!   neither leaves it at zero, for the caller to estimate.
//! - The answer must carry one vector per input, else it is a retryable upstream error.

use serde_json::{json, Value};

use crate::{
    canonical::{EmbeddingRequest, EmbeddingResponse, Usage},
    error::GatewayError,
    wire::{
        json::{range_error, type_error},
        openai_embeddings::{decode_vectors, texts_only},
    },
};

/// Cohere's `input_type`s for text.
pub const EMBED_INPUT_TYPES: &[&str] = &[
    "search_document",
    "search_query",
    "classification",
    "clustering",
];

/// The v2 embed body for `req` on `upstream_model`.
pub fn encode_embed_request(
    req: &EmbeddingRequest,
    upstream_model: &str,
) -> Result<Value, GatewayError> {
    let texts = texts_only(&req.input)?;
    let input_type = match req.passthrough.fields.get("input_type") {
        None | Some(Value::Null) => "search_document",
        Some(Value::String(s)) if EMBED_INPUT_TYPES.contains(&s.as_str()) => s.as_str(),
        Some(Value::String(_)) => {
            return Err(range_error(
                "input_type",
                &format!("must be one of {}", EMBED_INPUT_TYPES.join(", ")),
            ))
        }
        Some(_) => return Err(type_error("input_type", "a string")),
    };
    let mut body = json!({
        "model": upstream_model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    if let Some(d) = req.dimensions {
        body["output_dimension"] = d.into();
    }
    Ok(body)
}

/// Decodes a v2 embed answer for `inputs` inputs (`model` left empty for the caller).
pub fn decode_embed_response(
    body: &[u8],
    inputs: usize,
) -> Result<EmbeddingResponse, GatewayError> {
    let (v, vectors) = decode_vectors(body, "/embeddings/float", None, inputs)?;
    let tokens = |key: &str| {
        v.pointer(&format!("/meta/{key}/input_tokens"))
            .and_then(Value::as_f64)
            .filter(|t| *t >= 0.0)
            .map(|t| t as u64)
    };
    let input = tokens("billed_units")
        .or_else(|| tokens("tokens"))
        .unwrap_or(0);
    Ok(EmbeddingResponse {
        model: String::new(),
        vectors,
        usage: Usage {
            input,
            ..Usage::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        error::ErrorKind,
        wire::openai_embeddings::tests::{full_request, request as req},
    };

    #[test]
    fn cohere_embed_request() {
        insta::assert_json_snapshot!(encode_embed_request(&full_request(), "embed-v4.0").unwrap());
        let r = req(json!({"model": "c", "input": "a", "input_type": "search_query"}));
        let body = encode_embed_request(&r, "m").unwrap();
        assert_eq!(body["input_type"], "search_query");
        assert_eq!(body["texts"], json!(["a"]));
        assert!(body.get("output_dimension").is_none());
        for bad in [
            json!({"model": "c", "input": "a", "input_type": "image"}),
            json!({"model": "c", "input": "a", "input_type": 1}),
            json!({"model": "c", "input": [1, 2]}),
        ] {
            let e = encode_embed_request(&req(bad.clone()), "m").unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn cohere_embed_response() {
        let body = include_bytes!("fixtures/embed_response.json");
        let r = decode_embed_response(body, 2).unwrap();
        assert_eq!(r.vectors, vec![vec![0.5, -0.25, 0.0], vec![1.0, 0.0, 0.0]]);
        assert_eq!(r.usage.input, 3);
        let e = decode_embed_response(body, 3).unwrap_err();
        assert!(e.retryable && e.kind == ErrorKind::BadGateway, "{e:?}");
        let tokens_only = br#"{"embeddings":{"float":[[1]]},"meta":{"tokens":{"input_tokens":7}}}"#;
        assert_eq!(
            decode_embed_response(tokens_only, 1).unwrap().usage.input,
            7
        );
        let none = br#"{"embeddings":{"float":[[1]]}}"#;
        assert_eq!(decode_embed_response(none, 1).unwrap().usage.input, 0);
        for bad in [
            &b"nope"[..],
            br#"{"embeddings":{"int8":[[1]]}}"#,
            br#"{"embeddings":{"float":[["x"]]}}"#,
            br#"{"embeddings":{"float":[1]}}"#,
        ] {
            let e = decode_embed_response(bad, 1).unwrap_err();
            assert!(e.retryable && e.kind == ErrorKind::BadGateway);
        }
    }
}
