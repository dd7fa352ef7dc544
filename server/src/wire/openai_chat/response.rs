//! Non-streamed chat completions: usage read without building the document, decoded from
//! upstreams and rendered for clients.

use serde_json::{json, Value};

use crate::{
    canonical::{CanonicalResponse, Choice, FinishReason, ToolCall, Usage},
    error::GatewayError,
};

/// Reads OpenAI usage (inclusive counts) from a `usage` object.
pub fn decode_usage(u: &Value) -> Option<Usage> {
    let o = u.as_object()?;
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let pd = o.get("prompt_tokens_details");
    let cd = o.get("completion_tokens_details");
    Some(Usage {
        input: n(o.get("prompt_tokens")),
        cached_input: n(pd.and_then(|d| d.get("cached_tokens"))),
        cache_write: n(pd.and_then(|d| d.get("cache_write_tokens"))),
        output: n(o.get("completion_tokens")),
        reasoning: n(cd.and_then(|d| d.get("reasoning_tokens"))),
    })
}

/// The `usage` of a non-streamed chat completion that is relayed as it is: the body is
/// checked to be JSON and only `usage` is read, without building the whole document
/// (`None` when there is no usage object). Same leniency as [`decode_usage`]: a count that
/// is not a non-negative integer reads as 0.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    serde_json::from_slice::<lenient::Envelope>(body).map(|e| e.0)
}

mod lenient {
    //! Visitors that read `usage` from a chat completion and skip everything else.

    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

    use crate::canonical::Usage;

