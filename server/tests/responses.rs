//! `POST /v1/responses` end to end on both channel kinds, streamed and not: the response
//! object, the event sequence, stored conversations continued with `previous_response_id`,
//! retrieve and delete, team scoping, and errors in OpenAI's envelope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{parse_sse, TestApp};
use serde_json::{json, Value};

const MODELS: [&str; 2] = ["demo/echo", "demo/claude-echo"];

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": false}])
}

fn output_text(v: &Value) -> String {
    v["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn responses_answer_and_continue_on_both_channel_kinds() {
    let app = TestApp::spawn().await;
    for model in MODELS {
        let (status, v) = app
            .post_json(
                "/v1/responses",
                &json!({"model": model, "instructions": "Be brief.", "input": "hello there world"}),
            )
            .await;
        assert_eq!(status, 200, "{model}: {v}");
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], model, "the model the client asked for");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(output_text(&v), "echo: hello there world", "{model}");
        assert_eq!(v["instructions"], "Be brief.");
        assert_eq!(v["store"], true);
        let u = &v["usage"];
        assert!(u["input_tokens"].as_u64().unwrap() > 0, "{v}");
        assert!(u["output_tokens"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap()
        );

        // Retrieve returns what was answered.
        let id = v["id"].as_str().unwrap();
        let got: Value = app
            .http
            .get(app.url(&format!("/v1/responses/{id}")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got, v);

        // Continue the conversation: the upstream sees the earlier turns (the mock echoes
        // the last user message and counts every input word).
        let (status, next) = app
            .post_json(
                "/v1/responses",
                &json!({"model": model, "input": "and again", "previous_response_id": id}),
            )
            .await;
        assert_eq!(status, 200, "{next}");
        assert_eq!(output_text(&next), "echo: and again");
        assert_eq!(next["previous_response_id"], id);
        assert!(
            next["usage"]["input_tokens"].as_u64() > v["usage"]["input_tokens"].as_u64(),
            "the history was sent: {} then {}",
            v["usage"],
            next["usage"]
        );

        // Delete, then it is gone.
        let r = app
            .http
            .delete(app.url(&format!("/v1/responses/{id}")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let d: Value = r.json().await.unwrap();
        assert_eq!(d["deleted"], true);
        assert_eq!(d["object"], "response.deleted");
        let r = app
            .http
            .get(app.url(&format!("/v1/responses/{id}")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let (status, e) = app
            .post_json(
                "/v1/responses",
                &json!({"model": model, "input": "x", "previous_response_id": id}),
            )
            .await;
        assert_eq!(status, 404, "{e}");
        assert_eq!(e["error"]["param"], "previous_response_id");
    }

    // store: false keeps nothing.
    let (_, v) = app
        .post_json(
            "/v1/responses",
            &json!({"model": "demo/echo", "input": "hi", "store": false}),
        )
        .await;
    assert_eq!(v["store"], false);
    let r = app
        .http
        .get(app.url(&format!("/v1/responses/{}", v["id"].as_str().unwrap())))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn stored_responses_belong_to_their_team() {
    let app = TestApp::spawn().await;
    let (_, v) = app
        .post_json(
            "/v1/responses",
            &json!({"model": "demo/echo", "input": "secret plans"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_owned();
    weir_core::team::create(&app.db, "other").await.unwrap();
    let other = weir_core::auth::create_key(&app.db, "other", weir_core::auth::Env::Dev, "")
        .await
        .unwrap()
        .full;
    let path = format!("/v1/responses/{id}");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    let r = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&other)
        .json(&json!({"model": "demo/echo", "input": "x", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Still there for its own team.
    let r = app
        .http
        .get(app.url(&path))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // No key, no answer.
    let r = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn streams_are_the_full_event_sequence() {
    let app = TestApp::spawn().await;
    for model in MODELS {
        let r = app
            .post(
                "/v1/responses",
                &json!({"model": model, "input": "hello stream", "stream": true}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let events = parse_sse(&r.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[..5],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
            ],
            "{model}: {names:?}"
        );
        assert_eq!(
            names[names.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ],
            "{model}: {names:?}"
        );
        let mut text = String::new();
        for (i, (name, data)) in events.iter().enumerate() {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], name.as_str());
            assert_eq!(v["sequence_number"], i as u64, "{model}: {name}");
            if name == "response.output_text.delta" {
                text.push_str(v["delta"].as_str().unwrap());
            }
        }
        assert_eq!(text, "echo: hello stream");
        let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
        let resp = &done["response"];
        assert_eq!(resp["status"], "completed");
        assert_eq!(resp["model"], model);
        assert_eq!(output_text(resp), "echo: hello stream");
        assert!(resp["usage"]["output_tokens"].as_u64().unwrap() > 0);
        assert!(resp["usage"]["cost_usd"].is_string(), "{}", resp["usage"]);

        // A streamed answer is stored too, before the stream ends.
        let id = resp["id"].as_str().unwrap();
        let (status, next) = app
            .post_json(
                "/v1/responses",
                &json!({"model": model, "input": "more", "previous_response_id": id}),
            )
            .await;
        assert_eq!(status, 200, "{next}");
        assert_eq!(output_text(&next), "echo: more");
    }
    app.stop().await;
}

#[tokio::test]
async fn function_calls_round_trip() {
    let app = TestApp::spawn().await;
    for model in MODELS {
        for stream in [false, true] {
            let body = json!({"model": model, "input": "What is the weather in Paris?",
                "tools": weather_tool(), "tool_choice": "required", "stream": stream});
            let first = if stream {
                let r = app.post("/v1/responses", &body).await;
                let events = parse_sse(&r.text().await.unwrap());
                let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
                assert!(
                    names.contains(&"response.function_call_arguments.delta")
                        && names.contains(&"response.function_call_arguments.done"),
                    "{names:?}"
                );
                let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
                done["response"].clone()
            } else {
                let (status, v) = app.post_json("/v1/responses", &body).await;
                assert_eq!(status, 200, "{v}");
                v
            };
            let call = first["output"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "function_call")
                .unwrap_or_else(|| panic!("{model} stream={stream}: {first}"))
                .clone();
            assert_eq!(call["name"], "get_weather");
            assert!(call["id"].as_str().unwrap().starts_with("fc_"));
            let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
            assert!(args.is_object());

            // Send the result back, without stored state (the client carries the items).
            let (status, v) = app
                .post_json(
                    "/v1/responses",
                    &json!({"model": model, "store": false, "tools": weather_tool(), "input": [
                        {"role": "user", "content": "What is the weather in Paris?"},
                        call,
                        {"type": "function_call_output", "call_id": call["call_id"], "output": "18C and sunny"}
                    ]}),
                )
                .await;
            assert_eq!(status, 200, "{model}: {v}");
            assert_eq!(v["status"], "completed");
            assert!(
                output_text(&v).contains("18C and sunny"),
                "{model} stream={stream}: {v}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400_in_openai_envelope() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"model": "demo/echo"}), "input"),
        (json!({"input": "x"}), "model"),
        (
            json!({"model": "demo/echo", "input": "x", "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "demo/echo", "input": [{"type": "mystery"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "demo/echo", "input": "x", "max_output_tokens": u64::MAX}),
            "max_output_tokens",
        ),
        (
            json!({"model": "demo/echo", "input": "x", "temperature": 1e300}),
            "temperature",
        ),
    ];
    for (body, param) in cases {
        let r = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
        assert_eq!(e["error"]["param"], param, "{e}");
    }
    let r = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&app.key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, e) = app
        .post_json(
            "/v1/responses",
            &json!({"model": "no/such-model", "input": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{e}");
    app.stop().await;
}

/// Reasoning from an Anthropic channel comes back as a reasoning item whose `encrypted_content`
/// is the thinking block's signature (whole and streamed), and a client that sends the item
/// back gets it to the upstream intact: the mock refuses a thinking block whose signature does
/// not match its text, as Anthropic does.
#[tokio::test]
async fn reasoning_signatures_round_trip_to_an_anthropic_channel() {
    let app = TestApp::spawn().await;
    for stream in [false, true] {
        let ask = json!({"model": "demo/claude-echo", "input": "hello there", "stream": stream,
            "store": false, "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"]});
        let r = app.post("/v1/responses", &ask).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let v: Value = if stream {
            let events = parse_sse(&body);
            let (name, data) = events.last().unwrap();
            assert_eq!(name, "response.completed");
            serde_json::from_str::<Value>(data).unwrap()["response"].clone()
        } else {
            serde_json::from_str(&body).unwrap()
        };
        let reasoning = v["output"][0].clone();
        assert_eq!(reasoning["type"], "reasoning", "stream {stream}: {v}");
        assert_eq!(
            reasoning["summary"][0]["text"],
            "Thinking about: hello there"
        );
        let signature = reasoning["encrypted_content"].as_str().unwrap_or_default();
        assert!(
            signature.starts_with("EqMock"),
            "stream {stream}: {reasoning}"
        );
        assert_eq!(output_text(&v), "echo: hello there");

        let follow_up = |reasoning: Value| {
            let mut history = vec![json!({"role": "user", "content": "hello there"}), reasoning];
            history.extend(v["output"].as_array().unwrap()[1..].iter().cloned());
            history.push(json!({"role": "user", "content": "and again"}));
            json!({"model": "demo/claude-echo", "input": history, "store": false,
                "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"]})
        };
        let (status, next) = app
            .post_json("/v1/responses", &follow_up(reasoning.clone()))
            .await;
        assert_eq!(status, 200, "stream {stream}: {next}");
        assert_eq!(output_text(&next), "echo: and again");

        // Tampered with, the upstream refuses it, and the client hears why.
        let mut forged = reasoning;
        forged["encrypted_content"] = "EqMock0000000000000000".into();
        let (status, e) = app.post_json("/v1/responses", &follow_up(forged)).await;
        assert_eq!(status, 400, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("signature"),
            "{e}"
        );
    }
    app.stop().await;
}

/// A stored answer keeps its reasoning signature even when the client did not ask to see it,
/// so continuing with `previous_response_id` sends the upstream its signed thinking (the mock
/// counts the thinking words it gets back as input); retrieving shows the signature only with
/// `include[]=reasoning.encrypted_content`.
#[tokio::test]
async fn stored_reasoning_keeps_its_signature_for_the_next_turn() {
    let app = TestApp::spawn().await;
    for stream in [false, true] {
        let r = app
            .post(
                "/v1/responses",
                &json!({"model": "demo/claude-echo", "input": "hello there", "stream": stream,
                    "reasoning": {"effort": "low"}}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let v: Value = if stream {
            let (_, data) = parse_sse(&body).pop().unwrap();
            serde_json::from_str::<Value>(&data).unwrap()["response"].clone()
        } else {
            serde_json::from_str(&body).unwrap()
        };
        assert_eq!(v["output"][0]["type"], "reasoning", "{v}");
        assert!(v["output"][0].get("encrypted_content").is_none(), "{v}");
        let id = v["id"].as_str().unwrap();

        let get = |query: &'static str| {
            let url = app.url(&format!("/v1/responses/{id}{query}"));
            let req = app.http.get(url).bearer_auth(&app.key);
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        assert_eq!(get("").await, v, "retrieved as it was answered");
        let shown = get("?include[]=reasoning.encrypted_content").await;
        let signature = shown["output"][0]["encrypted_content"].as_str().unwrap();
        assert!(signature.starts_with("EqMock"), "{shown}");

        // The next turn, by id and by items with the signature: the same input reached the
        // upstream, thinking included.
        let (status, by_id) = app
            .post_json(
                "/v1/responses",
                &json!({"model": "demo/claude-echo", "input": "and again",
                    "previous_response_id": id, "reasoning": {"effort": "low"}}),
            )
            .await;
        assert_eq!(status, 200, "{by_id}");
        let mut history = vec![json!({"role": "user", "content": "hello there"})];
        history.extend(shown["output"].as_array().unwrap().iter().cloned());
        history.push(json!({"role": "user", "content": "and again"}));
        let (status, by_items) = app
            .post_json(
                "/v1/responses",
                &json!({"model": "demo/claude-echo", "input": history, "store": false,
                    "reasoning": {"effort": "low"}}),
            )
            .await;
        assert_eq!(status, 200, "{by_items}");
        assert_eq!(output_text(&by_id), "echo: and again");
        assert_eq!(
            by_id["usage"]["input_tokens"], by_items["usage"]["input_tokens"],
            "stream {stream}"
        );
    }
    app.stop().await;
}
