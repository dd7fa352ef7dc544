//! Anthropic Messages: the upstream format of `api.anthropic.com` (and Anthropic-compatible
//! hosts) and the client surface `POST /v1/messages`. Pure functions and small state machines,
//! no IO.
//!
//! Upstream direction: [`encode_request`] turns a [`CanonicalRequest`] into a Messages request
//! that satisfies Anthropic's ordering rules (system hoisted, roles alternating from `user`,
//! every `tool_use` answered first thing in the next user turn), [`decode_response`] and
//! [`StreamDecoder`] turn the answer into canonical form. Client direction: [`decode_request`],
//! [`encode_response`] and [`StreamEncoder`].
//!
//! Choices where the protocol leaves room (see the function docs for detail):
//! - Tool-call ids outside `^[A-Za-z0-9_-]+$` are rewritten by [`sanitize_tool_id`], a pure
//!   function of the id, so a call and its result always agree.
//! - Arguments that are not a JSON object become `{}` when empty and `{"_raw": "<text>"}`
//!   otherwise, so the model still sees what it sent.
//! - A conversation that starts with an assistant turn gets a `"."` user turn in front
//!   (Anthropic: "first message must use the user role").
//! - A tool result without a matching call in the previous assistant turn, or a call without a
//!   result in the next user turn, is a 400 naming the message: OpenAI rejects both too, and
//!   guessing would change what the model sees.
//! - Reasoning effort becomes a thinking budget that fits `max_tokens` (details on
//!   [`encode_request`]); an Anthropic client's own `thinking` is passed through instead.
//! - `response_format: json_object` has no Anthropic equivalent and is left to the prompt.
//! - Penalties, seed, logit bias and logprobs have no equivalent and are dropped.
//! - Towards Anthropic clients, reasoning from a non-streamed response is a `thinking` block
//!   with an empty signature (canonical responses carry none); sent back, it is dropped.

mod inbound;
mod request;
mod response;
mod stream;

pub use inbound::*;
pub use request::*;
pub use response::*;
pub use stream::*;

use crate::error::{ErrorKind, GatewayError};

/// The `anthropic-version` header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Image media types Anthropic accepts inline.
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Smallest `thinking.budget_tokens` Anthropic accepts.
const MIN_THINKING_BUDGET: u32 = 1024;

/// When Weir raises a defaulted `max_tokens` to make room for thinking, it stays at or below
/// this: the smallest output limit of the thinking-capable Claude models (Opus 4 / 4.1).
const THINKING_MAX_TOKENS_CAP: u32 = 32_000;

/// The user turn put in front of a conversation that starts with the assistant.
const LEADING_USER_TEXT: &str = ".";

fn bad_gateway(message: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::BadGateway, message)
}
