//! Routing hints (#16) through the real server: a codename served by three hosts of the mock
//! upstream with different prices and latencies (each host's channel key makes the mock slow:
//! `mock-fault:delay_ms=…`), steered by the `weir` object, OpenRouter's `provider` object and
//! `models` fallback list; and the context-window and max-output checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{json, Value};
use weir_core::{
    catalog::{self, Capabilities, ChannelSpec, ModelKind, ModelSpec, ProviderSpec, Tariff, Wire},
    money::PerMillion,
};

use common::TestApp;

const CODENAME: &str = "llama-test";

/// One host of the codename: provider id, channel key, $/M input and output, tools, context.
struct Host {
    id: &'static str,
    key: &'static str,
    input: i64,
    output: i64,
    tools: bool,
    context: u32,
}

/// `cheap`: the lowest price, slow (300 ms), no tools, a 200-token window. `fast`: the dearest,
/// no delay. `mid`: between the two, 120 ms. `down`: cheapest of all, every request a 503.
const HOSTS: [Host; 4] = [
    Host {
        id: "cheap",
        key: "mock-fault:delay_ms=300",
        input: 100_000,
        output: 200_000,
        tools: false,
        context: 200,
    },
    Host {
        id: "fast",
        key: "mock-key",
        input: 2_000_000,
        output: 4_000_000,
        tools: true,
        context: 128_000,
    },
    Host {
        id: "mid",
        key: "mock-fault:delay_ms=120",
        input: 1_000_000,
        output: 1_000_000,
        tools: true,
        context: 128_000,
    },
    Host {
        id: "down",
        key: "mock-fault:status=503",
        input: 50_000,
        output: 50_000,
        tools: true,
        context: 128_000,
    },
];

async fn app_with_hosts(hosts: &[&str]) -> TestApp {
    let app = TestApp::spawn().await;
    let base = format!("{}/v1", app.mock.base_url());
    let mut ids = Vec::new();
    for h in HOSTS.iter().filter(|h| hosts.contains(&h.id)) {
        catalog::ensure_provider(
            &app.db,
            &ProviderSpec {
                id: h.id,
                name: h.id,
                wire: Wire::OpenAi,
                base_url: &base,
                key_env: None,
            },
        )
        .await
        .unwrap();
        catalog::upsert_channel(
            &app.db,
            &ChannelSpec {
                provider_id: h.id,
                name: h.id,
                base_url: &base,
                key_env: None,
                api_key: Some(h.key),
                priority: 0,
                is_local: true,
            },
        )
        .await
        .unwrap();
        let id = format!("{}/llama", h.id);
        catalog::ensure_model(
            &app.db,
            &ModelSpec {
                id: &id,
                provider_id: h.id,
                upstream_model: "llama",
                kind: ModelKind::Chat,
                context_window: h.context,
                max_output_tokens: Some(4096),
                capabilities: Capabilities {
                    tools: h.tools,
                    ..Capabilities::default()
                },
            },
            Some(Tariff {
                input: PerMillion(h.input),
                output: PerMillion(h.output),
                ..Tariff::default()
            }),
        )
        .await
        .unwrap();
        ids.push(id);
    }
    catalog::ensure_codename(&app.db, CODENAME, "test", &ids)
        .await
        .unwrap();
    app.gateway().catalog.refresh(true).await.unwrap();
    app
}