    macro_rules! ignore_scalars {
        ($out:expr) => {
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok($out)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok($out)
            }
        };
    }

    /// The top level: `usage` if it is an object; anything else is accepted and ignored.
    pub struct Envelope(pub Option<Usage>);

    impl<'de> de::Deserialize<'de> for Envelope {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Envelope;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Envelope, A::Error> {
                    let mut usage = None;
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        if k == "usage" {
                            // The last one counts, as when the document is parsed whole.
                            usage = m.next_value::<UsageObj>()?.0;
                        } else {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(Envelope(usage))
                }
                fn visit_u64<E>(self, _: u64) -> Result<Envelope, E> {
                    Ok(Envelope(None))
                }
                ignore_scalars!(Envelope(None));
            }
            d.deserialize_any(V)
        }
    }

    /// `usage`: the counts when it is an object, `None` otherwise.
    struct UsageObj(Option<Usage>);

    /// `*_tokens_details`: (cached or reasoning, cache write).
    #[derive(Default)]
    struct Details {
        cached: u64,
        cache_write: u64,
        reasoning: u64,
    }

    /// A count: a non-negative integer, anything else reads as 0.
    struct Count(u64);

    impl<'de> de::Deserialize<'de> for Count {
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
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Count, A::Error> {
                    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Count(0))
                }
                ignore_scalars!(Count(0));
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> de::Deserialize<'de> for Details {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Details;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("token details")
                }
                fn visit_u64<E>(self, _: u64) -> Result<Details, E> {
                    Ok(Details::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Details, A::Error> {
                    let mut d = Details::default();
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        match &*k {
                            "cached_tokens" => d.cached = m.next_value::<Count>()?.0,
                            "cache_write_tokens" => d.cache_write = m.next_value::<Count>()?.0,
                            "reasoning_tokens" => d.reasoning = m.next_value::<Count>()?.0,
                            _ => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(d)
                }
                ignore_scalars!(Details::default());
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> de::Deserialize<'de> for UsageObj {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = UsageObj;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("usage")
                }
                fn visit_u64<E>(self, _: u64) -> Result<UsageObj, E> {
                    Ok(UsageObj(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<UsageObj, A::Error> {
                    let mut u = Usage::default();
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        match &*k {
                            "prompt_tokens" => u.input = m.next_value::<Count>()?.0,
                            "completion_tokens" => u.output = m.next_value::<Count>()?.0,
                            "prompt_tokens_details" => {
                                let d = m.next_value::<Details>()?;
                                u.cached_input = d.cached;
                                u.cache_write = d.cache_write;
                            }
                            "completion_tokens_details" => {
                                u.reasoning = m.next_value::<Details>()?.reasoning;
                            }
                            _ => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(UsageObj(Some(u)))
                }
                ignore_scalars!(UsageObj(None));
            }
            d.deserialize_any(V)
        }
    }
}

pub(super) fn decode_finish(s: Option<&str>) -> Option<FinishReason> {
    match s? {
        "stop" => Some(FinishReason::Stop),
        "length" => Some(FinishReason::Length),
        "tool_calls" | "function_call" => Some(FinishReason::ToolCalls),
        "content_filter" => Some(FinishReason::ContentFilter),
        _ => Some(FinishReason::Stop),
    }
}

/// Decodes an upstream's non-streamed chat completion.
pub fn decode_response(body: &[u8]) -> Result<CanonicalResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        GatewayError::new(
            crate::error::ErrorKind::BadGateway,
            "The upstream returned invalid JSON.",
        )
    })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .enumerate()
                .map(|(i, c)| {
                    let msg = c.get("message");
                    let get = |k: &str| {
                        msg.and_then(|m| m.get(k))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    let tool_calls = msg
                        .and_then(|m| m.get("tool_calls"))
                        .and_then(Value::as_array)
                        .map(|calls| {
                            calls
                                .iter()
                                .map(|tc| ToolCall {
                                    id: tc
                                        .get("id")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                    name: tc
                                        .pointer("/function/name")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                    arguments: tc
                                        .pointer("/function/arguments")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Choice {
                        index: c
                            .get("index")
                            .and_then(Value::as_u64)
                            .and_then(|x| u32::try_from(x).ok())
                            .unwrap_or(i as u32),
                        text: get("content"),
                        reasoning: get("reasoning_content").or_else(|| get("reasoning")),
                        reasoning_signature: None,
                        tool_calls,
                        refusal: get("refusal"),
                        finish_reason: decode_finish(
                            c.get("finish_reason").and_then(Value::as_str),
                        ),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CanonicalResponse {
        id: s("id"),
        model: s("model"),
        created: v
            .get("created")
            .and_then(Value::as_i64)
            .unwrap_or_else(unix_now),
        choices,
        usage: v.get("usage").and_then(decode_usage),
    })
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The OpenAI `usage` object for a usage report.
pub fn encode_usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_input, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

fn encode_tool_calls(calls: &[ToolCall]) -> Value {
    calls
        .iter()
        .map(|c| {
            json!({"id": c.id, "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments}})
        })
        .collect()
}

/// Renders a canonical response as an OpenAI chat completion.
pub fn encode_response(r: &CanonicalResponse) -> Value {
    let choices: Vec<Value> = r
        .choices
        .iter()
        .map(|c| {
            let mut msg = json!({
                "role": "assistant",
                "content": c.text,
                "refusal": c.refusal,
                "annotations": [],
            });
            if let Value::Object(o) = &mut msg {
                if !c.tool_calls.is_empty() {
                    o.insert("tool_calls".into(), encode_tool_calls(&c.tool_calls));
                }
                if let Some(r) = &c.reasoning {
                    o.insert("reasoning_content".into(), r.clone().into());
                }
            }
            json!({
                "index": c.index,
                "message": msg,
                "logprobs": null,
                "finish_reason": c.finish_reason.unwrap_or(FinishReason::Stop).openai(),
            })
        })
        .collect();
    json!({
        "id": r.id,
        "object": "chat.completion",
        "created": r.created,
        "model": r.model,
        "choices": choices,
        "usage": r.usage.as_ref().map(encode_usage),
        "system_fingerprint": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_usage_reads_what_decode_usage_reads() {
        let bodies = [
            r#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            r#"{"usage":{"prompt_tokens":1.5,"completion_tokens":-3,"prompt_tokens_details":null}}"#,
            r#"{"usage":null,"choices":[]}"#,
            r#"{"usage":[1,2],"x":{"usage":{"prompt_tokens":9}}}"#,
            r#"{"usage":{"prompt_tokens":"7","completion_tokens":{"a":1},"prompt_tokens_details":{"cache_write_tokens":5}}}"#,
            r#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
            r#"[1,{"usage":{}}]"#,
            r#"{"choices":[]}"#,
            r#"42"#,
        ];
        for b in bodies {
            let v: Value = serde_json::from_slice(b.as_bytes()).unwrap();
            let want = v.get("usage").and_then(decode_usage);
            assert_eq!(response_usage(b.as_bytes()).unwrap(), want, "{b}");
        }
        for bad in [
            r#"{"usage":{"prompt_tokens":1}"#,
            "",
            "{} x",
            r#"{"a":tru}"#,
        ] {
            assert!(response_usage(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_round_trip() {
        let upstream = json!({"id":"chatcmpl-abc","object":"chat.completion","created":1727346182,"model":"gpt-4o-2024-08-06",
            "choices":[{"index":0,"finish_reason":"stop","logprobs":null,"message":{"role":"assistant","content":"Hi!","refusal":null}}],
            "usage":{"prompt_tokens":19,"completion_tokens":3,"total_tokens":22,"prompt_tokens_details":{"cached_tokens":4}}});
        let r = decode_response(&serde_json::to_vec(&upstream).unwrap()).unwrap();
        assert_eq!(r.usage.unwrap().cached_input, 4);
        insta::assert_json_snapshot!("openai_response_encoded", encode_response(&r));
    }
}
