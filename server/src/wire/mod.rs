//! Wire formats: one module per format, each a set of pure codecs between that format's JSON
//! and SSE and the canonical types, split by message kind (inbound requests, upstream requests,
//! responses, streams). No IO.
//!
//! The pipeline never names a pair of formats. It holds one [`Wire`] for the client's surface
//! and one for the channel's kind, and goes through the closed enums here: a request is decoded
//! by the client's format ([`decode_request`]) and encoded by the upstream's
//! (`upstream::chat_request`); an answer is relayed as it came when both are the same format,
//! and otherwise decoded by the upstream's format ([`decode_response`], [`StreamDecoder`]) and
//! rendered by the client's ([`encode_response`], [`StreamEncoder`]).

pub mod anthropic;
pub mod cohere;
pub mod gemini;
pub mod json;
pub mod openai_chat;
pub mod openai_embeddings;
pub mod openai_responses;
pub mod tool_names;

#[cfg(test)]
mod fuzz_tests;

use bytes::{BufMut, BytesMut};
use eventsource_stream::Event;
use serde_json::{Map, Value};

pub use crate::canonical::Wire;
use crate::{
    canonical::{CanonicalRequest, CanonicalResponse, StreamErrorKind, StreamEvent, Usage},
    error::{ErrorKind, GatewayError},
};
pub use openai_responses::Echo;

fn unsupported(w: Wire) -> GatewayError {
    GatewayError::new(
        ErrorKind::BadGateway,
        format!("The {} wire format is not supported yet.", w.as_str()),
    )
}

/// Decodes a client's chat request in the format of the surface it called.
pub fn decode_request(client: Wire, body: &[u8]) -> Result<CanonicalRequest, GatewayError> {
    match client {
        Wire::OpenAi => openai_chat::decode_request(body),
        Wire::Anthropic => anthropic::decode_request(body),
        // A request that continues no stored conversation; the gateway decodes the ones
        // that do in two steps (`openai_responses::parse_request`).
        Wire::Responses => Ok(openai_responses::parse_request(body)?
            .into_canonical(Vec::new())?
            .request),
        Wire::Gemini | Wire::Cohere => Err(GatewayError::internal(
            "no client surface speaks this format",
        )),
    }
}

/// The id a client sees for the answer to request `request_id` (`req_…`), in its format's
/// convention.
pub fn response_id(client: Wire, request_id: &str) -> String {
    let tail = request_id.trim_start_matches("req_");
    match client {
        Wire::Anthropic => format!("msg_{tail}"),
        Wire::Responses => format!("resp_{tail}"),
        Wire::OpenAi | Wire::Gemini | Wire::Cohere => format!("chatcmpl-{tail}"),
    }
}

/// The usage in a non-streamed upstream answer that is relayed as it is.
pub fn response_usage(upstream: Wire, body: &[u8]) -> Result<Option<Usage>, GatewayError> {
    let invalid = || {
        GatewayError::new(ErrorKind::BadGateway, "The upstream returned invalid JSON.")
            .retryable(true)
    };
    match upstream {
        Wire::OpenAi => openai_chat::response_usage(body).map_err(|_| invalid()),
        Wire::Anthropic => {
            let v: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
            Ok(v.get("usage").and_then(anthropic::decode_usage))
        }
        Wire::Cohere => cohere::response_usage(body).map_err(|_| invalid()),
        Wire::Gemini => gemini::response_usage(body).map_err(|_| invalid()),
        Wire::Responses => Err(unsupported(upstream)),
    }
}

/// Decodes a non-streamed upstream answer.
pub fn decode_response(upstream: Wire, body: &[u8]) -> Result<CanonicalResponse, GatewayError> {
    match upstream {
        Wire::OpenAi => openai_chat::decode_response(body),
        Wire::Anthropic => anthropic::decode_response(body),
        Wire::Cohere => cohere::decode_response(body),
        Wire::Gemini => gemini::decode_response(body),
        Wire::Responses => Err(unsupported(upstream)),
    }
}

/// Renders a canonical answer in the client's format; `echo` is what the request asked its
/// answer to repeat (only Responses objects repeat their request).
pub fn encode_response(client: Wire, r: &CanonicalResponse, echo: &Echo) -> Value {
    match client {
        Wire::Anthropic => anthropic::encode_response(r),
        Wire::Responses => openai_responses::encode_response(r, echo),
        Wire::OpenAi | Wire::Gemini | Wire::Cohere => openai_chat::encode_response(r),
    }
}

