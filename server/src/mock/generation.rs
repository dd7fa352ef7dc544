//! The mock's deterministic stand-in for a model: counts tokens, picks the reply text or tool
//! call, and cuts the text at stop sequences and the output-token limit.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The mock tokenizer: one token per whitespace-separated word.
pub(super) fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A request reduced to what the mock model needs, whatever the wire format.
pub(super) struct Prompt<'a> {
    /// Prompt tokens, counted by the format module.
    pub tokens: u64,
    /// The turn the reply answers; its text no longer holds directives.
    pub last: LastTurn,
    pub tools: Vec<ToolDef<'a>>,
    pub choice: ToolChoice<'a>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<&'a str>,
}

/// The turn the reply answers.
pub(super) enum LastTurn {
    /// Text of the last user message (text parts joined with a space).
    User(String),
    /// Content text of the final tool result.
    ToolResult(String),
}

impl LastTurn {
    pub(super) fn text_mut(&mut self) -> &mut String {
        match self {
            LastTurn::User(text) | LastTurn::ToolResult(text) => text,
        }
    }
}

/// A tool the client offered.
pub(super) struct ToolDef<'a> {
    pub name: &'a str,
    /// JSON Schema of the arguments object, when given.
    pub schema: Option<&'a Value>,
}

/// How the client constrained tool use.
pub(super) enum ToolChoice<'a> {
    /// The model decides: the mock calls a tool only when the text says `call <name>`.
    Auto,
    /// No tool may be called.
    None,
    /// Some tool must be called: the first of `allowed` that was offered, or the first tool.
    Any { allowed: Vec<&'a str> },
    /// This tool must be called.
    Named(&'a str),
}

/// Why the text ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Finish {
    Stop,
    Length,
    StopSequence(String),
}

/// A generated tool call.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ToolCall {
    pub name: String,
    /// The arguments object as compact JSON text (key order as written).
    pub arguments: String,
    /// The same object, parsed.
    pub input: Value,
}

/// What the mock model produced.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Output {
    Text { text: String, finish: Finish },
    Tool(ToolCall),
}

/// The reply and its completion tokens.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Reply {
    pub output: Output,
    /// Words of the text, or of the tool arguments JSON (at least 1 for a tool call).
    pub completion_tokens: u64,
}

/// Produces the reply for `prompt`. `words` replaces the echo with `w1 … wn`.
pub(super) fn reply(prompt: &Prompt<'_>, words: Option<u64>) -> Reply {
    let user_text = match &prompt.last {
        LastTurn::User(text) => Some(text.as_str()),
        LastTurn::ToolResult(_) => None,
    };
    if let Some(call) = tool_call(prompt, user_text) {
        let completion_tokens = count_words(&call.arguments).max(1);
        return Reply {
            output: Output::Tool(call),
            completion_tokens,
        };
    }
    let raw = match (&prompt.last, words) {
        (LastTurn::User(_), Some(n)) => numbered_words(n),
        (LastTurn::User(text), None) => normalized("echo:", text),
        (LastTurn::ToolResult(text), _) => normalized("tool result:", text),
    };
    let (text, finish) = cut(raw, prompt.max_tokens, &prompt.stop);
    let completion_tokens = count_words(&text);
    Reply {
        output: Output::Text { text, finish },
        completion_tokens,
    }
}

/// `w1 w2 … wn`.
fn numbered_words(n: u64) -> String {
    let mut text = String::with_capacity(usize::try_from(n).unwrap_or(0).saturating_mul(8));
    for i in 1..=n {
        if i > 1 {
            text.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(text, "w{i}");
    }
    text
}

/// `prefix` and the words of `text`, separated by single spaces.
fn normalized(prefix: &str, text: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + text.len());
    out.push_str(prefix);
    for word in text.split_whitespace() {
        out.push(' ');
        out.push_str(word);
    }
    out
}

/// Cuts `text` before the earliest stop sequence, then to `max` words.
fn cut(mut text: String, max: Option<u64>, stop: &[&str]) -> (String, Finish) {
    let hit = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, *s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, _)) = hit {
        text.truncate(at);
    }
    if let Some(max) = max.filter(|max| count_words(&text) > *max) {
        let end = end_of_words(&text, max);
        text.truncate(end);
        return (text, Finish::Length);
    }
    match hit {
        Some((_, seq)) => (text, Finish::StopSequence(seq.to_owned())),
        None => (text, Finish::Stop),
    }
}

