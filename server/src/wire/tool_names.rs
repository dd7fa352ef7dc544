//! Tool names every upstream takes. Anthropic, Gemini and OpenAI accept function names matching
//! `^[a-zA-Z0-9_-]{1,64}$`; clients of another format (or a lenient local host's) may send
//! others (`files.read`, `mcp:search`, a 70-character name). When a request is translated,
//! such names are replaced by a portable name derived from them ([`portable`]: the allowed
//! characters kept, the rest `_`, cut short, and a hash of the original appended, so two names
//! never meet) and the answer's tool calls get the client's names back. Requests whose names
//! are all portable (nearly all) cost one scan and no copy; relayed requests are not touched,
//! since their client already speaks the upstream's format.

use std::borrow::Cow;

use crate::canonical::{CanonicalRequest, CanonicalResponse, StreamEvent, ToolChoice};

/// The longest name every upstream takes.
const MAX_LEN: usize = 64;
/// Characters kept of a name that needs a portable one: room for `_` and 8 hex digits.
const KEEP: usize = MAX_LEN - 9;

/// `^[a-zA-Z0-9_-]{1,64}$`.
pub fn is_portable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `name` itself when portable, else a portable name that only `name` maps to (up to a 32-bit
/// hash collision between two names of one request, which [`ToolNames`] would detect).
pub fn portable(name: &str) -> Cow<'_, str> {
    if is_portable(name) {
        return Cow::Borrowed(name);
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(KEEP)
        .collect();
    // FNV-1a over the original bytes: stable across builds and processes.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    out.push_str(&format!("_{hash:08x}"));
    Cow::Owned(out)
}

/// The names of one request that needed a portable stand-in: upstream name → client's name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolNames {
    pairs: Vec<(String, String)>,
}

impl ToolNames {
    /// `None` when every tool name of `req` is portable (nothing to map).
    pub fn for_request(req: &CanonicalRequest) -> Option<ToolNames> {
        let mut names = ToolNames::default();
        let mut note = |name: &str| {
            if !is_portable(name) && !names.pairs.iter().any(|(_, c)| c == name) {
                names
                    .pairs
                    .push((portable(name).into_owned(), name.to_owned()));
            }
        };
        req.tools.iter().for_each(|t| note(&t.name));
        if let Some(ToolChoice::Function(name)) = &req.tool_choice {
            note(name);
        }
        req.messages
            .iter()
            .flat_map(|m| &m.tool_calls)
            .for_each(|c| note(&c.name));
        (!names.pairs.is_empty()).then_some(names)
    }

    /// `req` with the portable names in place of the client's.
    pub fn apply(&self, req: &CanonicalRequest) -> CanonicalRequest {
        let mut out = req.clone();
        let swap = |name: &mut String| {
            if let Some((upstream, _)) = self.pairs.iter().find(|(_, c)| c == name) {
                name.clone_from(upstream);
            }
        };
        out.tools.iter_mut().for_each(|t| swap(&mut t.name));
        if let Some(ToolChoice::Function(name)) = &mut out.tool_choice {
            swap(name);
        }
        out.messages
            .iter_mut()
            .flat_map(|m| &mut m.tool_calls)
            .for_each(|c| swap(&mut c.name));
        out
    }

    /// The client's name for a name the upstream used.
    pub fn restore(&self, name: &mut String) {
        if let Some((_, client)) = self.pairs.iter().find(|(u, _)| u == name) {
            name.clone_from(client);
        }
    }

    pub fn restore_response(&self, r: &mut CanonicalResponse) {
        r.choices
            .iter_mut()
            .flat_map(|c| &mut c.tool_calls)
            .for_each(|c| self.restore(&mut c.name));
    }

    pub fn restore_event(&self, ev: &mut StreamEvent) {
        if let StreamEvent::ToolCallStart { name, .. } = ev {
            self.restore(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Choice, Message, Part, Role, Tool, ToolCall};

    fn tool(name: &str) -> Tool {
        Tool {
            name: name.into(),
            description: None,
            parameters: None,
            strict: None,
        }
    }

    #[test]
    fn portable_names_stay_and_others_get_a_stable_stand_in() {
        for ok in ["get_weather", "mcp__github__search", "a-b", &"x".repeat(64)] {
            assert!(is_portable(ok), "{ok}");
            assert_eq!(portable(ok), ok);
        }
        for odd in ["files.read", "mcp:search", "", "météo", &"y".repeat(65)] {
            let p = portable(odd);
            assert!(is_portable(&p), "{odd} → {p}");
            assert_eq!(p, portable(odd), "stable");
        }
        assert!(portable("files.read").starts_with("files_read_"));
        // The same kept characters, different originals: different stand-ins.
        assert_ne!(portable("a.b"), portable("a:b"));
        assert_ne!(portable(&"z".repeat(70)), portable(&"z".repeat(71)));
    }

    #[test]
    fn a_request_is_mapped_and_the_answer_mapped_back() {
        let mut req = CanonicalRequest::new(
            "m".into(),
            vec![Message::new(Role::User, vec![Part::Text("hi".into())])],
        );
        assert_eq!(ToolNames::for_request(&req), None);
        req.tools = vec![tool("files.read"), tool("plain")];
        req.tool_choice = Some(ToolChoice::Function("files.read".into()));
        let mut assistant = Message::new(Role::Assistant, Vec::new());
        assistant.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "files.read".into(),
            arguments: "{}".into(),
        }];
        req.messages.push(assistant);

        let names = ToolNames::for_request(&req).unwrap();
        let sent = names.apply(&req);
        let stand_in = portable("files.read").into_owned();
        assert_eq!(sent.tools[0].name, stand_in);
        assert_eq!(sent.tools[1].name, "plain");
        assert_eq!(
            sent.tool_choice,
            Some(ToolChoice::Function(stand_in.clone()))
        );
        assert_eq!(sent.messages[1].tool_calls[0].name, stand_in);
        assert_eq!(
            req.tools[0].name, "files.read",
            "the client's request is untouched"
        );

        let mut ev = StreamEvent::ToolCallStart {
            index: 0,
            id: "c2".into(),
            name: stand_in.clone(),
        };
        names.restore_event(&mut ev);
        assert!(matches!(ev, StreamEvent::ToolCallStart { ref name, .. } if name == "files.read"));
        let mut r = CanonicalResponse {
            id: "r".into(),
            model: "m".into(),
            created: 0,
            choices: vec![Choice {
                index: 0,
                text: None,
                reasoning: None,
                reasoning_signature: None,
                tool_calls: vec![
                    ToolCall {
                        id: "c3".into(),
                        name: stand_in,
                        arguments: "{}".into(),
                    },
                    ToolCall {
                        id: "c4".into(),
                        name: "plain".into(),
                        arguments: "{}".into(),
                    },
                ],
                refusal: None,
                finish_reason: None,
            }],
            usage: None,
        };
        names.restore_response(&mut r);
        assert_eq!(r.choices[0].tool_calls[0].name, "files.read");
        assert_eq!(r.choices[0].tool_calls[1].name, "plain");
    }
}
