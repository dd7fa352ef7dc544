//! Chat completion chunks: decoded from upstreams, rendered for clients.

use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

use super::*;
use crate::wire::ChunkKind;
use crate::{
    canonical::{StreamErrorKind, StreamEvent, Usage},
    error::GatewayError,
};

/// Turns an OpenAI-compatible upstream's stream chunks into [`StreamEvent`]s.
#[derive(Default)]
pub struct ChunkDecoder {
    started: bool,
    /// Tool call indexes that have started and not yet ended.
    open_tools: Vec<u32>,
}

impl ChunkDecoder {
    /// Decodes one `data:` payload, appending events to `out`.
    pub fn decode(
        &mut self,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkKind, GatewayError> {
        if data.trim() == "[DONE]" {
            self.close_tools(out);
            return Ok(ChunkKind::Done);
        }
        let v: Value = serde_json::from_str(data).map_err(|_| {
            GatewayError::new(
                crate::error::ErrorKind::BadGateway,
                "The upstream sent a malformed stream chunk.",
            )
        })?;
        if let Some(err) = v.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error")
                .to_owned();
            let kind = match err.get("type").and_then(Value::as_str) {
                Some(t) if t.contains("rate_limit") => StreamErrorKind::RateLimited,
                Some(t) if t.contains("overloaded") => StreamErrorKind::Overloaded,
                Some("invalid_request_error") => StreamErrorKind::InvalidRequest,
                _ => StreamErrorKind::Server,
            };
            out.push(StreamEvent::Error { kind, message });
            return Ok(ChunkKind::Error);
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                model: v
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        let choices = v.get("choices").and_then(Value::as_array);
        let mut kind = ChunkKind::Content;
        match choices {
            Some(cs) if !cs.is_empty() => {
                for c in cs {
                    // Translation serves one choice; n > 1 is only relayed to OpenAI clients.
                    if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                        continue;
                    }
                    self.decode_choice(c, out);
                }
            }
            _ => {
                if v.get("usage").is_some_and(|u| !u.is_null()) {
                    kind = ChunkKind::UsageOnly;
                }
            }
        }
        if let Some(u) = v.get("usage").and_then(decode_usage) {
            out.push(StreamEvent::Usage(u));
        }
        Ok(kind)
    }

