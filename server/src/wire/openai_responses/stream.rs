//! Responses streams: canonical stream events rendered as the Responses event sequence
//! (openai-responses.md §3, §5).

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

use super::response::{
    encode_usage, function_call_item, message_item, reasoning_item, response_object, status_of,
    stored_copy, text_part,
};
use super::{item_id, Echo};
use crate::canonical::{FinishReason, StreamErrorKind, StreamEvent, ToolCall, Usage};

/// The output item being written, other than function calls (which may interleave).
#[derive(Debug)]
enum Open {
    Message {
        index: usize,
        text: String,
    },
    Reasoning {
        index: usize,
        text: String,
        signature: Option<String>,
    },
}

#[derive(Debug)]
struct Call {
    /// The canonical tool-call index.
    call: u32,
    output_index: usize,
    tool: ToolCall,
    done: bool,
}

/// Renders [`StreamEvent`]s as a Responses stream.
///
/// `response.created` and `response.in_progress` come before anything else; a message item
/// opens at the first text, a reasoning item at the first reasoning, one function-call item
/// per tool call (each its own `output_index`); every open part and item is closed before
/// `response.completed` (or `response.incomplete`), which carries the full output and usage.
/// An `Error` ends the stream with `response.failed`. `sequence_number` counts every event
/// from 0.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created_at: i64,
    echo: Echo,
    seq: u64,
    started: bool,
    /// Closed items, by output index (a `Null` is a slot still open).
    output: Vec<Value>,
    open: Option<Open>,
    calls: Vec<Call>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    ended: bool,
    /// The final response object, once written.
    completed: Option<Value>,
    /// Signatures of the reasoning items, by output index, for the stored copy.
    signatures: Vec<(usize, String)>,
}

impl StreamEncoder {
    /// `id` is the `resp_` id; `model` the model id the client asked for.
    pub fn new(id: String, model: String, created_at: i64, echo: Echo) -> StreamEncoder {
        StreamEncoder {
            id,
            model,
            created_at,
            echo,
            seq: 0,
            started: false,
            output: Vec::new(),
            open: None,
            calls: Vec::new(),
            finish: None,
            usage: None,
            ended: false,
            completed: None,
            signatures: Vec::new(),
        }
    }

    /// The final response object (`response.completed` or `.incomplete`), once written.
    pub fn completed(&self) -> Option<&Value> {
        self.completed.as_ref()
    }