/// What one upstream stream event was, as far as relaying it needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// Content, a tool call, a finish, a keep-alive: anything else.
    Content,
    /// OpenAI's trailing `choices: []` chunk that only carries usage.
    UsageOnly,
    /// The upstream's own end of stream (OpenAI `[DONE]`, Anthropic `message_stop`).
    Done,
    /// An error reported in the stream.
    Error,
}

/// The decoder of one upstream stream, by the channel's kind.
pub enum StreamDecoder {
    OpenAi(openai_chat::ChunkDecoder),
    Anthropic(anthropic::StreamDecoder),
    Cohere(cohere::StreamDecoder),
    Gemini(gemini::StreamDecoder),
}

impl StreamDecoder {
    pub fn new(upstream: Wire) -> Result<StreamDecoder, GatewayError> {
        match upstream {
            Wire::OpenAi => Ok(StreamDecoder::OpenAi(openai_chat::ChunkDecoder::default())),
            Wire::Anthropic => Ok(StreamDecoder::Anthropic(anthropic::StreamDecoder::default())),
            Wire::Cohere => Ok(StreamDecoder::Cohere(cohere::StreamDecoder::default())),
            Wire::Gemini => Ok(StreamDecoder::Gemini(gemini::StreamDecoder::default())),
            Wire::Responses => Err(unsupported(upstream)),
        }
    }

    /// Decodes one SSE event, appending what it says to `out`.
    pub fn decode(
        &mut self,
        ev: &Event,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkKind, GatewayError> {
        match self {
            StreamDecoder::OpenAi(d) => d.decode(&ev.data, out),
            StreamDecoder::Anthropic(d) => d.decode(&ev.event, &ev.data, out),
            StreamDecoder::Cohere(d) => d.decode(&ev.event, &ev.data, out),
            StreamDecoder::Gemini(d) => d.decode(&ev.data, out),
        }
    }

    /// Writes `ev` to a client of the same format, as the upstream sent it but for the model
    /// name.
    pub fn relay(&self, ev: &Event, rewrite: Option<&ModelRewrite>, out: &mut BytesMut) {
        if let StreamDecoder::Anthropic(_) | StreamDecoder::Cohere(_) = self {
            if !ev.event.is_empty() && ev.event != "message" {
                out.put_slice(b"event: ");
                out.put_slice(ev.event.as_bytes());
                out.put_slice(b"\n");
            }
        }
        out.put_slice(b"data: ");
        match rewrite {
            Some(r) => r.write(ev.data.as_bytes(), out),
            None => out.put_slice(ev.data.as_bytes()),
        }
        out.put_slice(b"\n\n");
    }
}

/// The encoder of one client stream, by the client's format.
pub enum StreamEncoder {
    OpenAi(openai_chat::ChunkEncoder),
    Anthropic(Box<anthropic::StreamEncoder>),
    Responses(Box<openai_responses::StreamEncoder>),
}

impl StreamEncoder {
    /// `id` is the answer's id shown to the client and `model` the model it asked for;
    /// `prompt_estimate` stands in for the input count where the format shows one before the
    /// upstream has reported it; `echo` is what the answer repeats of the request.
    pub fn new(
        client: Wire,
        id: String,
        model: String,
        include_usage: bool,
        prompt_estimate: u64,
        echo: &Echo,
    ) -> Result<StreamEncoder, GatewayError> {
        match client {
            Wire::OpenAi => Ok(StreamEncoder::OpenAi(openai_chat::ChunkEncoder::new(
                id,
                model,
                include_usage,
            ))),
            Wire::Anthropic => Ok(StreamEncoder::Anthropic(Box::new(
                anthropic::StreamEncoder::new(id, model).with_input_estimate(prompt_estimate),
            ))),
            Wire::Responses => Ok(StreamEncoder::Responses(Box::new(
                openai_responses::StreamEncoder::new(
                    id,
                    model,
                    chrono::Utc::now().timestamp(),
                    echo.clone(),
                ),
            ))),
            Wire::Gemini | Wire::Cohere => Err(GatewayError::internal(
                "no client surface speaks this format",
            )),
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match self {
            StreamEncoder::OpenAi(e) => e.encode(ev, out),
            StreamEncoder::Anthropic(e) => e.encode(ev, out),
            StreamEncoder::Responses(e) => e.encode(ev, out),
        }
    }

    /// Writes a terminal error event in the client's format (also on relayed streams).
    pub fn encode_error(&mut self, kind: StreamErrorKind, message: &str, out: &mut BytesMut) {
        self.encode(
            &StreamEvent::Error {
                kind,
                message: message.to_owned(),
            },
            out,
        );
    }

    /// Ends a stream that finished normally; `extra` fields (the request's cost) go into the
    /// final usage object where the format has one the client asked for.
    pub fn finish(&mut self, extra: Map<String, Value>, out: &mut BytesMut) {
        match self {
            StreamEncoder::OpenAi(e) => {
                e.set_usage_extra(extra);
                e.finish(out)
            }
            StreamEncoder::Anthropic(e) => e.finish(out),
            StreamEncoder::Responses(e) => e.finish(extra, out),
        }
    }

    /// The whole answer as one document to store, where the format ends its stream with one
    /// (the Responses object of `response.completed`), once the stream has finished.
    pub fn to_store(&self) -> Option<std::borrow::Cow<'_, Value>> {
        match self {
            StreamEncoder::Responses(e) => e.to_store(),
            StreamEncoder::OpenAi(_) | StreamEncoder::Anthropic(_) => None,
        }
    }

