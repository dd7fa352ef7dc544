//! End-to-end tests of the mock upstream: a real server on 127.0.0.1:0, called over HTTP.

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{spawn, MockServer};

/// A running mock and a client for it.
struct Mock {
    server: MockServer,
    http: reqwest::Client,
}

/// What a request got back: status, headers and body text.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One SSE event: its `event:` name, if any, and its data.
#[derive(Debug)]
struct Event {
    name: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

const OPENAI: &str = "/v1/chat/completions";
const ANTHROPIC: &str = "/v1/messages";

async fn start() -> Mock {
    let server = spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Mock {
        server,
        http: reqwest::Client::new(),
    }
}

impl Mock {
    fn request(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.server.base_url());
        let builder = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if path.starts_with("/v1/messages") {
            builder
                .header("x-api-key", "test-key")
                .header("anthropic-version", "2023-06-01")
        } else if path.starts_with("/v1beta") {
            builder.header("x-goog-api-key", "test-key")
        } else {
            builder.bearer_auth("test-key")
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        answer(self.request(path, body).send().await.unwrap()).await
    }

    async fn post_with_fault(&self, path: &str, fault: &str, body: &Value) -> Answer {
        let request = self.request(path, body).header("x-mock-fault", fault);
        answer(request.send().await.unwrap()).await
    }

    /// The events of a stream that ends normally.
    async fn stream(&self, path: &str, body: &Value) -> Vec<Event> {
        let answer = self.post(path, body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.headers["content-type"], "text/event-stream");
        events(&answer.body)
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

/// Reads a body chunk by chunk until it ends (`Ok`) or fails (`Err` with what came before).
async fn read_until_end(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(String::from_utf8(body).unwrap()),
            Err(_) => return Err(String::from_utf8(body).unwrap()),
        }
    }
}

/// Splits an SSE body into events (LF or CRLF line ends).
fn events(body: &str) -> Vec<Event> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = Event {
                name: None,
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.name = Some(name.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                }
            }
            event
        })
        .collect()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn weather_tool_openai() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"]}}})
}

/// Text of OpenAI chunks: the concatenated `delta.content` of choice 0.
fn openai_text(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn openai_whole_reply_has_the_real_shape() {
    let mock = start().await;
    let answer = mock
        .post(
            OPENAI,
            &json!({"model": "gpt-4o", "n": 2, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello  there"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "text", "text": "world"}]}]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_mock_"));
    let v = answer.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["model"], "gpt-4o");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "echo: hello there world");
    }
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    );
}

#[tokio::test]
async fn openai_honours_limits_stops_and_tool_results() {
    let mock = start().await;
    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "max_completion_tokens": 2, "max_tokens": 50,
                "messages": [user("hello there world")]}),
        )
        .await
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "stop": "world", "messages": [user("hello there world")]}),
        )
        .await
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello there ");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // A tool turn: the reply quotes the result; arguments and results count as prompt words.
    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "tools": [weather_tool_openai()], "messages": [
                user("call get_weather"),
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                    "type": "function", "function": {"name": "get_weather",
                    "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}]}),
        )
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "tool result: 18C and sunny"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 2 + 2 + 3);
}

#[tokio::test]
async fn openai_tool_calls_when_forced_or_asked() {
    let mock = start().await;
    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "tools": [weather_tool_openai()], "tool_choice": "required",
                "messages": [user("hi")]}),
        )
        .await
        .json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"test","days":1}"#);

    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "tools": [weather_tool_openai()],
                "messages": [user("please call get_weather {\"city\": \"Oslo\", \"days\": 3}")]}),
        )
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Oslo","days":3}"#
    );

    // Offered tools alone never trigger a call.
    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "tools": [weather_tool_openai()], "messages": [user("weather?")]}),
        )
        .await
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: weather?");
}