    fn decode_choice(&mut self, c: &Value, out: &mut Vec<StreamEvent>) {
        if let Some(delta) = c.get("delta") {
            for key in ["reasoning_content", "reasoning"] {
                if let Some(t) = delta.get(key).and_then(Value::as_str) {
                    if !t.is_empty() {
                        out.push(StreamEvent::ReasoningDelta(t.to_owned()));
                    }
                    break;
                }
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                if !t.is_empty() {
                    out.push(StreamEvent::TextDelta(t.to_owned()));
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for tc in calls {
                    let index = tc
                        .get("index")
                        .and_then(Value::as_u64)
                        .and_then(|x| u32::try_from(x).ok())
                        .unwrap_or(0);
                    if !self.open_tools.contains(&index) {
                        self.open_tools.push(index);
                        out.push(StreamEvent::ToolCallStart {
                            index,
                            id: tc
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            name: tc
                                .pointer("/function/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        });
                    }
                    if let Some(frag) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                        if !frag.is_empty() {
                            out.push(StreamEvent::ToolArgsDelta {
                                index,
                                fragment: frag.to_owned(),
                            });
                        }
                    }
                }
            }
        }
        if let Some(reason) = decode_finish(c.get("finish_reason").and_then(Value::as_str)) {
            self.close_tools(out);
            out.push(StreamEvent::Finish(reason));
        }
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        for index in self.open_tools.drain(..) {
            out.push(StreamEvent::ToolCallEnd { index });
        }
    }
}

/// Renders [`StreamEvent`]s as OpenAI chat completion chunks (`data: …\n\n`).
pub struct ChunkEncoder {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    started: bool,
    usage: Option<Usage>,
    /// Extra fields merged into the final usage object (e.g. the cost of the request).
    usage_extra: Map<String, Value>,
}

impl ChunkEncoder {
    pub fn new(id: String, model: String, include_usage: bool) -> ChunkEncoder {
        ChunkEncoder {
            id,
            model,
            created: unix_now(),
            include_usage,
            started: false,
            usage: None,
            usage_extra: Map::new(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut BytesMut) {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            if let Value::Object(o) = &mut c {
                o.insert("usage".into(), Value::Null);
            }
        }
        write_data(&c, out);
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
                out,
            );
        }
    }

    /// Adds fields to the final usage object.
    pub fn set_usage_extra(&mut self, extra: Map<String, Value>) {
        self.usage_extra = extra;
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match ev {
            StreamEvent::Start { model, .. } => {
                if self.model.is_empty() && !model.is_empty() {
                    self.model = model.clone();
                }
                self.ensure_started(out);
            }
            StreamEvent::TextDelta(t) => {
                self.ensure_started(out);
                self.chunk(json!({"content": t}), None, out);
            }
            StreamEvent::ReasoningDelta(t) => {
                self.ensure_started(out);
                self.chunk(json!({"reasoning_content": t}), None, out);
            }
            StreamEvent::ReasoningSignature(_) | StreamEvent::ToolCallEnd { .. } => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                self.chunk(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}),
                    None,
                    out,
                );
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                self.chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                    None,
                    out,
                );
            }
            StreamEvent::Finish(reason) => {
                self.ensure_started(out);
                self.chunk(json!({}), Some(reason.openai()), out);
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Error { message, kind } => {
                let ty = match kind {
                    StreamErrorKind::Overloaded | StreamErrorKind::Server => "server_error",
                    StreamErrorKind::RateLimited => "rate_limit_exceeded",
                    StreamErrorKind::InvalidRequest => "invalid_request_error",
                };
                write_data(
                    &json!({"error": {"message": message, "type": ty, "param": null, "code": null}}),
                    out,
                );
            }
        }
    }

    /// The usage chunk (when asked for) and `[DONE]`, after a normal end.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.include_usage {
            if let Some(u) = &self.usage {
                let mut usage = encode_usage(u);
                if let Value::Object(o) = &mut usage {
                    o.extend(self.usage_extra.clone());
                }
                write_data(
                    &json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": null,
                        "choices": [],
                        "usage": usage,
                    }),
                    out,
                );
            }
        }
        out.put_slice(b"data: [DONE]\n\n");
    }
}

/// Writes one SSE `data:` event.
pub fn write_data(v: &Value, out: &mut BytesMut) {
    out.put_slice(b"data: ");
    let mut w = out.writer();
    // Writing a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, v);
    w.into_inner().put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::FinishReason;

    #[test]
    fn stream_chunks_decode_to_events() {
        let mut d = ChunkDecoder::default();
        let mut ev = Vec::new();
        let chunks = [
            r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_4Xz","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-X","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-X","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city\":\"Paris\"}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-X","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"chatcmpl-X","choices":[],"usage":{"prompt_tokens":44,"completion_tokens":16,"total_tokens":60,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        ];
        let mut kinds = Vec::new();
        for c in chunks {
            kinds.push(d.decode(c, &mut ev).unwrap());
        }
        kinds.push(d.decode("[DONE]", &mut ev).unwrap());
        assert_eq!(kinds[4], ChunkKind::UsageOnly);
        assert_eq!(kinds[5], ChunkKind::Done);
        insta::assert_debug_snapshot!("openai_chunks_to_events", ev);
        assert!(d.decode("{not json", &mut ev).is_err());
    }

    #[test]
    fn events_encode_to_chunks() {
        let events = vec![
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "claude".into(),
            },
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
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
                reasoning: 0,
            }),
        ];
        let mut enc = ChunkEncoder::new("chatcmpl-weir".into(), "anthropic/claude".into(), true);
        enc.created = 1_700_000_000;
        let mut out = BytesMut::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        insta::assert_snapshot!(
            "events_to_openai_sse",
            String::from_utf8(out.to_vec()).unwrap()
        );
    }
}
