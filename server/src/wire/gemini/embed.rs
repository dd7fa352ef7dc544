//! Gemini `batchEmbedContents` (`POST {base}/models/{model}:batchEmbedContents`) for
//! `POST /v1/embeddings` on Gemini channels: one request per input, in input order.
//!
//! - Gemini embeds text only: token-array input is a 400 naming `input`.
//! - `dimensions` becomes each request's `outputDimensionality`; extra OpenAI members are
//!   dropped.
//! - Gemini reports no token counts, so the response's usage is zero and the caller meters
//!   its own estimate.
//! - The answer must carry one vector per input, else it is a retryable upstream error.

use serde_json::{json, Value};

use crate::{
    canonical::{EmbeddingRequest, EmbeddingResponse, Usage},
    error::GatewayError,
    wire::openai_embeddings::{decode_vectors, texts_only},
};

/// The model's resource name: `models/{model}`, a configured `models/` or `tunedModels/`
/// prefix kept.
pub(super) fn resource(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

/// `/models/{model}:batchEmbedContents`, below the channel's base URL.
pub fn embed_path(model: &str) -> String {
    format!("/{}:batchEmbedContents", resource(model))
}

/// The `batchEmbedContents` body for `req` on `upstream_model`.
pub fn encode_embed_request(
    req: &EmbeddingRequest,
    upstream_model: &str,
) -> Result<Value, GatewayError> {
    let texts = texts_only(&req.input)?;
    let model = resource(upstream_model);
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if let Some(d) = req.dimensions {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// Decodes a `batchEmbedContents` answer for `inputs` inputs (`model` left empty, usage zero).
pub fn decode_embed_response(
    body: &[u8],
    inputs: usize,
) -> Result<EmbeddingResponse, GatewayError> {
    let (_, vectors) = decode_vectors(body, "/embeddings", Some("values"), inputs)?;
    Ok(EmbeddingResponse {
        model: String::new(),
        vectors,
        usage: Usage::default(),
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
    fn gemini_embed_request() {
        let r = full_request();
        insta::assert_json_snapshot!(encode_embed_request(&r, "gemini-embedding-001").unwrap());
        assert_eq!(
            embed_path("gemini-embedding-001"),
            "/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(
            embed_path("tunedModels/x"),
            "/tunedModels/x:batchEmbedContents"
        );
        let body =
            encode_embed_request(&req(json!({"model": "g", "input": "a"})), "models/e").unwrap();
        assert_eq!(body["requests"][0]["model"], "models/e");
        assert!(body["requests"][0].get("outputDimensionality").is_none());
        let e = encode_embed_request(&req(json!({"model": "g", "input": [[1], [2]]})), "e")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn gemini_embed_response() {
        let body = include_bytes!("fixtures/embed_response.json");
        let r = decode_embed_response(body, 2).unwrap();
        assert_eq!(r.vectors, vec![vec![0.5, -0.25, 0.0], vec![1.0, 0.0, 0.0]]);
        assert_eq!(r.usage, Usage::default());
        let e = decode_embed_response(body, 1).unwrap_err();
        assert!(e.retryable && e.kind == ErrorKind::BadGateway, "{e:?}");
        for bad in [
            &b"[]"[..],
            br#"{"embedding":{"values":[1]}}"#,
            br#"{"embeddings":[{"values":"x"}]}"#,
            br#"{"embeddings":[{}]}"#,
        ] {
            let e = decode_embed_response(bad, 1).unwrap_err();
            assert!(e.retryable && e.kind == ErrorKind::BadGateway);
        }
    }
}
