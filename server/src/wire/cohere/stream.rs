//! v2 chat streams: the decoder of a Cohere upstream's named SSE events.

use std::borrow::Cow;

use super::response::{decode_finish, Ending};
use super::types::{Obj, Str, StreamEventWire};
use super::*;
use crate::wire::ChunkKind;
use crate::{
    canonical::{StreamErrorKind, StreamEvent},
    error::GatewayError,
};

/// Longest upstream error text passed on to the client.
const MAX_ERROR_CHARS: usize = 1000;

/// Turns a Cohere upstream's SSE events into [`StreamEvent`]s.
///
/// The event's JSON `type` decides (the `event:` name only when `type` is missing). Text and
/// `tool-plan-delta` become `TextDelta`s, thinking `ReasoningDelta`s; tool calls are numbered
/// from 0 in the order they start, matched to later events by Cohere's `index`. `message-end`
/// ends the stream: `Finish` then `Usage` (the only usage report), or, for `ERROR`/`TIMEOUT`,
/// the usage and an `Error` with Cohere's `delta.error`. `data: [DONE]` also ends it; citation
/// and debug events and types newer than this code are skipped.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    next_tool: u32,
    /// Tool calls started and not ended: Cohere's index and the canonical one.
    open_tools: Vec<(Option<u64>, u32)>,
}

impl StreamDecoder {
    /// Decodes one SSE event: `event` is its `event:` name (may be empty), `data` its payload.
    pub fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkKind, GatewayError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(ChunkKind::Content);
        }
        if data == "[DONE]" {
            self.close_tools(out);
            return Ok(ChunkKind::Done);
        }
        let v: Obj<StreamEventWire> = serde_json::from_str(data)
            .map_err(|_| bad_gateway("The upstream sent a malformed stream event."))?;
        let Some(ev) = v.0 else {
            return Err(bad_gateway("The upstream sent a malformed stream event."));
        };
        let kind = match ev.kind.as_str() {
            "" => event,
            k => k,
        };
        if kind.is_empty() {
            // A bare error body (`{"message": …}`) where an event should be.
            if let Some(message) = ev.message.non_empty() {
                out.push(error(StreamErrorKind::Server, &message));
                return Ok(ChunkKind::Error);
            }
            return Ok(ChunkKind::Content);
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: ev.id.as_str().to_owned(),
                model: String::new(),
            });
        }
        let index = ev.index.0;
        let delta = ev.delta.0.unwrap_or_default();
        let message = delta.message.0.unwrap_or_default();
        match kind {
            "content-start" | "content-delta" => {
                if let Some(c) = message.content.0 {
                    if let Some(t) = c.thinking.non_empty() {
                        out.push(StreamEvent::ReasoningDelta(t.into_owned()));
                    }
                    if let Some(t) = c.text.non_empty() {
                        out.push(StreamEvent::TextDelta(t.into_owned()));
                    }
                }
            }
            "tool-plan-delta" => {
                if let Some(t) = message.tool_plan.non_empty() {
                    out.push(StreamEvent::TextDelta(t.into_owned()));
                }
            }
            "tool-call-start" => {
                let call = message.tool_calls.0.unwrap_or_default();
                let f = call.function.0.unwrap_or_default();
                let n = self.next_tool;
                self.next_tool += 1;
                // A restarted index ends the call that had it.
                if let Some(pos) = self.open_tools.iter().position(|(i, _)| *i == index) {
                    let (_, old) = self.open_tools.remove(pos);
                    out.push(StreamEvent::ToolCallEnd { index: old });
                }
                self.open_tools.push((index, n));
                out.push(StreamEvent::ToolCallStart {
                    index: n,
                    id: call.id.into_string(),
                    name: f.name.into_string(),
                });
                push_arguments(n, f.arguments, out);
            }
            "tool-call-delta" => {
                if let Some(n) = self.open_tool(index) {
                    let f = message
                        .tool_calls
                        .0
                        .and_then(|c| c.function.0)
                        .unwrap_or_default();
                    push_arguments(n, f.arguments, out);
                }
            }
            "tool-call-end" => {
                if let Some(pos) = self.position(index) {
                    let (_, n) = self.open_tools.remove(pos);
                    out.push(StreamEvent::ToolCallEnd { index: n });
                }
            }
            "message-end" => {
                self.close_tools(out);
                let usage = delta.usage.0.and_then(|u| u.canonical());
                match decode_finish(delta.finish_reason.as_str(), self.next_tool > 0) {
                    Ending::Finished(reason) => {
                        out.push(StreamEvent::Finish(reason));
                        out.extend(usage.map(StreamEvent::Usage));
                        return Ok(ChunkKind::Done);
                    }
                    Ending::Failed { timeout } => {
                        out.extend(usage.map(StreamEvent::Usage));
                        let message =
                            delta.error.non_empty().unwrap_or(Cow::Borrowed(if timeout {
                                "The upstream timed out while generating."
                            } else {
                                "The upstream failed while generating."
                            }));
                        out.push(error(StreamErrorKind::Server, &message));
                        return Ok(ChunkKind::Error);
                    }
                }
            }
            // message-start (handled above), content-end, citations, debug and newer types.
            _ => {}
        }
        Ok(ChunkKind::Content)
    }

    /// The open call with Cohere's `index`, or the last one opened when the event has none.
    fn position(&self, index: Option<u64>) -> Option<usize> {
        match index {
            Some(_) => self.open_tools.iter().position(|(i, _)| *i == index),
            None => self.open_tools.len().checked_sub(1),
        }
    }

    fn open_tool(&self, index: Option<u64>) -> Option<u32> {
        self.position(index).map(|pos| self.open_tools[pos].1)
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        for (_, index) in self.open_tools.drain(..) {
            out.push(StreamEvent::ToolCallEnd { index });
        }
    }
}

