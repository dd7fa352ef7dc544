//! OpenAI Chat Completions: the client surface `POST /v1/chat/completions` and the upstream
//! format of every OpenAI-compatible host. Pure functions and small state machines, no IO.
//!
//! Requests decode into [`CanonicalRequest`] with every field OpenAI documents validated (a
//! bad one is a 400 naming the parameter); fields Weir does not model are kept in
//! [`Passthrough`] and sent untouched to OpenAI-compatible upstreams. Responses and stream
//! chunks decode into [`CanonicalResponse`] / [`StreamEvent`]s and are rendered back from them.

mod inbound;
mod request;
mod response;
mod stream;

pub use inbound::*;
pub use request::*;
pub use response::*;
pub use stream::*;

const MAX_N: u32 = 128;
/// Most stop sequences accepted (OpenAI allows 4; other hosts more).
const MAX_STOP: usize = 16;
