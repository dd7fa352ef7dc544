//! Limits on keys and teams through a real server, in process and with Redis: requests and
//! tokens per minute, concurrency, allowed models and spend caps; refusals in the caller's
//! envelope with their headers, nothing sent upstream or charged for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::TestApp;
use serde_json::{json, Value};
use weir_core::{
    auth::ParsedKey,
    limits::{self, Rules, Scope},
    money::Micros,
};

const REDIS: &str = "redis://127.0.0.1:6379";

fn chat(prompt: &str) -> Value {
    json!({"model": "demo/echo", "max_tokens": 16,
           "messages": [{"role": "user", "content": prompt}]})
}

async fn send(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Sets the rules of the demo key and makes the server see them now (other replicas: within
/// the auth epoch poll).
async fn limit_demo_key(app: &TestApp, rules: Rules) -> i64 {
    let key_id = ParsedKey::parse(&app.key).unwrap().key_id.to_owned();
    let id = limits::key_row_id(&app.db, &key_id).await.unwrap().unwrap();
    limits::set(&app.db, Scope::Key, id, &rules).await.unwrap();
    app.gateway().verifier.poll_epoch().await.unwrap();
    id
}

async fn requests_per_minute(vars: &[(&str, &str)]) {
    let app = TestApp::spawn_with(vars).await;
    let rpm = weir_server::demo::LIMITED_RPM as usize;
    for i in 0..rpm {
        let r = send(&app, &app.limited_key, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-ratelimit-limit-requests"),
            Some(&*rpm.to_string())
        );
        assert_eq!(
            header(&r, "x-ratelimit-remaining-requests"),
            Some(&*(rpm - 1 - i).to_string())
        );
        assert!(header(&r, "x-ratelimit-reset-requests").is_some());
    }
    let sent = app.upstream_requests().await;
    let r = send(&app, &app.limited_key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "retry-after {wait}");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some("0"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");

    // Anthropic's surface: its envelope and its header names.
    let msg = json!({"model": "demo/echo", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hi"}]});
    let r = send(&app, &app.limited_key, "/v1/messages", &msg).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        header(&r, "anthropic-ratelimit-requests-limit"),
        Some(&*rpm.to_string())
    );
    assert_eq!(
        header(&r, "anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    assert!(header(&r, "anthropic-ratelimit-requests-reset")
        .unwrap()
        .ends_with('Z'));
    assert!(header(&r, "x-ratelimit-limit-requests").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(
        app.upstream_requests().await,
        sent,
        "refusals reach no upstream"
    );

    // The other key of the team is not limited and carries no limit headers.
    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-ratelimit-limit-requests").is_none());

    // Refusals are logged as 429 and charged nothing.
    let rows = app.wait_for_log_rows(rpm as i64 + 3).await;
    let refused: Vec<_> = rows.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused.len(), 2);
    let charged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM charge WHERE request_id IN (SELECT request_id FROM request_log WHERE status = 429)",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(charged, 0);
    app.stop().await;
}

#[tokio::test]
async fn requests_per_minute_in_process() {
    requests_per_minute(&[]).await;
}

#[tokio::test]
async fn requests_per_minute_on_redis() {
    requests_per_minute(&[("REDIS_URL", REDIS)]).await;
}

#[tokio::test]
async fn tokens_concurrency_and_models() {
    let app = TestApp::spawn_with(&[("REDIS_URL", REDIS)]).await;
    limit_demo_key(
        &app,
        Rules {
            tpm: Some(1_000),
            concurrency: Some(1),
            models: Some(vec!["demo/e*".into()]),
            ..Rules::default()
        },
    )
    .await;
    // More tokens than a whole minute's allowance: never admitted, a 400.
    let mut big = chat("hi");
    big["max_tokens"] = json!(5_000);
    let r = send(&app, &app.key, "/v1/chat/completions", &big).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tokens_exceed_rate_limit");

    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), Some("1000"));
    let left: u64 = header(&r, "x-ratelimit-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(left < 1_000 && left > 900, "remaining tokens {left}");

    // One request in flight at a time.
    let slow = {
        let (http, url, key) = (
            app.http.clone(),
            app.url("/v1/chat/completions"),
            app.key.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&chat("[[mock delay_ms=1500]] slow"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent"));
    assert_eq!(slow.await.unwrap(), 200);
    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 200, "the slot is free again");

    // Models outside the patterns: 403 in the caller's envelope.
    let r = send(
        &app,
        &app.key,
        "/v1/embeddings",
        &json!({"model": "demo/embed", "input": "x"}),
    )
    .await;
    assert_eq!(r.status(), 200, "demo/embed matches demo/e*");
    limit_demo_key(
        &app,
        Rules {
            models: Some(vec!["demo/embed".into()]),
            ..Rules::default()
        },
    )
    .await;
    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");
    let msg = json!({"model": "demo/echo", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hi"}]});
    let r = send(&app, &app.key, "/v1/messages", &msg).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    app.stop().await;
}

#[tokio::test]
async fn spend_caps_refuse_in_the_reservation_and_say_what_is_left() {
    let app = TestApp::spawn().await;
    let id = limit_demo_key(
        &app,
        Rules {
            total_cap: Some(Micros(1)),
            ..Rules::default()
        },
    )
    .await;
    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-should-retry"), Some("false"));
    assert_eq!(header(&r, "x-weir-key-remaining"), Some("0.00"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "spend_cap_reached");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("total spend cap"));

    limit_demo_key(
        &app,
        Rules {
            day_cap: Some(Micros(1_000_000)),
            ..Rules::default()
        },
    )
    .await;
    let r = send(&app, &app.key, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status(), 200);
    let left = Micros::parse_usd(header(&r, "x-weir-key-remaining").unwrap()).unwrap();
    assert!(left.0 < 1_000_000 && left.0 > 900_000, "remaining {left}");
    let cost = Micros::parse_usd(header(&r, "x-weir-cost").unwrap()).unwrap();
    // Settled: the cost is spent, nothing held.
    let mut spend = limits::Spend::default();
    for _ in 0..100 {
        spend = limits::get(&app.db, Scope::Key, id).await.unwrap().1;
        if spend.held.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((spend.day, spend.held), (cost, Micros(0)));
    assert!(weir_core::billing::check(&app.db).await.unwrap().is_empty());
    app.stop().await;
}

/// An operator's upstream quota: the request spills to the next channel before the provider's
/// own 429, and with every channel at its quota Weir answers 429 itself, sending nothing.
#[tokio::test]
async fn channel_quotas_spill_to_the_next_channel_then_answer_429() {
    use weir_core::catalog::{self, ChannelSpec, Quota, Tariff, Wire};
    let app = TestApp::spawn_with(&[("REDIS_URL", REDIS)]).await;
    let base = format!("{}/v1", app.mock.base_url());
    common::surface::add_upstream(
        &app,
        Wire::OpenAi,
        ("quota", &base, "k"),
        ("quota/echo", "echo"),
        Tariff {
            input: weir_core::money::PerMillion(1_000_000),
            output: weir_core::money::PerMillion(2_000_000),
            ..Tariff::default()
        },
    )
    .await;
    catalog::upsert_channel(
        &app.db,
        &ChannelSpec {
            provider_id: "quota",
            name: "quota-spare",
            base_url: &base,
            key_env: None,
            api_key: Some("k"),
            priority: -1,
            is_local: true,
        },
    )
    .await
    .unwrap();
    let first = catalog::channels::resolve(&app.db, "quota").await.unwrap();
    let spare = catalog::channels::resolve(&app.db, "quota-spare")
        .await
        .unwrap();
    let two = Quota {
        rpm: Some(2),
        tpm: None,
    };
    catalog::channels::set_quota(&app.db, "test", first, two)
        .await
        .unwrap();
    app.gateway().catalog.refresh(true).await.unwrap();
    let body = json!({"model": "quota/echo", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..4 {
        let r = send(&app, &app.key, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200);
    }
    let rows = app.wait_for_log_rows(4).await;
    let on = |id: i64| rows.iter().filter(|r| r.channel_id == Some(id)).count();
    assert_eq!(
        (on(first), on(spare)),
        (2, 2),
        "two within the quota, then the spare"
    );

    catalog::channels::set_quota(&app.db, "test", spare, two)
        .await
        .unwrap();
    app.gateway().catalog.refresh(true).await.unwrap();
    // Counting starts when a quota is set: the spare takes two more.
    for _ in 0..2 {
        assert_eq!(
            send(&app, &app.key, "/v1/chat/completions", &body)
                .await
                .status(),
            200
        );
    }
    let sent = app.upstream_requests().await;
    let r = send(&app, &app.key, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_quota");
    assert_eq!(app.upstream_requests().await, sent, "nothing sent upstream");
    app.stop().await;
}