fn push_arguments(index: u32, arguments: Str<'_>, out: &mut Vec<StreamEvent>) {
    if let Some(fragment) = arguments.non_empty() {
        out.push(StreamEvent::ToolArgsDelta {
            index,
            fragment: fragment.into_owned(),
        });
    }
}

fn error(kind: StreamErrorKind, message: &str) -> StreamEvent {
    StreamEvent::Error {
        kind,
        message: message.chars().take(MAX_ERROR_CHARS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{FinishReason, Usage};

    /// Splits an SSE capture into `(event name, data)` pairs.
    fn sse(text: &str) -> Vec<(String, String)> {
        text.split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|block| {
                let (mut name, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                (name, data)
            })
            .collect()
    }

    fn decode_all(capture: &str) -> (Vec<StreamEvent>, Vec<ChunkKind>) {
        let mut d = StreamDecoder::default();
        let (mut events, mut kinds) = (Vec::new(), Vec::new());
        for (name, data) in sse(capture) {
            kinds.push(d.decode(&name, &data, &mut events).unwrap());
        }
        (events, kinds)
    }

    #[test]
    fn text_stream_decodes() {
        let (events, kinds) = decode_all(include_str!("fixtures/stream_text.sse"));
        assert_eq!(kinds.last(), Some(&ChunkKind::Done));
        assert!(kinds[..kinds.len() - 1]
            .iter()
            .all(|k| *k == ChunkKind::Content));
        insta::assert_debug_snapshot!("cohere_stream_text", events);
    }

    #[test]
    fn tool_call_stream_decodes() {
        let (events, kinds) = decode_all(include_str!("fixtures/stream_tool_calls.sse"));
        assert_eq!(kinds.last(), Some(&ChunkKind::Done));
        insta::assert_debug_snapshot!("cohere_stream_tool_calls", events);
    }

    #[test]
    fn an_error_finish_is_an_error_event() {
        let (events, kinds) = decode_all(include_str!("fixtures/stream_error.sse"));
        assert_eq!(kinds.last(), Some(&ChunkKind::Error));
        let n = events.len();
        assert_eq!(
            events[n - 2],
            StreamEvent::Usage(Usage {
                input: 12,
                output: 2,
                ..Usage::default()
            })
        );
        assert_eq!(
            events[n - 1],
            StreamEvent::Error {
                kind: StreamErrorKind::Server,
                message: "internal server error, this has been reported to our developers".into()
            }
        );
        assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finish(_))));
    }

    #[test]
    fn odd_events_are_tolerated() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        // No message-start, no `type` (the event name decides), a delta without index, a
        // second message-end, an unknown type, an empty line.
        let steps = [
            (
                "tool-call-start",
                r#"{"delta":{"message":{"tool_calls":{"id":"f_1","function":{"name":"f","arguments":"{\"a\""}}}}}"#,
            ),
            (
                "",
                r#"{"type":"tool-call-delta","delta":{"message":{"tool_calls":{"function":{"arguments":":1}"}}}}}"#,
            ),
            ("", r#"{"type":"brand-new","delta":5}"#),
            ("", "  "),
            (
                "",
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"type":"thinking","thinking":"hm"}}}}"#,
            ),
            (
                "",
                r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE"}}"#,
            ),
        ];
        let kinds: Vec<ChunkKind> = steps
            .iter()
            .map(|(n, data)| d.decode(n, data, &mut out).unwrap())
            .collect();
        assert_eq!(kinds[5], ChunkKind::Done);
        assert_eq!(
            out,
            [
                StreamEvent::Start {
                    id: String::new(),
                    model: String::new()
                },
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "f_1".into(),
                    name: "f".into()
                },
                StreamEvent::ToolArgsDelta {
                    index: 0,
                    fragment: "{\"a\"".into()
                },
                StreamEvent::ToolArgsDelta {
                    index: 0,
                    fragment: ":1}".into()
                },
                StreamEvent::ReasoningDelta("hm".into()),
                StreamEvent::ToolCallEnd { index: 0 },
                StreamEvent::Finish(FinishReason::ToolCalls),
            ]
        );
        let mut out = Vec::new();
        assert_eq!(d.decode("", "[DONE]", &mut out).unwrap(), ChunkKind::Done);
        assert_eq!(
            d.decode("", r#"{"message":"invalid api token"}"#, &mut out)
                .unwrap(),
            ChunkKind::Error
        );
        assert!(
            matches!(&out[0], StreamEvent::Error { message, .. } if message == "invalid api token")
        );
        for bad in ["{", "[1]", "\"x\"", "{\"type\":\"a\"} x"] {
            assert!(d.decode("", bad, &mut out).is_err(), "{bad}");
        }
        assert_eq!(
            decode_finish("STOP_SEQUENCE", false),
            Ending::Finished(FinishReason::Stop)
        );
        assert_eq!(
            decode_finish("TIMEOUT", true),
            Ending::Failed { timeout: true }
        );
    }
}
