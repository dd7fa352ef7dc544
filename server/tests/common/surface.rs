//! Client surfaces (OpenAI chat, Anthropic messages, Responses) asking a model on one
//! upstream channel, and reading their answers back in one shape: what the tests of each
//! upstream codec (`cohere_upstream`, `gemini_upstream`) share.

use serde_json::{json, Value};
use weir_core::catalog::{
    self, Capabilities, ChannelSpec, ModelKind, ModelSpec, ProviderSpec, Tariff, Wire,
};

use super::{parse_sse, TestApp};

/// A provider of `wire` on `base`, its channel with `key`, and `model` serving
/// `upstream_model` at `tariff` (tools on). The catalog still needs a refresh.
pub async fn add_upstream(
    app: &TestApp,
    wire: Wire,
    (provider, base, key): (&str, &str, &str),
    (model, upstream_model): (&str, &str),
    tariff: Tariff,
) {
    catalog::ensure_provider(
        &app.db,
        &ProviderSpec {
            id: provider,
            name: provider,
            wire,
            base_url: base,
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
            base_url: base,
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
            upstream_model,
            kind: ModelKind::Chat,
            context_window: 128_000,
            max_output_tokens: Some(4096),
            capabilities: Capabilities {
                tools: true,
                ..Capabilities::default()
            },
        },
        Some(tariff),
    )
    .await
    .unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surface {
    Chat,
    Messages,
    Responses,
}

pub const SURFACES: [Surface; 3] = [Surface::Chat, Surface::Messages, Surface::Responses];

#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub args: Value,
}

/// An answer read back from any surface.
#[derive(Debug, Default)]
pub struct Answer {
    pub text: String,
    pub calls: Vec<Call>,
    pub finish: String,
    /// Input and output tokens as the client sees them (`None` if not shown).
    pub usage: Option<(u64, u64)>,
    /// Responses: the output items, to send back.
    pub items: Vec<Value>,
    /// Weir's `x-request-id` for the request (set by [`Surface::ask`]).
    pub request_id: String,
}

