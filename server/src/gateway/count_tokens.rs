//! `POST /v1/messages/count_tokens`: the input tokens of a Messages request. Exact when an
//! Anthropic channel serves the model (Weir asks it), Weir's estimate otherwise; the
//! `x-weir-token-count` header says which (`exact` or `estimated`). Free, and not logged as a
//! request.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::Response,
};
use bytes::Bytes;
use serde_json::{json, Value};
use weir_core::catalog::ModelKind;

use super::{
    pipeline::{authenticate, forwarded_headers, new_request_id, read_body, with_request_id_for},
    Gateway,
};
use crate::{
    canonical::{CanonicalRequest, Wire},
    error::GatewayError,
    tokens, upstream,
    wire::{anthropic, json::to_bytes},
};

pub async fn count_tokens(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let resp = match count(&gw, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.to_response(Wire::Anthropic, Some(&request_id)),
    };
    with_request_id_for(resp, &request_id, Wire::Anthropic)
}

async fn count(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Response, GatewayError> {
    let bytes = read_body(headers, body).await?;
    authenticate(gw, headers).await?;
    let req = decode(&bytes)?;
    let snapshot = gw.catalog.current();
    let targets = snapshot
        .resolve(&req.model, ModelKind::Chat)
        .ok_or_else(|| GatewayError::model_not_found(&req.model))?;
    let forward = forwarded_headers(Wire::Anthropic, headers);
    for target in gw
        .health
        .plan(targets)
        .unwrap_or_default()
        .iter()
        .filter(|t| t.channel.wire == Wire::Anthropic)
        .take(super::pipeline::MAX_ATTEMPTS)
    {
        let out = upstream::count_tokens_request(target, &req, &forward)?;
        let answer = async {
            let resp = upstream::send(&gw.http, out, &gw.timeouts).await?;
            let body = upstream::read_body(resp, &gw.timeouts).await?;
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("input_tokens").and_then(Value::as_u64))
                .ok_or_else(|| GatewayError::internal("count_tokens answered without a count"))
        }
        .await;
        match answer {
            Ok(n) => return Ok(reply(n, "exact")),
            // Not retryable means the request itself is wrong: the upstream's word stands.
            Err(e) if !e.retryable && e.kind == crate::error::ErrorKind::InvalidRequest => {
                return Err(e)
            }
            Err(e) => {
                tracing::debug!(channel = target.channel.id, error = %e, "count_tokens failed")
            }
        }
    }
    Ok(reply(tokens::estimate_prompt(&req), "estimated"))
}

/// The request as `/v1/messages` would read it; `max_tokens` is not part of a count request.
fn decode(bytes: &[u8]) -> Result<CanonicalRequest, GatewayError> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|_| GatewayError::invalid("The request body is not valid JSON."))?;
    let Value::Object(o) = &mut v else {
        return Err(GatewayError::invalid(
            "The request body must be a JSON object.",
        ));
    };
    o.insert("max_tokens".into(), json!(1));
    o.remove("stream");
    anthropic::decode_request(&to_bytes(&v))
}

fn reply(input_tokens: u64, how: &'static str) -> Response {
    let mut resp = Response::new(Body::from(Bytes::from(
        json!({ "input_tokens": input_tokens }).to_string(),
    )));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-weir-token-count", HeaderValue::from_static(how));
    resp
}