#[tokio::test]
async fn openai_stream_follows_the_real_sequence() {
    let mock = start().await;
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [user("hello there")]}),
        )
        .await;
    assert_eq!(events.len(), 1 + 3 + 1 + 1 + 1, "{events:?}");
    assert!(events.iter().all(|e| e.name.is_none()));
    let first = events[0].json();
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["usage"], Value::Null);
    let words: Vec<Value> = events[1..4]
        .iter()
        .map(|e| e.json()["choices"][0]["delta"]["content"].clone())
        .collect();
    assert_eq!(words, [json!("echo:"), json!(" hello"), json!(" there")]);
    let finish = events[4].json();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish.as_object().unwrap().contains_key("usage"));
    let usage = events[5].json();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(usage["usage"]["total_tokens"], 5);
    assert_eq!(events[6].data, "[DONE]");
    let ids: Vec<Value> = events[..6].iter().map(|e| e.json()["id"].clone()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));

    // Without include_usage: no usage anywhere.
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true, "messages": [user("hello")]}),
        )
        .await;
    assert_eq!(events.len(), 1 + 2 + 1 + 1);
    assert!(events[..4]
        .iter()
        .all(|e| !e.json().as_object().unwrap().contains_key("usage")));
    assert_eq!(openai_text(&events), "echo: hello");

    // n = 2: every chunk goes to each choice in turn.
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true, "n": 2, "messages": [user("hello")]}),
        )
        .await;
    let order: Vec<(u64, Value)> = events[..events.len() - 1]
        .iter()
        .map(|e| {
            let choice = e.json()["choices"][0].clone();
            (
                choice["index"].as_u64().unwrap(),
                choice["delta"]["content"].clone(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (0, json!("")),
            (1, json!("")),
            (0, json!("echo:")),
            (1, json!("echo:")),
            (0, json!(" hello")),
            (1, json!(" hello")),
            (0, Value::Null),
            (1, Value::Null)
        ]
    );
}

#[tokio::test]
async fn openai_stream_tool_call_arrives_in_fragments() {
    let mock = start().await;
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true, "tools": [weather_tool_openai()],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "messages": [user("Zürich ☀ please")]}),
        )
        .await;
    let first = events[0].json();
    let head = &first["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(head["index"], 0);
    assert!(head["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(head["type"], "function");
    assert_eq!(
        head["function"],
        json!({"name": "get_weather", "arguments": ""})
    );
    let fragments: Vec<String> = events[1..]
        .iter()
        .map(Event::json)
        .take_while(|v| v["choices"][0]["finish_reason"].is_null())
        .map(|v| {
            let call = &v["choices"][0]["delta"]["tool_calls"][0];
            assert!(call.get("id").is_none());
            call["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(fragments.len(), 3);
    assert_eq!(fragments.concat(), r#"{"city":"test","days":1}"#);
    let finish = events[events.len() - 2].json();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn anthropic_whole_reply_has_the_real_shape() {
    let mock = start().await;
    let answer = mock
        .post(
            "/v1/messages?beta=true",
            &json!({"model": "claude-x", "max_tokens": 100, "system": "be brief",
                "stop_sequences": ["there"],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there pal"}]}]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.headers["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_mock_"));
    let v = answer.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["content"], json!([{"type": "text", "text": "echo: hi "}]));
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "there");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 2);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 0);

    let v = mock
        .post(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 2, "messages": [user("one two three")]}),
        )
        .await
        .json();
    assert_eq!(v["content"][0]["text"], "echo: one");
    assert_eq!(v["stop_reason"], "max_tokens");

    let v = mock
        .post(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 50, "tool_choice": {"type": "any"},
                "tools": [{"name": "lookup", "input_schema": {"type": "object",
                    "properties": {"q": {"type": "string"}, "exact": {"type": "boolean"}},
                    "required": ["q", "exact"]}}],
                "messages": [user("find it")]}),
        )
        .await
        .json();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert_eq!(block["name"], "lookup");
    assert_eq!(block["input"], json!({"q": "test", "exact": true}));

    let v = mock
        .post(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 50, "messages": [
                user("go"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                    "name": "lookup", "input": {"q": "x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "found it"}]}]}]}),
        )
        .await
        .json();
    assert_eq!(v["content"][0]["text"], "tool result: found it");
    assert_eq!(v["usage"]["input_tokens"], 1 + 1 + 2);

    let v = mock
        .post(
            "/v1/messages/count_tokens",
            &json!({"model": "m", "system": "a b", "messages": [user("c d e")]}),
        )
        .await
        .json();
    assert_eq!(v, json!({"input_tokens": 5}));
}

#[tokio::test]
async fn anthropic_stream_follows_the_real_sequence() {
    let mock = start().await;
    let events = mock
        .stream(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 100, "stream": true,
                "messages": [user("hello there")]}),
        )
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for event in &events {
        assert_eq!(event.json()["type"], event.name.as_deref().unwrap());
    }
    let start = events[0].json();
    assert!(start["message"]["id"]
        .as_str()
        .unwrap()
        .starts_with("msg_mock_"));
    assert_eq!(start["message"]["content"], json!([]));
    assert_eq!(start["message"]["usage"]["input_tokens"], 2);
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..6]
        .iter()
        .map(|e| {
            let delta = e.json()["delta"].clone();
            assert_eq!(delta["type"], "text_delta");
            delta["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "echo: hello there");
    let delta = events[7].json();
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 3);

    // A tool call asked for in the text: input_json_delta fragments of the written object.
    let events = mock
        .stream(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 100, "stream": true,
                "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                "messages": [user("call get_weather {\"city\": \"Paris\"}")]}),
        )
        .await;
    let block = events[1].json()["content_block"].clone();
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    let json_text: String = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let delta = e.json()["delta"].clone();
            assert_eq!(delta["type"], "input_json_delta");
            delta["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(json_text, r#"{"city":"Paris"}"#);
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn anthropic_thinking_is_signed_and_checked_when_sent_back() {
    let mock = start().await;
    let ask = |stream: bool| {
        json!({"model": "m", "max_tokens": 2048, "stream": stream,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [user("hello there")]})
    };
    let whole = mock.post(ANTHROPIC, &ask(false)).await.json();
    let thinking = whole["content"][0].clone();
    assert_eq!(thinking["type"], "thinking");
    assert_eq!(thinking["thinking"], "Thinking about: hello there");
    let signature = thinking["signature"].as_str().unwrap().to_owned();
    assert!(signature.starts_with("EqMock"), "{signature}");
    assert_eq!(whole["content"][1]["text"], "echo: hello there");
    // Thinking is output: 4 words of it plus 3 of text.
    assert_eq!(whole["usage"]["output_tokens"], 7);

    // Streamed: a whole thinking block (thinking_delta then signature_delta) at index 0, the
    // text at index 1.
    let events = mock.stream(ANTHROPIC, &ask(true)).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names[..7],
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start"
        ]
    );
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        events[3].json()["delta"],
        json!({"type": "thinking_delta", "thinking": "Thinking about: hello there"})
    );
    assert_eq!(
        events[4].json()["delta"],
        json!({"type": "signature_delta", "signature": signature})
    );
    assert_eq!(events[6].json()["index"], 1);
    assert_eq!(events[7].json()["index"], 1);

    // Sent back untouched, the block is accepted; altered or unsigned, refused as Anthropic does.
    let next = |block: Value| {
        json!({"model": "m", "max_tokens": 100, "messages": [
            user("hello there"),
            {"role": "assistant", "content": [block, {"type": "text", "text": "echo: hello there"}]},
            user("again")]})
    };
    assert_eq!(
        mock.post(ANTHROPIC, &next(thinking.clone())).await.status,
        200
    );
    let mut altered = thinking.clone();
    altered["thinking"] = "Thinking about: something else".into();
    let refused = mock.post(ANTHROPIC, &next(altered)).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["error"]["message"],
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    );
    let mut unsigned = thinking;
    unsigned["signature"] = "".into();
    assert_eq!(mock.post(ANTHROPIC, &next(unsigned)).await.status, 400);
}

