//! Stripe top-ups end to end over real HTTP: the webhook's signature check, exactly-once
//! crediting under replays, concurrency and reordering, refunds and disputes through the
//! ledger, and the checkout loop through the fake Stripe (session creation with its
//! idempotency key, the hosted "Pay" button, signed events back to Weir). `weir ledger check`
//! (`billing::check`) is clean after each. Runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{console::Browser, TestApp};
use serde_json::{json, Value};
use weir_core::{
    billing,
    money::Micros,
    team,
    topup::{self, signature, Topup, TopupStatus},
};
use weir_server::stripe::fake::{self, FakeStripe};

const SECRET: &str = "whsec_test_secret";
const OLD_SECRET: &str = "whsec_old_secret";
const KEY: &str = "sk_test_weir";

struct Stripe {
    app: TestApp,
    fake: FakeStripe,
    team: i64,
}

impl Stripe {
    async fn spawn() -> Stripe {
        let fake = fake::spawn(
            "127.0.0.1:0".parse().unwrap(),
            fake::FakeConfig {
                webhook_url: None,
                webhook_secret: SECRET.into(),
                api_key: Some(KEY.into()),
            },
        )
        .await
        .unwrap();
        let base = fake.base_url();
        let app = TestApp::spawn_with(&[
            ("STRIPE_SECRET_KEY", KEY),
            ("STRIPE_WEBHOOK_SECRET", &format!("{OLD_SECRET}, {SECRET}")),
            ("STRIPE_API_BASE", &base),
        ])
        .await;
        fake.set_webhook_url(&app.url("/webhooks/stripe"));
        let team = team::create(&app.db, "payers").await.unwrap().id;
        Stripe { app, fake, team }
    }

    async fn stop(self) {
        self.app.stop().await;
    }

    /// A pending top-up of `dollars` with a (made-up) session id, as `start_topup` leaves it.
    async fn topup(&self, dollars: i64) -> Topup {
        let t = topup::create(
            &self.app.db,
            self.team,
            None,
            Micros(dollars * 1_000_000),
            &topup::Limits::default(),
        )
        .await
        .unwrap();
        let session = format!("cs_test_{}", &t.id[3..]);
        topup::attach_session(&self.app.db, &t.id, &session, "http://stripe.invalid/pay")
            .await
            .unwrap();
        self.get(&t.id).await
    }

    async fn get(&self, id: &str) -> Topup {
        topup::get(&self.app.db, self.team, id).await.unwrap()
    }

    async fn balance(&self) -> i64 {
        billing::balance(&self.app.db, self.team)
            .await
            .unwrap()
            .0
             .0
    }

    async fn events_recorded(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM stripe_event")
            .fetch_one(self.app.db.pool())
            .await
            .unwrap()
    }

