//! Cohere v2 Chat (`POST {base}/v2/chat`) and Embed (`POST {base}/v2/embed`, see `embed`):
//! the upstream format of Cohere channels. Pure functions and a small state machine, no IO;
//! there is no Cohere client surface.
//!
//! [`encode_request`] turns a [`CanonicalRequest`] into a v2 chat body, [`decode_response`]
//! and [`StreamDecoder`] turn the answer into canonical form, [`response_usage`] reads only the
//! usage of an answer. Answers and events are read through the lenient borrowed types of
//! `types`: a member of an unexpected type is absent, never an error.
//!
//! Choices where the protocol leaves room (the function docs have the detail):
//! - Usage is metered from `usage.tokens` (what the model read and wrote), each count falling
//!   back to `billed_units` when `tokens` lacks it; `cached_tokens` is the cached part of the
//!   input. `billed_units` can be smaller (Cohere does not bill every prompt token), but
//!   Weir's tariffs are per token processed, as for every other upstream.
//! - `tool_plan` is assistant text: in answers it comes before the calls (streamed as
//!   `TextDelta`s), and an assistant turn's text is sent back as `tool_plan` when the turn
//!   calls tools, so the plan round-trips.
//! - Thinking content becomes reasoning, and reasoning in history is sent back as `thinking`
//!   content items.
//! - Cohere cannot force one named tool: `tool_choice` naming a tool sends only that tool,
//!   with `REQUIRED` (translation.md §4). `auto` is the default and is omitted; a choice
//!   without tools is omitted too (Cohere rejects `REQUIRED` without tools).
//! - Reasoning effort `none` is `thinking: {type: disabled}`; any other effort is
//!   `{type: enabled, token_budget}` with the effort's budget, cut to leave
//!   [`RESPONSE_ROOM`] tokens of a client's `max_tokens` for the answer (Cohere's advice), and
//!   left out when that leaves nothing. Without an effort `thinking` is not sent.
//! - Sampling is brought into Cohere's ranges: `p` to 0.01–0.99, `k` to at most 500, the
//!   penalties to 0–1. More than five stop sequences is a 400 (dropping some would change the
//!   answer); `n > 1`, images in tool results and content of other formats are 400s too.
//! - A finish of `ERROR` or `TIMEOUT` is a failure: a non-streamed answer becomes a retryable
//!   upstream error (another channel may answer), a stream ends with an error event carrying
//!   `delta.error`. translation.md allows `stop` when content was produced; a client would then
//!   take a broken answer for a whole one.
//! - Tool results carry no error flag in Cohere's format; Anthropic's `is_error` is dropped
//!   (the result text says what failed). A tool result that answers no call of the assistant
//!   turn before it is a 400 naming the message.
//! - Parallel-call switches, logit bias, logprobs and the end-user id have no Cohere
//!   equivalent and are dropped.

mod embed;
mod request;
mod response;
mod stream;
mod types;

pub use embed::*;
pub use request::*;
pub use response::*;
pub use stream::*;

use crate::error::{ErrorKind, GatewayError};

/// Most stop sequences Cohere takes.
const MAX_STOP: usize = 5;
/// Cohere's range for `p`.
const P_RANGE: (f64, f64) = (0.01, 0.99);
/// Cohere's largest `k`.
const MAX_K: u32 = 500;
/// Tokens of a client's output limit kept for the answer when thinking is on.
pub const RESPONSE_ROOM: u32 = 1024;

fn bad_gateway(message: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::BadGateway, message)
}
