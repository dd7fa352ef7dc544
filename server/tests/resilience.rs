//! Breakers and the retry budget against a real upstream going down and coming back (the
//! mock's outage switch, `PUT /_mock/outage`), counting what reached it (`GET /_mock/stats`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{surface::add_upstream, TestApp};
use serde_json::json;
use weir_core::{
    catalog::{self, ChannelSpec, Tariff, Wire},
    money::PerMillion,
};

async fn outage(app: &TestApp, on: bool) {
    let url = format!("{}/_mock/outage", app.mock.base_url());
    let r = if on {
        app.http.put(url).json(&json!({"status": 503})).send().await
    } else {
        app.http.delete(url).send().await
    };
    assert_eq!(r.unwrap().status(), 204);
}

async fn ask(app: &TestApp, model: &str) -> reqwest::Response {
    app.post(
        "/v1/chat/completions",
        &json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await
}

#[tokio::test]
async fn a_failing_upstream_is_cut_off_then_one_probe_brings_it_back() {
    let app = TestApp::spawn_with(&[
        ("WEIR_BREAKER_FAILURES", "3"),
        ("WEIR_BREAKER_COOLDOWN_MS", "400"),
    ])
    .await;
    outage(&app, true).await;
    let before = app.upstream_requests().await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = ask(&app, "demo/echo").await;
        statuses.push(r.status().as_u16());
        if statuses.len() > 3 {
            // Open: refused by Weir at once, with when to come back.
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
        }
    }
    assert!(statuses.iter().all(|s| *s >= 500), "{statuses:?}");
    assert_eq!(
        app.upstream_requests().await - before,
        3,
        "the upstream saw the 3 failures that opened the breaker, and nothing after"
    );

    // Still down when the cool-down ends: the probe fails and the breaker opens again.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(ask(&app, "demo/echo").await.status().as_u16() >= 500);
    assert_eq!(ask(&app, "demo/echo").await.status(), 503);
    assert_eq!(app.upstream_requests().await - before, 4, "one probe");

    // Back up: after the cool-down one probe goes, succeeds, and traffic flows again.
    outage(&app, false).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    for _ in 0..5 {
        assert_eq!(ask(&app, "demo/echo").await.status(), 200);
    }
    assert_eq!(app.upstream_requests().await - before, 9);
    let breakers = app.gateway().health.breakers();
    assert!(
        breakers.iter().all(|b| b.state.as_str() == "closed"),
        "{breakers:?}"
    );
    app.stop().await;
}

/// Every channel down, breakers out of the way (they would hide the budget): the upstreams see
/// the requests plus at most the retry budget's share (20%) and floor (1/s over 10 s), not
/// every request times every channel.
#[tokio::test]
async fn a_full_outage_costs_the_upstreams_at_most_the_retry_budget() {
    let app = TestApp::spawn_with(&[
        ("WEIR_BREAKER_FAILURES", "100000"),
        ("WEIR_BREAKER_FAILURE_RATE_PERCENT", "0"),
    ])
    .await;
    let base = format!("{}/v1", app.mock.base_url());
    add_upstream(
        &app,
        Wire::OpenAi,
        ("pair", &base, "k"),
        ("pair/echo", "echo"),
        Tariff {
            input: PerMillion(1_000_000),
            output: PerMillion(2_000_000),
            ..Tariff::default()
        },
    )
    .await;
    for name in ["pair-2", "pair-3"] {
        catalog::upsert_channel(
            &app.db,
            &ChannelSpec {
                provider_id: "pair",
                name,
                base_url: &base,
                key_env: None,
                api_key: Some("k"),
                priority: 0,
                is_local: true,
            },
        )
        .await
        .unwrap();
    }
    app.gateway().catalog.refresh(true).await.unwrap();
    // Healthy, the first channel answers.
    let r = ask(&app, "pair/echo").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let n = app
        .gateway()
        .catalog
        .current()
        .resolve("pair/echo", weir_core::catalog::ModelKind::Chat)
        .map_or(0, |t| t.len());
    assert_eq!(n, 3, "three channels serve the model");
    outage(&app, true).await;
    let before = app.upstream_requests().await;
    const REQUESTS: u64 = 60;
    for _ in 0..REQUESTS {
        let r = ask(&app, "pair/echo").await;
        let status = r.status().as_u16();
        assert!(status >= 500, "{status} {}", r.text().await.unwrap());
    }
    let seen = app.upstream_requests().await - before;
    let budget = REQUESTS * 20 / 100 + 10;
    assert!(seen > REQUESTS, "some retries were made: {seen}");
    assert!(
        seen <= REQUESTS + budget,
        "{seen} upstream requests for {REQUESTS} (3 channels each would be {})",
        REQUESTS * 3
    );
    app.stop().await;
}