    /// The keep-alive event this format sends while the upstream is silent, if it has one.
    pub fn keepalive(&self) -> Option<&'static [u8]> {
        match self {
            StreamEncoder::OpenAi(_) | StreamEncoder::Responses(_) => None,
            StreamEncoder::Anthropic(_) => Some(anthropic::PING),
        }
    }
}

/// Puts the model id the client asked for into relayed answers, in place of the upstream's own
/// name (as OpenRouter does): the first `"model": "<upstream name>"` member of a body or an
/// event is rewritten, while the bytes are copied out anyway. A member inside a string value
/// cannot match, since its quotes are escaped there.
pub struct ModelRewrite {
    /// `"<upstream name>"` and `"<client's id>"`, as JSON strings.
    from: Vec<u8>,
    to: Vec<u8>,
}

impl ModelRewrite {
    /// `None` when the names are the same.
    pub fn new(upstream_model: &str, client_model: &str) -> Option<ModelRewrite> {
        if upstream_model == client_model {
            return None;
        }
        let quoted = |s: &str| serde_json::to_vec(s).unwrap_or_default();
        Some(ModelRewrite {
            from: quoted(upstream_model),
            to: quoted(client_model),
        })
    }

    /// Where the upstream's name (its opening quote) and its end are in `data`, if present.
    fn find(&self, data: &[u8]) -> Option<(usize, usize)> {
        const KEY: &[u8] = b"\"model\":";
        for at in memchr::memmem::find_iter(data, KEY) {
            let mut i = at + KEY.len();
            while data.get(i).is_some_and(|b| *b == b' ') {
                i += 1;
            }
            if data[i..].starts_with(&self.from) {
                return Some((i, i + self.from.len()));
            }
        }
        None
    }

    /// Appends `data` to `out` with the name rewritten.
    pub fn write(&self, data: &[u8], out: &mut BytesMut) {
        match self.find(data) {
            Some((a, b)) => {
                out.put_slice(&data[..a]);
                out.put_slice(&self.to);
                out.put_slice(&data[b..]);
            }
            None => out.put_slice(data),
        }
    }

    /// `body` with the name rewritten (copied only when it occurs).
    pub fn apply(&self, body: bytes::Bytes) -> bytes::Bytes {
        if self.find(&body).is_none() {
            return body;
        }
        let mut out = BytesMut::with_capacity(body.len() + self.to.len());
        self.write(&body, &mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_rewrite_touches_only_the_member() {
        let r = ModelRewrite::new("echo", "demo/echo").unwrap();
        let mut out = BytesMut::new();
        r.write(
            br#"{"content":"say \"model\":\"echo\"","model": "echo","x":"echo"}"#,
            &mut out,
        );
        assert_eq!(
            &out[..],
            br#"{"content":"say \"model\":\"echo\"","model": "demo/echo","x":"echo"}"#
        );
        let body = bytes::Bytes::from_static(br#"{"model":"other"}"#);
        assert_eq!(r.apply(body.clone()), body);
        assert!(ModelRewrite::new("a", "a").is_none());
    }
}