impl Surface {
    pub fn path(self) -> &'static str {
        match self {
            Surface::Chat => "/v1/chat/completions",
            Surface::Messages => "/v1/messages",
            Surface::Responses => "/v1/responses",
        }
    }

    /// What this surface says for a normal end and for a tool call.
    pub fn finishes(self) -> (&'static str, &'static str) {
        match self {
            Surface::Chat => ("stop", "tool_calls"),
            Surface::Messages => ("end_turn", "tool_use"),
            Surface::Responses => ("completed", "completed"),
        }
    }

    /// A request saying `system` and then `user`, with `extra` members.
    pub fn body(self, model: &str, user: &str, stream: bool, extra: Value) -> Value {
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
    pub fn forced_tool(self) -> Value {
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

    pub fn tools(self) -> Value {
        self.forced_tool()["tools"].clone()
    }

    pub async fn send(self, app: &TestApp, body: &Value) -> reqwest::Response {
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
    pub async fn ask(self, app: &TestApp, body: &Value) -> Answer {
        let r = self.send(app, body).await;
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(r.status(), 200, "{self:?} {request_id}");
        let mut answer = if body["stream"] == true {
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            self.fold_stream(&parse_sse(&r.text().await.unwrap()))
        } else {
            self.read(&r.json::<Value>().await.unwrap())
        };
        answer.request_id = request_id;
        answer
    }

    pub fn read(self, v: &Value) -> Answer {
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
                    request_id: String::new(),
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
                    request_id: String::new(),
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
                    request_id: String::new(),
                }
            }
        }
    }

    pub fn fold_stream(self, events: &[(String, String)]) -> Answer {
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
    pub fn with_result(
        self,
        model: &str,
        user: &str,
        answer: &Answer,
        result: &str,
        stream: bool,
    ) -> Value {
        let call = &answer.calls[0];
        let mut b = match self {
            Surface::Chat => json!({"model": model, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer.text, "tool_calls": [{"id": call.id,
                    "type": "function", "function": {"name": call.name,
                    "arguments": call.args.to_string()}}]},
                {"role": "tool", "tool_call_id": call.id, "content": result}]}),
            Surface::Messages => {
                let mut said = Vec::new();
                if !answer.text.is_empty() {
                    said.push(json!({"type": "text", "text": answer.text}));
                }
                said.push(json!({"type": "tool_use", "id": call.id, "name": call.name,
                    "input": call.args}));
                json!({"model": model, "max_tokens": 256, "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": said},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                        "content": result}]}]})
            }
            Surface::Responses => {
                let mut input = vec![json!({"role": "user", "content": user})];
                input.extend(answer.items.iter().cloned());
                input.push(
                    json!({"type": "function_call_output", "call_id": call.id, "output": result}),
                );
                json!({"model": model, "store": false, "instructions": "Be brief.", "input": input})
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

/// The error answer of `surface` for `body`: status, its envelope's error type, message,
/// and the `retry-after` header.
pub async fn failure(
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

// ---------------------------------------------------------------------------------------------
// Checks every upstream passes on the mock
// ---------------------------------------------------------------------------------------------

/// Text on every surface, streamed and not: the echo, a normal finish, the upstream's
/// usage shown to the client (`prompt` in, `reply` out) and logged for every request.
pub async fn check_text(app: &TestApp, model: &str, upstream_model: &str, prompt: u64, reply: u64) {
    for surface in SURFACES {
        for stream in [false, true] {
            let a = surface
                .ask(
                    app,
                    &surface.body(model, "hello there world", stream, json!({})),
                )
                .await;
            let what = format!("{surface:?} stream={stream}");
            assert_eq!(a.text, "echo: hello there world", "{what}");
            assert_eq!(a.finish, surface.finishes().0, "{what}");
            assert!(a.calls.is_empty(), "{what}");
            assert_eq!(a.usage, Some((prompt, reply)), "{what}");
        }
    }
    let rows = app.wait_for_log_rows(6).await;
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.model, model);
        assert_eq!(r.upstream_model.as_deref(), Some(upstream_model));
        assert_eq!(r.usage_source, "upstream", "{r:?}");
        let logged = (r.input_tokens, r.cached_tokens, r.output_tokens);
        assert_eq!(logged, (prompt as i64, 0, reply as i64), "{r:?}");
    }
    assert_eq!(rows.iter().filter(|r| r.stream).count(), 3);
}

/// A forced call of the weather tool on every surface, streamed and not, then its result
/// sent back: the call (checked further by `check_call`) has the mock's arguments, and the
/// answer quotes the result. `logged` is the (input, output) the upstream reports for the
/// call and for the answer to its result, in each of their six log rows.
pub async fn check_tool_round_trip(
    app: &TestApp,
    model: &str,
    check_call: impl Fn(&str, &Answer),
    logged: [(i64, i64); 2],
) {
    let question = "What is the weather in Paris?";
    for surface in SURFACES {
        for stream in [false, true] {
            let what = format!("{surface:?} stream={stream}");
            let a = surface
                .ask(
                    app,
                    &surface.body(model, question, stream, surface.forced_tool()),
                )
                .await;
            assert_eq!(a.finish, surface.finishes().1, "{what}: {a:?}");
            assert_eq!(a.calls.len(), 1, "{what}: {a:?}");
            assert_eq!(a.calls[0].name, "get_weather");
            assert_eq!(a.calls[0].args, json!({"city": "test"}), "{what}");
            assert!(
                a.calls[0]
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{what}: an id Anthropic accepts"
            );
            // Output: the words of `{"city":"test"}`.
            assert_eq!(a.usage.map(|u| u.1), Some(1), "{what}");
            check_call(&what, &a);

            let b = surface.with_result(model, question, &a, "18C", stream);
            let r = surface.ask(app, &b).await;
            assert_eq!(r.text, "tool result: 18C", "{what}: {r:?}");
            assert_eq!(r.finish, surface.finishes().0, "{what}");
        }
    }
    let rows = app.wait_for_log_rows(12).await;
    let count = |(input, output): (i64, i64)| {
        rows.iter()
            .filter(|r| {
                r.status == 200
                    && r.usage_source == "upstream"
                    && (r.input_tokens, r.output_tokens) == (input, output)
            })
            .count()
    };
    assert_eq!(count(logged[0]), 6, "{rows:?}");
    assert_eq!(count(logged[1]), 6, "{rows:?}");
}

