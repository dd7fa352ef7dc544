//! The mock's control surface, per server: how many API requests it has received, and an
//! outage switch that makes every API request fail until it is lifted. For resilience tests
//! (breakers, retry budgets) that need an upstream to go down and come back, and to count what
//! reached it.
//!
//! `GET /_mock/stats` → `{"requests": N}`; `PUT /_mock/outage` with `{"status": 503}` starts an
//! outage (any error status); `DELETE /_mock/outage` ends it. An outage answers in the route's
//! own error envelope, after the key check, and counts as a request.

use std::sync::{
    atomic::{AtomicU16, AtomicU64, Ordering},
    Arc,
};

use axum::{
    extract::Extension,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct Control {
    requests: AtomicU64,
    /// The outage's status, 0 when there is none.
    outage: AtomicU16,
}

impl Control {
    /// Counts an API request; the outage status, if one is on.
    pub(super) fn arrive(&self) -> Option<StatusCode> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match self.outage.load(Ordering::Relaxed) {
            0 => None,
            code => StatusCode::from_u16(code).ok(),
        }
    }
}

pub(super) async fn stats(Extension(c): Extension<Arc<Control>>) -> Json<Value> {
    Json(json!({"requests": c.requests.load(Ordering::Relaxed)}))
}

pub(super) async fn start_outage(
    Extension(c): Extension<Arc<Control>>,
    Json(body): Json<Value>,
) -> Response {
    match body
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..=599).contains(s))
    {
        Some(status) => {
            c.outage.store(status, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "status: an error status (400-599) is required"})),
        )
            .into_response(),
    }
}

pub(super) async fn end_outage(Extension(c): Extension<Arc<Control>>) -> StatusCode {
    c.outage.store(0, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}