#[tokio::test]
async fn gemini_whole_and_streamed_replies() {
    let mock = start().await;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let v = mock
        .post(
            path,
            &json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
                "generationConfig": {"maxOutputTokens": 2}}),
        )
        .await
        .json();
    let candidate = &v["candidates"][0];
    assert_eq!(
        candidate["content"],
        json!({"role": "model", "parts": [{"text": "echo: hello"}]})
    );
    assert_eq!(candidate["finishReason"], "MAX_TOKENS");
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6})
    );
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");

    let v = mock
        .post(
            path,
            &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [
                    {"name": "a", "parameters": {"type": "OBJECT"}},
                    {"name": "b", "parameters": {"type": "OBJECT",
                        "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                    "allowedFunctionNames": ["b"]}}}),
        )
        .await
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0],
        json!({"functionCall": {"name": "b", "args": {"n": 1}}})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");

    let answer = mock
        .post(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}),
        )
        .await;
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    assert!(answer.body.ends_with("\r\n\r\n"));
    assert!(!answer.body.contains("[DONE]"));
    let events = events(&answer.body);
    assert_eq!(events.len(), 3);
    let text: String = events
        .iter()
        .map(|e| {
            e.json()["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "echo: hello there");
    assert!(events[0].json()["candidates"][0]
        .get("finishReason")
        .is_none());
    assert!(events[0].json().get("usageMetadata").is_none());
    let last = events[2].json();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 2 + 3);

    // A streamed tool call is one whole functionCall event.
    let events = mock
        .stream(
            "/v1beta/models/g:streamGenerateContent?alt=sse",
            &json!({"contents": [{"role": "user", "parts": [{"text": "call f {\"x\": 1}"}]}],
                "tools": [{"functionDeclarations": [{"name": "f"}]}]}),
        )
        .await;
    assert_eq!(events.len(), 1);
    let only = events[0].json();
    assert_eq!(
        only["candidates"][0]["content"]["parts"][0],
        json!({"functionCall": {"name": "f", "args": {"x": 1}}})
    );
    assert_eq!(only["candidates"][0]["finishReason"], "STOP");
    assert_eq!(only["usageMetadata"]["candidatesTokenCount"], 1);

    // A function response is the turn being answered.
    let v = mock
        .post(
            path,
            &json!({"contents": [
                {"role": "user", "parts": [{"text": "weather"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"c": "P"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "w",
                    "response": {"result": "18C"}}}]}]}),
        )
        .await
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "tool result: 18C"
    );
}

const COHERE: &str = "/v2/chat";

/// Names of Cohere stream events, checking that each `event:` name is its data's `type`.
fn cohere_names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let name = e.name.clone().expect("every Cohere event is named");
            assert_eq!(e.json()["type"], name.as_str(), "{e:?}");
            name
        })
        .collect()
}

