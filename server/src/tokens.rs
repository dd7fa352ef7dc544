//! Token estimates for when an upstream reports no usage: a deterministic, conservative count
//! (about four bytes of text per token, rounded up) of the prompt and of streamed output.

use crate::canonical::{CanonicalRequest, Part};

/// Tokens in `text`, by the four-bytes-per-token rule (never 0 for non-empty text).
pub fn estimate_text(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// An estimate of the prompt: message text, tool calls and tool definitions, plus a small
/// per-message overhead as chat templates add.
pub fn estimate_prompt(req: &CanonicalRequest) -> u64 {
    let mut n = 0u64;
    for m in &req.messages {
        n += 4;
        for p in &m.content {
            n += match p {
                Part::Text(t) => estimate_text(t),
                Part::Thinking { text, .. } => estimate_text(text),
                // Images and opaque parts: a flat allowance (OpenAI's low-detail image cost).
                Part::Image { .. } | Part::Opaque { .. } => 85,
            };
        }
        for c in &m.tool_calls {
            n += estimate_text(&c.name) + estimate_text(&c.arguments);
        }
    }
    for t in &req.tools {
        n += estimate_text(&t.name)
            + t.description.as_deref().map_or(0, estimate_text)
            + t.parameters
                .as_ref()
                .map_or(0, |p| estimate_text(&p.to_string()));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Role};

    #[test]
    fn estimates() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("a"), 1);
        assert_eq!(estimate_text("abcdefgh"), 2);
        let r = CanonicalRequest::new(
            "m".into(),
            vec![Message::new(
                Role::User,
                vec![Part::Text("hello world!".into())],
            )],
        );
        assert_eq!(estimate_prompt(&r), 4 + 3);
    }
}