    /// What to store of the answer once written: [`completed`](Self::completed) with the
    /// reasoning signatures kept ([`stored_copy`]).
    pub fn to_store(&self) -> Option<Cow<'_, Value>> {
        let sigs: Vec<(usize, &str)> = self
            .signatures
            .iter()
            .map(|(i, s)| (*i, s.as_str()))
            .collect();
        Some(stored_copy(self.completed.as_ref()?, &sigs, &self.echo))
    }

    fn event(&mut self, name: &str, mut v: Value, out: &mut BytesMut) {
        if let Value::Object(o) = &mut v {
            o.insert("type".into(), name.into());
            o.insert("sequence_number".into(), self.seq.into());
        }
        self.seq += 1;
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\ndata: ");
        let mut w = out.writer();
        // Writing a `Value` into memory cannot fail.
        let _ = serde_json::to_writer(&mut w, &v);
        w.into_inner().put_slice(b"\n\n");
    }

    fn snapshot(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        response_object(
            &self.id,
            self.created_at,
            &self.model,
            status,
            &self.echo,
            output,
            usage,
        )
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.snapshot("in_progress", Vec::new(), Value::Null);
        self.event("response.created", json!({"response": r}), out);
        self.event("response.in_progress", json!({"response": r}), out);
    }

    /// Reserves the next output index.
    fn next_index(&mut self) -> usize {
        self.output.push(Value::Null);
        self.output.len() - 1
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { .. } => self.ensure_started(out),
            StreamEvent::TextDelta(t) => {
                if t.is_empty() {
                    return;
                }
                let index = self.open_message(out);
                let item = item_id("msg", &self.id, index);
                if let Some(Open::Message { text, .. }) = &mut self.open {
                    text.push_str(t);
                }
                self.event(
                    "response.output_text.delta",
                    json!({"item_id": item, "output_index": index, "content_index": 0,
                           "delta": t, "logprobs": []}),
                    out,
                );
            }
            StreamEvent::ReasoningDelta(t) => {
                if t.is_empty() {
                    return;
                }
                let index = self.open_reasoning(out);
                let item = item_id("rs", &self.id, index);
                if let Some(Open::Reasoning { text, .. }) = &mut self.open {
                    text.push_str(t);
                }
                self.event(
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": item, "output_index": index, "summary_index": 0, "delta": t}),
                    out,
                );
            }
            StreamEvent::ReasoningSignature(sig) => {
                self.open_reasoning(out);
                if let Some(Open::Reasoning { signature, .. }) = &mut self.open {
                    *signature = Some(sig.clone());
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                self.close_open(out);
                let output_index = self.next_index();
                let tool = ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                };
                let item = function_call_item(
                    item_id("fc", &self.id, output_index),
                    &tool,
                    "in_progress",
                    &self.echo,
                );
                self.calls.push(Call {
                    call: *index,
                    output_index,
                    tool,
                    done: false,
                });
                self.event(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": item}),
                    out,
                );
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                if fragment.is_empty() {
                    return;
                }
                let Some(c) = self.calls.iter_mut().find(|c| c.call == *index && !c.done) else {
                    return;
                };
                c.tool.arguments.push_str(fragment);
                let output_index = c.output_index;
                let item = item_id("fc", &self.id, output_index);
                self.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item, "output_index": output_index, "delta": fragment}),
                    out,
                );
            }
            StreamEvent::ToolCallEnd { index } => {
                if let Some(pos) = self.calls.iter().position(|c| c.call == *index && !c.done) {
                    self.close_call(pos, out);
                }
            }
            StreamEvent::Finish(reason) => {
                self.ensure_started(out);
                self.finish = Some(*reason);
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Error { kind, message } => {
                self.ensure_started(out);
                let code = match kind {
                    StreamErrorKind::RateLimited => "rate_limit_exceeded",
                    StreamErrorKind::InvalidRequest => "invalid_prompt",
                    StreamErrorKind::Overloaded | StreamErrorKind::Server => "server_error",
                };
                let output: Vec<Value> = self
                    .output
                    .iter()
                    .filter(|v| !v.is_null())
                    .cloned()
                    .collect();
                let usage = self.usage.as_ref().map_or(Value::Null, encode_usage);
                let mut r = self.snapshot("failed", output, usage);
                r["error"] = json!({"code": code, "message": message});
                self.event("response.failed", json!({"response": r}), out);
                self.ended = true;
            }
        }
    }

    /// Ends a stream that finished normally: closes every open item, then writes
    /// `response.completed` (or `response.incomplete`) with the whole output and the usage;
    /// `extra` members (the request's cost) join the usage object.
    pub fn finish(&mut self, extra: Map<String, Value>, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.ensure_started(out);
        self.close_open(out);
        for pos in 0..self.calls.len() {
            if !self.calls[pos].done {
                self.close_call(pos, out);
            }
        }
        let (status, incomplete) = status_of(self.finish);
        let mut usage = encode_usage(&self.usage.unwrap_or_default());
        if let Value::Object(u) = &mut usage {
            u.extend(extra);
        }
        let output = std::mem::take(&mut self.output);
        let mut r = self.snapshot(status, output, usage);
        r["incomplete_details"] = incomplete;
        let name = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.event(name, json!({"response": r}), out);
        self.completed = Some(r);
        self.ended = true;
    }

    fn open_message(&mut self, out: &mut BytesMut) -> usize {
        if let Some(Open::Message { index, .. }) = &self.open {
            return *index;
        }
        self.ensure_started(out);
        self.close_open(out);
        let index = self.next_index();
        let id = item_id("msg", &self.id, index);
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": message_item(id.clone(), "in_progress", Vec::new())}),
            out,
        );
        self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
            out,
        );
        self.open = Some(Open::Message {
            index,
            text: String::new(),
        });
        index
    }

    fn open_reasoning(&mut self, out: &mut BytesMut) -> usize {
        if let Some(Open::Reasoning { index, .. }) = &self.open {
            return *index;
        }
        self.ensure_started(out);
        self.close_open(out);
        let index = self.next_index();
        let id = item_id("rs", &self.id, index);
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {"type": "reasoning", "id": id, "summary": []}}),
            out,
        );
        self.event(
            "response.reasoning_summary_part.added",
            json!({"item_id": id, "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": ""}}),
            out,
        );
        self.open = Some(Open::Reasoning {
            index,
            text: String::new(),
            signature: None,
        });
        index
    }

    /// Closes the open message or reasoning item.
    fn close_open(&mut self, out: &mut BytesMut) {
        match self.open.take() {
            None => {}
            Some(Open::Message { index, text }) => {
                let id = item_id("msg", &self.id, index);
                self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "text": text, "logprobs": []}),
                    out,
                );
                self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": text, "annotations": []}}),
                    out,
                );
                let item = message_item(id, "completed", vec![text_part(&text)]);
                self.event(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.output[index] = item;
            }
            Some(Open::Reasoning {
                index,
                text,
                signature,
            }) => {
                let id = item_id("rs", &self.id, index);
                self.event(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    out,
                );
                self.event(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": text}}),
                    out,
                );
                let item = reasoning_item(id, &text, signature.as_deref(), &self.echo);
                if let Some(sig) = signature {
                    self.signatures.push((index, sig));
                }
                self.event(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.output[index] = item;
            }
        }
    }

    fn close_call(&mut self, pos: usize, out: &mut BytesMut) {
        self.calls[pos].done = true;
        let output_index = self.calls[pos].output_index;
        let id = item_id("fc", &self.id, output_index);
        let (name, arguments) = (
            self.calls[pos].tool.name.clone(),
            self.calls[pos].tool.arguments.clone(),
        );
        self.event(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": output_index, "name": name, "arguments": arguments}),
            out,
        );
        let item = function_call_item(id, &self.calls[pos].tool, "completed", &self.echo);
        self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
            out,
        );
        self.output[output_index] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        std::str::from_utf8(bytes)
            .unwrap()
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let (ev, data) = b.split_once('\n').unwrap();
                let name = ev.strip_prefix("event: ").unwrap().to_owned();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["type"], name.as_str(), "the type equals the event name");
                (name, v)
            })
            .collect()
    }

    fn encoder() -> StreamEncoder {
        StreamEncoder::new(
            "resp_abc".into(),
            "demo/echo".into(),
            1_700_000_000,
            Echo::default(),
        )
    }

    #[test]
    fn a_text_and_tool_stream_is_the_full_sequence() {
        let mut e = encoder();
        let mut out = BytesMut::new();
        let stream = [
            StreamEvent::Start {
                id: "x".into(),
                model: "echo".into(),
            },
            StreamEvent::ReasoningDelta("Hmm".into()),
            StreamEvent::ReasoningSignature("sig".into()),
            StreamEvent::TextDelta("It is".into()),
            StreamEvent::TextDelta(" 18C.".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_9".into(),
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
            StreamEvent::ToolCallEnd { index: 0 },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input: 10,
                cached_input: 2,
                cache_write: 0,
                output: 5,
                reasoning: 1,
            }),
        ];
        for ev in &stream {
            e.encode(ev, &mut out);
        }
        let mut extra = Map::new();
        extra.insert("cost_usd".into(), "0.000020".into());
        e.finish(extra, &mut out);
        let evs = events(&out);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (_, v)) in evs.iter().enumerate() {
            assert_eq!(v["sequence_number"], i as u64);
        }
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"].as_array().unwrap().len(), 3);
        assert_eq!(done["output"][1]["content"][0]["text"], "It is 18C.");
        assert_eq!(done["output"][2]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(done["usage"]["cost_usd"], "0.000020");
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(e.completed(), Some(done));
        insta::assert_snapshot!("responses_stream", String::from_utf8(out.to_vec()).unwrap());
    }

    #[test]
    fn parallel_calls_cut_streams_and_errors() {
        // Interleaved calls keep their own items.
        let mut e = encoder();
        let mut out = BytesMut::new();
        for ev in [
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "g".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 0,
                fragment: "{}".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                fragment: "[]".into(),
            },
            StreamEvent::Finish(FinishReason::Length),
        ] {
            e.encode(&ev, &mut out);
        }
        e.finish(Map::new(), &mut out);
        let evs = events(&out);
        let last = &evs.last().unwrap();
        assert_eq!(last.0, "response.incomplete");
        assert_eq!(
            last.1["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(last.1["response"]["output"][0]["arguments"], "{}");
        assert_eq!(last.1["response"]["output"][1]["arguments"], "[]");

        // An error mid-stream fails the response; nothing follows.
        let mut e = encoder();
        let mut out = BytesMut::new();
        e.encode(&StreamEvent::TextDelta("par".into()), &mut out);
        e.encode(
            &StreamEvent::Error {
                kind: StreamErrorKind::Overloaded,
                message: "busy".into(),
            },
            &mut out,
        );
        e.finish(Map::new(), &mut out);
        let evs = events(&out);
        let last = evs.last().unwrap();
        assert_eq!(last.0, "response.failed");
        assert_eq!(last.1["response"]["status"], "failed");
        assert_eq!(last.1["response"]["error"]["code"], "server_error");
        assert!(e.completed().is_none());
        for (i, (_, v)) in evs.iter().enumerate() {
            assert_eq!(v["sequence_number"], i as u64);
        }
    }
}
