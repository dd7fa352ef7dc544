//! A Cohere channel (the mock's `POST /v2/chat`) behind every client surface: OpenAI chat,
//! Anthropic messages and Responses, streamed and not. Text, a tool-call round trip (the call
//! reaches the client with Cohere's id, and the result goes back as a `tool` message the mock
//! pairs with that call), usage metered from Cohere's `tokens` (the mock's `billed_units` are
//! smaller), and upstream errors in each client's own envelope and status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    surface::{
        add_upstream, check_midstream_failure, check_orphan_result, check_refused_key, check_text,
        check_tool_round_trip, check_upstream_errors,
    },
    TestApp,
};
use weir_core::{
    catalog::{Tariff, Wire},
    money::PerMillion,
};

const MODEL: &str = "cohere-mock/command-echo";
const UPSTREAM_MODEL: &str = "command-echo";
/// A model on a channel whose key the mock refuses.
const BAD_KEY_MODEL: &str = "cohere-mock-bad-key/command-echo";

/// "Be brief." and "hello there world": the mock's `tokens.input_tokens` (its
/// `billed_units.input_tokens` leave the system words out: 3).
const PROMPT_TOKENS: u64 = 2 + 3;
/// "echo: hello there world".
const REPLY_TOKENS: u64 = 4;

/// The harness with a Cohere provider on the mock, its channel and two models.
async fn spawn() -> TestApp {
    let app = TestApp::spawn().await;
    let base = app.mock.base_url();
    for (provider, key, model) in [
        ("cohere-mock", "weir-demo", MODEL),
        ("cohere-mock-bad-key", "mock-bad-key", BAD_KEY_MODEL),
    ] {
        let tariff = Tariff {
            input: PerMillion(1_000_000),
            output: PerMillion(2_000_000),
            ..Tariff::default()
        };
        add_upstream(
            &app,
            Wire::Cohere,
            (provider, &base, key),
            (model, UPSTREAM_MODEL),
            tariff,
        )
        .await;
    }
    app.gateway().catalog.refresh(true).await.unwrap();
    app
}

#[tokio::test]
async fn text_on_every_surface_streamed_and_not() {
    let app = spawn().await;
    // The client sees, and the log meters, Cohere's `tokens`.
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
            // Cohere's own id reaches the client, and the tool plan is text; the mock answers
            // only a tool message whose tool_call_id is a call of the assistant turn.
            let id = &a.calls[0].id;
            assert!(id.starts_with("get_weather_mock_"), "{what}: {id}");
            assert_eq!(a.text, "I will call get_weather.", "{what}");
        },
        // Calls: system 2 + user 6 words in, 1 out. Results: the plan (4) and the arguments (1)
        // were sent back with the call, and the result (1): 14 in, "tool result: 18C" out.
        [(8, 1), (14, 3)],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_tool_result_without_its_call_is_refused_before_the_upstream() {
    let app = spawn().await;
    check_orphan_result(&app, MODEL, "get_weather_1", "get_weather_2").await;
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_reach_each_client_in_its_envelope() {
    let app = spawn().await;
    // Cohere's 422 is the caller's mistake.
    check_upstream_errors(&app, MODEL, 422).await;
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
    check_midstream_failure(&app, MODEL, "api_error").await;
    app.stop().await;
}
