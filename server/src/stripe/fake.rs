//! A fake Stripe: a real HTTP server with the parts of Stripe's API that Weir uses and a
//! hosted checkout page, for tests and the demo (`weir mock-stripe`, and in-process under
//! `weir serve --demo`). Events are signed like Stripe's and POSTed to the webhook URL.
//!
//! # API (bearer `sk_test_…`, or exactly the configured key; else 401 in Stripe's envelope)
//! - `POST /v1/checkout/sessions`: form-encoded with brackets; `Idempotency-Key` required.
//!   A repeated key with the same body replays the first answer; with another body it is a
//!   400 `idempotency_error`. Needs `mode=payment`, one line item with
//!   `price_data[currency]` and `price_data[unit_amount]`, and `success_url`.
//! - `GET /v1/checkout/sessions/{id}`.
//!
//! # Hosted pages
//! - `GET /pay/{id}`: the checkout page; its "Pay" button (`POST /pay/{id}`) completes the
//!   session (paid), delivers `checkout.session.completed` and `charge.succeeded`, then
//!   redirects to the success URL. "Cancel" goes to the cancel URL.
//! - `GET /receipts/{charge}`: the receipt linked from the charge.
//!
//! # Test knobs (JSON answers list the events sent and the webhook's status for each)
//! - `POST /_test/sessions/{id}/complete?paid=false`: complete without payment (a delayed
//!   method); `POST /_test/sessions/{id}/async?result=succeeded|failed` later.
//! - `POST /_test/sessions/{id}/expire`.
//! - `POST /_test/sessions/{id}/refund?amount=<cents>`: refund that much more (default: the
//!   rest), sending `charge.refunded` with the cumulative `amount_refunded`.
//! - `POST /_test/sessions/{id}/dispute?status=open|won|lost`: `charge.dispute.created`
//!   (`open`) or `charge.dispute.closed`.
//! - `GET /_test/events`; `POST /_test/events/{id}/replay?times=N` (re-signed, sent again).
//! - `POST /_test/settings?hold=true|false&delay_ms=N&drop_next=true`: hold events in a queue
//!   instead of sending them, or send them after a delay; cut the connection after creating
//!   the next session (a timeout as the client sees it); the answer counts the sessions; `POST /_test/flush?order=reverse|sent`
//!   delivers the held events (in reverse to reorder).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use weir_core::topup::signature;

/// How the fake is set up.
#[derive(Clone, Debug, Default)]
pub struct FakeConfig {
    /// Where events go (Weir's `/webhooks/stripe`); without it events are only recorded.
    pub webhook_url: Option<String>,
    /// The endpoint secret events are signed with.
    pub webhook_secret: String,
    /// The one accepted secret key; without it, any `sk_test_…`.
    pub api_key: Option<String>,
}

struct SessionRec {
    session: Value,
    charge_id: Option<String>,
    amount: i64,
    refunded: i64,
    dispute_id: Option<String>,
}

struct Fake {
    config: Mutex<FakeConfig>,
    base: String,
    sessions: Mutex<HashMap<String, SessionRec>>,
    /// Idempotency key → (request body, status, answer).
    idempotency: Mutex<HashMap<String, (Bytes, StatusCode, Value)>>,
    /// Every event made, in order: (id, type, payload).
    events: Mutex<Vec<(String, String, String)>>,
    held: Mutex<Vec<String>>,
    hold: std::sync::atomic::AtomicBool,
    /// Cut the connection after handling the next session creation (a timeout as the client
    /// sees it, with the session created and its idempotent answer saved).
    drop_next: std::sync::atomic::AtomicBool,
    delay_ms: AtomicU64,
    seq: AtomicU64,
    http: reqwest::Client,
    tasks: tokio_util::task::TaskTracker,
}

/// A running fake Stripe; it stops when dropped.
pub struct FakeStripe {
    pub addr: SocketAddr,
    fake: Arc<Fake>,
    _shutdown: oneshot::Sender<()>,
}