    /// POSTs `body` signed with `header` (or, `None`, correctly signed now).
    async fn deliver_signed(&self, body: &str, header: Option<String>) -> u16 {
        let header = header.unwrap_or_else(|| {
            signature::sign(&[SECRET], chrono::Utc::now().timestamp(), body.as_bytes())
        });
        self.app
            .http
            .post(self.app.url("/webhooks/stripe"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn deliver(&self, body: &str) -> u16 {
        self.deliver_signed(body, None).await
    }

    async fn assert_books_clean(&self) {
        let drift = billing::check(&self.app.db).await.unwrap();
        assert!(drift.is_empty(), "ledger drift: {drift:?}");
    }

    /// The team's ledger transactions (kind, amount), oldest first.
    async fn ledger(&self) -> Vec<(String, i64)> {
        let (rows, _) = billing::team_ledger(&self.app.db, self.team, None, 100)
            .await
            .unwrap();
        rows.into_iter()
            .rev()
            .map(|r| (r.kind, r.amount.0))
            .collect()
    }
}

fn event(id: &str, kind: &str, object: Value) -> String {
    json!({"id": id, "object": "event", "type": kind, "livemode": false, "created": 1,
           "data": {"object": object}})
    .to_string()
}

fn session_event(id: &str, kind: &str, t: &Topup, paid: bool, cents: i64) -> String {
    event(
        id,
        kind,
        json!({
            "id": t.session_id, "object": "checkout.session",
            "client_reference_id": t.team_id.to_string(),
            "metadata": {"team_id": t.team_id.to_string(), "topup_id": t.id},
            "amount_total": cents, "currency": "usd",
            "payment_status": if paid { "paid" } else { "unpaid" },
            "status": if kind.ends_with("expired") { "expired" } else { "complete" },
            "payment_intent": format!("pi_{}", &t.id[3..]),
        }),
    )
}

fn completed(id: &str, t: &Topup) -> String {
    session_event(id, "checkout.session.completed", t, true, t.cents())
}

fn refunded(id: &str, t: &Topup, cumulative_cents: i64) -> String {
    event(
        id,
        "charge.refunded",
        json!({
            "id": format!("ch_{}", &t.id[3..]), "object": "charge", "amount": t.cents(),
            "amount_refunded": cumulative_cents, "currency": "usd",
            "refunded": cumulative_cents >= t.cents(),
            "payment_intent": format!("pi_{}", &t.id[3..]),
            "metadata": {"team_id": t.team_id.to_string(), "topup_id": t.id},
            "receipt_url": "https://pay.stripe.com/receipts/test",
        }),
    )
}

fn dispute(id: &str, kind: &str, t: &Topup, status: &str) -> String {
    event(
        id,
        kind,
        json!({"id": format!("dp_{}", &t.id[3..]), "object": "dispute", "amount": t.cents(),
               "currency": "usd", "status": status,
               "charge": format!("ch_{}", &t.id[3..]),
               "payment_intent": format!("pi_{}", &t.id[3..])}),
    )
}

#[tokio::test]
async fn forged_or_stale_signatures_are_400_and_record_nothing() {
    let s = Stripe::spawn().await;
    let t = s.topup(20).await;
    let body = completed("evt_forged", &t);
    let now = chrono::Utc::now().timestamp();
    let changed = body.replace("\"usd\"", "\"USD\"");
    let cases: Vec<(&str, String, Option<String>)> = vec![
        (
            "wrong secret",
            body.clone(),
            Some(signature::sign(&["whsec_wrong"], now, body.as_bytes())),
        ),
        (
            "body changed after signing",
            changed,
            Some(signature::sign(&[SECRET], now, body.as_bytes())),
        ),
        (
            "stale (301 s)",
            body.clone(),
            Some(signature::sign(&[SECRET], now - 301, body.as_bytes())),
        ),
        (
            "no timestamp",
            body.clone(),
            Some(format!(
                "v1={}",
                signature::expected(SECRET, now, body.as_bytes())
            )),
        ),
        (
            "only v0",
            body.clone(),
            Some(format!(
                "t={now},v0={}",
                signature::expected(SECRET, now, body.as_bytes())
            )),
        ),
        ("garbage", body.clone(), Some("nonsense".into())),
        ("empty", body.clone(), Some(String::new())),
    ];
    for (what, body, header) in cases {
        assert_eq!(s.deliver_signed(&body, header).await, 400, "{what}");
    }
    // No header at all.
    let r = s
        .app
        .http
        .post(s.app.url("/webhooks/stripe"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(s.events_recorded().await, 0);
    assert_eq!(s.balance().await, 0);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Pending);

    // Signed with the older of two secrets (a rotation), among a wrong v1: accepted.
    let header = format!(
        "t={now},v1={},v1={}",
        signature::expected("whsec_wrong", now, body.as_bytes()),
        signature::expected(OLD_SECRET, now, body.as_bytes())
    );
    assert_eq!(s.deliver_signed(&body, Some(header)).await, 200);
    assert_eq!(s.balance().await, 20_000_000);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn the_same_event_five_times_credits_once() {
    let s = Stripe::spawn().await;
    let t = s.topup(25).await;
    let body = completed("evt_replayed", &t);
    for _ in 0..5 {
        assert_eq!(s.deliver(&body).await, 200);
    }
    assert_eq!(s.balance().await, 25_000_000);
    assert_eq!(s.events_recorded().await, 1);
    let t = s.get(&t.id).await;
    assert_eq!(t.status, TopupStatus::Credited);
    assert_eq!(
        t.payment_intent.as_deref(),
        Some(format!("pi_{}", &t.id[3..]).as_str())
    );
    assert_eq!(s.ledger().await, vec![("topup".to_owned(), 25_000_000)]);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn five_concurrent_deliveries_credit_once() {
    let s = Stripe::spawn().await;
    let t = s.topup(10).await;
    let body = completed("evt_concurrent", &t);
    let statuses = futures_util::future::join_all((0..5).map(|_| s.deliver(&body))).await;
    assert_eq!(statuses, vec![200; 5]);
    assert_eq!(s.balance().await, 10_000_000);
    assert_eq!(s.events_recorded().await, 1);

    // Different events for one payment, at once: still one credit.
    let t2 = s.topup(50).await;
    let bodies: Vec<String> = (0..5)
        .map(|i| {
            if i % 2 == 0 {
                completed(&format!("evt_c{i}"), &t2)
            } else {
                session_event(
                    &format!("evt_a{i}"),
                    "checkout.session.async_payment_succeeded",
                    &t2,
                    true,
                    t2.cents(),
                )
            }
        })
        .collect();
    let statuses = futures_util::future::join_all(bodies.iter().map(|b| s.deliver(b))).await;
    assert_eq!(statuses, vec![200; 5]);
    assert_eq!(s.balance().await, 60_000_000);
    assert_eq!(s.ledger().await.len(), 2);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn completed_after_expired_credits_and_expired_after_credit_changes_nothing() {
    let s = Stripe::spawn().await;
    let t = s.topup(30).await;
    let expired = session_event("evt_exp", "checkout.session.expired", &t, false, t.cents());
    assert_eq!(s.deliver(&expired).await, 200);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Expired);
    assert_eq!(s.deliver(&completed("evt_done", &t)).await, 200);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Credited);
    let again = session_event("evt_exp2", "checkout.session.expired", &t, false, t.cents());
    assert_eq!(s.deliver(&again).await, 200);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Credited);
    assert_eq!(s.balance().await, 30_000_000);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn a_refund_before_the_completion_is_reversed_after_the_credit() {
    let s = Stripe::spawn().await;
    let t = s.topup(40).await;
    // $15 refunded, delivered before the completion.
    assert_eq!(s.deliver(&refunded("evt_r1", &t, 1500)).await, 200);
    assert_eq!(s.balance().await, 0);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Pending);
    assert_eq!(s.deliver(&completed("evt_c", &t)).await, 200);
    let after = s.get(&t.id).await;
    assert_eq!(after.status, TopupStatus::PartiallyRefunded);
    assert_eq!(after.refund_reversed, Micros(15_000_000));
    assert_eq!(s.balance().await, 25_000_000);
    assert_eq!(
        s.ledger().await,
        vec![
            ("topup".to_owned(), 40_000_000),
            ("refund".to_owned(), -15_000_000)
        ]
    );
    // A full refund before the completion of another top-up: the ledger ends at zero.
    let t2 = s.topup(10).await;
    assert_eq!(s.deliver(&refunded("evt_r2", &t2, 1000)).await, 200);
    assert_eq!(s.deliver(&completed("evt_c2", &t2)).await, 200);
    assert_eq!(s.get(&t2.id).await.status, TopupStatus::Refunded);
    assert_eq!(s.balance().await, 25_000_000);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn partial_refunds_reverse_their_amount_and_converge_out_of_order() {
    let s = Stripe::spawn().await;
    let t = s.topup(20).await;
    assert_eq!(s.deliver(&completed("evt_c", &t)).await, 200);
    // $5 refunded: a reversing entry of exactly $5.
    assert_eq!(s.deliver(&refunded("evt_r500", &t, 500)).await, 200);
    assert_eq!(s.balance().await, 15_000_000);
    assert_eq!(
        s.ledger().await.last().cloned(),
        Some(("refund".to_owned(), -5_000_000))
    );
    assert_eq!(s.get(&t.id).await.status, TopupStatus::PartiallyRefunded);
    // The rest ($20 cumulative), then the $5 one replayed and redelivered late.
    assert_eq!(s.deliver(&refunded("evt_r2000", &t, 2000)).await, 200);
    assert_eq!(s.deliver(&refunded("evt_r500", &t, 500)).await, 200);
    assert_eq!(s.deliver(&refunded("evt_r500_late", &t, 500)).await, 200);
    assert_eq!(s.balance().await, 0);
    let after = s.get(&t.id).await;
    assert_eq!(after.status, TopupStatus::Refunded);
    assert_eq!(
        after.receipt_url.as_deref(),
        Some("https://pay.stripe.com/receipts/test")
    );
    assert_eq!(
        s.ledger().await,
        vec![
            ("topup".to_owned(), 20_000_000),
            ("refund".to_owned(), -5_000_000),
            ("refund".to_owned(), -15_000_000)
        ]
    );
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn a_refund_may_take_the_balance_negative_and_then_nothing_is_admitted() {
    let s = Stripe::spawn().await;
    // The demo team (funded $100) spends nothing; use its key on a team of our own instead.
    let key = weir_core::auth::create_key(&s.app.db, "payers", weir_core::auth::Env::Dev, "k")
        .await
        .unwrap()
        .full;
    let t = s.topup(10).await;
    assert_eq!(s.deliver(&completed("evt_c", &t)).await, 200);
    billing::credit(&s.app.db, s.team, Micros(-6_000_000), "spent", None)
        .await
        .unwrap();
    assert_eq!(s.deliver(&refunded("evt_r", &t, 1000)).await, 200);
    assert_eq!(s.balance().await, -6_000_000);
    let r = s
        .app
        .http
        .post(s.app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 402);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn delayed_payments_mismatches_unknown_sessions_and_types() {
    let s = Stripe::spawn().await;
    // Unpaid completion (a bank debit): processing, then credited when it succeeds.
    let t = s.topup(10).await;
    let unpaid = session_event("evt_u", "checkout.session.completed", &t, false, t.cents());
    assert_eq!(s.deliver(&unpaid).await, 200);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Processing);
    assert_eq!(s.balance().await, 0);
    let ok = session_event(
        "evt_ok",
        "checkout.session.async_payment_succeeded",
        &t,
        true,
        t.cents(),
    );
    assert_eq!(s.deliver(&ok).await, 200);
    assert_eq!(s.get(&t.id).await.status, TopupStatus::Credited);
    assert_eq!(s.balance().await, 10_000_000);

    // A failed delayed payment: failed, nothing credited.
    let f = s.topup(10).await;
    let unpaid = session_event("evt_u2", "checkout.session.completed", &f, false, f.cents());
    let failed = session_event(
        "evt_f",
        "checkout.session.async_payment_failed",
        &f,
        false,
        f.cents(),
    );
    assert_eq!(s.deliver(&unpaid).await, 200);
    assert_eq!(s.deliver(&failed).await, 200);
    assert_eq!(s.get(&f.id).await.status, TopupStatus::Failed);

    // Stripe's amount differs from the top-up's: recorded, not credited.
    let m = s.topup(10).await;
    let wrong = session_event("evt_m", "checkout.session.completed", &m, true, 100_000);
    assert_eq!(s.deliver(&wrong).await, 200);
    let m = s.get(&m.id).await;
    assert_eq!(m.status, TopupStatus::Mismatch);
    assert!(m.note.unwrap().contains("100000"));
    assert_eq!(s.balance().await, 10_000_000);

    // A session Weir never created, an unknown event type, another team's ids: 200, ignored.
    let stranger = event(
        "evt_stranger",
        "checkout.session.completed",
        json!({"id": "cs_test_unknown", "amount_total": 500, "currency": "usd", "payment_status": "paid"}),
    );
    assert_eq!(s.deliver(&stranger).await, 200);
    assert_eq!(
        s.deliver(&event(
            "evt_other",
            "customer.created",
            json!({"id": "cus_1"})
        ))
        .await,
        200
    );
    let x = s.topup(10).await;
    let forged_team = completed("evt_team", &x).replace(
        &format!("\"team_id\":\"{}\"", s.team),
        "\"team_id\":\"999999\"",
    );
    assert_eq!(s.deliver(&forged_team).await, 200);
    assert_eq!(s.get(&x.id).await.status, TopupStatus::Pending);
    // A live-mode event on a test key.
    let live = completed("evt_live", &x).replace("\"livemode\":false", "\"livemode\":true");
    assert_eq!(s.deliver(&live).await, 200);
    assert_eq!(s.get(&x.id).await.status, TopupStatus::Pending);
    assert_eq!(s.balance().await, 10_000_000);
    // A signed body that is not an event: 400.
    assert_eq!(s.deliver("[1,2]").await, 400);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn disputes_reverse_the_credit_and_a_won_one_gives_it_back() {
    let s = Stripe::spawn().await;
    let t = s.topup(20).await;
    assert_eq!(s.deliver(&completed("evt_c", &t)).await, 200);
    let opened = dispute("evt_d1", "charge.dispute.created", &t, "needs_response");
    assert_eq!(s.deliver(&opened).await, 200);
    assert_eq!(s.deliver(&opened).await, 200);
    assert_eq!(s.balance().await, 0);
    assert_eq!(
        s.deliver(&dispute("evt_d2", "charge.dispute.closed", &t, "won"))
            .await,
        200
    );
    assert_eq!(
        s.deliver(&dispute("evt_d3", "charge.dispute.closed", &t, "won"))
            .await,
        200
    );
    assert_eq!(s.balance().await, 20_000_000);

    // Lost, with the opening delivered after the closing: reversed once.
    let l = s.topup(10).await;
    assert_eq!(s.deliver(&completed("evt_c2", &l)).await, 200);
    assert_eq!(
        s.deliver(&dispute("evt_l2", "charge.dispute.closed", &l, "lost"))
            .await,
        200
    );
    assert_eq!(
        s.deliver(&dispute(
            "evt_l1",
            "charge.dispute.created",
            &l,
            "needs_response"
        ))
        .await,
        200
    );
    assert_eq!(s.balance().await, 20_000_000);
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn a_processing_failure_is_500_and_the_retry_credits_once() {
    let s = Stripe::spawn().await;
    let t = s.topup(15).await;
    let body = completed("evt_retry", &t);
    sqlx::query("ALTER TABLE topup RENAME TO topup_away")
        .execute(s.app.db.write_pool())
        .await
        .unwrap();
    assert_eq!(s.deliver(&body).await, 500);
    sqlx::query("ALTER TABLE topup_away RENAME TO topup")
        .execute(s.app.db.write_pool())
        .await
        .unwrap();
    assert_eq!(s.events_recorded().await, 0);
    assert_eq!(s.deliver(&body).await, 200);
    assert_eq!(s.deliver(&body).await, 200);
    assert_eq!(s.balance().await, 15_000_000);
    s.assert_books_clean().await;
    s.stop().await;
}

/// The console starts a top-up on the fake Stripe; "Pay" there credits through the webhook.
#[tokio::test]
async fn checkout_through_the_fake_stripe_credits_through_the_webhook() {
    let s = Stripe::spawn().await;
    let mut owner = Browser::sign_up(&s.app, "payer@example.com").await;
    let team_id = owner.team_id().await;
    // Out of bounds (defaults $5 to $10,000): a field error, no row.
    for bad in ["4.99", "10000.01", "abc", "5.001", "-10"] {
        let a = owner.call("billing/start_topup", &[("amount", bad)]).await;
        assert_eq!(a.status, 400, "{bad}: {a:?}");
    }
    assert!(topup::list(&s.app.db, team_id, 10)
        .await
        .unwrap()
        .is_empty());

    let a = owner.call("billing/start_topup", &[("amount", "25")]).await;
    assert!(a.status < 400, "{a:?}");
    let rows = topup::list(&s.app.db, team_id, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let t = rows[0].clone();
    let session = t.session_id.clone().unwrap();
    assert!(session.starts_with("cs_test_"));
    let pay_url = t.checkout_url.clone().unwrap();
    assert_eq!(pay_url, format!("{}/pay/{session}", s.fake.base_url()));

    // The fake saw the metadata on the session; a retry of the creation (same idempotency
    // key, same body) gives back the same session rather than a second one.
    let got: Value = s
        .app
        .http
        .get(format!(
            "{}/v1/checkout/sessions/{session}",
            s.fake.base_url()
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["metadata"]["topup_id"], json!(t.id));
    assert_eq!(got["metadata"]["team_id"], json!(team_id.to_string()));
    assert_eq!(got["client_reference_id"], json!(team_id.to_string()));
    assert_eq!(got["amount_total"], json!(2500));
    let checkout = weir_server::stripe::Checkout::new(
        &weir_server::config::StripeConfig {
            secret_key: weir_server::config::Secret::new(KEY),
            webhook_secrets: vec![],
            api_base: s.fake.base_url(),
        },
        // The test server's configured public URL (it listens on a port picked later).
        "http://127.0.0.1:0",
    )
    .unwrap();
    let again = checkout.create(&t).await.unwrap();
    assert_eq!(again.session_id, session);
    // The same key with another body is refused by the fake, as Stripe does.
    let mut other = t.clone();
    other.amount = Micros(30_000_000);
    let refused = checkout.create(&other).await.unwrap_err();
    assert!(refused.contains("400"), "{refused}");

    // A timeout while creating a session (the fake creates it, then cuts the connection):
    // the retry carries the same idempotency key and gets the same, only, session.
    let sessions = |v: Value| v["sessions"].as_u64().unwrap();
    let before = sessions(
        s.app
            .http
            .post(format!(
                "{}/_test/settings?drop_next=true",
                s.fake.base_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    let t3 = topup::create(
        &s.app.db,
        team_id,
        None,
        Micros(12_000_000),
        &topup::Limits::default(),
    )
    .await
    .unwrap();
    let link = checkout.create(&t3).await.unwrap();
    let after = sessions(
        s.app
            .http
            .post(format!("{}/_test/settings", s.fake.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(after, before + 1);
    assert_eq!(checkout.create(&t3).await.unwrap(), link);

    // Nothing is credited before payment, whatever the success page is asked.
    let (status, _) = owner
        .get(&format!("/billing?topup={}&session_id={session}", t.id))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        billing::balance(&s.app.db, team_id).await.unwrap().0,
        Micros::ZERO
    );

    // "Pay" on the hosted page: events are signed and delivered before the redirect.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.post(&pay_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.ends_with(&format!("/billing?topup={}&session_id={session}", t.id)),
        "{location}"
    );
    assert_eq!(
        billing::balance(&s.app.db, team_id).await.unwrap().0,
        Micros(25_000_000)
    );
    let credited = topup::get(&s.app.db, team_id, &t.id).await.unwrap();
    assert_eq!(credited.status, TopupStatus::Credited);
    assert!(credited.receipt_url.unwrap().contains("/receipts/ch_"));
    // The page lists it.
    let page = owner.call("billing/list_topups", &[("focus", &t.id)]).await;
    assert_eq!(page.body["enabled"], json!(true));
    assert_eq!(page.body["focus"]["status"], json!("credited"));
    assert_eq!(page.body["focus"]["amount"], json!(25_000_000));
    assert_eq!(page.body["rows"].as_array().unwrap().len(), 2);

    // Knobs: replay the completion 5 times at once, refund $5, dispute and win.
    let events: Value = http
        .get(format!("{}/_test/events", s.fake.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = events["events"][0]["id"].as_str().unwrap().to_owned();
    let replay: Value = http
        .post(format!(
            "{}/_test/events/{first}/replay?times=5&concurrent=true",
            s.fake.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["statuses"], json!([200, 200, 200, 200, 200]));
    let r = http
        .post(format!(
            "{}/_test/sessions/{session}/refund?amount=500",
            s.fake.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        billing::balance(&s.app.db, team_id).await.unwrap().0,
        Micros(20_000_000)
    );
    for status in ["open", "won"] {
        let r = http
            .post(format!(
                "{}/_test/sessions/{session}/dispute?status={status}",
                s.fake.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(
        billing::balance(&s.app.db, team_id).await.unwrap().0,
        Micros(20_000_000)
    );

    // Held events delivered in reverse order: an expiry and a completion of a new top-up.
    let a = owner
        .call("billing/start_topup", &[("amount", "$10.50")])
        .await;
    assert!(a.status < 400, "{a:?}");
    let t2 = topup::list(&s.app.db, team_id, 1).await.unwrap()[0].clone();
    let s2 = t2.session_id.clone().unwrap();
    http.post(format!("{}/_test/settings?hold=true", s.fake.base_url()))
        .send()
        .await
        .unwrap();
    http.post(format!(
        "{}/_test/sessions/{s2}/complete",
        s.fake.base_url()
    ))
    .send()
    .await
    .unwrap();
    http.post(format!("{}/_test/settings?hold=false", s.fake.base_url()))
        .send()
        .await
        .unwrap();
    let flushed: Value = http
        .post(format!("{}/_test/flush?order=reverse", s.fake.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(flushed["events"].as_array().unwrap().len(), 2);
    assert_eq!(
        billing::balance(&s.app.db, team_id).await.unwrap().0,
        Micros(30_500_000)
    );
    s.assert_books_clean().await;
    s.stop().await;
}

#[tokio::test]
async fn without_a_stripe_key_top_ups_are_off_with_the_reason() {
    let app = TestApp::spawn().await;
    let mut owner = Browser::sign_up(&app, "nokey@example.com").await;
    let page = owner.call("billing/list_topups", &[]).await;
    assert_eq!(page.body["enabled"], json!(false));
    assert!(page.body["reason"]
        .as_str()
        .unwrap()
        .contains("STRIPE_SECRET_KEY"));
    let a = owner.call("billing/start_topup", &[("amount", "25")]).await;
    assert_eq!(a.status, 400);
    // The webhook refuses everything: there is no secret to check against.
    let r = app
        .http
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    app.stop().await;
}
