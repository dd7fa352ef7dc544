//! `POST /webhooks/stripe`: the raw body is checked against `Stripe-Signature` before
//! anything is parsed (a failed check is a 400 and nothing is recorded), then the event is
//! applied in one transaction by `weir_core::topup::apply`. Answers: 200 once processed
//! (also for duplicates, unknown sessions and unknown types), 400 for a bad signature or a
//! body that is not an event, 500 when processing failed (nothing was kept, so Stripe's
//! retry starts over).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use weir_core::{
    topup::{self, event::Event, signature},
    Db,
};

/// What the webhook needs.
#[derive(Clone)]
pub struct WebhookState {
    pub db: Db,
    /// Endpoint secrets (any may have signed the event).
    pub secrets: Arc<Vec<String>>,
    /// The mode of the secret key: events of the other mode are ignored.
    pub livemode: bool,
}

impl WebhookState {
    pub fn new(db: Db, config: Option<&crate::config::StripeConfig>) -> WebhookState {
        WebhookState {
            db,
            secrets: Arc::new(
                config
                    .map(|c| {
                        c.webhook_secrets
                            .iter()
                            .map(|s| s.expose_str().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            livemode: config.is_some_and(|c| c.livemode()),
        }
    }
}

fn answer(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{{\"message\":\"{message}\"}}"),
    )
        .into_response()
}

pub async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(
        header,
        &body,
        &state.secrets,
        chrono::Utc::now().timestamp(),
    ) {
        if e == signature::SignatureError::NoSecret {
            tracing::error!("a Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set");
        } else {
            tracing::warn!(reason = %e, "Stripe webhook refused: bad signature");
        }
        return answer(StatusCode::BAD_REQUEST, "invalid signature");
    }
    let event: Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "a signed Stripe webhook is not an event");
            return answer(StatusCode::BAD_REQUEST, "not a Stripe event");
        }
    };
    match topup::apply(&state.db, &event, state.livemode).await {
        Ok(applied) => {
            match &applied.outcome {
                // Worth a look (a session Weir did not create, another mode): a warning.
                topup::Outcome::Ignored(why) => tracing::warn!(
                    event = %event.id, kind = %event.kind, reason = why,
                    "Stripe event ignored"
                ),
                outcome => tracing::info!(
                    event = %event.id, kind = %event.kind, outcome = outcome.as_str(),
                    topup = applied.topup_id.as_deref().unwrap_or("-"),
                    "Stripe event processed"
                ),
            }
            answer(StatusCode::OK, "ok")
        }
        Err(e) => {
            tracing::error!(event = %event.id, kind = %event.kind, error = %e, "processing a Stripe event failed; Stripe will retry");
            answer(StatusCode::INTERNAL_SERVER_ERROR, "processing failed")
        }
    }
}