impl FakeStripe {
    /// `http://127.0.0.1:PORT`: the `STRIPE_API_BASE` to give Weir.
    pub fn base_url(&self) -> String {
        self.fake.base.clone()
    }

    /// Points event delivery at `url` (e.g. once Weir's port is known).
    pub fn set_webhook_url(&self, url: &str) {
        if let Ok(mut c) = self.fake.config.lock() {
            c.webhook_url = Some(url.to_owned());
        }
    }
}

/// Binds `listen` and serves the fake until the returned value is dropped.
pub async fn spawn(listen: SocketAddr, config: FakeConfig) -> std::io::Result<FakeStripe> {
    let tcp = tokio::net::TcpListener::bind(listen).await?;
    let addr = tcp.local_addr()?;
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let fake = Arc::new(Fake {
        config: Mutex::new(config),
        base: format!("http://{ip}:{}", addr.port()),
        sessions: Mutex::default(),
        idempotency: Mutex::default(),
        events: Mutex::default(),
        held: Mutex::default(),
        hold: Default::default(),
        drop_next: Default::default(),
        delay_ms: AtomicU64::new(0),
        seq: AtomicU64::new(1),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?,
        tasks: tokio_util::task::TaskTracker::new(),
    });
    let app = router(fake.clone());
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(tcp, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(FakeStripe {
        addr,
        fake,
        _shutdown: shutdown,
    })
}

/// `weir mock-stripe`: serves until SIGINT or SIGTERM.
pub async fn run(listen: SocketAddr, config: FakeConfig) -> std::io::Result<()> {
    let server = spawn(listen, config).await?;
    println!("fake Stripe listening on {}", server.base_url());
    crate::http::shutdown_signal().await;
    Ok(())
}

fn router(fake: Arc<Fake>) -> Router {
    Router::new()
        .route("/v1/checkout/sessions", post(create_session))
        .route("/v1/checkout/sessions/{id}", get(get_session))
        .route("/pay/{id}", get(pay_page).post(pay))
        .route("/receipts/{id}", get(receipt))
        .route("/_test/sessions/{id}/complete", post(knob_complete))
        .route("/_test/sessions/{id}/async", post(knob_async))
        .route("/_test/sessions/{id}/expire", post(knob_expire))
        .route("/_test/sessions/{id}/refund", post(knob_refund))
        .route("/_test/sessions/{id}/dispute", post(knob_dispute))
        .route("/_test/events", get(knob_events))
        .route("/_test/events/{id}/replay", post(knob_replay))
        .route("/_test/settings", post(knob_settings))
        .route("/_test/flush", post(knob_flush))
        .with_state(fake)
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Fake {
    fn next(&self, prefix: &str) -> String {
        format!("{prefix}_fake_{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        match self.config.lock().ok().and_then(|c| c.api_key.clone()) {
            Some(want) => key == want,
            None => key.starts_with("sk_test_") && key.len() > 8,
        }
    }

    /// Makes an event of `kind` about `object`, records it, and delivers it (or holds it).
    async fn emit(&self, kind: &str, object: Value) -> Value {
        let id = self.next("evt");
        let payload = json!({
            "id": id, "object": "event", "api_version": "2025-01-27.acacia", "created": now(),
            "type": kind, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": object},
        })
        .to_string();
        if let Ok(mut e) = self.events.lock() {
            e.push((id.clone(), kind.to_owned(), payload));
        }
        if self.hold.load(Ordering::Relaxed) {
            if let Ok(mut h) = self.held.lock() {
                h.push(id.clone());
            }
            return json!({"id": id, "type": kind, "status": "held"});
        }
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            return json!({"id": id, "type": kind, "status": "delayed"});
        }
        let status = self.deliver(&id).await;
        json!({"id": id, "type": kind, "status": status})
    }

    /// POSTs the recorded event `id`, freshly signed; the webhook's status (0: not sent).
    async fn deliver(&self, id: &str) -> u16 {
        let payload = self.events.lock().ok().and_then(|e| {
            e.iter()
                .find(|(i, _, _)| i == id)
                .map(|(_, _, p)| p.clone())
        });
        let (url, secret) = match self.config.lock() {
            Ok(c) => (c.webhook_url.clone(), c.webhook_secret.clone()),
            Err(_) => return 0,
        };
        let (Some(payload), Some(url)) = (payload, url) else {
            return 0;
        };
        // Stripe retries failed deliveries; the fake tries three times, briefly.
        let mut status = 0;
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            let sig = signature::sign(&[&secret], now(), payload.as_bytes());
            match self
                .http
                .post(&url)
                .header("stripe-signature", sig)
                .header(header::CONTENT_TYPE, "application/json")
                .body(payload.clone())
                .send()
                .await
            {
                Ok(r) => {
                    status = r.status().as_u16();
                    if r.status().is_success() || r.status().is_client_error() {
                        break;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "fake Stripe: delivering an event failed"),
            }
        }
        status
    }

    /// Schedules the delivery of events that `emit` marked delayed.
    fn deliver_later(self: &Arc<Self>, sent: &[Value]) {
        let delay = self.delay_ms.load(Ordering::Relaxed);
        for e in sent {
            if e["status"] == "delayed" {
                let id = e["id"].as_str().unwrap_or_default().to_owned();
                let this = self.clone();
                self.tasks.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    this.deliver(&id).await;
                });
            }
        }
    }

    fn session(&self, id: &str) -> Option<Value> {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| s.get(id).map(|r| r.session.clone()))
    }

    fn update<T>(&self, id: &str, f: impl FnOnce(&mut SessionRec) -> T) -> Option<T> {
        self.sessions.lock().ok()?.get_mut(id).map(f)
    }

    fn charge(&self, id: &str) -> Option<Value> {
        let s = self.sessions.lock().ok()?;
        let r = s.get(id)?;
        let charge = r.charge_id.clone()?;
        Some(json!({
            "id": charge, "object": "charge", "amount": r.amount, "amount_captured": r.amount,
            "amount_refunded": r.refunded, "refunded": r.refunded >= r.amount,
            "currency": r.session["currency"], "paid": true, "status": "succeeded",
            "payment_intent": r.session["payment_intent"],
            "metadata": r.session["x_payment_intent_metadata"],
            "receipt_url": format!("{}/receipts/{charge}", self.base), "livemode": false,
        }))
    }

    /// Marks the session complete (paid or not) and sends `checkout.session.completed`
    /// (and `charge.succeeded` when paid).
    async fn complete(&self, id: &str, paid: bool) -> Result<Vec<Value>, Response> {
        let pi = self.next("pi");
        let charge = self.next("ch");
        let done = self.update(id, |r| {
            if r.session["status"] != "open" {
                return None;
            }
            r.session["status"] = json!("complete");
            r.session["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
            r.session["payment_intent"] = json!(pi);
            if paid {
                r.charge_id = Some(charge.clone());
            }
            Some(r.session.clone())
        });
        let session = match done {
            None => return Err(not_found("checkout session", id)),
            Some(None) => {
                return Err(stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "This Checkout Session is no longer open.",
                ))
            }
            Some(Some(s)) => s,
        };
        let mut sent = vec![
            self.emit("checkout.session.completed", public(&session))
                .await,
        ];
        if paid {
            if let Some(c) = self.charge(id) {
                sent.push(self.emit("charge.succeeded", c).await);
            }
        }
        Ok(sent)
    }
}

