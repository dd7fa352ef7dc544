//! Sends a reply body, streamed or whole, and applies the faults that strike after the headers:
//! pacing, connection reset, in-stream error, stall and malformed data.
//!
//! A stream is opening frames, then content events (one per word or tool-argument fragment and
//! per choice), then closing frames. Faults counted in content events (`reset_after=n`,
//! `error_after=n`, `stall_after=n`) strike once `n` content events are out, or after the last
//! one when the reply has fewer, always before the closing frames.

use std::{collections::VecDeque, io, ops::Range, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{header, HeaderValue},
    response::Response,
};
use futures_util::{stream, StreamExt};
use serde::Serialize;

use super::{anthropic, cohere, directive::Directive, gemini, listener::ResetSwitch, openai};

/// How long a reset waits after the last frame so hyper writes it out before the RST.
const FLUSH_GRACE: Duration = Duration::from_millis(10);
/// How long a stalled response keeps its connection open at most.
const STALL_CAP: Duration = Duration::from_secs(600);

/// An SSE `data:` event holding `value` as JSON, ended by `end` (`\n\n`, or `\r\n\r\n` for Gemini).
pub(super) fn data_frame(value: &impl Serialize, end: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    // Serializing these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut buf, value);
    buf.extend_from_slice(end);
    Bytes::from(buf)
}

/// A named SSE event: `event: <name>` and a `data:` line holding `value` as JSON.
pub(super) fn event_frame(name: &str, value: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut buf, value);
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// The stream encoder of one wire format, holding the reply's ids, usage and finish.
pub(super) enum Render {
    OpenAi(openai::ChunkRender),
    Anthropic(anthropic::EventRender),
    Gemini(gemini::EventRender),
    Cohere(cohere::EventRender),
}

impl Render {
    /// Frames before the first content event.
    fn opening(&self, out: &mut VecDeque<Bytes>) {
        match self {
            Render::OpenAi(r) => r.opening(out),
            Render::Anthropic(r) => r.opening(out),
            Render::Gemini(_) => {}
            Render::Cohere(r) => r.opening(out),
        }
    }

    /// One content event: `fragment` of the text or tool arguments, for choice `choice`.
    fn content(&self, choice: usize, fragment: &str, last: bool) -> Bytes {
        match self {
            Render::OpenAi(r) => r.content(choice, fragment),
            Render::Anthropic(r) => r.content(fragment),
            Render::Gemini(r) => r.content(fragment, last),
            Render::Cohere(r) => r.content(fragment),
        }
    }

    /// Frames after the last content event.
    fn closing(&self, out: &mut VecDeque<Bytes>, sent_content: bool) {
        match self {
            Render::OpenAi(r) => r.closing(out),
            Render::Anthropic(r) => r.closing(out),
            Render::Gemini(r) => r.closing(out, sent_content),
            Render::Cohere(r) => r.closing(out),
        }
    }

    /// The format's in-stream error event.
    fn error(&self) -> Bytes {
        match self {
            Render::OpenAi(_) => openai::stream_error(),
            Render::Anthropic(_) => anthropic::stream_error(),
            Render::Gemini(_) => gemini::stream_error(),
            Render::Cohere(_) => cohere::stream_error(),
        }
    }

    /// A data line whose JSON is cut short.
    fn malformed(&self) -> Bytes {
        match self {
            Render::OpenAi(_) => {
                Bytes::from_static(b"data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\n\n")
            }
            Render::Anthropic(_) => Bytes::from_static(
                b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\n\n",
            ),
            Render::Gemini(_) => Bytes::from_static(
                b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\r\n\r\n",
            ),
            Render::Cohere(_) => cohere::malformed(),
        }
    }
}

/// How content is cut into content events.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pieces {
    /// One event per word; words after the first carry their leading space.
    Words,
    /// About this many fragments, cut at character boundaries (tool-call arguments).
    Fragments(usize),
}

/// Everything a stream needs: the encoder, the content and how to cut it.
pub(super) struct StreamPlan {
    pub render: Render,
    /// The reply text or the tool-call arguments JSON.
    pub content: String,
    pub pieces: Pieces,
    /// OpenAI `n`: every piece goes out once per choice.
    pub choices: usize,
}

/// The fault that ends a response early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Send the in-stream error event and end.
    Error,
    /// Close the connection with a RST.
    Reset,
    /// Send nothing more; keep the connection until the client leaves or the cap passes.
    Stall,
}

