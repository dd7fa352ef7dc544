//! OpenAI Responses: the client surface `POST /v1/responses` (openai-responses.md). Pure
//! functions and small state machines, no IO; storing responses for `previous_response_id`
//! is the gateway's (`gateway::responses`).
//!
//! Requests decode in two steps, because a request may continue a stored conversation:
//! [`parse_request`] reads what must be known first (`previous_response_id`, `store`, the
//! input items), and [`ResponsesRequest::into_canonical`] decodes the whole conversation (the
//! stored items, then the new input) into a [`CanonicalRequest`], with the [`Echo`] of the
//! request's parameters that every response object repeats. Answers are rendered by
//! [`encode_response`] and [`StreamEncoder`] (the full event sequence, `sequence_number`
//! contiguous from 0, item ids stable across events).
//!
//! Choices where the protocol leaves room:
//! - `instructions` become the first system message; they are not stored with the
//!   conversation, so (as on OpenAI) a continued conversation does not inherit them.
//! - `function_call` items join the assistant message before them, so a turn's text and tool
//!   calls reach chat-shaped upstreams as one assistant message.
//! - `reasoning` items sent back become thinking with `encrypted_content` as the signature
//!   (Anthropic channels need the signature to continue a tool loop); summaries of a
//!   reasoning item from another provider are shown to the model as thinking text.
//! - `input_file` with `file_data` or `file_id` reaches OpenAI-compatible channels as a chat
//!   `file` part; other channels refuse it with a 400. `file_url` and image `file_id`s are a
//!   400 (Weir keeps no files).
//! - Built-in tools (`file_search`, `computer_use_preview`, `code_interpreter`, …) are a 400
//!   that names the tool: no channel kind Weir speaks runs them. Hosted `web_search`, which
//!   Codex offers on every request, is dropped instead: the model answers without searching.
//! - `namespace` tools (groups of function tools, as Codex sends its sub-agent tools) are
//!   offered as their function tools; a call to one carries `namespace` again.
//! - Item references (`item_reference`) are a 400: use `previous_response_id`.

mod inbound;
mod response;
mod stream;

pub use inbound::*;
pub use response::*;
pub use stream::*;

use serde_json::{Map, Value};

/// What a response object repeats of its request (its parameters, with OpenAI's defaults for
/// those the client left out), and what the client asked to be included.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Echo {
    pub members: Map<String, Value>,
    /// `include: ["reasoning.encrypted_content"]`: reasoning items carry the signature.
    pub reasoning_content: bool,
    /// Function tools that came inside a `namespace` tool (as Codex sends its sub-agent
    /// tools), by name: a call to one names its namespace again.
    pub namespaces: Vec<(String, String)>,
}

impl Echo {
    /// The namespace the function tool `name` was declared in, if any.
    pub fn namespace_of(&self, name: &str) -> Option<&str> {
        self.namespaces
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ns)| ns.as_str())
    }
}

/// The id of the answer to request `req_<tail>`: `resp_<tail>`.
pub fn response_id(request_id: &str) -> String {
    format!("resp_{}", request_id.trim_start_matches("req_"))
}

/// An output item's id: the kind's prefix, the response's tail and the item's place.
fn item_id(prefix: &str, response_id: &str, output_index: usize) -> String {
    format!(
        "{prefix}_{}_{output_index}",
        response_id.trim_start_matches("resp_")
    )
}
