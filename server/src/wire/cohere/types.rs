//! Cohere's answer and stream-event shapes as borrowed serde types, read leniently: a member of
//! an unexpected type reads as absent instead of failing the whole document, and strings borrow
//! from the input unless they hold escapes, so that decoding a stream event allocates little
//! more than what the canonical event keeps.
//!
//! Only malformed JSON (and a repeated member) fails; any well-formed document decodes.

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::{
    de::{value::MapAccessDeserializer, IgnoredAny, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

use crate::canonical::Usage;

/// A string member; anything else reads as `None`.
#[derive(Debug, Default)]
pub(super) struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    /// The text, `""` when absent.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The text, owned (no copy when it was already unescaped into its own buffer).
    pub fn into_string(self) -> String {
        self.0.map(Cow::into_owned).unwrap_or_default()
    }

    /// The text when present and not empty.
    pub fn non_empty(self) -> Option<Cow<'a, str>> {
        self.0.filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Str<'a>, E> {
                Ok(Str(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Str<'a>, E> {
                Ok(Str(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Str<'a>, E> {
                Ok(Str(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Str<'a>, E> {
                Ok(Str(None))
            }
            fn visit_unit<E>(self) -> Result<Str<'a>, E> {
                Ok(Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Str<'a>, A::Error> {
                skip_seq(s).map(|()| Str(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Str<'a>, A::Error> {
                skip_map(m).map(|()| Str(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A token count or index: a non-negative integer, or a non-negative number rounded up (Cohere
/// types counts as numbers); anything else reads as `None`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Count, E> {
                // A saturating conversion; the canonical usage is clamped to sane counts later.
                Ok(Count(
                    (v.is_finite() && v >= 0.0).then(|| v.ceil().min(u64::MAX as f64) as u64),
                ))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Count, A::Error> {
                skip_seq(s).map(|()| Count(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Count, A::Error> {
                skip_map(m).map(|()| Count(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object member read as `T`; anything else reads as `None`.
#[derive(Debug)]
pub(super) struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(m)).map(|t| Obj(Some(t)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_unit<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Obj<T>, A::Error> {
                skip_seq(s).map(|()| Obj(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array member of objects read as `T`; elements that are not objects are skipped, and a
/// member that is not an array reads as empty.
#[derive(Debug)]
pub(super) struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0).min(16));
                while let Some(item) = s.next_element::<Obj<T>>()? {
                    out.extend(item.0);
                }
                Ok(List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<List<T>, A::Error> {
                skip_map(m).map(|()| List(Vec::new()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_unit<E>(self) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut s: A) -> Result<(), A::Error> {
    while s.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut m: A) -> Result<(), A::Error> {
    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The shapes
// ---------------------------------------------------------------------------------------------

/// A non-streamed `/v2/chat` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChatResponse<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub finish_reason: Str<'a>,
    #[serde(borrow)]
    pub message: Obj<ResponseMessage<'a>>,
    pub usage: Obj<UsageWire>,
}

/// Only the `usage` of an answer (every other member is skipped unread).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct UsageOnly {
    pub usage: Obj<UsageWire>,
}

/// The assistant message of an answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ResponseMessage<'a> {
    #[serde(borrow)]
    pub content: List<ContentItem<'a>>,
    #[serde(borrow)]
    pub tool_plan: Str<'a>,
    #[serde(borrow)]
    pub tool_calls: List<ToolCallWire<'a>>,
}

/// A content item (`{type: text, text}` or `{type: thinking, thinking}`), also the `content`
/// of `content-start` and `content-delta` events (where `type` may be missing).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ContentItem<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub text: Str<'a>,
    #[serde(borrow)]
    pub thinking: Str<'a>,
}

/// A tool call, whole (answers, `tool-call-start`) or a fragment (`tool-call-delta`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ToolCallWire<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub function: Obj<FunctionWire<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FunctionWire<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
    pub arguments: Str<'a>,
}

/// `usage`: `tokens` is what the model read and wrote, `billed_units` what Cohere charges.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct UsageWire {
    pub billed_units: Obj<Units>,
    pub tokens: Obj<Units>,
    pub cached_tokens: Count,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Units {
    pub input_tokens: Count,
    pub output_tokens: Count,
}

impl UsageWire {
    /// The canonical usage: each count from `tokens`, else from `billed_units`; `None` when
    /// the report has neither.
    pub fn canonical(&self) -> Option<Usage> {
        let (tokens, billed) = (self.tokens.0.as_ref(), self.billed_units.0.as_ref());
        if tokens.is_none() && billed.is_none() {
            return None;
        }
        let pick = |count: fn(&Units) -> Count| {
            tokens
                .and_then(|u| count(u).0)
                .or_else(|| billed.and_then(|u| count(u).0))
                .unwrap_or(0)
        };
        Some(Usage {
            input: pick(|u| u.input_tokens),
            cached_input: self.cached_tokens.0.unwrap_or(0),
            cache_write: 0,
            output: pick(|u| u.output_tokens),
            reasoning: 0,
        })
    }
}

/// One stream event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct StreamEventWire<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub id: Str<'a>,
    pub index: Count,
    #[serde(borrow)]
    pub delta: Obj<Delta<'a>>,
    /// A bare error body (`{"message": …}`) in place of an event.
    #[serde(borrow)]
    pub message: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Delta<'a> {
    #[serde(borrow)]
    pub message: Obj<DeltaMessage<'a>>,
    #[serde(borrow)]
    pub finish_reason: Str<'a>,
    #[serde(borrow)]
    pub error: Str<'a>,
    pub usage: Obj<UsageWire>,
}

/// `delta.message`: `content` and `tool_calls` are single objects in content and tool-call
/// events (and empty arrays in `message-start`, which read as absent).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DeltaMessage<'a> {
    #[serde(borrow)]
    pub content: Obj<ContentItem<'a>>,
    #[serde(borrow)]
    pub tool_plan: Str<'a>,
    #[serde(borrow)]
    pub tool_calls: Obj<ToolCallWire<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_other_types_read_as_absent() {
        let e: StreamEventWire = serde_json::from_str(
            r#"{"type":"content-delta","index":"0","id":7,"delta":{"message":{"content":[1,{"a":2}],
                "tool_plan":{"x":[1]},"tool_calls":"no"},"usage":{"tokens":{"input_tokens":-1,
                "output_tokens":2.5},"cached_tokens":true}},"extra":{"deep":[[{}]]}}"#,
        )
        .unwrap();
        assert_eq!(e.kind.as_str(), "content-delta");
        assert!(e.index.0.is_none() && e.id.0.is_none());
        let d = e.delta.0.unwrap();
        let m = d.message.0.unwrap();
        assert!(m.content.0.is_none() && m.tool_plan.0.is_none() && m.tool_calls.0.is_none());
        let u = d.usage.0.unwrap().canonical().unwrap();
        assert_eq!((u.input, u.output, u.cached_input), (0, 3, 0));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let e: StreamEventWire = serde_json::from_str(r#"{"type":"a","id":"x\ny"}"#).unwrap();
        assert!(matches!(e.kind.0, Some(Cow::Borrowed("a"))));
        assert!(matches!(e.id.0, Some(Cow::Owned(ref s)) if s == "x\ny"));
    }

    #[test]
    fn tokens_win_over_billed_units() {
        let u: UsageWire = serde_json::from_str(
            r#"{"billed_units":{"input_tokens":5,"output_tokens":9},"tokens":{"input_tokens":71}}"#,
        )
        .unwrap();
        let u = u.canonical().unwrap();
        assert_eq!((u.input, u.output), (71, 9), "output falls back to billed");
        let none: UsageWire = serde_json::from_str(r#"{"cached_tokens":3}"#).unwrap();
        assert_eq!(none.canonical(), None);
        let floats: UsageWire =
            serde_json::from_str(r#"{"tokens":{"input_tokens":71.0,"output_tokens":1e300}}"#)
                .unwrap();
        let u = floats.canonical().unwrap();
        assert_eq!((u.input, u.output), (71, u64::MAX));
    }
}