/// Upstream 429 (with its `retry-after`), 503 and `invalid` (the upstream's status for a bad
/// request) in each client's envelope and status, streamed and not, before any stream byte.
pub async fn check_upstream_errors(app: &TestApp, model: &str, invalid: u16) {
    for surface in SURFACES {
        for stream in [false, true] {
            let what = format!("{surface:?} stream={stream}");
            let ask = |directive: &str| {
                surface.body(model, &format!("hi {directive}"), stream, json!({}))
            };
            let (status, ty, _, retry) =
                failure(app, surface, &ask("[[mock status=429 retry_after=7]]")).await;
            let want = if surface == Surface::Messages {
                "rate_limit_error"
            } else {
                "requests"
            };
            assert_eq!((status, ty.as_str()), (429, want), "{what}");
            assert_eq!(retry.as_deref(), Some("7"), "{what}");

            let (status, ty, _, _) = failure(app, surface, &ask("[[mock status=503]]")).await;
            let want = if surface == Surface::Messages {
                (529, "overloaded_error")
            } else {
                (503, "server_error")
            };
            assert_eq!((status, ty.as_str()), want, "{what}");

            // The caller's mistake: a 400 with the upstream's message.
            let directive = format!("[[mock status={invalid}]]");
            let (status, ty, msg, _) = failure(app, surface, &ask(&directive)).await;
            let want_msg = format!("mock fault: upstream answered {invalid}");
            assert_eq!(
                (status, ty.as_str(), msg.as_str()),
                (400, "invalid_request_error", want_msg.as_str()),
                "{what}"
            );
        }
    }
    let rows = app.wait_for_log_rows(18).await;
    assert!(
        rows.iter().all(|r| r.status >= 400 && r.output_tokens == 0),
        "{rows:?}"
    );
}

/// A channel whose key the upstream refuses: a 502 that does not show the key.
pub async fn check_refused_key(app: &TestApp, model: &str) {
    let (status, v) = app
        .post_json(
            "/v1/chat/completions",
            &Surface::Chat.body(model, "hi", false, json!({})),
        )
        .await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["type"], "server_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("mock-bad-key"), "{v}");
}

/// A stream the upstream breaks off after three words with its in-stream error: each client
/// gets the words, then its own error event (Anthropic's of type `messages_error`) and no
/// normal end; the log says so.
pub async fn check_midstream_failure(app: &TestApp, model: &str, messages_error: &str) {
    for surface in SURFACES {
        let body = surface.body(model, "[[mock words=10 error_after=3]] go", true, json!({}));
        let r = surface.send(app, &body).await;
        assert_eq!(r.status(), 200, "{surface:?}");
        let events = parse_sse(&r.text().await.unwrap());
        let (name, data) = events.last().unwrap();
        let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        match surface {
            Surface::Chat => {
                assert_eq!(v["error"]["type"], "server_error", "{events:?}");
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains("mock fault"), "{msg}");
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
                assert_eq!(v["error"]["type"], messages_error);
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
        let kind = r.error_kind.as_deref();
        assert_eq!(kind, Some("upstream_stream_error"), "{r:?}");
        assert!(r.stream);
    }
}

/// A tool result that answers no call of the assistant turn before it (`call_id` was made,
/// `other` is answered) is the client's mistake, refused before the upstream.
pub async fn check_orphan_result(app: &TestApp, model: &str, call_id: &str, other: &str) {
    let (status, v) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": model, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": call_id,
                    "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": other, "content": "18C"}]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "messages[2].tool_call_id");
}
