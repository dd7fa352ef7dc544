//! `POST /v1/embeddings` on each upstream format the demo serves: OpenAI (relayed as it is),
//! Cohere v2 `/v2/embed` and Gemini `batchEmbedContents` (decoded and rendered in OpenAI's
//! shape). Float and base64 answers, input order, `dimensions`, metering and charging, token
//! input refused where the upstream embeds only text, upstream errors in the OpenAI envelope.
//! Runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::TestApp;
use serde_json::{json, Value};
use sqlx::Row;
use weir_core::catalog::{self, Capabilities, ModelKind, ModelSpec, Tariff};
use weir_core::money::PerMillion;

/// Each demo embedding model and the usage source its requests are logged with.
const MODELS: &[(&str, &str)] = &[
    ("demo/embed", "upstream"),
    ("demo/cohere-embed", "upstream"),
    ("demo/gemini-embed", "estimated"),
];

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn unpack(v: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or_else(|| panic!("not base64: {v}")))
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

async fn embed(app: &TestApp, body: Value) -> (u16, Value, String) {
    let r = app.post("/v1/embeddings", &body).await;
    let status = r.status().as_u16();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    (status, r.json().await.unwrap_or(Value::Null), id)
}

/// The charge row of `request_id` once settled: (status, usage_source, input_tokens, cost).
async fn charge(app: &TestApp, request_id: &str) -> (String, Option<String>, i64, i64) {
    for _ in 0..100 {
        let row = sqlx::query(
            "SELECT status, usage_source, input_tokens, cost FROM charge WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(app.db.pool())
        .await
        .unwrap();
        if let Some(row) = row {
            return (
                row.get("status"),
                row.get("usage_source"),
                row.get::<Option<i64>, _>("input_tokens").unwrap_or(0),
                row.get::<Option<i64>, _>("cost").unwrap_or(0),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no charge for {request_id}");
}

#[tokio::test]
async fn float_and_base64_in_input_order_on_every_upstream() {
    let app = TestApp::spawn().await;
    let inputs = ["one two", "three", "four five six"];
    // The mock's vectors depend only on the text and the size: every format gives the same.
    let mut reference: Option<Vec<Vec<f32>>> = None;
    for (model, _) in MODELS {
        let (s, f, _) = embed(&app, json!({"model": model, "input": inputs})).await;
        assert_eq!(s, 200, "{model}: {f}");
        assert_eq!(f["object"], "list", "{model}");
        // Every answer names the model the client asked for, the relayed OpenAI one too.
        assert_eq!(f["model"], *model, "{model}");
        let data = f["data"].as_array().unwrap();
        assert_eq!(data.len(), 3, "{model}");
        let vectors: Vec<Vec<f32>> = data.iter().map(|d| floats(&d["embedding"])).collect();
        for (i, d) in data.iter().enumerate() {
            assert_eq!(d["index"], i, "{model}");
            assert_eq!(d["object"], "embedding", "{model}");
            assert_eq!(vectors[i].len(), 8, "{model}: the mock's default size");
        }
        assert_ne!(vectors[0], vectors[1], "{model}");
        match &reference {
            None => reference = Some(vectors.clone()),
            Some(r) => assert_eq!(r, &vectors, "{model}: in input order"),
        }

        let (s, b, _) = embed(
            &app,
            json!({"model": model, "input": inputs, "encoding_format": "base64"}),
        )
        .await;
        assert_eq!(s, 200, "{model}: {b}");
        for (i, v) in vectors.iter().enumerate() {
            assert_eq!(&unpack(&b["data"][i]["embedding"]), v, "{model} base64 {i}");
        }

        let (s, d, _) = embed(
            &app,
            json!({"model": model, "input": "one two", "dimensions": 32}),
        )
        .await;
        assert_eq!(s, 200, "{model}: {d}");
        assert_eq!(d["data"].as_array().unwrap().len(), 1);
        assert_eq!(floats(&d["data"][0]["embedding"]).len(), 32, "{model}");
    }
    app.stop().await;
}

#[tokio::test]
async fn usage_is_logged_and_charged() {
    let app = TestApp::spawn().await;
    for (model, source) in MODELS {
        let (s, v, id) = embed(
            &app,
            json!({"model": model, "input": ["one two", "three four five"]}),
        )
        .await;
        assert_eq!(s, 200, "{model}: {v}");
        let reported = v["usage"]["prompt_tokens"].as_i64().unwrap();
        assert!(reported > 0, "{model}: {v}");
        assert_eq!(v["usage"]["total_tokens"], reported, "{model}");
        if *source == "upstream" {
            assert_eq!(reported, 5, "{model}: the mock counts words");
        }
        let (status, src, tokens, cost) = charge(&app, &id).await;
        assert_eq!(status, "settled", "{model}");
        assert_eq!(src.as_deref(), Some(*source), "{model}");
        assert_eq!(tokens, reported, "{model}: charged what was reported");
        assert!(cost > 0, "{model}");
    }
    let rows = app.wait_for_log_rows(3).await;
    for (model, source) in MODELS {
        let row = rows.iter().find(|r| r.model == *model).unwrap();
        assert_eq!(row.status, 200, "{model}");
        assert_eq!(row.usage_source, *source, "{model}");
        assert!(row.input_tokens > 0, "{model}");
    }
    app.stop().await;
}

#[tokio::test]
async fn token_input_is_refused_where_only_text_is_embedded() {
    let app = TestApp::spawn().await;
    for input in [json!([1, 2, 3]), json!([[1, 2], [3]])] {
        for model in ["demo/cohere-embed", "demo/gemini-embed"] {
            let (s, v, _) = embed(&app, json!({"model": model, "input": input})).await;
            assert_eq!(s, 400, "{model}: {v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{model}: {v}");
            assert_eq!(v["error"]["param"], "input", "{model}: {v}");
        }
        let (s, v, _) = embed(&app, json!({"model": "demo/embed", "input": input})).await;
        assert_eq!(s, 200, "OpenAI upstreams take tokens: {v}");
    }
    // Cohere's `input_type` rides as an extra member; a bad one is the client's error.
    let (s, v, _) = embed(
        &app,
        json!({"model": "demo/cohere-embed", "input": "x", "input_type": "search_query"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = embed(
        &app,
        json!({"model": "demo/cohere-embed", "input": "x", "input_type": "poetry"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "input_type");
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_come_in_the_openai_envelope() {
    let app = TestApp::spawn().await;
    let tariff = Tariff {
        input: PerMillion(100_000),
        ..Tariff::default()
    };
    for provider in ["demo", "demo-cohere", "demo-gemini"] {
        for code in ["503", "400"] {
            catalog::ensure_model(
                &app.db,
                &ModelSpec {
                    id: &format!("{provider}/embed-fail-{code}"),
                    provider_id: provider,
                    upstream_model: &format!("fail-{code}"),
                    kind: ModelKind::Embedding,
                    context_window: 8192,
                    max_output_tokens: None,
                    capabilities: Capabilities::default(),
                },
                Some(tariff),
            )
            .await
            .unwrap();
        }
    }
    app.gateway().catalog.refresh(true).await.unwrap();
    for provider in ["demo", "demo-cohere", "demo-gemini"] {
        for (code, kind) in [("400", "invalid_request_error"), ("503", "")] {
            let model = format!("{provider}/embed-fail-{code}");
            let (s, v, id) = embed(&app, json!({"model": model, "input": ["a", "b"]})).await;
            assert_eq!(s.to_string(), code, "{model}: {v}");
            assert!(v["error"]["message"].is_string(), "{model}: {v}");
            assert!(v["error"]["type"].is_string(), "{model}: {v}");
            if !kind.is_empty() {
                assert_eq!(v["error"]["type"], kind, "{model}: {v}");
            }
            let (status, _, _, cost) = charge(&app, &id).await;
            assert_ne!(status, "settled", "{model}: a failure is not charged");
            assert_eq!(cost, 0, "{model}");
        }
    }
    app.stop().await;
}