#[tokio::test]
async fn cohere_whole_reply_has_the_real_shape() {
    let mock = start().await;
    let v = mock
        .post(
            COHERE,
            &json!({"model": "command-a-03-2025", "messages": [
                {"role": "system", "content": "be very brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello  there"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
        )
        .await
        .json();
    let id = v["id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(
        v["message"],
        json!({"role": "assistant", "content": [{"type": "text", "text": "echo: hello there"}]})
    );
    assert_eq!(v["finish_reason"], "COMPLETE");
    assert_eq!(
        v["usage"],
        json!({"billed_units": {"input_tokens": 2, "output_tokens": 3},
            "tokens": {"input_tokens": 3 + 2, "output_tokens": 3}})
    );
    assert!(v.get("model").is_none(), "Cohere answers name no model");

    let v = mock
        .post(
            COHERE,
            &json!({"model": "m", "max_tokens": 2, "messages": [user("one two three")]}),
        )
        .await
        .json();
    assert_eq!(v["message"]["content"][0]["text"], "echo: one");
    assert_eq!(v["finish_reason"], "MAX_TOKENS");
    let v = mock
        .post(
            COHERE,
            &json!({"model": "m", "stop_sequences": ["three"], "messages": [user("one two three")]}),
        )
        .await
        .json();
    assert_eq!(v["message"]["content"][0]["text"], "echo: one two ");
    assert_eq!(v["finish_reason"], "STOP_SEQUENCE");
    let v = mock
        .post(
            COHERE,
            &json!({"model": "m", "messages": [user("[[mock words=0]]")]}),
        )
        .await
        .json();
    assert_eq!(v["message"], json!({"role": "assistant"}));

    // A forced call: the plan, then the call, its arguments a JSON string.
    let v = mock
        .post(
            COHERE,
            &json!({"model": "m", "tools": [weather_tool_openai()], "tool_choice": "REQUIRED",
                "messages": [user("hi")]}),
        )
        .await
        .json();
    assert_eq!(v["finish_reason"], "TOOL_CALL");
    let message = &v["message"];
    assert_eq!(message["tool_plan"], "I will call get_weather.");
    assert!(message.get("content").is_none());
    let call = &message["tool_calls"][0];
    assert!(call["id"]
        .as_str()
        .unwrap()
        .starts_with("get_weather_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(
        call["function"],
        json!({"name": "get_weather", "arguments": r#"{"city":"test","days":1}"#})
    );
    assert_eq!(v["usage"]["tokens"]["output_tokens"], 1);

    // The result goes back as a tool message; plan, arguments and result count as prompt words.
    let v = mock
        .post(
            COHERE,
            &json!({"model": "m", "tools": [weather_tool_openai()], "tool_choice": "NONE",
                "messages": [
                user("call get_weather"),
                {"role": "assistant", "tool_plan": "I will call get_weather.", "tool_calls": [
                    {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather",
                        "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "get_weather_1",
                    "content": [{"type": "text", "text": "18C and sunny"}]}]}),
        )
        .await
        .json();
    assert_eq!(
        v["message"]["content"][0]["text"],
        "tool result: 18C and sunny"
    );
    assert_eq!(v["usage"]["tokens"]["input_tokens"], 2 + (4 + 2) + 3);

    // Cohere's own limits, in its envelope.
    for (bad, what) in [
        (
            json!({"model": "m", "p": 1.0, "messages": [user("hi")]}),
            "p must",
        ),
        (
            json!({"model": "m", "k": 501, "messages": [user("hi")]}),
            "k must",
        ),
        (
            json!({"model": "m", "stop_sequences": ["a", "b", "c", "d", "e", "f"],
            "messages": [user("hi")]}),
            "stop_sequences",
        ),
        (
            json!({"model": "m", "messages": [{"role": "developer", "content": "x"}, user("hi")]}),
            "role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [user("hi"),
            {"role": "assistant", "tool_calls": [{"id": "f_1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "f_2", "content": "x"}]}),
            "answers no tool call",
        ),
        (
            json!({"model": "m", "tool_choice": "REQUIRED", "messages": [user("hi")]}),
            "tools",
        ),
        (json!({"model": "m", "messages": []}), "messages"),
    ] {
        let answer = mock.post(COHERE, &bad).await;
        assert_eq!(answer.status, 400, "{bad}");
        let v = answer.json();
        assert!(v["message"].as_str().unwrap().contains(what), "{v}");
        assert!(v["id"].is_string());
    }
}

#[tokio::test]
async fn cohere_stream_follows_the_real_sequence() {
    let mock = start().await;
    let answer = mock
        .post(
            COHERE,
            &json!({"model": "m", "stream": true, "messages": [
                {"role": "system", "content": "be brief"}, user("hello there")]}),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    assert!(!answer.body.contains("[DONE]"));
    let events = events(&answer.body);
    assert_eq!(
        cohere_names(&events),
        [
            "message-start",
            "content-start",
            "content-delta",
            "content-delta",
            "content-delta",
            "content-end",
            "message-end"
        ]
    );
    let start = events[0].json();
    assert_eq!(start["id"].as_str().unwrap().len(), 36);
    assert_eq!(
        start["delta"]["message"],
        json!({"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
            "citations": []})
    );
    assert_eq!(
        events[1].json(),
        json!({"type": "content-start", "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}}})
    );
    let words: Vec<Value> = events[2..5]
        .iter()
        .map(|e| e.json()["delta"]["message"]["content"]["text"].clone())
        .collect();
    assert_eq!(words, [json!("echo:"), json!(" hello"), json!(" there")]);
    assert_eq!(events[5].json(), json!({"type": "content-end", "index": 0}));
    let end = events[6].json();
    assert_eq!(end["id"], start["id"]);
    assert_eq!(
        end["delta"],
        json!({"finish_reason": "COMPLETE", "usage": {
            "billed_units": {"input_tokens": 2, "output_tokens": 3},
            "tokens": {"input_tokens": 4, "output_tokens": 3}}})
    );

    // A tool call: the plan word by word, then the call and its arguments in fragments.
    let events = mock
        .stream(
            COHERE,
            &json!({"model": "m", "stream": true, "tools": [weather_tool_openai()],
                "messages": [user("call get_weather {\"city\": \"Zürich ☀\"}")]}),
        )
        .await;
    let names = cohere_names(&events);
    assert_eq!(
        names[..5],
        [
            "message-start",
            "tool-plan-delta",
            "tool-plan-delta",
            "tool-plan-delta",
            "tool-plan-delta"
        ]
    );
    assert_eq!(names[5], "tool-call-start");
    assert_eq!(names[names.len() - 2..], ["tool-call-end", "message-end"]);
    let plan: String = events[1..5]
        .iter()
        .map(|e| {
            e.json()["delta"]["message"]["tool_plan"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(plan, "I will call get_weather.");
    let head = events[5].json();
    assert_eq!(head["index"], 0);
    let call = &head["delta"]["message"]["tool_calls"];
    assert!(call["id"]
        .as_str()
        .unwrap()
        .starts_with("get_weather_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(
        call["function"],
        json!({"name": "get_weather", "arguments": ""})
    );
    let fragments: Vec<String> = events[6..events.len() - 2]
        .iter()
        .map(|e| {
            assert_eq!(e.name.as_deref(), Some("tool-call-delta"));
            let v = e.json();
            assert_eq!(v["index"], 0);
            v["delta"]["message"]["tool_calls"]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(fragments.len(), 3);
    assert_eq!(fragments.concat(), r#"{"city":"Zürich ☀"}"#);
    assert_eq!(
        events[events.len() - 2].json(),
        json!({"type": "tool-call-end", "index": 0})
    );
    assert_eq!(
        events.last().unwrap().json()["delta"]["finish_reason"],
        "TOOL_CALL"
    );

    // An empty reply has no content events; no_usage leaves usage out.
    let events = mock
        .stream(
            COHERE,
            &json!({"model": "m", "stream": true,
                "messages": [user("[[mock words=0 no_usage]]")]}),
        )
        .await;
    assert_eq!(cohere_names(&events), ["message-start", "message-end"]);
    assert_eq!(
        events[1].json()["delta"],
        json!({"finish_reason": "COMPLETE"})
    );
}

#[tokio::test]
async fn cohere_faults_use_its_envelope_and_events() {
    let mock = start().await;
    let answer = mock
        .post_with_fault(
            COHERE,
            "status=429 retry_after=4",
            &json!({"model": "m", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "4");
    let v = answer.json();
    assert_eq!(v["message"], "Rate limit reached (mock fault)");
    assert!(v["id"].is_string() && v.get("error").is_none(), "{v}");
    let answer = mock
        .post(
            COHERE,
            &json!({"model": "fail-503", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 503);
    assert!(answer.json()["message"].is_string());
    let answer = answer_of(
        mock.http
            .post(format!("{}{COHERE}", mock.server.base_url()))
            .bearer_auth("mock-bad-key")
            .body("{}"),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["message"], "invalid API key provided");

    // error_after: a message-end that carries ERROR and the message, and nothing after it.
    let events = mock
        .stream(
            COHERE,
            &json!({"model": "m", "stream": true,
                "messages": [user("[[mock words=5 error_after=2]]")]}),
        )
        .await;
    let names = cohere_names(&events);
    assert_eq!(
        names,
        [
            "message-start",
            "content-start",
            "content-delta",
            "content-delta",
            "message-end"
        ]
    );
    let end = events.last().unwrap().json();
    assert_eq!(end["delta"]["finish_reason"], "ERROR");
    assert!(end["delta"]["error"]
        .as_str()
        .unwrap()
        .contains("mock fault"));
    assert!(end["delta"].get("usage").is_none());

    // malformed: invalid JSON after the first word.
    let answer = mock
        .post(
            COHERE,
            &json!({"model": "m", "stream": true, "messages": [user("[[mock words=3 malformed]]")]}),
        )
        .await;
    let broken = self::events(&answer.body);
    assert_eq!(broken[3].name.as_deref(), Some("content-delta"));
    assert!(serde_json::from_str::<Value>(&broken[2].data).is_ok());
    assert!(serde_json::from_str::<Value>(&broken[3].data).is_err());
}

#[tokio::test]
async fn embeddings_are_deterministic_in_both_encodings() {
    let mock = start().await;
    let floats = mock
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["a b c", "d"], "dimensions": 16}),
        )
        .await
        .json();
    let b64 = mock
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["a b c", "d"], "dimensions": 16,
                "encoding_format": "base64"}),
        )
        .await
        .json();
    assert_eq!(floats["object"], "list");
    assert_eq!(
        floats["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    for i in 0..2 {
        let item = &floats["data"][i];
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let expected: Vec<f32> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(expected.len(), 16);
        let norm: f32 = expected.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let bytes = STANDARD
            .decode(b64["data"][i]["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(decoded, expected);
    }
    assert_ne!(
        floats["data"][0]["embedding"],
        floats["data"][1]["embedding"]
    );

    let tokens = mock
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": [[1, 2, 3], [4]]}),
        )
        .await
        .json();
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    assert_eq!(tokens["data"][1]["embedding"].as_array().unwrap().len(), 8);

    for empty in [json!(""), json!([]), json!([""]), json!([[]])] {
        let answer = mock
            .post("/v1/embeddings", &json!({"model": "e", "input": empty}))
            .await;
        assert_eq!(answer.status, 400, "{empty}");
        assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
    }

    let v = mock
        .post(
            "/v1beta/models/text-embedding-004:embedContent",
            &json!({"content": {"parts": [{"text": "a b c"}]}, "outputDimensionality": 16}),
        )
        .await
        .json();
    assert_eq!(
        v["embedding"]["values"], floats["data"][0]["embedding"],
        "same text, same vector"
    );
}

#[tokio::test]
async fn cohere_embed_has_the_real_shape() {
    let mock = start().await;
    let v = mock
        .post(
            "/v2/embed",
            &json!({"model": "embed-v4.0", "texts": ["a b c", "d"], "input_type": "search_document",
                "embedding_types": ["float", "base64"], "output_dimension": 16}),
        )
        .await
        .json();
    assert_eq!(v["response_type"], "embeddings_by_type");
    assert!(v["id"].is_string());
    assert_eq!(v["texts"], json!(["a b c", "d"]));
    assert_eq!(v["meta"]["billed_units"]["input_tokens"], 4);
    let openai = mock
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["a b c", "d"], "dimensions": 16}),
        )
        .await
        .json();
    for i in 0..2 {
        assert_eq!(
            v["embeddings"]["float"][i], openai["data"][i]["embedding"],
            "same text, same vector"
        );
        let bytes = STANDARD
            .decode(v["embeddings"]["base64"][i].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 16 * 4);
    }

    // `inputs` instead of `texts`; float is the default type and 8 the default size.
    let v = mock
        .post(
            "/v2/embed",
            &json!({"model": "m", "input_type": "search_query",
                "inputs": [{"content": [{"type": "text", "text": "a b c"}]}]}),
        )
        .await
        .json();
    assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 8);
    assert!(v["embeddings"].get("base64").is_none());

    for bad in [
        json!({"model": "m", "input_type": "search_query"}),
        json!({"model": "m", "texts": ["x"]}),
        json!({"model": "m", "texts": ["x"], "input_type": "nope"}),
        json!({"model": "m", "texts": [], "input_type": "search_query"}),
        json!({"model": "m", "texts": [1], "input_type": "search_query"}),
        json!({"texts": ["x"], "input_type": "search_query"}),
        json!({"model": "m", "texts": ["x"], "input_type": "search_query",
            "embedding_types": ["hex"]}),
        json!({"model": "m", "texts": ["x"], "input_type": "search_query",
            "output_dimension": 0}),
    ] {
        let answer = mock.post("/v2/embed", &bad).await;
        assert_eq!(answer.status, 400, "{bad}");
        let v = answer.json();
        assert!(v["id"].is_string() && v["message"].is_string(), "{v}");
    }

    let ok = json!({"model": "m", "texts": ["x"], "input_type": "search_query"});
    let answer = mock
        .post_with_fault("/v2/embed", "status=429 retry_after=2", &ok)
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "2");
    assert!(answer.json()["message"].is_string());
    let answer = mock
        .post(
            "/v2/embed",
            &json!({"model": "fail-503", "texts": ["x"], "input_type": "search_query"}),
        )
        .await;
    assert_eq!(answer.status, 503);
    let answer = mock.post_with_fault("/v2/embed", "malformed", &ok).await;
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_str::<Value>(&answer.body).is_err());
}

#[tokio::test]
async fn auth_json_and_paths_are_checked_in_each_envelope() {
    let mock = start().await;
    let base = mock.server.base_url();
    let body = json!({"model": "m", "max_tokens": 5, "messages": [user("hi")]}).to_string();

    let answer = answer(
        mock.http
            .post(format!("{base}{OPENAI}"))
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"]["code"], "invalid_api_key");

    let answer = answer_of(
        mock.http
            .post(format!("{base}{ANTHROPIC}"))
            .header("x-api-key", "mock-bad-key")
            .body(body.clone()),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["type"], "error");
    assert_eq!(answer.json()["error"]["type"], "authentication_error");

    let answer = answer_of(
        mock.http
            .post(format!("{base}/v1beta/models/g:generateContent"))
            .body(body.clone()),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"]["status"], "UNAUTHENTICATED");

    let answer = answer_of(
        mock.http
            .post(format!("{base}/v1beta/models/g:generateContent?key=k"))
            .body("{not json"),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");

    let answer = answer_of(
        mock.http
            .post(format!("{base}{ANTHROPIC}"))
            .header("x-api-key", "k")
            .body(r#"{"model": "m", "messages": []}"#),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");

    let answer = answer_of(mock.http.post(format!("{base}/v2/nothing")).body("x")).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");

    let answer = answer_of(mock.http.put(format!("{base}{OPENAI}")).body("x")).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");

    let answer = mock
        .post("/v1beta/models/g:frobnicate", &json!({"contents": []}))
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["status"], "NOT_FOUND");

    let answer = answer_of(mock.http.get(format!("{base}/v1/models")).bearer_auth("k")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["object"], "list");
    assert!(!answer.json()["data"].as_array().unwrap().is_empty());
}

async fn answer_of(request: reqwest::RequestBuilder) -> Answer {
    answer(request.send().await.unwrap()).await
}

#[tokio::test]
async fn status_faults_use_each_format() {
    let mock = start().await;
    let answer = mock
        .post_with_fault(
            OPENAI,
            "status=429 retry_after=3",
            &json!({"model": "m", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "3");
    assert_eq!(answer.json()["error"]["code"], "rate_limit_exceeded");

    let answer = mock
        .post(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 5,
                "messages": [user("hi [[mock status=529]]")]}),
        )
        .await;
    assert_eq!(answer.status, 529);
    assert_eq!(answer.json()["error"]["type"], "overloaded_error");
    let answer = mock
        .post_with_fault(
            ANTHROPIC,
            "[[mock status=429 retry_after=9]]",
            &json!({"model": "m", "max_tokens": 5, "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "9");
    assert_eq!(answer.json()["error"]["type"], "rate_limit_error");

    let answer = mock
        .post(
            "/v1beta/models/fail-503:generateContent",
            &json!({"contents": [{"parts": [{"text": "hi"}]}]}),
        )
        .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["error"]["status"], "UNAVAILABLE");
    let answer = mock
        .post(
            OPENAI,
            &json!({"model": "fail-500", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["error"]["type"], "server_error");

    let answer = mock
        .post(
            OPENAI,
            &json!({"model": "m", "messages": [user("[[mock colour=red]]")]}),
        )
        .await;
    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn words_directive_and_stripping() {
    let mock = start().await;
    let v = mock
        .post(
            OPENAI,
            &json!({"model": "m", "messages": [user("hello [[mock no_usage]] there")]}),
        )
        .await
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello there");
    assert!(v.get("usage").is_none());
    let v = mock
        .post(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 100, "messages": [user("x [[mock words=5]]")]}),
        )
        .await
        .json();
    assert_eq!(v["content"][0]["text"], "w1 w2 w3 w4 w5");
    assert_eq!(v["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn delays_hold_headers_and_pace_events() {
    let mock = start().await;
    let started = Instant::now();
    let answer = mock
        .post_with_fault(
            OPENAI,
            "delay_ms=150",
            &json!({"model": "m", "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // 1 role + 3 words + finish + [DONE] = 6 frames, 5 gaps of 30 ms.
    let started = Instant::now();
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true,
                "messages": [user("[[mock chunk_delay_ms=30 words=3]]")]}),
        )
        .await;
    assert_eq!(events.len(), 6);
    assert_eq!(openai_text(&events), "w1 w2 w3");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn reset_cuts_the_stream_after_n_events() {
    let mock = start().await;
    let body = json!({"model": "m", "stream": true,
        "messages": [user("[[mock words=10 reset_after=3]]")]});
    let response = mock.request(OPENAI, &body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let partial = read_until_end(response).await.expect_err("body must fail");
    let events = events(&partial);
    assert_eq!(events.len(), 4, "role chunk and 3 words: {partial}");
    assert_eq!(openai_text(&events), "w1 w2 w3");

    // The whole (non-stream) reply is cut too.
    let response = mock
        .request(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 9, "messages": [user("hi")]}),
        )
        .header("x-mock-fault", "reset_after=0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(read_until_end(response).await.is_err());
}

#[tokio::test]
async fn reset_is_a_real_tcp_rst() {
    let mock = start().await;
    let body = json!({"model": "m", "max_tokens": 9, "stream": true,
        "messages": [user("[[mock words=5 reset_after=2]]")]})
    .to_string();
    let mut tcp = tokio::net::TcpStream::connect(mock.server.addr)
        .await
        .unwrap();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: mock\r\nx-api-key: k\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let error = loop {
        match tcp.read(&mut buf).await {
            Ok(0) => panic!("clean EOF instead of a reset"),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    let text = String::from_utf8_lossy(&received);
    assert_eq!(
        text.matches("event: content_block_delta").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn error_after_sends_the_in_stream_error() {
    let mock = start().await;
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true,
                "messages": [user("[[mock words=5 error_after=2]]")]}),
        )
        .await;
    assert_eq!(openai_text(&events[..3]), "w1 w2");
    let last = events.last().unwrap().json();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!events.iter().any(|e| e.data == "[DONE]"));

    let events = mock
        .stream(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 50, "stream": true,
                "messages": [user("[[mock words=5 error_after=1]]")]}),
        )
        .await;
    let last = events.last().unwrap();
    assert_eq!(last.name.as_deref(), Some("error"));
    assert_eq!(last.json()["error"]["type"], "overloaded_error");
    assert!(!events
        .iter()
        .any(|e| e.name.as_deref() == Some("message_stop")));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.name.as_deref() == Some("content_block_delta"))
            .count(),
        1
    );

    let events = mock
        .stream(
            "/v1beta/models/g:streamGenerateContent?alt=sse",
            &json!({"contents": [{"parts": [{"text": "[[mock words=5 error_after=0]]"}]}]}),
        )
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json()["error"]["status"], "UNAVAILABLE");
}

#[tokio::test]
async fn no_usage_removes_usage_from_streams() {
    let mock = start().await;
    let events = mock
        .stream(
            OPENAI,
            &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [user("hi [[mock no_usage]]")]}),
        )
        .await;
    assert!(events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .all(|e| e.json()["usage"].is_null()));
    assert!(events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .all(|e| !e.json()["choices"].as_array().unwrap().is_empty()));

    let events = mock
        .stream(
            ANTHROPIC,
            &json!({"model": "m", "max_tokens": 50, "stream": true,
                "messages": [user("hi [[mock no_usage]]")]}),
        )
        .await;
    let usage = events[0].json()["message"]["usage"].clone();
    assert_eq!(usage["input_tokens"], 0);
    assert_eq!(usage["output_tokens"], 0);
    let delta = events
        .iter()
        .find(|e| e.name.as_deref() == Some("message_delta"))
        .unwrap()
        .json();
    assert!(delta.get("usage").is_none());

    let events = mock
        .stream(
            "/v1beta/models/g:streamGenerateContent?alt=sse",
            &json!({"contents": [{"parts": [{"text": "hi [[mock no_usage]]"}]}]}),
        )
        .await;
    assert!(events
        .iter()
        .all(|e| e.json().get("usageMetadata").is_none()));
}

#[tokio::test]
async fn malformed_sends_invalid_json() {
    let mock = start().await;
    let answer = mock
        .post(
            OPENAI,
            &json!({"model": "m", "stream": true,
                "messages": [user("[[mock words=3 malformed]]")]}),
        )
        .await;
    let events = events(&answer.body);
    // Role chunk, first word, then the broken line.
    assert!(serde_json::from_str::<Value>(&events[1].data).is_ok());
    assert!(serde_json::from_str::<Value>(&events[2].data).is_err());

    let answer = mock
        .post_with_fault(
            ANTHROPIC,
            "malformed",
            &json!({"model": "m", "max_tokens": 9, "messages": [user("hi")]}),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_str::<Value>(&answer.body).is_err());
}

#[tokio::test]
async fn stall_keeps_the_connection_silent() {
    let mock = start().await;
    let mut response = mock
        .request(
            "/v1beta/models/g:streamGenerateContent?alt=sse",
            &json!({"contents": [{"parts": [{"text": "[[mock words=4 stall_after=1]]"}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    let events = events(std::str::from_utf8(&first).unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].json()["candidates"][0]["content"]["parts"][0]["text"],
        "w1"
    );
    let next = tokio::time::timeout(Duration::from_millis(250), response.chunk()).await;
    assert!(next.is_err(), "nothing may arrive after a stall");
}
