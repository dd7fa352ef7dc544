//! Messages streams: the decoder of an Anthropic upstream's events and the encoder of the named
//! event sequence for Anthropic clients.

use bytes::{BufMut, BytesMut};
use serde_json::{json, Value};

use super::*;
use crate::wire::ChunkKind;
use crate::{
    canonical::{FinishReason, StreamErrorKind, StreamEvent, Usage},
    error::GatewayError,
};

// ---------------------------------------------------------------------------------------------
// Upstream: Anthropic events → canonical
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Block {
    Text,
    Thinking,
    /// A `tool_use` block and its tool-call index.
    Tool(u32),
    /// Redacted thinking, server tools and anything new: not surfaced.
    Other,
}

/// Turns an Anthropic upstream's SSE events into [`StreamEvent`]s.
///
/// Tool calls are numbered from 0 in the order they start, independent of Anthropic's block
/// indexes. Usage is reported on `message_start` (input and cache counts, provisional output)
/// and again on `message_delta` with the cumulative output count; each report replaces the
/// last.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// Raw Anthropic counts, each the last value seen.
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
    thinking: u64,
    /// Open content blocks by Anthropic block index.
    blocks: Vec<(u64, Block)>,
    next_tool: u32,
    /// Tool calls started and not yet ended.
    open_tools: Vec<u32>,
}