/// The session as Stripe shows it (without the fake's own bookkeeping fields).
fn public(session: &Value) -> Value {
    let mut s = session.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("x_payment_intent_metadata");
    }
    s
}

fn not_found(what: &str, id: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        &format!("No such {what}: '{id}'"),
    )
}

#[derive(Deserialize)]
struct CreateForm {
    mode: Option<String>,
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    line_items: Vec<LineItem>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    payment_intent_data: Option<PaymentIntentData>,
}

#[derive(Deserialize)]
struct LineItem {
    price_data: Option<PriceData>,
    quantity: Option<i64>,
}

#[derive(Deserialize)]
struct PriceData {
    currency: String,
    unit_amount: Option<i64>,
}

#[derive(Deserialize)]
struct PaymentIntentData {
    #[serde(default)]
    metadata: HashMap<String, String>,
}

async fn create_session(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !fake.authorized(&headers) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided.",
        );
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The fake Stripe requires an Idempotency-Key on every POST.",
        );
    };
    if let Some((first, status, answer)) = fake
        .idempotency
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned())
    {
        if normalized(&first) != normalized(&body) {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
        return (status, [("idempotent-replayed", "true")], Json(answer)).into_response();
    }
    let (status, answer) = match new_session(&fake, &body) {
        Ok(v) => (StatusCode::OK, v),
        Err(message) => (
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "invalid_request_error", "message": message}}),
        ),
    };
    if let Ok(mut m) = fake.idempotency.lock() {
        m.insert(key, (body, status, answer.clone()));
    }
    if fake.drop_next.swap(false, Ordering::Relaxed) {
        let broken = futures_util::stream::iter([Err::<Bytes, _>(std::io::Error::other(
            "fake Stripe: connection cut",
        ))]);
        return (status, axum::body::Body::from_stream(broken)).into_response();
    }
    (status, Json(answer)).into_response()
}

