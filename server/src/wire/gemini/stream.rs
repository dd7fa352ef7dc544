//! `streamGenerateContent?alt=sse` streams: every `data:` event is a whole
//! `GenerateContentResponse` carrying only the new parts; there is no `[DONE]`, the end of the
//! body ends the stream.

use std::borrow::Cow;

use super::*;
use crate::wire::ChunkKind;
use crate::{
    canonical::{FinishReason, StreamErrorKind, StreamEvent},
    error::GatewayError,
};

/// Turns a Gemini upstream's SSE events into [`StreamEvent`]s.
///
/// Each event's parts are new: text (and thought text) becomes deltas, and a `functionCall`,
/// which Gemini sends whole, becomes a start, one arguments fragment and an end, with the same
/// [`call_id`] a non-streamed answer would give it. `usageMetadata` may come on every event;
/// each report replaces the last, and the finish comes before the report of its event, so
/// the last report counts as final. The finish is the first `finishReason` seen.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// The key call ids are made from (the first event's `responseId`); empty before it.
    key: Cow<'static, str>,
    started: bool,
    next_call: u32,
    /// Text or a call was produced (decides what an error-class finish means).
    content: bool,
    finished: bool,
}

impl StreamDecoder {
    /// Decodes one `data:` payload, appending what it says to `out`.
    pub fn decode(
        &mut self,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkKind, GatewayError> {
        if data.trim().is_empty() {
            return Ok(ChunkKind::Content);
        }
        let a = Answer::parse(data.as_bytes())
            .map_err(|_| bad_gateway("The upstream sent a malformed stream event."))?;
        if let Some(err) = &a.error {
            let kind = stream_error_kind(err.status.as_ref().map_or("", Str::as_str));
            let message = err
                .message
                .as_ref()
                .map_or("upstream error", Str::as_str)
                .chars()
                .take(1000)
                .collect();
            out.push(StreamEvent::Error { kind, message });
            return Ok(ChunkKind::Error);
        }
        if !self.started {
            self.started = true;
            self.key = super::response_key(a.response_id.as_ref());
            let owned =
                |s: &Option<Str<'_>>| s.as_ref().map_or_else(String::new, |s| s.0.to_string());
            out.push(StreamEvent::Start {
                id: owned(&a.response_id),
                model: owned(&a.model_version),
            });
        }
        let mut failed = None;
        if let Some(c) = a.first_candidate() {
            for p in c.parts() {
                if let Some(fc) = &p.function_call {
                    let index = self.next_call;
                    self.next_call = self.next_call.saturating_add(1);
                    self.content = true;
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: call_id(
                            &self.key,
                            index,
                            fc.id.as_ref().map(Str::as_str),
                            p.thought_signature.as_ref().map(Str::as_str),
                        ),
                        name: fc.name().to_owned(),
                    });
                    out.push(StreamEvent::ToolArgsDelta {
                        index,
                        fragment: fc.arguments(),
                    });
                    out.push(StreamEvent::ToolCallEnd { index });
                } else if let Some(t) = p.text.as_ref().filter(|t| !t.0.is_empty()) {
                    if p.is_thought() {
                        out.push(StreamEvent::ReasoningDelta(t.0.to_string()));
                    } else {
                        self.content = true;
                        out.push(StreamEvent::TextDelta(t.0.to_string()));
                    }
                }
            }
            if let Some(reason) = c.finish_reason.as_ref().filter(|_| !self.finished) {
                match decode_finish(reason.as_str()) {
                    Ok(FinishReason::Stop) if self.next_call > 0 => {
                        self.finish(FinishReason::ToolCalls, out)
                    }
                    Ok(r) => self.finish(r, out),
                    Err(()) if self.content => self.finish(FinishReason::Stop, out),
                    Err(()) => failed = Some(failed_message(reason.as_str())),
                }
            }
        } else if a.blocked() && !self.finished {
            self.finish(FinishReason::ContentFilter, out);
        }
        if let Some(u) = &a.usage_metadata {
            out.push(StreamEvent::Usage(u.usage()));
        }
        if let Some(message) = failed {
            out.push(StreamEvent::Error {
                kind: StreamErrorKind::Server,
                message,
            });
            return Ok(ChunkKind::Error);
        }
        Ok(ChunkKind::Content)
    }

    fn finish(&mut self, reason: FinishReason, out: &mut Vec<StreamEvent>) {
        self.finished = true;
        out.push(StreamEvent::Finish(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Usage;
    use crate::wire::gemini::decode_response;

    const CAPTURE: &str = include_str!("fixtures/stream_thinking_tool.sse");

    /// The `data:` payloads of an SSE body with CRLF line ends, as Gemini sends them.
    fn payloads(body: &str) -> Vec<&str> {
        body.split("\r\n\r\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect()
    }

    fn decode_all(events: &[&str]) -> Vec<StreamEvent> {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for e in events {
            assert_eq!(d.decode(e, &mut out).unwrap(), ChunkKind::Content, "{e}");
        }
        out
    }

    #[test]
    fn capture_decodes() {
        let events = payloads(CAPTURE);
        assert_eq!(events.len(), 3);
        let out = decode_all(&events);
        insta::assert_debug_snapshot!("gemini_capture_to_events", out);
        // The finish comes before the final usage, which counts the thoughts as output.
        let n = out.len();
        assert_eq!(out[n - 2], StreamEvent::Finish(FinishReason::ToolCalls));
        assert_eq!(
            out[n - 1],
            StreamEvent::Usage(Usage {
                input: 12,
                cached_input: 0,
                cache_write: 0,
                output: 49,
                reasoning: 28
            })
        );
    }

    #[test]
    fn streamed_and_whole_answers_name_calls_alike() {
        let chunk = r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"a","args":{"x":1}},"thoughtSignature":"QUJD"},{"functionCall":{"name":"b","id":"g-7"}}]},"finishReason":"STOP","index":0}],"responseId":"resp42"}"#;
        let streamed = decode_all(&[chunk]);
        let whole = decode_response(chunk.as_bytes()).unwrap();
        let ids: Vec<&str> = streamed
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallStart { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let want: Vec<&str> = whole.choices[0]
            .tool_calls
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, want);
        assert_eq!(
            parse_call_id(ids[1]).unwrap().gemini_id.as_deref(),
            Some("g-7")
        );
        assert!(streamed.contains(&StreamEvent::ToolArgsDelta {
            index: 0,
            fragment: r#"{"x":1}"#.into()
        }));
    }

    #[test]
    fn errors_and_odd_events() {
        for (status, kind) in [
            ("UNAVAILABLE", StreamErrorKind::Overloaded),
            ("RESOURCE_EXHAUSTED", StreamErrorKind::RateLimited),
            ("INVALID_ARGUMENT", StreamErrorKind::InvalidRequest),
            ("INTERNAL", StreamErrorKind::Server),
        ] {
            let mut out = Vec::new();
            let data = format!(
                r#"{{"error":{{"code":503,"message":"The model is overloaded.","status":"{status}"}}}}"#
            );
            let k = StreamDecoder::default().decode(&data, &mut out).unwrap();
            assert_eq!(k, ChunkKind::Error);
            assert_eq!(
                out,
                [StreamEvent::Error {
                    kind,
                    message: "The model is overloaded.".into()
                }]
            );
        }
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        assert_eq!(
            d.decode("{not json", &mut out).unwrap_err().kind,
            ErrorKind::BadGateway
        );
        d.decode("", &mut out).unwrap();
        assert!(out.is_empty());

        // An error-class finish after text is a stop; before any, an error (usage kept).
        let text = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"responseId":"r"}"#;
        let other =
            r#"{"candidates":[{"finishReason":"OTHER"}],"usageMetadata":{"promptTokenCount":3}}"#;
        let out = decode_all(&[text, other]);
        assert_eq!(out[2], StreamEvent::Finish(FinishReason::Stop));
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        assert_eq!(d.decode(other, &mut out).unwrap(), ChunkKind::Error);
        assert!(matches!(out[1], StreamEvent::Usage(_)));
        assert!(matches!(&out[2], StreamEvent::Error { message, .. } if message.contains("OTHER")));

        // A blocked prompt; a second finish is ignored; thought text is reasoning.
        let blocked = r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"}}"#;
        let out = decode_all(&[blocked, r#"{"candidates":[{"finishReason":"STOP"}]}"#]);
        assert_eq!(out[1..], [StreamEvent::Finish(FinishReason::ContentFilter)]);
        let out = decode_all(&[
            r#"{"candidates":[{"content":{"parts":[{"text":"hm","thought":true},{"text":""}]},"finishReason":"MAX_TOKENS"}]}"#,
        ]);
        assert_eq!(
            out[1..],
            [
                StreamEvent::ReasoningDelta("hm".into()),
                StreamEvent::Finish(FinishReason::Length)
            ]
        );
    }
}
