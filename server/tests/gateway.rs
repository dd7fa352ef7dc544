//! The gateway end to end: real HTTP into a real Weir, out to the real mock upstream in the
//! OpenAI and Anthropic formats, over a real database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{parse_sse, sse, TestApp};
use serde_json::{json, Value};

const OPENAI_MODEL: &str = "demo/echo";
const ANTHROPIC_MODEL: &str = "demo/claude-echo";

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[tokio::test]
async fn authentication_and_permission_errors() {
    let app = TestApp::spawn().await;
    let body = json!({"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let r = app
        .http
        .post(app.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    // The same key with its last character changed (to one it is not already).
    let last = if app.key.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &app.key[..app.key.len() - 1]);
    for bad in [
        "Bearer nope",
        "Bearer ",
        "Basic abc",
        &format!("Bearer {forged}"),
    ] {
        let r = app
            .http
            .post(app.url("/v1/chat/completions"))
            .header("authorization", bad)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(&forged), "the presented key is never echoed");
    }
    // x-api-key works like Bearer.
    let r = app
        .http
        .post(app.url("/v1/chat/completions"))
        .header("x-api-key", &app.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A deactivated team gets 403 as soon as the auth epoch is seen.
    weir_core::team::set_active(&app.db, "demo", false)
        .await
        .unwrap();
    app.gateway().verifier.poll_epoch().await.unwrap();
    let (s, v) = app.post_json("/v1/chat/completions", &body).await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "team_inactive");
    app.stop().await;
}

#[tokio::test]
async fn models_list_and_lookup() {
    let app = TestApp::spawn().await;
    let v: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"demo/echo") && ids.contains(&"demo/embed") && ids.contains(&"demo-echo"),
        "{ids:?}"
    );
    let one: Value = app
        .http
        .get(app.url("/v1/models/demo/echo"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "demo/echo");
    assert_eq!(one["object"], "model");
    let r = app
        .http
        .get(app.url("/v1/models/demo/nope"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_found"
    );
    let r = app.http.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(app.url("/v1/nothing/here"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn unknown_model_is_404_before_any_upstream_call() {
    let app = TestApp::spawn().await;
    let (s, v) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "nope/model", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["param"], "model");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope/model"));
    let rows = app.wait_for_log_rows(1).await;
    assert_eq!((rows[0].status, rows[0].attempts), (404, 0));
    app.stop().await;
}

/// Sends one chat request (non-streamed) and returns the parsed answer.
async fn chat(app: &TestApp, model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there world"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, v) = app.post_json("/v1/chat/completions", &body).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Sends one streamed chat request and folds the chunks back into (text, tool calls, finish, usage).
async fn chat_stream(
    app: &TestApp,
    model: &str,
    extra: Value,
) -> (
    String,
    Vec<(String, String)>,
    String,
    Option<Value>,
    Vec<String>,
) {
    let mut body = json!({"model": model, "stream": true, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there world"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = app.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = sse(r).await;
    let datas: Vec<String> = events.into_iter().map(|(_, d)| d).collect();
    assert_eq!(datas.last().map(String::as_str), Some("[DONE]"));
    let (mut text, mut calls, mut finish, mut usage) = (
        String::new(),
        Vec::<(String, String)>::new(),
        String::new(),
        None,
    );
    for d in &datas[..datas.len() - 1] {
        let c: Value = serde_json::from_str(d).unwrap();
        assert_eq!(c["object"], "chat.completion.chunk");
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            assert_eq!(c["choices"], json!([]));
            usage = Some(u.clone());
        }
        for ch in c["choices"].as_array().unwrap() {
            if let Some(t) = ch["delta"]["content"].as_str() {
                text.push_str(t);
            }
            for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.push((
                        tc["function"]["name"].as_str().unwrap().to_owned(),
                        String::new(),
                    ));
                }
                calls[i]
                    .1
                    .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                finish = f.to_owned();
            }
        }
    }
    (text, calls, finish, usage, datas)
}

#[tokio::test]
async fn same_prompts_through_openai_and_anthropic_channels_agree() {
    let app = TestApp::spawn().await;
    // Plain text, non-streamed.
    let a = chat(&app, OPENAI_MODEL, json!({})).await;
    let b = chat(&app, ANTHROPIC_MODEL, json!({})).await;
    for v in [&a, &b] {
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "echo: hello there world"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }
    assert_eq!(
        a["usage"]["completion_tokens"],
        b["usage"]["completion_tokens"]
    );
    assert_eq!(a["usage"]["prompt_tokens"], b["usage"]["prompt_tokens"]);

    // Forced tool call, non-streamed.
    let tools = json!({"tools": weather_tool(), "tool_choice": "required"});
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        let v = chat(&app, model, tools.clone()).await;
        let msg = &v["choices"][0]["message"];
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}");
        assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
        let args: Value = serde_json::from_str(
            msg["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"city": "test"}));
    }

    // Streams with usage, text and tools.
    let inc = json!({"stream_options": {"include_usage": true}});
    let (ta, _, fa, ua, _) = chat_stream(&app, OPENAI_MODEL, inc.clone()).await;
    let (tb, _, fb, ub, _) = chat_stream(&app, ANTHROPIC_MODEL, inc.clone()).await;
    assert_eq!(
        (ta.as_str(), fa.as_str()),
        ("echo: hello there world", "stop")
    );
    assert_eq!(
        (tb.as_str(), fb.as_str()),
        ("echo: hello there world", "stop")
    );
    let (ua, ub) = (ua.unwrap(), ub.unwrap());
    assert_eq!(ua["completion_tokens"], ub["completion_tokens"]);
    assert_eq!(ua["prompt_tokens"], ub["prompt_tokens"]);
    let mut forced = tools.clone();
    forced
        .as_object_mut()
        .unwrap()
        .extend(inc.as_object().unwrap().clone());
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        let (_, calls, finish, usage, _) = chat_stream(&app, model, forced.clone()).await;
        assert_eq!(finish, "tool_calls", "{model}");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&calls[0].1).unwrap(),
            json!({"city": "test"})
        );
        assert!(usage.is_some());
    }
    // Without include_usage there is no usage chunk, on either channel.
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        let (_, _, _, usage, datas) = chat_stream(&app, model, json!({})).await;
        assert!(usage.is_none(), "{model}: {datas:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tool_result_round_trip_on_both_channels() {
    let app = TestApp::spawn().await;
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        let body = json!({"model": model, "tools": weather_tool(), "messages": [
            {"role": "user", "content": "call get_weather {\"city\":\"Paris\"}"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
        ]});
        let (s, v) = app.post_json("/v1/chat/completions", &body).await;
        assert_eq!(s, 200, "{model}: {v}");
        assert_eq!(
            v["choices"][0]["message"]["content"], "tool result: 18C",
            "{model}"
        );
        // The prompt asks for a tool: the mock calls it with the given arguments.
        let ask = json!({"model": model, "tools": weather_tool(), "messages": [{"role": "user", "content": "call get_weather {\"city\":\"Paris\"}"}]});
        let (_, v) = app.post_json("/v1/chat/completions", &ask).await;
        let args: Value = serde_json::from_str(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"city": "Paris"}), "{model}");
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_400_in_the_openai_envelope() {
    let app = TestApp::spawn().await;
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[1,2]".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        br#"{"model":"demo/echo","messages":[{"role":"user","content":"x"}],"max_tokens":-5}"#.to_vec(),
        br#"{"model":"demo/echo","messages":[{"role":"user","content":"x"}],"max_tokens":18446744073709551616}"#.to_vec(),
        br#"{"model":"demo/echo","messages":"x"}"#.to_vec(),
        format!("{{\"model\":\"demo/echo\",\"messages\":{}{}}}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
    ];
    for body in cases {
        let r = app
            .http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            400,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    // 33 MiB body: 413 in the envelope.
    let big = vec![b' '; 33 * 1024 * 1024];
    let r = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn upstream_failures_map_to_the_right_statuses() {
    let app = TestApp::spawn().await;
    let msg = json!([{"role": "user", "content": "x"}]);
    let (s, v) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo/fail-503", "messages": msg}),
        )
        .await;
    assert_eq!(s, 503);
    assert_eq!(v["error"]["type"], "server_error");
    let (s, _) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo/fail-500", "messages": msg}),
        )
        .await;
    assert_eq!(s, 502);
    let (s, v) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo/fail-429", "messages": msg}),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    // Streams get HTTP errors too, before any SSE byte.
    let r = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "demo/fail-503", "stream": true, "messages": msg}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/json");
    // An upstream 429 mid-conversation via a prompt directive, on the Anthropic channel: 429 for OpenAI clients.
    let (s, _) = app.post_json("/v1/chat/completions", &json!({"model": ANTHROPIC_MODEL, "messages": [{"role": "user", "content": "[[mock status=529]] hi"}]})).await;
    assert_eq!(s, 503);
    app.stop().await;
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let (s, f) = app
        .post_json(
            "/v1/embeddings",
            &json!({"model": "demo/embed", "input": ["one two", "three"]}),
        )
        .await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    assert_eq!(f["data"][1]["index"], 1);
    let floats: Vec<f32> = f["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let (_, b) = app.post_json("/v1/embeddings", &json!({"model": "demo/embed", "input": ["one two", "three"], "encoding_format": "base64"})).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, floats);
    assert_eq!(f["usage"]["prompt_tokens"], 3);
    let (s, _) = app
        .post_json(
            "/v1/embeddings",
            &json!({"model": "demo/echo", "input": "x"}),
        )
        .await;
    assert_eq!(s, 404, "a chat model is not an embedding model");
    app.stop().await;
}

#[tokio::test]
async fn every_request_is_logged_once_including_client_aborts() {
    let app = TestApp::spawn().await;
    chat(&app, OPENAI_MODEL, json!({})).await;
    chat_stream(
        &app,
        ANTHROPIC_MODEL,
        json!({"stream_options": {"include_usage": true}}),
    )
    .await;
    // A stream without a usage report is billed from Weir's own count, marked estimated.
    let body = json!({"model": OPENAI_MODEL, "stream": true, "messages": [{"role": "user", "content": "[[mock no_usage]] four words right here"}]});
    let _ = sse(app.post("/v1/chat/completions", &body).await).await;
    // A client that leaves mid-stream.
    let body = json!({"model": OPENAI_MODEL, "stream": true, "messages": [{"role": "user", "content": "[[mock words=200 chunk_delay_ms=20]] go"}]});
    let mut r = app.post("/v1/chat/completions", &body).await;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(!parse_sse(std::str::from_utf8(&first).unwrap()).is_empty());
    drop(r);
    let rows = app.wait_for_log_rows(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rows2 = app.log_rows().await;
    assert_eq!(rows.len(), 4, "{rows2:?}");
    assert_eq!(rows2.len(), 4, "exactly one row per request");
    let by_status = |s: i64| rows.iter().filter(|r| r.status == s).count();
    assert_eq!(by_status(200), 3);
    assert_eq!(by_status(499), 1);
    let aborted = rows.iter().find(|r| r.status == 499).unwrap();
    assert!(
        aborted.stream && aborted.output_tokens > 0,
        "partial output is counted: {aborted:?}"
    );
    assert_eq!(aborted.usage_source, "estimated");
    let upstream = rows.iter().filter(|r| r.usage_source == "upstream").count();
    assert_eq!(upstream, 2);
    let est = rows
        .iter()
        .find(|r| r.usage_source == "estimated" && r.status == 200)
        .unwrap();
    assert!(est.output_tokens > 0 && est.input_tokens > 0, "{est:?}");
    app.stop().await;
}

#[tokio::test]
async fn retryable_failures_move_to_the_next_channel() {
    let app = TestApp::spawn().await;
    // A higher-priority channel for the demo provider that refuses connections.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    weir_core::catalog::upsert_channel(
        &app.db,
        &weir_core::catalog::ChannelSpec {
            provider_id: "demo",
            name: "demo-dead",
            base_url: &dead_url,
            key_env: None,
            api_key: Some("k"),
            priority: 10,
            is_local: true,
        },
    )
    .await
    .unwrap();
    app.gateway().catalog.refresh(true).await.unwrap();
    let v = chat(&app, OPENAI_MODEL, json!({})).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "echo: hello there world"
    );
    let (_, _, finish, _, _) = chat_stream(&app, OPENAI_MODEL, json!({})).await;
    assert_eq!(finish, "stop");
    let rows = app.wait_for_log_rows(2).await;
    assert!(
        rows.iter().all(|r| r.attempts == 2 && r.status == 200),
        "{rows:?}"
    );
    app.stop().await;
}
