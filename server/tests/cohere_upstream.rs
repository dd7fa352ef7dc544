//! A Cohere channel (the mock's `POST /v2/chat`) behind every client surface: OpenAI chat,
//! Anthropic messages and Responses, streamed and not. Text, a tool-call round trip (the call
//! reaches the client with Cohere's id, and the result goes back as a `tool` message the mock
//! pairs with that call), usage metered from Cohere's `tokens` (the mock's `billed_units` are
//! smaller), and upstream errors in each client's own envelope and status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{parse_sse, TestApp};
use serde_json::{json, Value};
use weir_core::{
    catalog::{self, Capabilities, ChannelSpec, ModelKind, ModelSpec, ProviderSpec, Tariff, Wire},
    money::PerMillion,
};

const MODEL: &str = "cohere-mock/command-echo";
const UPSTREAM_MODEL: &str = "command-echo";
/// A model on a channel whose key the mock refuses.
const BAD_KEY_MODEL: &str = "cohere-mock-bad-key/command-echo";

/// "Be brief." and "hello there world": the mock's `tokens.input_tokens` (its
/// `billed_units.input_tokens` leave the system words out: 3).
const PROMPT_TOKENS: i64 = 2 + 3;
/// "echo: hello there world".
const REPLY_TOKENS: i64 = 4;