/// The earliest of the directive's counted faults.
fn counted_fault(directive: &Directive) -> Option<(usize, Fault)> {
    [
        directive.reset_after.map(|n| (n, Fault::Reset)),
        directive.error_after.map(|n| (n, Fault::Error)),
        directive.stall_after.map(|n| (n, Fault::Stall)),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|(n, _)| *n)
}

/// A `text/event-stream` response that plays `plan` with the directive's stream faults.
pub(super) fn event_stream(
    plan: StreamPlan,
    directive: &Directive,
    reset: Option<ResetSwitch>,
) -> Response {
    let run = Run {
        plan,
        queue: VecDeque::with_capacity(4),
        stage: Stage::Opening,
        pos: 0,
        piece: None,
        choice: 0,
        sent: 0,
        started: false,
        chunk_delay: directive
            .chunk_delay_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
        fault: counted_fault(directive),
        malformed: directive.malformed,
        reset,
    };
    let frames = stream::unfold(run, |mut run| async move {
        let item = run.step().await?;
        Some((item, run))
    });
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A whole JSON body; `reset_after`/`stall_after` cut it after half its bytes (with the full
/// `content-length` announced) and `malformed` sends only that half.
pub(super) fn whole_json(
    body: Vec<u8>,
    directive: &Directive,
    reset: Option<ResetSwitch>,
) -> Response {
    let cut = if directive.reset_after.is_some() {
        Some(Fault::Reset)
    } else if directive.stall_after.is_some() {
        Some(Fault::Stall)
    } else {
        None
    };
    let half = half_at_char(&body);
    let mut response = match cut {
        None if directive.malformed => {
            let mut body = body;
            body.truncate(half);
            Response::new(Body::from(body))
        }
        None => Response::new(Body::from(body)),
        Some(fault) => {
            let full_len = body.len();
            let head = Bytes::from(body).slice(..half);
            let frames = stream::iter([Ok(head)]).chain(stream::once(async move {
                Err(cut_short(fault, reset).await)
            }));
            let mut response = Response::new(Body::from_stream(frames));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full_len));
            response
        }
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The largest char boundary at or before the middle of a UTF-8 body.
fn half_at_char(body: &[u8]) -> usize {
    let mut at = body.len() / 2;
    while at > 0 && body.get(at).is_some_and(|b| (b & 0xC0) == 0x80) {
        at -= 1;
    }
    at
}

/// Ends a response body early: a RST (after giving hyper time to flush what was sent) or a
/// stall. The returned error makes hyper drop the connection.
async fn cut_short(fault: Fault, reset: Option<ResetSwitch>) -> io::Error {
    if fault == Fault::Stall {
        tokio::time::sleep(STALL_CAP).await;
        return io::Error::new(io::ErrorKind::TimedOut, "mock fault: stall ended");
    }
    tokio::time::sleep(FLUSH_GRACE).await;
    if let Some(switch) = reset {
        switch.arm();
    }
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "mock fault: connection reset",
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Opening,
    Content,
    Closing,
    Done,
}

/// The state of one stream being played.
struct Run {
    plan: StreamPlan,
    /// Frames ready to go out.
    queue: VecDeque<Bytes>,
    stage: Stage,
    /// Byte offset of the next piece of content.
    pos: usize,
    /// The piece being sent to each choice in turn.
    piece: Option<Range<usize>>,
    /// The next choice to receive `piece`.
    choice: usize,
    /// Content events sent.
    sent: usize,
    /// Whether a frame went out (pacing applies between frames).
    started: bool,
    chunk_delay: Option<Duration>,
    fault: Option<(usize, Fault)>,
    /// A malformed line is still to be sent.
    malformed: bool,
    reset: Option<ResetSwitch>,
}

impl Run {
    /// The next body frame, a body error that aborts the connection, or the end.
    async fn step(&mut self) -> Option<Result<Bytes, io::Error>> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                if let Some(delay) = self.chunk_delay.filter(|_| self.started) {
                    tokio::time::sleep(delay).await;
                }
                self.started = true;
                return Some(Ok(frame));
            }
            match self.stage {
                Stage::Opening => {
                    self.plan.render.opening(&mut self.queue);
                    self.stage = Stage::Content;
                }
                Stage::Content => {
                    if self.malformed && self.sent >= 1 {
                        self.malformed = false;
                        self.queue.push_back(self.plan.render.malformed());
                        continue;
                    }
                    if let Some((_, fault)) = self.fault.filter(|(n, _)| self.sent >= *n) {
                        if let Some(end) = self.strike(fault).await {
                            return Some(Err(end));
                        }
                        continue;
                    }
                    if let Some(frame) = self.next_content() {
                        self.queue.push_back(frame);
                        self.sent += 1;
                    } else if self.malformed {
                        self.malformed = false;
                        self.queue.push_back(self.plan.render.malformed());
                    } else if let Some((_, fault)) = self.fault {
                        if let Some(end) = self.strike(fault).await {
                            return Some(Err(end));
                        }
                    } else {
                        self.stage = Stage::Closing;
                    }
                }
                Stage::Closing => {
                    self.plan.render.closing(&mut self.queue, self.sent > 0);
                    self.stage = Stage::Done;
                }
                Stage::Done => return None,
            }
        }
    }

    /// Applies a counted fault; returns the body error when the connection must go.
    async fn strike(&mut self, fault: Fault) -> Option<io::Error> {
        self.fault = None;
        self.stage = Stage::Done;
        match fault {
            Fault::Error => {
                self.queue.push_back(self.plan.render.error());
                None
            }
            Fault::Reset | Fault::Stall => Some(cut_short(fault, self.reset.take()).await),
        }
    }

    /// The next content event, or `None` when the content is exhausted.
    fn next_content(&mut self) -> Option<Bytes> {
        let content = self.plan.content.as_str();
        let range = match &self.piece {
            Some(range) => range.clone(),
            None => {
                let range = next_piece(content, self.plan.pieces, self.pos)?;
                self.piece = Some(range.clone());
                range
            }
        };
        let last = range.end == content.len();
        let frame = self
            .plan
            .render
            .content(self.choice, &content[range.clone()], last);
        self.choice += 1;
        if self.choice >= self.plan.choices {
            self.choice = 0;
            self.pos = range.end;
            self.piece = None;
        }
        Some(frame)
    }
}

