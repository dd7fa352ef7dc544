//! OpenAI Embeddings (`POST /v1/embeddings`): request decoding and validation, the upstream
//! request, and responses in float or base64 (little-endian f32) encoding.

use base64::Engine;
use serde_json::{json, Value};

use super::json::{missing, parse_object, range_error, take, take_string, take_u32, type_error};
use crate::{
    canonical::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse, Passthrough, Usage, Wire},
    error::{ErrorKind, GatewayError},
};

/// OpenAI's own limit on inputs per request.
const MAX_INPUTS: usize = 2048;

pub fn decode_request(body: &[u8]) -> Result<EmbeddingRequest, GatewayError> {
    let mut m = parse_object(body)?;
    let model = match take_string(&mut m, "model")? {
        Some(s) if !s.is_empty() => s,
        _ => return Err(missing("model")),
    };
    let input = match take(&mut m, "input") {
        None => return Err(missing("input")),
        Some(v) => decode_input(v)?,
    };
    let base64 = match take_string(&mut m, "encoding_format")?.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(range_error(
                "encoding_format",
                "must be 'float' or 'base64'",
            ))
        }
    };
    let dimensions = take_u32(&mut m, "dimensions", 1, 65_536)?;
    let user = take_string(&mut m, "user")?;
    Ok(EmbeddingRequest {
        model,
        input,
        base64,
        dimensions,
        user,
        passthrough: Passthrough {
            format: Some(Wire::OpenAi),
            fields: m,
        },
    })
}

fn token(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|x| u32::try_from(x).ok())
}

fn decode_input(v: Value) -> Result<EmbeddingInput, GatewayError> {
    let bad = || {
        type_error(
            "input",
            "a string, an array of strings, an array of tokens or an array of token arrays",
        )
    };
    let empty = || range_error("input", "must not be empty");
    match v {
        Value::String(s) if s.is_empty() => Err(empty()),
        Value::String(s) => Ok(EmbeddingInput::Texts(vec![s])),
        Value::Array(a) if a.is_empty() => Err(empty()),
        Value::Array(a) if a.len() > MAX_INPUTS => {
            Err(range_error("input", &format!("at most {MAX_INPUTS} items")))
        }
        Value::Array(a) => match &a[0] {
            Value::String(_) => a
                .into_iter()
                .map(|x| match x {
                    Value::String(s) if s.is_empty() => Err(empty()),
                    Value::String(s) => Ok(s),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Texts),
            Value::Number(_) => a
                .iter()
                .map(|x| token(x).ok_or_else(bad))
                .collect::<Result<_, _>>()
                .map(|t| EmbeddingInput::Tokens(vec![t])),
            Value::Array(_) => a
                .iter()
                .map(|row| match row {
                    Value::Array(r) if !r.is_empty() => {
                        r.iter().map(|x| token(x).ok_or_else(bad)).collect()
                    }
                    Value::Array(_) => Err(empty()),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Tokens),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn encode_input(input: &EmbeddingInput) -> Value {
    match input {
        EmbeddingInput::Texts(t) if t.len() == 1 => Value::from(t[0].clone()),
        EmbeddingInput::Texts(t) => Value::from(t.clone()),
        EmbeddingInput::Tokens(t) if t.len() == 1 => Value::from(t[0].clone()),
        EmbeddingInput::Tokens(t) => Value::from(t.clone()),
    }
}

/// The request for an OpenAI-compatible upstream. The encoding the client asked for is asked of
/// the upstream too, so that its answer can be relayed as it is.
pub fn encode_request(req: &EmbeddingRequest, upstream_model: &str) -> Value {
    let mut m = if req.passthrough.format == Some(Wire::OpenAi) {
        req.passthrough.fields.clone()
    } else {
        Default::default()
    };
    m.insert("model".into(), upstream_model.into());
    m.insert("input".into(), encode_input(&req.input));
    m.insert(
        "encoding_format".into(),
        if req.base64 { "base64" } else { "float" }.into(),
    );
    if let Some(d) = req.dimensions {
        m.insert("dimensions".into(), d.into());
    }
    if let Some(u) = &req.user {
        m.insert("user".into(), u.clone().into());
    }
    Value::Object(m)
}

/// Usage of an upstream's embeddings answer (for metering a relayed response).
pub fn decode_usage(body: &[u8]) -> Result<Usage, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        GatewayError::new(ErrorKind::BadGateway, "The upstream returned invalid JSON.")
    })?;
    let input = v
        .pointer("/usage/prompt_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(Usage {
        input,
        ..Usage::default()
    })
}

/// Packs a vector as base64 of little-endian f32s, as OpenAI does.
pub fn vector_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Renders a canonical embeddings response in OpenAI's shape.
pub fn encode_response(r: &EmbeddingResponse, base64: bool) -> Value {
    let data: Vec<Value> = r
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                Value::from(vector_base64(v))
            } else {
                Value::from(v.clone())
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": r.model,
        "usage": {"prompt_tokens": r.usage.input, "total_tokens": r.usage.input},
    })
}