impl StreamDecoder {
    /// Decodes one SSE event. `event` is the `event:` name (may be empty: then the JSON `type`
    /// decides); `data` is the `data:` payload.
    pub fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkKind, GatewayError> {
        if data.trim().is_empty() {
            return Ok(ChunkKind::Content);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|_| bad_gateway("The upstream sent a malformed stream event."))?;
        let ty = match event {
            "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "ping"
            | "error" => event,
            _ => v.get("type").and_then(Value::as_str).unwrap_or(""),
        };
        match ty {
            "message_start" => {
                let msg = v.get("message");
                if !self.started {
                    self.started = true;
                    let s = |k: &str| {
                        msg.and_then(|m| m.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    };
                    out.push(StreamEvent::Start {
                        id: s("id"),
                        model: s("model"),
                    });
                }
                if let Some(u) = msg.and_then(|m| m.get("usage")) {
                    self.update_usage(u);
                    out.push(StreamEvent::Usage(self.usage()));
                }
            }
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => self.block_delta(&v, out),
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64);
                if let Some(pos) = self.blocks.iter().position(|(i, _)| Some(*i) == index) {
                    if let (_, Block::Tool(call)) = self.blocks.remove(pos) {
                        self.end_tool(call, out);
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.close_tools(out);
                    let reason = match decode_stop_reason(reason) {
                        FinishReason::Stop if self.next_tool > 0 => FinishReason::ToolCalls,
                        r => r,
                    };
                    out.push(StreamEvent::Finish(reason));
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.update_usage(u);
                    out.push(StreamEvent::Usage(self.usage()));
                }
            }
            "message_stop" => {
                self.close_tools(out);
                return Ok(ChunkKind::Done);
            }
            "error" => {
                let err = v.get("error");
                let kind = match err.and_then(|e| e.get("type")).and_then(Value::as_str) {
                    Some("overloaded_error") => StreamErrorKind::Overloaded,
                    Some("rate_limit_error") => StreamErrorKind::RateLimited,
                    Some("invalid_request_error") => StreamErrorKind::InvalidRequest,
                    _ => StreamErrorKind::Server,
                };
                let message = err
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_owned();
                out.push(StreamEvent::Error { kind, message });
                return Ok(ChunkKind::Error);
            }
            // ping and event types newer than this code.
            _ => {}
        }
        Ok(ChunkKind::Content)
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let (Some(index), Some(cb)) = (
            v.get("index").and_then(Value::as_u64),
            v.get("content_block"),
        ) else {
            return;
        };
        let field = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("");
        let block = match field("type") {
            "text" => {
                if !field("text").is_empty() {
                    out.push(StreamEvent::TextDelta(field("text").to_owned()));
                }
                Block::Text
            }
            "thinking" => {
                if !field("thinking").is_empty() {
                    out.push(StreamEvent::ReasoningDelta(field("thinking").to_owned()));
                }
                if !field("signature").is_empty() {
                    out.push(StreamEvent::ReasoningSignature(
                        field("signature").to_owned(),
                    ));
                }
                Block::Thinking
            }
            "tool_use" => {
                let call = self.next_tool;
                self.next_tool += 1;
                self.open_tools.push(call);
                out.push(StreamEvent::ToolCallStart {
                    index: call,
                    id: field("id").to_owned(),
                    name: field("name").to_owned(),
                });
                // Anthropic starts with `{}` and streams the input; some compatible hosts send
                // the whole input here instead.
                if let Some(input) = cb
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    out.push(StreamEvent::ToolArgsDelta {
                        index: call,
                        fragment: input.to_string(),
                    });
                }
                Block::Tool(call)
            }
            _ => Block::Other,
        };
        self.blocks.retain(|(i, _)| *i != index);
        self.blocks.push((index, block));
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let index = v.get("index").and_then(Value::as_u64);
        let Some(block) = self
            .blocks
            .iter()
            .find(|(i, _)| Some(*i) == index)
            .map(|(_, b)| *b)
        else {
            return;
        };
        let Some(delta) = v.get("delta") else {
            return;
        };
        let field = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
        let ev = match (field("type"), block) {
            ("text_delta", _) if !field("text").is_empty() => {
                StreamEvent::TextDelta(field("text").to_owned())
            }
            ("thinking_delta", _) if !field("thinking").is_empty() => {
                StreamEvent::ReasoningDelta(field("thinking").to_owned())
            }
            ("signature_delta", _) if !field("signature").is_empty() => {
                StreamEvent::ReasoningSignature(field("signature").to_owned())
            }
            ("input_json_delta", Block::Tool(call)) if !field("partial_json").is_empty() => {
                StreamEvent::ToolArgsDelta {
                    index: call,
                    fragment: field("partial_json").to_owned(),
                }
            }
            // Empty fragments, citations, server-tool input.
            _ => return,
        };
        out.push(ev);
    }

    fn update_usage(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        // Every count is cumulative: the last value wins, nothing is summed.
        if let Some(x) = n("input_tokens") {
            self.input = x;
        }
        if let Some(x) = n("cache_read_input_tokens") {
            self.cache_read = x;
        }
        if let Some(x) = n("cache_creation_input_tokens") {
            self.cache_creation = x;
        }
        if let Some(x) = n("output_tokens") {
            self.output = x;
        }
        if let Some(x) = u
            .get("output_tokens_details")
            .and_then(|d| d.get("thinking_tokens"))
            .and_then(Value::as_u64)
        {
            self.thinking = x;
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            input: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            cached_input: self.cache_read,
            cache_write: self.cache_creation,
            output: self.output,
            reasoning: self.thinking,
        }
    }

    fn end_tool(&mut self, call: u32, out: &mut Vec<StreamEvent>) {
        if let Some(pos) = self.open_tools.iter().position(|c| *c == call) {
            self.open_tools.remove(pos);
            out.push(StreamEvent::ToolCallEnd { index: call });
        }
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        for index in self.open_tools.drain(..) {
            out.push(StreamEvent::ToolCallEnd { index });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client surface: canonical → Anthropic events
// ---------------------------------------------------------------------------------------------

/// A keep-alive event; Anthropic sends these on long streams and clients ignore them.
pub const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";

/// Writes one named SSE event (`event: X\ndata: {…}\n\n`); Anthropic SDKs dispatch on the name.
pub fn write_event(name: &str, v: &Value, out: &mut BytesMut) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    let mut w = out.writer();
    // Writing a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, v);
    w.into_inner().put_slice(b"\n\n");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum OpenBlock {
    Text,
    Thinking,
    /// A `tool_use` block and its tool-call index.
    Tool(u32),
}

/// Renders [`StreamEvent`]s as an Anthropic Messages stream (translation.md §7).
///
/// `message_start` is written before the first content (so a `Usage` right after `Start`
/// fills in its input counts). Text and thinking blocks open lazily; a new block closes the
/// open one; block indexes count every block from 0. `message_delta` waits for a `Usage` that
/// follows `Finish` (OpenAI upstreams send usage after the finish reason) or for
/// [`StreamEncoder::finish`], which also writes `message_stop`. After an `Error` nothing more
/// is written, as on Anthropic.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    usage: Option<Usage>,
    started: bool,
    /// The open block and its index.
    open: Option<(u32, OpenBlock)>,
    next_block: u32,
    /// `(tool-call index, block index)` of every tool call.
    tool_blocks: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
    delta_sent: bool,
    /// `message_stop` or an error was written.
    ended: bool,
    /// Input tokens shown in `message_start` when no usage came before the first content
    /// (OpenAI-format upstreams report usage only at the end; the real count follows in
    /// `message_delta`, which carries the cumulative usage).
    input_estimate: u64,
}

impl StreamEncoder {
    /// `id` is the message id shown to the client; `model` may be empty to take the upstream's.
    pub fn new(id: String, model: String) -> StreamEncoder {
        StreamEncoder {
            id,
            model,
            usage: None,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            finish: None,
            delta_sent: false,
            ended: false,
            input_estimate: 0,
        }
    }

    /// Sets the input count `message_start` shows when the upstream has reported none yet.
    pub fn with_input_estimate(mut self, tokens: u64) -> StreamEncoder {
        self.input_estimate = tokens;
        self
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { model, .. } => {
                if self.model.is_empty() && !model.is_empty() {
                    self.model = model.clone();
                }
            }
            StreamEvent::TextDelta(t) => {
                if !t.is_empty() {
                    let index = self.open_block(OpenBlock::Text, out);
                    self.block_delta(index, json!({"type": "text_delta", "text": t}), out);
                }
            }
            StreamEvent::ReasoningDelta(t) => {
                if !t.is_empty() {
                    let index = self.open_block(OpenBlock::Thinking, out);
                    self.block_delta(index, json!({"type": "thinking_delta", "thinking": t}), out);
                }
            }
            StreamEvent::ReasoningSignature(sig) => {
                // A signature may come without thinking text (display "omitted").
                let index = self.open_block(OpenBlock::Thinking, out);
                self.block_delta(
                    index,
                    json!({"type": "signature_delta", "signature": sig}),
                    out,
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let block = self.start_block(
                    OpenBlock::Tool(*index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.tool_blocks.push((*index, block));
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                // Deltas of an interleaved call whose block was closed keep that block's index.
                let block = self.tool_blocks.iter().find(|(c, _)| c == index);
                if let (Some(&(_, block)), false) = (block, fragment.is_empty()) {
                    self.block_delta(
                        block,
                        json!({"type": "input_json_delta", "partial_json": fragment}),
                        out,
                    );
                }
            }
            StreamEvent::ToolCallEnd { index } => {
                if matches!(self.open, Some((_, OpenBlock::Tool(c))) if c == *index) {
                    self.close_block(out);
                }
            }
            StreamEvent::Finish(reason) => {
                self.ensure_started(out);
                self.close_block(out);
                self.finish = Some(*reason);
            }
            StreamEvent::Usage(u) => {
                self.usage = Some(*u);
                if self.finish.is_some() && !self.delta_sent {
                    self.write_delta(out);
                }
            }
            StreamEvent::Error { kind, message } => {
                let ty = match kind {
                    StreamErrorKind::Overloaded => "overloaded_error",
                    StreamErrorKind::RateLimited => "rate_limit_error",
                    StreamErrorKind::InvalidRequest => "invalid_request_error",
                    StreamErrorKind::Server => "api_error",
                };
                write_event(
                    "error",
                    &json!({"type": "error", "error": {"type": ty, "message": message}}),
                    out,
                );
                self.ended = true;
            }
        }
    }

    /// Ends a stream that finished normally: closes what is open, writes `message_delta` if
    /// it is still held, and `message_stop`.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.ensure_started(out);
        self.close_block(out);
        if !self.delta_sent {
            self.write_delta(out);
        }
        write_event("message_stop", &json!({"type": "message_stop"}), out);
        self.ended = true;
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = self.usage.unwrap_or(Usage {
            input: self.input_estimate,
            ..Usage::default()
        });
        write_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": encode_usage(&usage),
            }}),
            out,
        );
    }

    /// Makes a text or thinking block the open one, starting it unless it already is;
    /// returns its index.
    fn open_block(&mut self, kind: OpenBlock, out: &mut BytesMut) -> u32 {
        match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                let block = if kind == OpenBlock::Thinking {
                    json!({"type": "thinking", "thinking": "", "signature": ""})
                } else {
                    json!({"type": "text", "text": ""})
                };
                self.start_block(kind, block, out)
            }
        }
    }

    /// Closes the open block and starts a new one; returns its index.
    fn start_block(&mut self, kind: OpenBlock, block: Value, out: &mut BytesMut) -> u32 {
        self.ensure_started(out);
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        write_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
        self.open = Some((index, kind));
        index
    }

    fn block_delta(&self, index: u32, delta: Value, out: &mut BytesMut) {
        write_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            out,
        );
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            write_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn write_delta(&mut self, out: &mut BytesMut) {
        self.delta_sent = true;
        let reason = stop_reason(self.finish.unwrap_or(FinishReason::Stop));
        write_event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": encode_usage(&self.usage.unwrap_or_default())}),
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capture in anthropic-messages.md §4, as (event, data) pairs.
    const CAPTURE: &[(&str, &str)] = &[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_…","type":"message","role":"assistant","model":"claude-…","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("ping", r#"{"type": "ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_…","name":"get_weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];

    #[test]
    fn capture_stream_decodes() {
        let mut d = StreamDecoder::default();
        let mut ev = Vec::new();
        for (event, data) in CAPTURE {
            d.decode(event, data, &mut ev).unwrap();
        }
        insta::assert_debug_snapshot!("anthropic_capture_to_events", ev);

        // Without `event:` names the JSON `type` decides, with the same result.
        let mut d = StreamDecoder::default();
        let mut unnamed = Vec::new();
        for (_, data) in CAPTURE {
            d.decode("", data, &mut unnamed).unwrap();
        }
        assert_eq!(unnamed, ev);
    }

    #[test]
    fn stream_thinking_and_parallel_tools() {
        let mut d = StreamDecoder::default();
        let mut ev = Vec::new();
        let events = [
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":5,"cache_read_input_tokens":50,"cache_creation_input_tokens":7,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"a","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t2","name":"b","input":{}}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"some_future_event","x":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":40}}"#,
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":60,"input_tokens":5}}"#,
        ];
        for e in events {
            d.decode("", e, &mut ev).unwrap();
        }
        assert_eq!(
            ev[1..],
            [
                StreamEvent::Usage(Usage {
                    input: 62,
                    cached_input: 50,
                    cache_write: 7,
                    output: 1,
                    reasoning: 0
                }),
                StreamEvent::ReasoningDelta("Let me".into()),
                StreamEvent::ReasoningSignature("EqQB".into()),
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "t1".into(),
                    name: "a".into()
                },
                StreamEvent::ToolArgsDelta {
                    index: 0,
                    fragment: "{}".into()
                },
                StreamEvent::ToolCallEnd { index: 0 },
                StreamEvent::ToolCallStart {
                    index: 1,
                    id: "t2".into(),
                    name: "b".into()
                },
                StreamEvent::ToolCallEnd { index: 1 },
                StreamEvent::Finish(FinishReason::ToolCalls),
                StreamEvent::Usage(Usage {
                    input: 62,
                    cached_input: 50,
                    cache_write: 7,
                    output: 40,
                    reasoning: 0
                }),
                // Cumulative: the last value replaces, never adds.
                StreamEvent::Usage(Usage {
                    input: 62,
                    cached_input: 50,
                    cache_write: 7,
                    output: 60,
                    reasoning: 0
                }),
            ]
        );
    }

    #[test]
    fn stream_errors() {
        for (ty, kind) in [
            ("overloaded_error", StreamErrorKind::Overloaded),
            ("rate_limit_error", StreamErrorKind::RateLimited),
            ("invalid_request_error", StreamErrorKind::InvalidRequest),
            ("api_error", StreamErrorKind::Server),
            ("brand_new_error", StreamErrorKind::Server),
        ] {
            let mut ev = Vec::new();
            let data = json!({"type": "error", "error": {"type": ty, "message": "Overloaded"}});
            StreamDecoder::default()
                .decode("error", &data.to_string(), &mut ev)
                .unwrap();
            assert_eq!(
                ev,
                [StreamEvent::Error {
                    kind,
                    message: "Overloaded".into()
                }],
                "{ty}"
            );
        }
        let mut d = StreamDecoder::default();
        let mut ev = Vec::new();
        let err = d
            .decode("content_block_delta", "{not json", &mut ev)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadGateway);
        d.decode("ping", "", &mut ev).unwrap();
        assert!(ev.is_empty());
    }

    /// Splits SSE bytes into (event, data) pairs.
    fn sse_events(bytes: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|e| {
                let (event, data) = e.split_once('\n').unwrap();
                (
                    event.strip_prefix("event: ").unwrap().to_owned(),
                    data.strip_prefix("data: ").unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn events_encode_to_anthropic_sse() {
        let events = vec![
            StreamEvent::Start {
                id: "chatcmpl-1".into(),
                model: "gpt-4o".into(),
            },
            StreamEvent::ReasoningDelta("Think".into()),
            StreamEvent::ReasoningSignature("sig".into()),
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 0,
                fragment: "{\"city\":".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 0,
                fragment: "\"Paris\"}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "get_time".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                fragment: "{}".into(),
            },
            StreamEvent::ToolCallEnd { index: 0 },
            StreamEvent::ToolCallEnd { index: 1 },
            StreamEvent::Finish(FinishReason::ToolCalls),
        ];
        let mut enc = StreamEncoder::new("msg_weir1".into(), String::new());
        let mut out = BytesMut::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        // message_delta is held until usage arrives after the finish reason.
        assert!(!String::from_utf8_lossy(&out).contains("message_delta"));
        enc.encode(
            &StreamEvent::Usage(Usage {
                input: 44,
                cached_input: 4,
                cache_write: 0,
                output: 16,
                reasoning: 0,
            }),
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out).contains("message_delta"));
        enc.finish(&mut out);
        enc.finish(&mut out);
        insta::assert_snapshot!(
            "events_to_anthropic_sse",
            String::from_utf8(out.to_vec()).unwrap()
        );
    }

    #[test]
    fn stream_encoder_edges() {
        // Nothing but a finish: a complete, empty message with the default stop reason.
        let mut enc = StreamEncoder::new("m".into(), "c".into());
        let mut out = BytesMut::new();
        enc.finish(&mut out);
        let names: Vec<String> = sse_events(&out).into_iter().map(|(e, _)| e).collect();
        assert_eq!(names, ["message_start", "message_delta", "message_stop"]);

        // Usage before any content fills in message_start; an error ends the stream.
        let mut enc = StreamEncoder::new("m".into(), "c".into());
        let mut out = BytesMut::new();
        enc.encode(
            &StreamEvent::Usage(Usage {
                input: 9,
                ..Usage::default()
            }),
            &mut out,
        );
        assert!(out.is_empty());
        enc.encode(&StreamEvent::TextDelta("a".into()), &mut out);
        enc.encode(
            &StreamEvent::Error {
                kind: StreamErrorKind::Overloaded,
                message: "Overloaded".into(),
            },
            &mut out,
        );
        enc.encode(&StreamEvent::TextDelta("b".into()), &mut out);
        enc.finish(&mut out);
        let ev = sse_events(&out);
        assert_eq!(ev[0].0, "message_start");
        assert!(ev[0].1.contains("\"input_tokens\":9"), "{}", ev[0].1);
        assert_eq!(
            ev.last().unwrap(),
            &(
                "error".to_owned(),
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                    .to_owned()
            )
        );
        assert_eq!(ev.len(), 4);

        // A signed thinking block without text still reaches the client.
        let mut d = StreamDecoder::default();
        let mut events = Vec::new();
        for data in [
            r#"{"type":"message_start","message":{"id":"m","model":"c"}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":"sig1"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
        ] {
            d.decode("", data, &mut events).unwrap();
        }
        let mut enc = StreamEncoder::new("m".into(), "c".into());
        let mut out = BytesMut::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        let ev = sse_events(&out);
        assert!(ev[1].1.contains(r#""type":"thinking""#), "{}", ev[1].1);
        assert!(ev[2].1.contains(r#""signature":"sig1""#), "{}", ev[2].1);
    }

    #[test]
    fn capture_survives_decode_encode_decode() {
        let mut d = StreamDecoder::default();
        let mut first = Vec::new();
        for (event, data) in CAPTURE {
            d.decode(event, data, &mut first).unwrap();
        }
        let mut enc = StreamEncoder::new("msg_…".into(), String::new());
        let mut out = BytesMut::new();
        for e in &first {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        let rendered = sse_events(&out);
        let mut d = StreamDecoder::default();
        let mut second = Vec::new();
        for (event, data) in &rendered {
            d.decode(event, data, &mut second).unwrap();
        }
        assert_eq!(first, second);
        // Same event sequence as the capture, minus the ping.
        let names: Vec<&str> = rendered.iter().map(|(e, _)| e.as_str()).collect();
        let want: Vec<&str> = CAPTURE
            .iter()
            .map(|(e, _)| *e)
            .filter(|e| *e != "ping")
            .collect();
        let want: Vec<&str> = want
            .into_iter()
            .enumerate()
            // The capture's empty first fragment is not repeated.
            .filter(|(i, _)| *i != 5)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(names, want);
    }
}