/// A form body's parameters in a canonical order: Stripe compares parameters, not bytes
/// (maps such as `metadata` may be encoded in any order).
fn normalized(body: &[u8]) -> Vec<&[u8]> {
    let mut pairs: Vec<&[u8]> = body.split(|b| *b == b'&').collect();
    pairs.sort_unstable();
    pairs
}

fn new_session(fake: &Fake, body: &[u8]) -> Result<Value, String> {
    let form: CreateForm = serde_qs::Config::new()
        .use_form_encoding(true)
        .deserialize_bytes(body)
        .map_err(|e| format!("Invalid form body: {e}"))?;
    if form.mode.as_deref() != Some("payment") {
        return Err("mode must be payment".into());
    }
    let [item] = form.line_items.as_slice() else {
        return Err("exactly one line item is supported".into());
    };
    let price = item
        .price_data
        .as_ref()
        .ok_or("line_items[0][price_data] is required")?;
    let unit = price
        .unit_amount
        .filter(|a| *a > 0)
        .ok_or("line_items[0][price_data][unit_amount] must be a positive integer")?;
    let amount = unit
        .checked_mul(item.quantity.unwrap_or(1).max(1))
        .ok_or("amount out of range")?;
    let success_url = form
        .success_url
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or("success_url must be an http(s) URL")?;
    let id = fake.next("cs_test");
    let session = json!({
        "id": id, "object": "checkout.session", "mode": "payment", "status": "open",
        "payment_status": "unpaid", "amount_subtotal": amount, "amount_total": amount,
        "currency": price.currency.to_ascii_lowercase(),
        "client_reference_id": form.client_reference_id, "metadata": form.metadata,
        "payment_intent": null, "customer": null,
        "url": format!("{}/pay/{id}", fake.base),
        "success_url": success_url, "cancel_url": form.cancel_url,
        "created": now(), "expires_at": now() + 24 * 3600, "livemode": false,
        "payment_method_types": ["card"],
        "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "shipping_options": [],
        "x_payment_intent_metadata": form.payment_intent_data.map(|p| p.metadata).unwrap_or_default(),
    });
    if let Ok(mut s) = fake.sessions.lock() {
        s.insert(
            id,
            SessionRec {
                session: session.clone(),
                charge_id: None,
                amount,
                refunded: 0,
                dispute_id: None,
            },
        );
    }
    Ok(public(&session))
}

