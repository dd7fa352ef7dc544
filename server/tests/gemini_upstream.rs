//! A Gemini channel (the mock's `/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`) behind every client surface: OpenAI chat, Anthropic
//! messages and Responses, streamed and not. Text, a tool-call round trip (Gemini gives the
//! call no id, so Weir's synthesised one reaches the client, and the result goes back as a
//! `functionResponse` the mock answers), usage from `usageMetadata`, upstream errors in each
//! client's own envelope and status, a refused key and a stream that fails midway. A canned
//! upstream checks what the mock does not report: the request's path and key header, and
//! cached and thought tokens metered and billed apart from plain input and output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    surface::{
        add_upstream, check_midstream_failure, check_orphan_result, check_refused_key, check_text,
        check_tool_round_trip, check_upstream_errors, Surface, SURFACES,
    },
    TestApp,
};
use serde_json::{json, Value};
use weir_core::{
    catalog::{Tariff, Wire},
    money::PerMillion,
};
use weir_server::wire::gemini::parse_call_id;

const MODEL: &str = "gemini-mock/gemini-echo";
const UPSTREAM_MODEL: &str = "gemini-echo";
/// A model on a channel whose key the mock refuses.
const BAD_KEY_MODEL: &str = "gemini-mock-bad-key/gemini-echo";

/// "Be brief." and "hello there world": the mock's `promptTokenCount`.
const PROMPT_TOKENS: u64 = 2 + 3;
/// "echo: hello there world".
const REPLY_TOKENS: u64 = 4;

/// A Gemini provider on `base` (the API root with its version, as
/// `https://generativelanguage.googleapis.com/v1beta`), its channel with `key`, and `model`
/// serving `upstream_model`.
async fn add_gemini(app: &TestApp, channel: (&str, &str, &str), model: (&str, &str), t: Tariff) {
    add_upstream(app, Wire::Gemini, channel, model, t).await;
}

fn tariff() -> Tariff {
    Tariff {
        input: PerMillion(1_000_000),
        output: PerMillion(2_000_000),
        ..Tariff::default()
    }
}

/// The harness with a Gemini provider on the mock, its channel and two models.
async fn spawn() -> TestApp {
    let app = TestApp::spawn().await;
    let base = format!("{}/v1beta", app.mock.base_url());
    add_gemini(
        &app,
        ("gemini-mock", &base, "weir-demo"),
        (MODEL, UPSTREAM_MODEL),
        tariff(),
    )
    .await;
    add_gemini(
        &app,
        ("gemini-mock-bad-key", &base, "mock-bad-key"),
        (BAD_KEY_MODEL, UPSTREAM_MODEL),
        tariff(),
    )
    .await;
    app.gateway().catalog.refresh(true).await.unwrap();
    app
}

#[tokio::test]
async fn text_on_every_surface_streamed_and_not() {
    let app = spawn().await;
    // The client sees, and the log meters, the mock's `usageMetadata`.
    check_text(&app, MODEL, UPSTREAM_MODEL, PROMPT_TOKENS, REPLY_TOKENS).await;
    app.stop().await;
}