/// The harness with a Cohere provider on the mock, its channel and two models.
async fn spawn() -> TestApp {
    let app = TestApp::spawn().await;
    let base = app.mock.base_url();
    for (provider, key, model) in [
        ("cohere-mock", "weir-demo", MODEL),
        ("cohere-mock-bad-key", "mock-bad-key", BAD_KEY_MODEL),
    ] {
        catalog::ensure_provider(
            &app.db,
            &ProviderSpec {
                id: provider,
                name: "Cohere (mock)",
                wire: Wire::Cohere,
                base_url: &base,
                key_env: None,
            },
        )
        .await
        .unwrap();
        catalog::upsert_channel(
            &app.db,
            &ChannelSpec {
                provider_id: provider,
                name: provider,
                base_url: &base,
                key_env: None,
                api_key: Some(key),
                priority: 0,
                is_local: true,
            },
        )
        .await
        .unwrap();
        catalog::ensure_model(
            &app.db,
            &ModelSpec {
                id: model,
                provider_id: provider,
                upstream_model: UPSTREAM_MODEL,
                kind: ModelKind::Chat,
                context_window: 128_000,
                max_output_tokens: Some(4096),
                capabilities: Capabilities {
                    tools: true,
                    ..Capabilities::default()
                },
            },
            Some(Tariff {
                input: PerMillion(1_000_000),
                output: PerMillion(2_000_000),
                ..Tariff::default()
            }),
        )
        .await
        .unwrap();
    }
    app.gateway().catalog.refresh(true).await.unwrap();
    app
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Surface {
    Chat,
    Messages,
    Responses,
}

const SURFACES: [Surface; 3] = [Surface::Chat, Surface::Messages, Surface::Responses];

#[derive(Debug, Clone)]
struct Call {
    id: String,
    name: String,
    args: Value,
}

/// An answer read back from any surface.
#[derive(Debug, Default)]
struct Answer {
    text: String,
    calls: Vec<Call>,
    finish: String,
    /// Input and output tokens as the client sees them (`None` if not shown).
    usage: Option<(u64, u64)>,
    /// Responses: the output items, to send back.
    items: Vec<Value>,
}

impl Surface {
    fn path(self) -> &'static str {
        match self {
            Surface::Chat => "/v1/chat/completions",
            Surface::Messages => "/v1/messages",
            Surface::Responses => "/v1/responses",
        }
    }

    /// What this surface says for a normal end and for a tool call.
    fn finishes(self) -> (&'static str, &'static str) {
        match self {
            Surface::Chat => ("stop", "tool_calls"),
            Surface::Messages => ("end_turn", "tool_use"),
            Surface::Responses => ("completed", "completed"),
        }
    }

    /// A request saying `system` and then `user`, with `extra` members.
    fn body(self, model: &str, user: &str, stream: bool, extra: Value) -> Value {
        let mut b = match self {
            Surface::Chat => json!({"model": model, "stream": stream, "messages": [
                {"role": "system", "content": "Be brief."}, {"role": "user", "content": user}]}),
            Surface::Messages => json!({"model": model, "stream": stream, "max_tokens": 256,
                "system": "Be brief.", "messages": [{"role": "user", "content": user}]}),
            Surface::Responses => json!({"model": model, "stream": stream, "store": false,
                "instructions": "Be brief.", "input": user}),
        };
        if self == Surface::Chat && stream {
            b["stream_options"] = json!({"include_usage": true});
        }
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    }

    /// The weather tool and a choice that forces it, in this surface's shape.
    fn forced_tool(self) -> Value {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]});
        match self {
            Surface::Chat => json!({"tool_choice": "required", "tools": [{"type": "function",
                "function": {"name": "get_weather", "parameters": schema}}]}),
            Surface::Messages => json!({"tool_choice": {"type": "any"}, "tools": [
                {"name": "get_weather", "input_schema": schema}]}),
            Surface::Responses => json!({"tool_choice": "required", "tools": [
                {"type": "function", "name": "get_weather", "parameters": schema}]}),
        }
    }

    fn tools(self) -> Value {
        self.forced_tool()["tools"].clone()
    }

    async fn send(self, app: &TestApp, body: &Value) -> reqwest::Response {
        match self {
            Surface::Messages => app
                .http
                .post(app.url(self.path()))
                .header("x-api-key", &app.key)
                .header("anthropic-version", "2023-06-01")
                .json(body)
                .send()
                .await
                .unwrap(),
            _ => app.post(self.path(), body).await,
        }
    }

    /// Sends `body` and reads the answer, streamed or whole.
    async fn ask(self, app: &TestApp, body: &Value) -> Answer {
        let r = self.send(app, body).await;
        assert_eq!(r.status(), 200, "{self:?}");
        if body["stream"] == true {
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            self.fold_stream(&parse_sse(&r.text().await.unwrap()))
        } else {
            self.read(&r.json::<Value>().await.unwrap())
        }
    }

    fn read(self, v: &Value) -> Answer {
        let n = |x: &Value| x.as_u64().unwrap();
        match self {
            Surface::Chat => {
                let msg = &v["choices"][0]["message"];
                Answer {
                    text: msg["content"].as_str().unwrap_or("").to_owned(),
                    calls: msg["tool_calls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| Call {
                            id: c["id"].as_str().unwrap().to_owned(),
                            name: c["function"]["name"].as_str().unwrap().to_owned(),
                            args: serde_json::from_str(
                                c["function"]["arguments"].as_str().unwrap(),
                            )
                            .unwrap(),
                        })
                        .collect(),
                    finish: v["choices"][0]["finish_reason"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    usage: Some((
                        n(&v["usage"]["prompt_tokens"]),
                        n(&v["usage"]["completion_tokens"]),
                    )),
                    items: Vec::new(),
                }
            }
            Surface::Messages => {
                assert_eq!(v["type"], "message", "{v}");
                let blocks = v["content"].as_array().unwrap();
                Answer {
                    text: blocks
                        .iter()
                        .filter(|b| b["type"] == "text")
                        .map(|b| b["text"].as_str().unwrap())
                        .collect(),
                    calls: blocks
                        .iter()
                        .filter(|b| b["type"] == "tool_use")
                        .map(|b| Call {
                            id: b["id"].as_str().unwrap().to_owned(),
                            name: b["name"].as_str().unwrap().to_owned(),
                            args: b["input"].clone(),
                        })
                        .collect(),
                    finish: v["stop_reason"].as_str().unwrap().to_owned(),
                    usage: Some((
                        n(&v["usage"]["input_tokens"]),
                        n(&v["usage"]["output_tokens"]),
                    )),
                    items: Vec::new(),
                }
            }
            Surface::Responses => {
                assert_eq!(v["object"], "response", "{v}");
                let items = v["output"].as_array().unwrap().clone();
                Answer {
                    text: items
                        .iter()
                        .filter(|i| i["type"] == "message")
                        .flat_map(|i| i["content"].as_array().unwrap().iter())
                        .filter_map(|p| p["text"].as_str())
                        .collect(),
                    calls: items
                        .iter()
                        .filter(|i| i["type"] == "function_call")
                        .map(|i| Call {
                            id: i["call_id"].as_str().unwrap().to_owned(),
                            name: i["name"].as_str().unwrap().to_owned(),
                            args: serde_json::from_str(i["arguments"].as_str().unwrap()).unwrap(),
                        })
                        .collect(),
                    finish: v["status"].as_str().unwrap().to_owned(),
                    usage: Some((
                        n(&v["usage"]["input_tokens"]),
                        n(&v["usage"]["output_tokens"]),
                    )),
                    items,
                }
            }
        }
    }

    fn fold_stream(self, events: &[(String, String)]) -> Answer {
        let mut a = Answer::default();
        match self {
            Surface::Chat => {
                assert_eq!(events.last().unwrap().1, "[DONE]", "{events:?}");
                let mut args: Vec<String> = Vec::new();
                for (_, data) in &events[..events.len() - 1] {
                    let c: Value = serde_json::from_str(data).unwrap();
                    if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
                        a.usage = Some((
                            u["prompt_tokens"].as_u64().unwrap(),
                            u["completion_tokens"].as_u64().unwrap(),
                        ));
                    }
                    for ch in c["choices"].as_array().unwrap() {
                        a.text
                            .push_str(ch["delta"]["content"].as_str().unwrap_or(""));
                        for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
                            let i = tc["index"].as_u64().unwrap() as usize;
                            if a.calls.len() <= i {
                                a.calls.push(Call {
                                    id: tc["id"].as_str().unwrap().to_owned(),
                                    name: tc["function"]["name"].as_str().unwrap().to_owned(),
                                    args: Value::Null,
                                });
                                args.push(String::new());
                            }
                            args[i].push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
                        }
                        if let Some(f) = ch["finish_reason"].as_str() {
                            a.finish = f.to_owned();
                        }
                    }
                }
                for (c, s) in a.calls.iter_mut().zip(args) {
                    c.args = serde_json::from_str(&s).unwrap();
                }
            }
            Surface::Messages => {
                let mut args: Vec<String> = Vec::new();
                let mut tool_block = false;
                for (name, data) in events {
                    let v: Value = serde_json::from_str(data).unwrap();
                    assert_eq!(v["type"], name.as_str());
                    match name.as_str() {
                        "content_block_start" => {
                            tool_block = v["content_block"]["type"] == "tool_use";
                            if tool_block {
                                a.calls.push(Call {
                                    id: v["content_block"]["id"].as_str().unwrap().to_owned(),
                                    name: v["content_block"]["name"].as_str().unwrap().to_owned(),
                                    args: Value::Null,
                                });
                                args.push(String::new());
                            }
                        }
                        "content_block_delta" if tool_block => args
                            .last_mut()
                            .unwrap()
                            .push_str(v["delta"]["partial_json"].as_str().unwrap()),
                        "content_block_delta" => {
                            a.text.push_str(v["delta"]["text"].as_str().unwrap_or(""))
                        }
                        "message_delta" => {
                            a.finish = v["delta"]["stop_reason"].as_str().unwrap().to_owned();
                            a.usage = Some((
                                v["usage"]["input_tokens"].as_u64().unwrap(),
                                v["usage"]["output_tokens"].as_u64().unwrap(),
                            ));
                        }
                        _ => {}
                    }
                }
                assert_eq!(events.last().unwrap().0, "message_stop");
                for (c, s) in a.calls.iter_mut().zip(args) {
                    c.args = serde_json::from_str(&s).unwrap();
                }
            }
            Surface::Responses => {
                let (name, data) = events.last().unwrap();
                assert_eq!(name, "response.completed", "{events:?}");
                let done: Value = serde_json::from_str(data).unwrap();
                return self.read(&done["response"]);
            }
        }
        a
    }

    /// The conversation so far (the user's question and `answer`, which called a tool) with
    /// the tool's result `result` at the end.
    fn with_result(self, user: &str, answer: &Answer, result: &str, stream: bool) -> Value {
        let call = &answer.calls[0];
        let mut b = match self {
            Surface::Chat => json!({"model": MODEL, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer.text, "tool_calls": [{"id": call.id,
                    "type": "function", "function": {"name": call.name,
                    "arguments": call.args.to_string()}}]},
                {"role": "tool", "tool_call_id": call.id, "content": result}]}),
            Surface::Messages => json!({"model": MODEL, "max_tokens": 256, "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": [{"type": "text", "text": answer.text},
                        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.args}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                        "content": result}]}]}),
            Surface::Responses => {
                let mut input = vec![json!({"role": "user", "content": user})];
                input.extend(answer.items.iter().cloned());
                input.push(
                    json!({"type": "function_call_output", "call_id": call.id, "output": result}),
                );
                json!({"model": MODEL, "store": false, "instructions": "Be brief.", "input": input})
            }
        };
        b["tools"] = self.tools();
        b["stream"] = Value::Bool(stream);
        if self == Surface::Chat && stream {
            b["stream_options"] = json!({"include_usage": true});
        }
        b
    }
}

