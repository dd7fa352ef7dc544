//! Gemini `batchEmbedContents` (`POST {base}/models/{model}:batchEmbedContents`) for
//! `POST /v1/embeddings` on Gemini channels: one request per input, in input order.
//!
//! - Gemini embeds text only: token-array input is a 400 naming `input`.
//! - `dimensions` becomes each request's `outputDimensionality`.
//! - The task, which Gemini tunes the vector for, comes from an extra top-level member of the
//!   OpenAI request: `task_type` with Gemini's own names (`RETRIEVAL_QUERY`, ...), or
//!   `input_type` with Cohere's (`search_query` → `RETRIEVAL_QUERY`, `search_document` →
//!   `RETRIEVAL_DOCUMENT`, `classification`, `clustering`), so one client request means the
//!   same on both kinds. Neither: no `taskType` (Gemini's default). Other extra members are
//!   dropped.
//! - Gemini reports no token counts, so the response's usage is zero and the caller meters
//!   its own estimate.
//! - The answer must carry one vector per input, else it is a retryable upstream error.

use serde_json::{json, Value};

use crate::{
    canonical::{EmbeddingRequest, EmbeddingResponse, Usage},
    error::GatewayError,
    wire::{
        cohere::EMBED_INPUT_TYPES,
        json::{range_error, type_error},
        openai_embeddings::{decode_vectors, texts_only},
    },
};

/// Gemini's `TaskType`s (the unspecified one left out).
pub const TASK_TYPES: &[&str] = &[
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// The `taskType` a request asks for, if any (see the module notes).
fn task_type(req: &EmbeddingRequest) -> Result<Option<&'static str>, GatewayError> {
    let fields = &req.passthrough.fields;
    if let Some(v) = fields.get("task_type").filter(|v| !v.is_null()) {
        let s = v
            .as_str()
            .ok_or_else(|| type_error("task_type", "a string"))?;
        return TASK_TYPES
            .iter()
            .find(|t| **t == s)
            .copied()
            .map(Some)
            .ok_or_else(|| {
                range_error(
                    "task_type",
                    &format!("must be one of {}", TASK_TYPES.join(", ")),
                )
            });
    }
    match fields.get("input_type") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "search_query" => Ok(Some("RETRIEVAL_QUERY")),
            "search_document" => Ok(Some("RETRIEVAL_DOCUMENT")),
            "classification" => Ok(Some("CLASSIFICATION")),
            "clustering" => Ok(Some("CLUSTERING")),
            _ => Err(range_error(
                "input_type",
                &format!("must be one of {}", EMBED_INPUT_TYPES.join(", ")),
            )),
        },
        Some(_) => Err(type_error("input_type", "a string")),
    }
}

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
    let task = task_type(req)?;
    let model = resource(upstream_model);
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if let Some(t) = task {
                r["taskType"] = t.into();
            }
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
    fn gemini_embed_task_type() {
        let task = |extra: Value| {
            let mut body = json!({"model": "g", "input": ["a", "b"]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            encode_embed_request(&req(body), "e").map(|b| b["requests"].clone())
        };
        let r = task(json!({"task_type": "SEMANTIC_SIMILARITY"})).unwrap();
        assert_eq!(r[0]["taskType"], "SEMANTIC_SIMILARITY");
        assert_eq!(r[1]["taskType"], "SEMANTIC_SIMILARITY");
        let r = task(json!({"input_type": "search_query"})).unwrap();
        assert_eq!(r[0]["taskType"], "RETRIEVAL_QUERY");
        let r = task(json!({"input_type": null})).unwrap();
        assert!(r[0].get("taskType").is_none());
        for (bad, param) in [
            (json!({"task_type": "retrieval"}), "task_type"),
            (json!({"task_type": 3}), "task_type"),
            (json!({"input_type": "image"}), "input_type"),
        ] {
            let e = task(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
            assert_eq!(e.param.as_deref(), Some(param), "{e:?}");
        }
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
