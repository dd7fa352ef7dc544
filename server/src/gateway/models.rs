//! `GET /v1/models` and `GET /v1/models/{id}`: the models (and codenames) this gateway can
//! serve right now, in OpenAI's list shape; and the API-style 404 for unknown `/v1` paths.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use weir_core::catalog::Model;

use super::{
    pipeline::{authenticate, new_request_id, with_request_id},
    Gateway,
};
use crate::{
    canonical::Wire,
    error::{ErrorKind, GatewayError},
};

fn model_json(m: &Model) -> Value {
    json!({
        "id": m.id,
        "object": "model",
        "created": m.created_at / 1000,
        "owned_by": m.provider_id,
    })
}

pub async fn list(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let id = new_request_id();
    let resp = list_models(&gw, &headers).await;
    with_request_id(resp, &id)
}

async fn list_models(gw: &Gateway, headers: &HeaderMap) -> Response {
    if let Err(e) = authenticate(gw, headers).await {
        return e.to_response(Wire::OpenAi, None);
    }
    let snap = gw.catalog.current();
    let mut data: Vec<Value> = snap
        .available_models()
        .iter()
        .map(|m| model_json(m))
        .collect();
    for (name, created) in snap.available_codenames() {
        data.push(
            json!({"id": name, "object": "model", "created": created / 1000, "owned_by": "weir"}),
        );
    }
    Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn get_one(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let request_id = new_request_id();
    let resp = get_model(&gw, &headers, &id).await;
    with_request_id(resp, &request_id)
}

async fn get_model(gw: &Gateway, headers: &HeaderMap, id: &str) -> Response {
    if let Err(e) = authenticate(gw, headers).await {
        return e.to_response(Wire::OpenAi, None);
    }
    let snap = gw.catalog.current();
    let found = snap
        .available_models()
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| model_json(&m))
        .or_else(|| {
            snap.available_codenames()
                .into_iter()
                .find(|(n, _)| n == id)
                .map(|(n, c)| json!({"id": n, "object": "model", "created": c / 1000, "owned_by": "weir"}))
        });
    match found {
        Some(v) => Json(v).into_response(),
        None => GatewayError::model_not_found(id).to_response(Wire::OpenAi, None),
    }
}

/// Unknown paths under `/v1`: a 404 in the OpenAI envelope (after reading the body).
pub async fn not_found(body: Body) -> Response {
    let _ = axum::body::to_bytes(body, 1024 * 1024).await;
    let id = new_request_id();
    let resp = GatewayError::new(ErrorKind::NotFound, "Unknown API path.")
        .with_code("unknown_url")
        .to_response(Wire::OpenAi, Some(&id));
    with_request_id(resp, &id)
}
