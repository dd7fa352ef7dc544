//! Gemini's answer and stream-event shapes as borrowed serde types (shared by whole responses
//! and stream events): strings borrow from the input unless they hold escapes, and a token
//! count of an unexpected type reads as 0, so that one odd field cannot make a whole answer
//! unreadable.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::canonical::Usage;

/// A string that borrows from the input unless it holds escapes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Str<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token count: a non-negative integer; anything else reads as 0, so that one odd field
/// cannot make a whole answer unreadable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_str<E>(self, s: &str) -> Result<Count, E> {
                // Proto3 JSON may write 64-bit integers as strings.
                Ok(Count(s.parse().unwrap_or(0)))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Count, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count(0))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Count, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// `usageMetadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct UsageMetadata {
    prompt_token_count: Count,
    candidates_token_count: Count,
    thoughts_token_count: Count,
    cached_content_token_count: Count,
    tool_use_prompt_token_count: Count,
}

impl UsageMetadata {
    /// Canonical usage (translation.md §6): input is the prompt (cached tokens included) plus
    /// the tool-use prompt; output is the candidates plus the thoughts, which are the
    /// reasoning.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            input: self
                .prompt_token_count
                .0
                .saturating_add(self.tool_use_prompt_token_count.0),
            cached_input: self.cached_content_token_count.0,
            cache_write: 0,
            output: self
                .candidates_token_count
                .0
                .saturating_add(self.thoughts_token_count.0),
            reasoning: self.thoughts_token_count.0,
        }
    }
}

/// A `GenerateContentResponse`: a whole answer, or one `alt=sse` event; also an error object
/// sent in a stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Answer<'a> {
    #[serde(borrow)]
    pub candidates: Vec<Candidate<'a>>,
    #[serde(borrow)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(borrow)]
    pub model_version: Option<Str<'a>>,
    #[serde(borrow)]
    pub response_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub error: Option<ApiError<'a>>,
}

impl<'a> Answer<'a> {
    pub(crate) fn parse(text: &'a [u8]) -> Result<Answer<'a>, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// The candidate answering as choice 0 (Weir asks for one).
    pub(crate) fn first_candidate(&self) -> Option<&Candidate<'a>> {
        self.candidates
            .iter()
            .find(|c| c.index.0 == 0)
            .or(self.candidates.first())
    }

    /// The prompt was refused before generation (`promptFeedback.blockReason`).
    pub(crate) fn blocked(&self) -> bool {
        self.prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.as_ref().is_some_and(|r| !r.0.is_empty()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Candidate<'a> {
    #[serde(borrow)]
    pub content: Option<Content<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Str<'a>>,
    pub index: Count,
}

impl<'a> Candidate<'a> {
    pub(crate) fn parts(&self) -> &[Part<'a>] {
        self.content.as_ref().map_or(&[], |c| c.parts.as_slice())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Content<'a> {
    #[serde(borrow)]
    pub parts: Vec<Part<'a>>,
}

/// One part; kinds Weir has no canonical place for (`inlineData` output, `executableCode`,
/// `codeExecutionResult`) leave every field here empty.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Part<'a> {
    #[serde(borrow)]
    pub text: Option<Str<'a>>,
    pub thought: Option<bool>,
    #[serde(borrow)]
    pub thought_signature: Option<Str<'a>>,
    #[serde(borrow)]
    pub function_call: Option<FunctionCall<'a>>,
}

impl Part<'_> {
    pub(crate) fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FunctionCall<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    pub args: Option<serde_json::Value>,
}

impl FunctionCall<'_> {
    /// The arguments as compact JSON text: the `args` object, or `{}`.
    pub(crate) fn arguments(&self) -> String {
        match &self.args {
            Some(v @ serde_json::Value::Object(_)) => v.to_string(),
            _ => "{}".to_owned(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.name.as_ref().map_or("", Str::as_str)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PromptFeedback<'a> {
    #[serde(borrow)]
    pub block_reason: Option<Str<'a>>,
}

/// Google's error object: `{"code": 503, "message": "…", "status": "UNAVAILABLE"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiError<'a> {
    #[serde(borrow)]
    pub message: Option<Str<'a>>,
    #[serde(borrow)]
    pub status: Option<Str<'a>>,
}