/// A chat request for `model` with `extra` members merged in.
async fn chat(app: &TestApp, model: &str, extra: Value) -> (u16, Option<String>, Value) {
    let mut body = json!({
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hello there"}],
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let r = app.post("/v1/chat/completions", &body).await;
    let status = r.status().as_u16();
    let provider = r
        .headers()
        .get("x-weir-provider")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, provider, r.json().await.unwrap())
}

async fn served_by(app: &TestApp, extra: Value) -> String {
    let (status, provider, body) = chat(app, CODENAME, extra.clone()).await;
    assert_eq!(status, 200, "{extra}: {body}");
    provider.expect("x-weir-provider")
}

fn error_param(body: &Value) -> &str {
    body["error"]["param"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn cost_goes_to_the_cheapest_and_speed_to_the_fastest_measured() {
    let app = app_with_hosts(&["cheap", "fast", "mid"]).await;
    // No hints: the catalog's order (the codename's first model).
    assert_eq!(served_by(&app, json!({})).await, "cheap");
    assert_eq!(
        served_by(&app, json!({"weir": {"optimise": "cost"}})).await,
        "cheap"
    );
    assert_eq!(
        served_by(&app, json!({"provider": {"sort": "price"}})).await,
        "cheap"
    );
    // Measure every host once (each served alone), then ask for speed.
    for h in ["cheap", "fast", "mid"] {
        let got = served_by(&app, json!({"provider": {"only": [h]}})).await;
        assert_eq!(got, h);
    }
    for _ in 0..3 {
        assert_eq!(
            served_by(&app, json!({"weir": {"optimise": "speed"}})).await,
            "fast"
        );
        assert_eq!(
            served_by(&app, json!({"provider": {"sort": "latency"}})).await,
            "fast"
        );
    }
    // What was measured is shared through the database with other replicas.
    let book = weir_server::routing::SpeedBook::default();
    app.gateway().speed.sync(&app.db).await.unwrap();
    book.sync(&app.db).await.unwrap();
    let snapshot = app.gateway().catalog.current();
    let targets = snapshot.resolve(CODENAME, ModelKind::Chat).unwrap();
    let ttft = |id: &str| {
        let t = targets
            .iter()
            .find(|t| t.channel.provider_id == id)
            .unwrap();
        book.get(t.channel.id, &t.model.id).ttft_us
    };
    assert!(ttft("fast") > 0 && ttft("fast") < ttft("mid") && ttft("mid") < ttft("cheap"));
    app.stop().await;
}

#[tokio::test]
async fn filters_skip_hosts_and_name_the_requirement_that_removed_the_last() {
    let app = app_with_hosts(&["cheap", "fast", "mid"]).await;
    let tools = json!({"weir": {"optimise": "cost", "require_tools": true}});
    assert_eq!(served_by(&app, tools).await, "mid");
    let (status, _, body) = chat(
        &app,
        CODENAME,
        json!({"weir": {"require_tools": true}, "provider": {"only": ["cheap"]}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_param(&body), "weir.require_tools");
    assert_eq!(body["error"]["code"], "no_candidate");
    assert!(body["error"]["message"].as_str().unwrap().contains("tools"));

    // Price limits use the marked-up price per million tokens.
    let cheap_only = json!({"weir": {"max_price": {"prompt": 0.5, "completion": "0.5"}}});
    assert_eq!(served_by(&app, cheap_only).await, "cheap");
    let (status, _, body) = chat(
        &app,
        CODENAME,
        json!({"provider": {"max_price": {"prompt": 0.01}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_param(&body), "provider.max_price.prompt");

    let (status, _, body) = chat(
        &app,
        CODENAME,
        json!({"provider": {"ignore": ["cheap", "fast", "mid"]}}),
    )
    .await;
    assert_eq!((status, error_param(&body)), (400, "provider.ignore"));
    assert_eq!(
        served_by(&app, json!({"provider": {"ignore": ["cheap"]}})).await,
        "fast"
    );
    // Unknown hints are refused rather than silently not enforced.
    let (status, _, body) = chat(
        &app,
        CODENAME,
        json!({"provider": {"quantizations": ["fp8"]}}),
    )
    .await;
    assert_eq!(
        (status, error_param(&body)),
        (400, "provider.quantizations")
    );
    // Refusals are not sent upstream and not charged: the log has them as 400s.
    app.stop().await;
}

#[tokio::test]
async fn provider_order_and_the_models_fallback_list_are_obeyed() {
    let app = app_with_hosts(&["cheap", "fast", "mid", "down"]).await;
    assert_eq!(
        served_by(&app, json!({"provider": {"order": ["mid", "fast"]}})).await,
        "mid"
    );
    assert_eq!(
        served_by(&app, json!({"provider": {"order": ["fast"]}})).await,
        "fast"
    );
    // `down` first: it fails, and the next host answers…
    assert_eq!(
        served_by(&app, json!({"provider": {"order": ["down", "mid"]}})).await,
        "mid"
    );
    // …unless fallbacks are off.
    let (status, _, body) = chat(
        &app,
        CODENAME,
        json!({"provider": {"order": ["down"], "allow_fallbacks": false}}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    // Model hints prefer matching models within the candidates.
    assert_eq!(
        served_by(&app, json!({"weir": {"model_hints": ["mid/*"]}})).await,
        "mid"
    );

    // A failing model with a fallback list: the fallback answers and names itself.
    let (status, provider, body) =
        chat(&app, "demo/fail-503", json!({"models": ["fast/llama"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.as_deref(), Some("fast"));
    assert_eq!(body["model"], "fast/llama");
    // Without it, the failure reaches the client.
    let (status, _, _) = chat(&app, "demo/fail-503", json!({})).await;
    assert_eq!(status, 503);
    let (status, _, body) = chat(&app, "demo/echo", json!({"models": ["no/such"]})).await;
    assert_eq!((status, error_param(&body)), (400, "models[0]"));

    // The Anthropic surface takes the same hints.
    let r = app
        .post(
            "/v1/messages",
            &json!({
                "model": CODENAME,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
                "provider": {"order": ["mid"]},
            }),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-weir-provider"], "mid");
    app.stop().await;
}

#[tokio::test]
async fn a_request_too_large_for_one_host_goes_to_one_that_can_take_it() {
    let app = app_with_hosts(&["cheap", "mid"]).await;
    // About 300 tokens by Weir's estimate: over `cheap`'s 200-token window.
    let long = "word ".repeat(240);
    let body = |max_tokens: u64| {
        json!({
            "model": CODENAME,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": long}],
        })
    };
    let r = app.post("/v1/chat/completions", &body(16)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-weir-provider"], "mid");
    // A large max_tokens is not held against the window (clients send their largest).
    let (status, v) = app.post_json("/v1/chat/completions", &body(100_000)).await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;

    let app = app_with_hosts(&["cheap"]).await;
    let (status, v) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": CODENAME, "max_tokens": 16, "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 200 tokens"));
    app.stop().await;
}