async fn get_session(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !fake.authorized(&headers) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided.",
        );
    }
    match fake.session(&id) {
        Some(s) => Json(public(&s)).into_response(),
        None => not_found("checkout session", &id),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn pay_page(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    let Some(s) = fake.session(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Html("<h1>No such checkout session</h1>"),
        )
            .into_response();
    };
    let amount = s["amount_total"].as_i64().unwrap_or(0);
    let open = s["status"] == "open";
    let cancel = s["cancel_url"].as_str().unwrap_or("/");
    let action = if open {
        format!(
            "<form method=\"post\" action=\"/pay/{id}\"><button type=\"submit\">Pay ${}.{:02}</button></form>\
             <p><a href=\"{}\">Cancel and go back</a></p>",
            amount / 100,
            amount % 100,
            escape(cancel)
        )
    } else {
        format!(
            "<p>This session is {}.</p>",
            escape(s["status"].as_str().unwrap_or(""))
        )
    };
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Fake Stripe Checkout</title></head>\
         <body><main><h1>Fake Stripe Checkout</h1><p>Test mode: no card is charged.</p>\
         <p>Weir API credit: <strong>${}.{:02} {}</strong></p>{action}</main></body></html>",
        amount / 100,
        amount % 100,
        escape(&s["currency"].as_str().unwrap_or("").to_ascii_uppercase()),
    ))
    .into_response()
}

async fn pay(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    match fake.complete(&id, true).await {
        Ok(sent) => {
            fake.deliver_later(&sent);
            let s = fake.session(&id).unwrap_or_default();
            let url = s["success_url"]
                .as_str()
                .unwrap_or("/")
                .replace("{CHECKOUT_SESSION_ID}", &id);
            Redirect::to(&url).into_response()
        }
        Err(r) => r,
    }
}

async fn receipt(Path(id): Path<String>) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Receipt</title></head>\
         <body><h1>Receipt</h1><p>Charge {} (fake Stripe, test mode).</p></body></html>",
        escape(&id)
    ))
}

fn sent(fake: &Arc<Fake>, events: Vec<Value>) -> Response {
    fake.deliver_later(&events);
    Json(json!({"events": events})).into_response()
}

#[derive(Deserialize)]
struct CompleteQuery {
    paid: Option<bool>,
}

async fn knob_complete(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    Query(q): Query<CompleteQuery>,
) -> Response {
    match fake.complete(&id, q.paid.unwrap_or(true)).await {
        Ok(events) => sent(&fake, events),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct AsyncQuery {
    result: String,
}

async fn knob_async(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    Query(q): Query<AsyncQuery>,
) -> Response {
    let ok = q.result == "succeeded";
    let charge = fake.next("ch");
    let Some(session) = fake.update(&id, |r| {
        r.session["payment_status"] = json!(if ok { "paid" } else { "unpaid" });
        if ok {
            r.charge_id = Some(charge);
        }
        r.session.clone()
    }) else {
        return not_found("checkout session", &id);
    };
    let kind = if ok {
        "checkout.session.async_payment_succeeded"
    } else {
        "checkout.session.async_payment_failed"
    };
    let mut events = vec![fake.emit(kind, public(&session)).await];
    if ok {
        if let Some(c) = fake.charge(&id) {
            events.push(fake.emit("charge.succeeded", c).await);
        }
    }
    sent(&fake, events)
}

async fn knob_expire(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    let Some(session) = fake.update(&id, |r| {
        r.session["status"] = json!("expired");
        r.session.clone()
    }) else {
        return not_found("checkout session", &id);
    };
    let events = vec![
        fake.emit("checkout.session.expired", public(&session))
            .await,
    ];
    sent(&fake, events)
}

#[derive(Deserialize)]
struct RefundQuery {
    amount: Option<i64>,
}

async fn knob_refund(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    Query(q): Query<RefundQuery>,
) -> Response {
    let ok = fake.update(&id, |r| {
        if r.charge_id.is_none() {
            return false;
        }
        let more = q.amount.unwrap_or(r.amount - r.refunded).max(0);
        r.refunded = (r.refunded + more).min(r.amount);
        true
    });
    match ok {
        None => not_found("checkout session", &id),
        Some(false) => stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "This session has no charge to refund.",
        ),
        Some(true) => {
            let charge = fake.charge(&id).unwrap_or_default();
            let events = vec![fake.emit("charge.refunded", charge).await];
            sent(&fake, events)
        }
    }
}

#[derive(Deserialize)]
struct DisputeQuery {
    status: Option<String>,
}

async fn knob_dispute(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    Query(q): Query<DisputeQuery>,
) -> Response {
    let status = q.status.unwrap_or_else(|| "open".into());
    if !matches!(status.as_str(), "open" | "won" | "lost") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "status must be open, won or lost",
        );
    }
    let new_id = fake.next("dp");
    let Some(Some((dispute, charge, session))) = fake.update(&id, |r| {
        let charge = r.charge_id.clone()?;
        let dispute = r.dispute_id.get_or_insert(new_id).clone();
        Some((dispute, charge, r.session.clone()))
    }) else {
        return not_found("charge of checkout session", &id);
    };
    let amount = session["amount_total"].clone();
    let object = json!({
        "id": dispute, "object": "dispute", "amount": amount, "currency": session["currency"],
        "charge": charge, "payment_intent": session["payment_intent"],
        "status": if status == "open" { "needs_response" } else { status.as_str() },
        "livemode": false,
    });
    let kind = if status == "open" {
        "charge.dispute.created"
    } else {
        "charge.dispute.closed"
    };
    let events = vec![fake.emit(kind, object).await];
    sent(&fake, events)
}