#[tokio::test]
async fn text_on_every_surface_streamed_and_not() {
    let app = spawn().await;
    for surface in SURFACES {
        for stream in [false, true] {
            let a = surface
                .ask(
                    &app,
                    &surface.body(MODEL, "hello there world", stream, json!({})),
                )
                .await;
            let what = format!("{surface:?} stream={stream}");
            assert_eq!(a.text, "echo: hello there world", "{what}");
            assert_eq!(a.finish, surface.finishes().0, "{what}");
            assert!(a.calls.is_empty(), "{what}");
            assert_eq!(
                a.usage,
                Some((PROMPT_TOKENS as u64, REPLY_TOKENS as u64)),
                "{what}: the client sees Cohere's tokens"
            );
        }
    }
    // The log meters what the mock reported as `tokens`, for every request.
    let rows = app.wait_for_log_rows(6).await;
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.model, MODEL);
        assert_eq!(r.upstream_model.as_deref(), Some(UPSTREAM_MODEL));
        assert_eq!(r.usage_source, "upstream", "{r:?}");
        assert_eq!(
            (r.input_tokens, r.cached_tokens, r.output_tokens),
            (PROMPT_TOKENS, 0, REPLY_TOKENS),
            "{r:?}"
        );
    }
    assert_eq!(rows.iter().filter(|r| r.stream).count(), 3);
    app.stop().await;
}

