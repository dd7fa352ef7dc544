//! `POST /v1/messages` end to end: an Anthropic client served by an Anthropic-format channel
//! (relayed) and by an OpenAI-format channel (translated), streamed and not, with errors in
//! Anthropic's envelope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{parse_sse, TestApp};
use serde_json::{json, Value};

const MODELS: [&str; 2] = ["demo/claude-echo", "demo/echo"];

fn body(model: &str, extra: Value) -> Value {
    let mut b = json!({"model": model, "max_tokens": 256, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello there world"}]});
    b.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    b
}

async fn messages(app: &TestApp, b: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.key)
        .header("anthropic-version", "2023-06-01")
        .json(b)
        .send()
        .await
        .unwrap()
}

fn weather_tool() -> Value {
    json!([{"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

#[tokio::test]
async fn messages_answer_on_both_channel_kinds() {
    let app = TestApp::spawn().await;
    let mut usages = Vec::new();
    for model in MODELS {
        let r = messages(&app, &body(model, json!({}))).await;
        assert_eq!(r.status(), 200, "{model}");
        assert!(r.headers().contains_key("request-id"), "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "message", "{model}: {v}");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], model, "the model the client asked for");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(
            v["content"][0]["text"], "echo: hello there world",
            "{model}"
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v}");
        assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
        usages.push(v["usage"]["output_tokens"].clone());

        // A forced tool call.
        let r = messages(
            &app,
            &body(
                model,
                json!({"tools": weather_tool(), "tool_choice": {"type": "any"}}),
            ),
        )
        .await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["stop_reason"], "tool_use", "{model}: {v}");
        let call = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap();
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["input"], json!({"city": "test"}));
    }
    assert_eq!(usages[0], usages[1]);
    let rows = app.wait_for_log_rows(4).await;
    assert!(rows.iter().all(|r| r.status == 200 && r.output_tokens > 0));
    // The client's model id and the name the channel was sent.
    assert_eq!(rows[0].model, "demo/claude-echo");
    assert_eq!(rows[0].upstream_model.as_deref(), Some("claude-echo"));
    assert_eq!(rows[2].upstream_model.as_deref(), Some("echo"));
    app.stop().await;
}

/// Folds an Anthropic stream into (event names, text, tool input JSON, stop reason, usage of
/// message_start, usage of message_delta).
fn fold(events: &[(String, String)]) -> (Vec<String>, String, String, String, Value, Value) {
    let (mut names, mut text, mut input, mut stop) =
        (Vec::new(), String::new(), String::new(), String::new());
    let (mut start_usage, mut delta_usage) = (Value::Null, Value::Null);
    for (name, data) in events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            &v["type"],
            name.as_str(),
            "the event name is the data's type"
        );
        names.push(name.clone());
        match name.as_str() {
            "message_start" => start_usage = v["message"]["usage"].clone(),
            "content_block_delta" => {
                text.push_str(v["delta"]["text"].as_str().unwrap_or(""));
                input.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
            }
            "message_delta" => {
                stop = v["delta"]["stop_reason"].as_str().unwrap().to_owned();
                delta_usage = v["usage"].clone();
            }
            _ => {}
        }
    }
    (names, text, input, stop, start_usage, delta_usage)
}

#[tokio::test]
async fn message_streams_follow_the_event_sequence() {
    let app = TestApp::spawn().await;
    let mut outputs = Vec::new();
    for model in MODELS {
        let r = messages(&app, &body(model, json!({"stream": true}))).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let events = parse_sse(&r.text().await.unwrap());
        let (names, text, _, stop, start, delta) = fold(&events);
        let names: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != "ping")
            .collect();
        assert_eq!(names.first(), Some(&"message_start"), "{model}: {names:?}");
        assert_eq!(names[1], "content_block_start");
        assert_eq!(
            &names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"],
            "{model}"
        );
        assert_eq!(text, "echo: hello there world", "{model}");
        assert_eq!(stop, "end_turn");
        assert!(
            start["input_tokens"].as_u64().unwrap() > 0,
            "{model}: {start}"
        );
        assert!(
            delta["output_tokens"].as_u64().unwrap() > 0,
            "{model}: {delta}"
        );
        outputs.push(delta["output_tokens"].clone());
        let start_model = serde_json::from_str::<Value>(&events[0].1).unwrap();
        assert_eq!(start_model["message"]["model"], model);

        // A streamed tool call.
        let r = messages(
            &app,
            &body(
                model,
                json!({"stream": true, "tools": weather_tool(), "tool_choice": {"type": "tool", "name": "get_weather"}}),
            ),
        )
        .await;
        let events = parse_sse(&r.text().await.unwrap());
        let (_, _, input, stop, _, _) = fold(&events);
        assert_eq!(stop, "tool_use", "{model}");
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!({"city": "test"})
        );
    }
    assert_eq!(outputs[0], outputs[1]);
    app.stop().await;
}

/// A stream that breaks after it began ends with Anthropic's `error` event, on either kind of
/// channel, and a silent upstream gets `ping`s in between.
#[tokio::test]
async fn a_broken_stream_ends_with_an_error_event() {
    let app = TestApp::spawn().await;
    for model in MODELS {
        let b = json!({"model": model, "max_tokens": 256, "stream": true,
            "messages": [{"role": "user", "content": "[[mock words=40 reset_after=3]] go"}]});
        let r = messages(&app, &b).await;
        assert_eq!(r.status(), 200);
        let events = parse_sse(&r.text().await.unwrap_or_default());
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error", "{model}: {events:?}");
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
    }
    app.stop().await;
}