async fn knob_events(State(fake): State<Arc<Fake>>) -> Json<Value> {
    let list: Vec<Value> = fake
        .events
        .lock()
        .map(|e| {
            e.iter()
                .map(|(id, kind, _)| json!({"id": id, "type": kind}))
                .collect()
        })
        .unwrap_or_default();
    Json(json!({"events": list}))
}

#[derive(Deserialize)]
struct ReplayQuery {
    times: Option<u32>,
    /// Send the copies at once instead of one after the other.
    concurrent: Option<bool>,
}

async fn knob_replay(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    Query(q): Query<ReplayQuery>,
) -> Response {
    let times = q.times.unwrap_or(1).clamp(1, 100);
    let statuses: Vec<u16> = if q.concurrent.unwrap_or(false) {
        futures_util::future::join_all((0..times).map(|_| fake.deliver(&id))).await
    } else {
        let mut out = Vec::new();
        for _ in 0..times {
            out.push(fake.deliver(&id).await);
        }
        out
    };
    Json(json!({"id": id, "statuses": statuses})).into_response()
}

#[derive(Deserialize)]
struct SettingsQuery {
    hold: Option<bool>,
    drop_next: Option<bool>,
    delay_ms: Option<u64>,
}

async fn knob_settings(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<SettingsQuery>,
) -> Json<Value> {
    if let Some(h) = q.hold {
        fake.hold.store(h, Ordering::Relaxed);
    }
    if let Some(d) = q.drop_next {
        fake.drop_next.store(d, Ordering::Relaxed);
    }
    if let Some(d) = q.delay_ms {
        fake.delay_ms.store(d.min(600_000), Ordering::Relaxed);
    }
    let sessions = fake.sessions.lock().map(|s| s.len()).unwrap_or(0);
    Json(json!({
        "hold": fake.hold.load(Ordering::Relaxed),
        "delay_ms": fake.delay_ms.load(Ordering::Relaxed),
        "sessions": sessions,
    }))
}

#[derive(Deserialize)]
struct FlushQuery {
    order: Option<String>,
}

async fn knob_flush(State(fake): State<Arc<Fake>>, Query(q): Query<FlushQuery>) -> Json<Value> {
    let mut ids = fake
        .held
        .lock()
        .map(|mut h| std::mem::take(&mut *h))
        .unwrap_or_default();
    if q.order.as_deref() == Some("reverse") {
        ids.reverse();
    }
    let mut out = Vec::new();
    for id in ids {
        let status = fake.deliver(&id).await;
        out.push(json!({"id": id, "status": status}));
    }
    Json(json!({"events": out}))
}