/// The texts of `input`, for an upstream that embeds only text: token-array input is a 400
/// naming `input`.
pub fn texts_only(input: &EmbeddingInput) -> Result<&[String], GatewayError> {
    match input {
        EmbeddingInput::Texts(t) => Ok(t),
        EmbeddingInput::Tokens(_) => Err(GatewayError::invalid_param(
            "input",
            "This model accepts only text input: send a string or an array of strings, not token ids.",
        )),
    }
}

/// Reads the vectors of a Cohere or Gemini answer (rendered in OpenAI's shape by the caller):
/// the array at `pointer`, each item's `member` (or the item itself) an array of numbers,
/// exactly `inputs` of them. Returns the parsed answer too, for its other members. Anything
/// else is a retryable upstream error (another channel may answer well).
pub fn decode_vectors(
    body: &[u8],
    pointer: &str,
    member: Option<&str>,
    inputs: usize,
) -> Result<(Value, Vec<Vec<f32>>), GatewayError> {
    let bad = |message: String| GatewayError::new(ErrorKind::BadGateway, message).retryable(true);
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| bad("The upstream returned invalid JSON.".into()))?;
    let rows = v
        .pointer(pointer)
        .and_then(Value::as_array)
        .ok_or_else(|| bad("The upstream returned no embeddings.".into()))?;
    let vectors: Vec<Vec<f32>> = rows
        .iter()
        .map(|row| {
            member
                .map_or(Some(row), |m| row.get(m))
                .and_then(Value::as_array)
                .and_then(|r| r.iter().map(|x| x.as_f64().map(|f| f as f32)).collect())
                .ok_or_else(|| bad("The upstream returned a malformed embedding.".into()))
        })
        .collect::<Result<_, _>>()?;
    if vectors.len() != inputs {
        return Err(bad(format!(
            "The upstream returned {} embeddings for {inputs} inputs.",
            vectors.len()
        )));
    }
    Ok((v, vectors))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A decoded request, for the tests of the codecs that encode it for other upstreams.
    pub(crate) fn request(v: Value) -> EmbeddingRequest {
        decode_request(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    /// Two texts with every member a client may set, for those codecs' snapshots.
    pub(crate) fn full_request() -> EmbeddingRequest {
        request(json!({"model": "m", "input": ["a", "b"], "dimensions": 256,
            "encoding_format": "base64", "user": "u"}))
    }

    fn dec(v: Value) -> Result<EmbeddingRequest, GatewayError> {
        decode_request(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn input_shapes() {
        assert_eq!(
            dec(json!({"model":"m","input":"hi"})).unwrap().input,
            EmbeddingInput::Texts(vec!["hi".into()])
        );
        assert_eq!(
            dec(json!({"model":"m","input":["a","b"]}))
                .unwrap()
                .input
                .len(),
            2
        );
        assert_eq!(
            dec(json!({"model":"m","input":[1,2,3]})).unwrap().input,
            EmbeddingInput::Tokens(vec![vec![1, 2, 3]])
        );
        assert_eq!(
            dec(json!({"model":"m","input":[[1],[2,3]]}))
                .unwrap()
                .input
                .len(),
            2
        );
        let r = dec(json!({"model":"m","input":"x","encoding_format":"base64","dimensions":4}))
            .unwrap();
        assert!(r.base64);
        assert_eq!(r.dimensions, Some(4));
        for bad in [
            json!({"model":"m","input":""}),
            json!({"model":"m","input":[]}),
            json!({"model":"m","input":[""]}),
            json!({"model":"m","input":[-1]}),
            json!({"model":"m","input":[[]]}),
            json!({"model":"m","input":{"a":1}}),
            json!({"model":"m","input":"x","encoding_format":"hex"}),
            json!({"model":"m"}),
            json!({"input":"x"}),
            json!({"model":"m","input":["a",1]}),
        ] {
            assert_eq!(
                dec(bad.clone()).unwrap_err().kind,
                ErrorKind::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let s = vector_base64(&[1.0, -2.5]);
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(back, vec![1.0, -2.5]);
    }
}