#[tokio::test]
async fn message_errors_use_the_anthropic_envelope() {
    let app = TestApp::spawn().await;
    let check = |v: &Value, ty: &str| {
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], ty, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    // No max_tokens, malformed JSON, a wrong type, an unknown block type, a huge number.
    let bad = [
        json!({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "demo/echo", "max_tokens": "ten", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "demo/echo", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]}),
        json!({"model": "demo/echo", "max_tokens": 1e300, "messages": [{"role": "user", "content": "hi"}]}),
    ];
    for b in &bad {
        let r = messages(&app, b).await;
        assert_eq!(r.status(), 400, "{b}");
        check(&r.json().await.unwrap(), "invalid_request_error");
    }
    let r = app
        .http
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(&r.json().await.unwrap(), "invalid_request_error");

    let r = app
        .http
        .post(app.url("/v1/messages"))
        .header("x-api-key", "weir_dev_nope")
        .json(&body("demo/echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("request-id"));
    check(&r.json().await.unwrap(), "authentication_error");

    // Bearer auth works too (Claude Code's ANTHROPIC_AUTH_TOKEN), and ?beta=true is accepted.
    let r = app
        .http
        .post(app.url("/v1/messages?beta=true"))
        .bearer_auth(&app.key)
        .json(&body("demo/nope", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    check(&r.json().await.unwrap(), "not_found_error");

    let r = messages(&app, &body("demo/fail-503", json!({}))).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    app.stop().await;
}

#[tokio::test]
async fn count_tokens_is_exact_from_anthropic_channels_and_estimated_otherwise() {
    let app = TestApp::spawn().await;
    for (model, how) in [("demo/claude-echo", "exact"), ("demo/echo", "estimated")] {
        let r = app
            .http
            .post(app.url("/v1/messages/count_tokens"))
            .header("x-api-key", &app.key)
            .json(&json!({"model": model, "system": "Be brief.",
                "messages": [{"role": "user", "content": "hello there world"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        assert_eq!(r.headers()["x-weir-token-count"], how, "{model}");
        let v: Value = r.json().await.unwrap();
        assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    }
    let r = app
        .http
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &app.key)
        .json(&json!({"model": "demo/echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    // Counting is free and not a request in the log.
    assert!(app.log_rows().await.is_empty());
    app.stop().await;
}

/// An Anthropic client's body reaches an Anthropic channel as sent: `cache_control` stays on
/// its blocks, so the upstream writes the prefix to its cache once and reads it after, and
/// Weir meters those tokens apart from plain input, streamed and not.
#[tokio::test]
async fn cache_control_reaches_anthropic_channels_and_cache_tokens_are_metered() {
    let app = TestApp::spawn().await;
    let b = |stream: bool| {
        json!({"model": "demo/claude-echo", "max_tokens": 64, "stream": stream,
            "system": [{"type": "text", "text": "You answer about the long shared document below.",
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "the document one two three four five",
                 "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "text", "text": "what is it about"}]}]})
    };
    // Written the first time, read the second.
    let first: Value = messages(&app, &b(false)).await.json().await.unwrap();
    let write = first["usage"]["cache_creation_input_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(write, 8 + 7, "system + first block: {first}");
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(first["usage"]["input_tokens"], 4);
    let r = messages(&app, &b(true)).await;
    let (_, _, _, _, start, delta) = fold(&common::sse(r).await);
    assert_eq!(start["cache_read_input_tokens"], write, "{start}");
    assert_eq!(delta["cache_read_input_tokens"], write, "{delta}");
    assert_eq!(start["input_tokens"], 4);

    // The log counts input inclusively (as OpenAI does): uncached + cache write + cache read.
    let rows = app.wait_for_log_rows(2).await;
    assert_eq!(
        (
            rows[0].input_tokens,
            rows[0].cache_write_tokens,
            rows[0].cached_tokens
        ),
        (19, 15, 0)
    );
    assert_eq!(
        (
            rows[1].input_tokens,
            rows[1].cache_write_tokens,
            rows[1].cached_tokens
        ),
        (19, 0, 15)
    );
    app.stop().await;
}

/// Claude Code's own request (2.1.197, captured and trimmed: its headers, `?beta=true`, a
/// system message after the user's turn, adaptive thinking, `output_config.effort`,
/// `context_management`, tools with `$schema`) is answered on both kinds of channel, and the
/// mid-conversation system message reaches the upstream (it is counted as input).
#[tokio::test]
async fn claude_codes_own_request_is_answered_on_both_channel_kinds() {
    let app = TestApp::spawn().await;
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/claude_code_2.1.197_request.json")).unwrap();
    let send = |b: Value| {
        app.http
            .post(app.url("/v1/messages?beta=true"))
            .bearer_auth(&app.key)
            .header("anthropic-version", "2023-06-01")
            .header(
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,mid-conversation-system-2026-04-07,effort-2025-11-24",
            )
            .header("x-app", "cli")
            .json(&b)
            .send()
    };
    for model in MODELS {
        let mut b = fixture.clone();
        b["model"] = json!(model);
        let r = send(b.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let events = common::sse(r).await;
        let (names, text, _, stop, _, _) = fold(&events);
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
        assert!(text.ends_with("Say hello to Weir"), "{model}: {text}");
        assert_eq!(stop, "end_turn", "{model}");

        // Without its trailing system message the same request counts fewer input tokens.
        b["stream"] = json!(false);
        let with: Value = send(b.clone()).await.unwrap().json().await.unwrap();
        b["messages"].as_array_mut().unwrap().pop();
        let without: Value = send(b).await.unwrap().json().await.unwrap();
        let input = |v: &Value| {
            [
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ]
            .iter()
            .map(|k| v["usage"][k].as_u64().unwrap_or(0))
            .sum::<u64>()
        };
        assert!(
            input(&with) > input(&without),
            "{model}: {with} against {without}"
        );
    }
    app.stop().await;
}