#[tokio::test]
async fn tool_calls_round_trip_on_every_surface() {
    let app = spawn().await;
    let question = "What is the weather in Paris?";
    for surface in SURFACES {
        for stream in [false, true] {
            let what = format!("{surface:?} stream={stream}");
            let a = surface
                .ask(
                    &app,
                    &surface.body(MODEL, question, stream, surface.forced_tool()),
                )
                .await;
            assert_eq!(a.finish, surface.finishes().1, "{what}: {a:?}");
            assert_eq!(a.calls.len(), 1, "{what}: {a:?}");
            let call = &a.calls[0];
            assert!(
                call.id.starts_with("get_weather_mock_"),
                "{what}: Cohere's own id reaches the client: {}",
                call.id
            );
            assert_eq!(call.name, "get_weather");
            assert_eq!(call.args, json!({"city": "test"}), "{what}");
            assert_eq!(
                a.text, "I will call get_weather.",
                "{what}: the tool plan is text"
            );
            // Output: the words of `{"city":"test"}`.
            assert_eq!(a.usage.map(|u| u.1), Some(1), "{what}");

            // The result goes back; the mock answers only a tool message whose tool_call_id
            // is a call of the assistant turn, and quotes the result.
            let b = surface.with_result(question, &a, "18C", stream);
            let r = surface.ask(&app, &b).await;
            assert_eq!(r.text, "tool result: 18C", "{what}: {r:?}");
            assert_eq!(r.finish, surface.finishes().0, "{what}");
        }
    }
    // Calls: system 2 + user 6 words in, 1 out. Results: the plan (4) and the arguments (1)
    // were sent back with the call, and the result (1): 14 in, "tool result: 18C" out.
    let rows = app.wait_for_log_rows(12).await;
    let count = |input: i64, output: i64| {
        rows.iter()
            .filter(|r| {
                r.status == 200
                    && r.usage_source == "upstream"
                    && (r.input_tokens, r.output_tokens) == (input, output)
            })
            .count()
    };
    assert_eq!(count(8, 1), 6, "{rows:?}");
    assert_eq!(count(14, 3), 6, "{rows:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_tool_result_without_its_call_is_refused_before_the_upstream() {
    let app = spawn().await;
    let (status, v) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "get_weather_1",
                    "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "get_weather_2", "content": "18C"}]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "messages[2].tool_call_id");
    app.stop().await;
}

/// The error answer of `surface` for `body`: status, its envelope's error type, message,
/// and the `retry-after` header.
async fn failure(
    app: &TestApp,
    surface: Surface,
    body: &Value,
) -> (u16, String, String, Option<String>) {
    let r = surface.send(app, body).await;
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/json",
        "{surface:?}: an HTTP error, before any stream byte"
    );
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let v: Value = r.json().await.unwrap();
    if surface == Surface::Messages {
        assert_eq!(v["type"], "error", "{v}");
    }
    let ty = v["error"]["type"].as_str().unwrap().to_owned();
    let msg = v["error"]["message"].as_str().unwrap().to_owned();
    (status, ty, msg, retry)
}