#[tokio::test]
async fn tool_calls_round_trip_on_every_surface() {
    let app = spawn().await;
    check_tool_round_trip(
        &app,
        MODEL,
        |what, a| {
            // Gemini gave no id: Weir's `call_<responseId>_<n>` reaches the client, made from
            // the mock's `responseId` (`mock-<n>`). The result goes back as a
            // `functionResponse` named after the call, which the mock quotes.
            let id = &a.calls[0].id;
            assert!(
                id.starts_with("call_mock") && id.ends_with("_0"),
                "{what}: {id}"
            );
            assert!(parse_call_id(id).is_some(), "{what}");
            assert_eq!(a.text, "", "{what}");
        },
        // Calls: system 2 + user 6 words in, 1 out. Results: the arguments (1) were sent back
        // with the call, and the result (1): 10 in, "tool result: 18C" out.
        [(8, 1), (10, 3)],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_tool_result_without_its_call_is_refused_before_the_upstream() {
    let app = spawn().await;
    check_orphan_result(&app, MODEL, "call_a_0", "call_a_1").await;
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_reach_each_client_in_its_envelope() {
    let app = spawn().await;
    // Gemini's INVALID_ARGUMENT is a 400.
    check_upstream_errors(&app, MODEL, 400).await;
    app.stop().await;
}

#[tokio::test]
async fn a_refused_channel_key_is_an_upstream_auth_failure() {
    let app = spawn().await;
    check_refused_key(&app, BAD_KEY_MODEL).await;
    app.stop().await;
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_each_clients_error_event() {
    let app = spawn().await;
    // The mock's in-stream error says UNAVAILABLE: an overload.
    check_midstream_failure(&app, MODEL, "overloaded_error").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A canned Gemini upstream: what the mock does not report
// ---------------------------------------------------------------------------------------------

const CANNED_MODEL: &str = "gemini-canned/gemini-test";
const CANNED_KEY: &str = "canned-key";
const SIG: &str = "CiQBjz1rX2Nhbm5lZHNpZ25hdHVyZWJ5dGVz";

/// One request the canned upstream received: path and query, its key header, whether it
/// had an `Authorization` header, and the body.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    key: Option<String>,
    authorization: bool,
    body: Value,
}

type Log = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;

/// The usage every canned answer reports: 100 prompt tokens of which 60 cached, 5 answer
/// tokens and 20 thought tokens.
fn canned_usage() -> Value {
    json!({"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 5,
        "thoughtsTokenCount": 20, "totalTokenCount": 125})
}

/// Answers a request whose last content is a function response with text, any other with a
/// signed call that carries Gemini's own id; both after a thought. Streamed, the thought
/// comes in an event of its own.
async fn canned(
    axum::extract::State(log): axum::extract::State<Log>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_slice(&body).unwrap();
    let answered = body["contents"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["parts"].as_array())
        .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    log.lock().unwrap().push(Seen {
        uri: uri.to_string(),
        key: headers
            .get("x-goog-api-key")
            .map(|v| v.to_str().unwrap().to_owned()),
        authorization: headers.contains_key("authorization"),
        body,
    });
    let thought = json!({"text": "Thinking it over.", "thought": true});
    let part = if answered {
        json!({"text": "Done."})
    } else {
        json!({"functionCall": {"id": "fc-7", "name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": SIG})
    };
    let answer = |parts: Vec<Value>, last: bool| {
        let mut a = json!({"candidates": [{"content": {"role": "model", "parts": parts},
            "index": 0}], "modelVersion": "gemini-test", "responseId": "canned1"});
        if last {
            a["candidates"][0]["finishReason"] = json!("STOP");
            a["usageMetadata"] = canned_usage();
        }
        a
    };
    if uri.path().ends_with(":streamGenerateContent") {
        let sse = format!(
            "data: {}\r\n\r\ndata: {}\r\n\r\n",
            answer(vec![thought], false),
            answer(vec![part], true)
        );
        ([("content-type", "text/event-stream")], sse).into_response()
    } else {
        axum::Json(answer(vec![thought, part], true)).into_response()
    }
}

/// The harness with a channel on a canned Gemini upstream, and the requests it receives.
async fn spawn_canned() -> (TestApp, Log) {
    let app = TestApp::spawn().await;
    let log = Log::default();
    let router = axum::Router::new()
        .route("/v1beta/models/{*tail}", axum::routing::post(canned))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1beta", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    add_gemini(
        &app,
        ("gemini-canned", &base, CANNED_KEY),
        (CANNED_MODEL, "gemini-test"),
        Tariff {
            input: PerMillion(1_000_000),
            cached_input: Some(PerMillion(100_000)),
            output: PerMillion(2_000_000),
            reasoning: Some(PerMillion(3_000_000)),
            ..Tariff::default()
        },
    )
    .await;
    app.gateway().catalog.refresh(true).await.unwrap();
    (app, log)
}

#[tokio::test]
async fn signatures_round_trip_and_cached_and_thought_tokens_are_metered_apart() {
    use sqlx::Row;
    let (app, log) = spawn_canned().await;
    let question = "What is the weather in Paris?";
    for surface in SURFACES {
        for stream in [false, true] {
            let what = format!("{surface:?} stream={stream}");
            let a = surface
                .ask(
                    &app,
                    &surface.body(CANNED_MODEL, question, stream, surface.forced_tool()),
                )
                .await;
            assert_eq!(a.finish, surface.finishes().1, "{what}: {a:?}");
            let call = &a.calls[0];
            let key = parse_call_id(&call.id).unwrap();
            assert_eq!(key.gemini_id.as_deref(), Some("fc-7"), "{what}");
            assert_eq!(key.signature.as_deref(), Some(SIG), "{what}");
            // Cached input is not shown as plain input to an Anthropic client; thoughts are
            // output everywhere.
            let input = if surface == Surface::Messages {
                40
            } else {
                100
            };
            assert_eq!(a.usage, Some((input, 25)), "{what}");

            let b = surface.with_result(CANNED_MODEL, question, &a, "18C", stream);
            let r = surface.ask(&app, &b).await;
            assert_eq!(r.text, "Done.", "{what}: {r:?}");

            let seen = log.lock().unwrap().clone();
            let (first, second) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
            let path = if stream {
                "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
            } else {
                "/v1beta/models/gemini-test:generateContent"
            };
            for s in [first, second] {
                assert_eq!(s.uri, path, "{what}");
                assert_eq!(s.key.as_deref(), Some(CANNED_KEY), "{what}");
                assert!(!s.authorization, "{what}");
            }
            assert_eq!(
                first.body["toolConfig"]["functionCallingConfig"]["mode"], "ANY",
                "{what}"
            );
            // The call goes back signed, with Gemini's id, and the result answers it by name
            // and id.
            let contents = &second.body["contents"];
            assert_eq!(
                contents[1],
                json!({"role": "model", "parts": [{"functionCall": {"id": "fc-7",
                    "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}]}),
                "{what}: {contents}"
            );
            assert_eq!(
                contents[2],
                json!({"role": "user", "parts": [{"functionResponse": {"id": "fc-7",
                    "name": "get_weather", "response": {"result": "18C"}}}]}),
                "{what}: {contents}"
            );
        }
    }
    // Every request: 100 in of which 60 cached, 25 out of which 20 thoughts; billed 40 × $1/M
    // + 60 × $0.10/M + 5 × $2/M + 20 × $3/M = 116 micro-USD.
    let rows = app.wait_for_log_rows(12).await;
    for r in &rows {
        assert_eq!(
            (r.status, r.input_tokens, r.cached_tokens, r.output_tokens),
            (200, 100, 60, 25),
            "{r:?}"
        );
        assert_eq!(r.usage_source, "upstream", "{r:?}");
        let row = sqlx::query("SELECT reasoning_tokens FROM request_log WHERE request_id = $1")
            .bind(&r.request_id)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("reasoning_tokens"), 20, "{r:?}");
        let mut cost = None;
        for _ in 0..100 {
            let row = sqlx::query("SELECT status, cost FROM charge WHERE request_id = $1")
                .bind(&r.request_id)
                .fetch_optional(app.db.pool())
                .await
                .unwrap();
            if let Some(row) = row {
                assert_eq!(row.get::<String, _>("status"), "settled", "{r:?}");
                cost = Some(row.get::<i64, _>("cost"));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(cost, Some(116), "{r:?}");
    }
    app.stop().await;
}
