//! The OpenAI Responses surface: `POST /v1/responses` goes through the chat pipeline like the
//! other surfaces; what is particular to it lives here: continuing a stored conversation
//! (`previous_response_id`, scoped to the caller's team: another team's id is a 404), storing
//! answers (`store`, default true, kept 30 days), and `GET` / `DELETE /v1/responses/{id}`.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap},
    response::Response,
};
use serde_json::{json, Value};
use weir_core::responses::{self, StoredResponse};

use super::{
    finish::Finaliser,
    pipeline::{self, authenticate, new_request_id, with_request_id},
    Gateway,
};
use crate::{
    canonical::{CanonicalRequest, Wire},
    error::{ErrorKind, GatewayError},
    wire::{json::to_bytes, openai_responses, Echo},
};

const FORMAT: Wire = Wire::Responses;

pub async fn create(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    pipeline::chat_surface(gw, headers, body, FORMAT, "responses").await
}

/// An answer to keep once it is complete: the team it belongs to and the conversation's
/// input items up to it.
pub(super) struct StoreJob {
    pub team_id: i64,
    pub conversation: Vec<Value>,
}

/// What decoding a Responses request yields besides the canonical request.
pub(super) struct Decoded {
    pub request: CanonicalRequest,
    pub echo: Echo,
    pub store: Option<StoreJob>,
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        format!(
            "Response with id '{}' not found.",
            id.chars().take(80).collect::<String>()
        ),
    )
}

fn unavailable(e: &weir_core::DbError) -> GatewayError {
    tracing::error!(error = %e, "stored responses unavailable");
    GatewayError::new(
        ErrorKind::Unavailable,
        "The service is temporarily unavailable.",
    )
    .with_retry_after(Some(1))
}

/// Decodes a Responses request, loading the stored conversation it continues.
pub(super) async fn decode(
    gw: &Gateway,
    fin: &Finaliser,
    body: &[u8],
) -> Result<Decoded, GatewayError> {
    let parsed = openai_responses::parse_request(body)?;
    let team_id = fin.identity().map(|(_, team, _)| team);
    let history = match (&parsed.previous_response_id, team_id) {
        (Some(id), Some(team)) => {
            let stored = responses::load(&gw.db, team, id)
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or_else(|| not_found(id).with_param("previous_response_id"))?;
            conversation_after(&stored)?
        }
        _ => Vec::new(),
    };
    let store = parsed.store;
    let d = parsed.into_canonical(history)?;
    Ok(Decoded {
        request: d.request,
        echo: d.echo,
        store: match (store, team_id) {
            (true, Some(team_id)) => Some(StoreJob {
                team_id,
                conversation: d.conversation,
            }),
            _ => None,
        },
    })
}

/// The input items of a stored response followed by its output items: the history a request
/// continuing it starts from.
fn conversation_after(stored: &StoredResponse) -> Result<Vec<Value>, GatewayError> {
    let corrupt = || GatewayError::internal("a stored response could not be read");
    let mut items: Vec<Value> = serde_json::from_str(&stored.input_items).map_err(|_| corrupt())?;
    let response: Value = serde_json::from_str(&stored.response).map_err(|_| corrupt())?;
    if let Some(Value::Array(output)) = response.get("output") {
        items.extend(output.iter().cloned());
    }
    Ok(items)
}

/// Keeps a finished answer. A failure is logged, not the client's: the answer was delivered
/// and charged; only continuing from it will 404.
pub(super) async fn save(gw: &Gateway, job: StoreJob, response: &Value) {
    let Some(id) = response.get("id").and_then(Value::as_str) else {
        return;
    };
    let row = StoredResponse {
        id: id.to_owned(),
        team_id: job.team_id,
        created_at: weir_core::db::now_ms(),
        input_items: Value::Array(job.conversation).to_string(),
        response: response.to_string(),
    };
    if let Err(e) = responses::save(&gw.db, &row).await {
        tracing::error!(error = %e, response = id, "could not store a response");
    }
}

/// A JSON answer, or the error in the Responses envelope, with the request id.
fn answer(result: Result<Body, GatewayError>, request_id: &str) -> Response {
    let resp = match result {
        Ok(body) => {
            let mut resp = Response::new(body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => e.to_response(FORMAT, Some(request_id)),
    };
    with_request_id(resp, request_id)
}

/// `GET /v1/responses/{id}`: a stored response of the caller's team. Reasoning signatures,
/// always kept, are shown only with `include[]=reasoning.encrypted_content`, as on creation.
pub async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let request_id = new_request_id();
    let result = async {
        let caller = authenticate(&gw, &headers).await?;
        let stored = responses::load(&gw.db, caller.team_id, &id)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| not_found(&id))?;
        let include = query.as_deref().unwrap_or("");
        if stored.response.contains("\"encrypted_content\"")
            && !include.contains("reasoning.encrypted_content")
        {
            let mut v: Value = serde_json::from_str(&stored.response)
                .map_err(|_| GatewayError::internal("a stored response could not be read"))?;
            openai_responses::hide_signatures(&mut v);
            return Ok(Body::from(to_bytes(&v)));
        }
        // Stored as the JSON text the client was sent: served as it is.
        Ok(Body::from(stored.response))
    }
    .await;
    answer(result, &request_id)
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let request_id = new_request_id();
    let result = async {
        let caller = authenticate(&gw, &headers).await?;
        if responses::delete(&gw.db, caller.team_id, &id)
            .await
            .map_err(|e| unavailable(&e))?
        {
            Ok(Body::from(to_bytes(
                &json!({"id": id, "object": "response.deleted", "deleted": true}),
            )))
        } else {
            Err(not_found(&id))
        }
    }
    .await;
    answer(result, &request_id)
}