#[tokio::test]
async fn upstream_errors_reach_each_client_in_its_envelope() {
    let app = spawn().await;
    for surface in SURFACES {
        for stream in [false, true] {
            let what = format!("{surface:?} stream={stream}");
            let ask = |directive: &str| {
                surface.body(MODEL, &format!("hi {directive}"), stream, json!({}))
            };
            let (status, ty, _, retry) =
                failure(&app, surface, &ask("[[mock status=429 retry_after=7]]")).await;
            let want = if surface == Surface::Messages {
                "rate_limit_error"
            } else {
                "requests"
            };
            assert_eq!((status, ty.as_str()), (429, want), "{what}");
            assert_eq!(retry.as_deref(), Some("7"), "{what}");

            let (status, ty, _, _) = failure(&app, surface, &ask("[[mock status=503]]")).await;
            let want = if surface == Surface::Messages {
                (529, "overloaded_error")
            } else {
                (503, "server_error")
            };
            assert_eq!((status, ty.as_str()), want, "{what}");

            // Cohere's 422 is the caller's mistake: a 400 with Cohere's message.
            let (status, ty, msg, _) = failure(&app, surface, &ask("[[mock status=422]]")).await;
            assert_eq!(
                (status, ty.as_str(), msg.as_str()),
                (
                    400,
                    "invalid_request_error",
                    "mock fault: upstream answered 422"
                ),
                "{what}"
            );
        }
    }
    let rows = app.wait_for_log_rows(18).await;
    assert!(
        rows.iter().all(|r| r.status >= 400 && r.output_tokens == 0),
        "{rows:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_channel_key_is_an_upstream_auth_failure() {
    let app = spawn().await;
    let (status, v) = app
        .post_json(
            "/v1/chat/completions",
            &Surface::Chat.body(BAD_KEY_MODEL, "hi", false, json!({})),
        )
        .await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["type"], "server_error");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock-bad-key"),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_each_clients_error_event() {
    let app = spawn().await;
    for surface in SURFACES {
        let body = surface.body(MODEL, "[[mock words=10 error_after=3]] go", true, json!({}));
        let r = surface.send(&app, &body).await;
        assert_eq!(r.status(), 200, "{surface:?}");
        let events = parse_sse(&r.text().await.unwrap());
        let (name, data) = events.last().unwrap();
        let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        match surface {
            Surface::Chat => {
                assert_eq!(v["error"]["type"], "server_error", "{events:?}");
                assert!(v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("mock fault"));
                assert!(!events.iter().any(|(_, d)| d == "[DONE]"));
                let text: String = events[..events.len() - 1]
                    .iter()
                    .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
                    .filter_map(|c| {
                        c["choices"][0]["delta"]["content"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect();
                assert_eq!(text, "w1 w2 w3");
            }
            Surface::Messages => {
                assert_eq!(name, "error", "{events:?}");
                assert_eq!(v["error"]["type"], "api_error");
                assert!(!events.iter().any(|(n, _)| n == "message_stop"));
            }
            Surface::Responses => {
                assert_eq!(name, "response.failed", "{events:?}");
                assert_eq!(v["response"]["status"], "failed");
                assert_eq!(v["response"]["error"]["code"], "server_error");
            }
        }
    }
    let rows = app.wait_for_log_rows(3).await;
    for r in &rows {
        assert_eq!(
            r.error_kind.as_deref(),
            Some("upstream_stream_error"),
            "{r:?}"
        );
        assert!(r.stream);
    }
    app.stop().await;
}