/// The byte range of the piece of `content` that starts at `from`.
fn next_piece(content: &str, pieces: Pieces, from: usize) -> Option<Range<usize>> {
    let rest = content.get(from..).filter(|rest| !rest.is_empty())?;
    let end = match pieces {
        Pieces::Words => {
            // Skip this piece's own leading space (or first character), then stop before the
            // next space; a trailing space stays with the last word.
            let skip = rest.chars().next().map_or(0, char::len_utf8);
            match rest[skip..].find(' ') {
                Some(at) if from + skip + at + 1 < content.len() => from + skip + at,
                _ => content.len(),
            }
        }
        Pieces::Fragments(count) => {
            let step = content.len().div_ceil(count.max(1)).max(1);
            let mut end = (from + step).min(content.len());
            while !content.is_char_boundary(end) {
                end += 1;
            }
            end
        }
    };
    Some(from..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(content: &str, pieces: Pieces) -> Vec<&str> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(range) = next_piece(content, pieces, pos) {
            pos = range.end;
            out.push(&content[range]);
        }
        out
    }

    #[test]
    fn words_keep_their_leading_space() {
        assert_eq!(
            all("echo: hi there", Pieces::Words),
            ["echo:", " hi", " there"]
        );
        assert_eq!(all("ünï cödé ", Pieces::Words), ["ünï", " cödé "]);
        assert_eq!(all("one", Pieces::Words), ["one"]);
        assert!(all("", Pieces::Words).is_empty());
    }

    #[test]
    fn fragments_cut_at_char_boundaries() {
        let json = r#"{"city":"Zürich ☀"}"#;
        let parts = all(json, Pieces::Fragments(3));
        assert!(parts.len() <= 3 && parts.len() >= 2, "{parts:?}");
        assert_eq!(parts.concat(), json);
        assert_eq!(all("{}", Pieces::Fragments(3)), ["{", "}"]);
        assert_eq!(all("{}", Pieces::Fragments(1)), ["{}"]);
    }

    #[test]
    fn earliest_counted_fault_wins() {
        let d = Directive {
            reset_after: Some(5),
            error_after: Some(2),
            stall_after: Some(9),
            ..Directive::default()
        };
        assert_eq!(counted_fault(&d), Some((2, Fault::Error)));
        assert_eq!(counted_fault(&Directive::default()), None);
    }

    #[test]
    fn half_never_splits_a_character() {
        let body = "aé".as_bytes();
        assert_eq!(half_at_char(body), 1);
        let body = "éé".as_bytes();
        assert_eq!(half_at_char(body), 2);
    }
}