/// Byte offset just after the `n`-th word of `text` (0 for `n == 0`).
fn end_of_words(text: &str, n: u64) -> usize {
    if n == 0 {
        return 0;
    }
    let (mut seen, mut in_word) = (0, false);
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word && seen == n {
                return i;
            }
            in_word = false;
        } else if !in_word {
            in_word = true;
            seen += 1;
        }
    }
    text.len()
}

/// The forced tool call, or the one the user text asks for with `call <name>`.
fn tool_call(prompt: &Prompt<'_>, user_text: Option<&str>) -> Option<ToolCall> {
    let (name, schema) = match &prompt.choice {
        ToolChoice::None => return None,
        ToolChoice::Named(name) => (*name, schema_of(prompt, name)),
        ToolChoice::Any { allowed } => {
            let tool = prompt
                .tools
                .iter()
                .find(|t| allowed.is_empty() || allowed.contains(&t.name))?;
            (tool.name, tool.schema)
        }
        ToolChoice::Auto => {
            let tool = mentioned_tool(&prompt.tools, user_text?)?;
            (tool.name, tool.schema)
        }
    };
    let arguments = user_text
        .and_then(|text| written_arguments(text, name))
        .unwrap_or_else(|| arguments_from_schema(schema));
    let input = serde_json::from_str(&arguments).unwrap_or_else(|_| Value::Object(Map::new()));
    Some(ToolCall {
        name: name.to_owned(),
        arguments,
        input,
    })
}

fn schema_of<'a>(prompt: &Prompt<'a>, name: &str) -> Option<&'a Value> {
    prompt
        .tools
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.schema)
}

/// Byte offsets just after each `call <name>` in `text` (name followed by a non-name char).
fn mentions<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = usize> + 't {
    text.match_indices("call ").filter_map(move |(at, _)| {
        let start = at + "call ".len();
        let rest = text[start..].strip_prefix(name)?;
        let ends_name = rest
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')));
        (!name.is_empty() && ends_name).then_some(start + name.len())
    })
}

/// The offered tool named right after `call ` in the text; the longest name wins a tie.
fn mentioned_tool<'p, 'a>(tools: &'p [ToolDef<'a>], text: &str) -> Option<&'p ToolDef<'a>> {
    tools
        .iter()
        .filter(|t| mentions(text, t.name).next().is_some())
        .max_by_key(|t| t.name.len())
}

/// The JSON object written right after `call <name>`, compacted with its key order kept.
fn written_arguments(text: &str, name: &str) -> Option<String> {
    mentions(text, name).find_map(|end| {
        let rest = text[end..].trim_start();
        if !rest.starts_with('{') {
            return None;
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match values.next() {
            Some(Ok(Value::Object(_))) => Some(compact(&rest[..values.byte_offset()])),
            _ => None,
        }
    })
}

/// Removes the whitespace outside strings from valid JSON text.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// An arguments object with a placeholder for every `required` property of the schema.
fn arguments_from_schema(schema: Option<&Value>) -> String {
    let mut args = Map::new();
    if let Some(schema) = schema {
        let required = schema.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            let kind = schema
                .get("properties")
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("type"));
            args.insert(name.to_owned(), placeholder(kind));
        }
    }
    Value::Object(args).to_string()
}

/// `"test"`, `1`, `true` or `null` for a JSON Schema (or Gemini OpenAPI) `type`.
fn placeholder(kind: Option<&Value>) -> Value {
    let kind = match kind {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| !k.eq_ignore_ascii_case("null"))
            .unwrap_or("null"),
        _ => "null",
    };
    if kind.eq_ignore_ascii_case("string") {
        Value::from("test")
    } else if kind.eq_ignore_ascii_case("integer") || kind.eq_ignore_ascii_case("number") {
        Value::from(1)
    } else if kind.eq_ignore_ascii_case("boolean") {
        Value::Bool(true)
    } else {
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prompt(last: LastTurn) -> Prompt<'static> {
        Prompt {
            tokens: 1,
            last,
            tools: Vec::new(),
            choice: ToolChoice::Auto,
            max_tokens: None,
            stop: Vec::new(),
        }
    }

    fn text_of(reply: &Reply) -> (&str, &Finish) {
        match &reply.output {
            Output::Text { text, finish } => (text, finish),
            Output::Tool(call) => panic!("unexpected tool call {call:?}"),
        }
    }

    #[test]
    fn tokenizer_counts_words() {
        assert_eq!(count_words(""), 0);
        assert_eq!(count_words("  a\tb\n c  "), 3);
        assert_eq!(count_words("héllo wörld"), 2);
    }

    #[test]
    fn echo_normalizes_whitespace() {
        let r = reply(&prompt(LastTurn::User("  hello \n world ".into())), None);
        assert_eq!(text_of(&r), ("echo: hello world", &Finish::Stop));
        assert_eq!(r.completion_tokens, 3);
        let r = reply(&prompt(LastTurn::ToolResult("18C".into())), None);
        assert_eq!(text_of(&r).0, "tool result: 18C");
    }

    #[test]
    fn words_directive_replaces_the_echo() {
        let r = reply(&prompt(LastTurn::User("x".into())), Some(3));
        assert_eq!(text_of(&r).0, "w1 w2 w3");
        let r = reply(&prompt(LastTurn::User("x".into())), Some(0));
        assert_eq!(text_of(&r).0, "");
    }

    #[test]
    fn max_tokens_truncates_to_words() {
        let mut p = prompt(LastTurn::User("a b c d".into()));
        p.max_tokens = Some(3);
        let r = reply(&p, None);
        assert_eq!(text_of(&r), ("echo: a b", &Finish::Length));
        assert_eq!(r.completion_tokens, 3);
        p.max_tokens = Some(5);
        assert_eq!(text_of(&reply(&p, None)), ("echo: a b c d", &Finish::Stop));
        p.max_tokens = Some(0);
        assert_eq!(text_of(&reply(&p, None)), ("", &Finish::Length));
    }

    #[test]
    fn stop_sequence_cuts_before_the_first_one() {
        let mut p = prompt(LastTurn::User("one two three four".into()));
        p.stop = vec!["four", "thr"];
        let r = reply(&p, None);
        assert_eq!(
            text_of(&r),
            ("echo: one two ", &Finish::StopSequence("thr".into()))
        );
        assert_eq!(r.completion_tokens, 3);
        // The limit wins when it comes first.
        p.max_tokens = Some(2);
        assert_eq!(text_of(&reply(&p, None)), ("echo: one", &Finish::Length));
    }

    #[test]
    fn tool_called_only_when_forced_or_asked() {
        let schema = json!({"type":"object","properties":{
            "city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},
            "tags":{"type":"array"},"note":{"type":["string","null"]}},
            "required":["city","days","metric","tags","note"]});
        let tools = vec![
            ToolDef {
                name: "get",
                schema: None,
            },
            ToolDef {
                name: "get_weather",
                schema: Some(&schema),
            },
        ];
        let mut p = prompt(LastTurn::User("what is the weather".into()));
        p.tools = tools;
        assert!(matches!(reply(&p, None).output, Output::Text { .. }));

        p.last = LastTurn::User("please call get_weather now".into());
        let Output::Tool(call) = reply(&p, None).output else {
            panic!("expected a call")
        };
        assert_eq!(call.name, "get_weather");
        assert_eq!(
            call.arguments,
            r#"{"city":"test","days":1,"metric":true,"tags":null,"note":"test"}"#
        );

        p.last = LastTurn::User("call get_weather {\"z\": 1,\n \"a\": \"x y\"} thanks".into());
        let r = reply(&p, None);
        let Output::Tool(call) = &r.output else {
            panic!("expected a call")
        };
        assert_eq!(call.arguments, r#"{"z":1,"a":"x y"}"#);
        assert_eq!(call.input, json!({"a":"x y","z":1}));
        assert_eq!(r.completion_tokens, 2);

        // `call get_weathers` names no tool; a tool result never triggers a mention.
        p.last = LastTurn::User("call get_weathers".into());
        assert!(matches!(reply(&p, None).output, Output::Text { .. }));
        p.last = LastTurn::ToolResult("call get_weather".into());
        assert!(matches!(reply(&p, None).output, Output::Text { .. }));

        // Forced: always, even after a tool result; `none` never.
        p.choice = ToolChoice::Any { allowed: vec![] };
        let Output::Tool(call) = reply(&p, None).output else {
            panic!("expected a call")
        };
        assert_eq!((call.name.as_str(), call.arguments.as_str()), ("get", "{}"));
        p.choice = ToolChoice::Any {
            allowed: vec!["get_weather"],
        };
        assert!(matches!(reply(&p, None).output, Output::Tool(c) if c.name == "get_weather"));
        p.choice = ToolChoice::Named("get_weather");
        assert!(matches!(reply(&p, None).output, Output::Tool(c) if c.name == "get_weather"));
        p.choice = ToolChoice::None;
        p.last = LastTurn::User("call get_weather".into());
        assert!(matches!(reply(&p, None).output, Output::Text { .. }));
    }

    #[test]
    fn compact_keeps_strings() {
        assert_eq!(
            compact("{ \"a b\" : [1, 2],\n\"c\\\" d\": \" \" }"),
            "{\"a b\":[1,2],\"c\\\" d\":\" \"}"
        );
    }
}
