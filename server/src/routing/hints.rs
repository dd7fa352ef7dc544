//! Routing hints a client sends as extra body members (SDK-safe: the OpenAI and Anthropic SDKs
//! send them through `extra_body`): Weir's own `weir` object, and OpenRouter's `provider`
//! object and `models` fallback list. They are taken out of the body while it is decoded, so
//! no upstream ever sees them.
//!
//! ```json
//! "weir": {"optimise": "cost", "require_tools": true, "require_vision": false,
//!          "require_json_schema": false, "max_price": {"prompt": 1, "completion": "2.5"},
//!          "model_hints": ["groq/*"]},
//! "provider": {"order": ["groq"], "only": [], "ignore": ["deepinfra"],
//!              "allow_fallbacks": true, "sort": "price", "max_price": {…},
//!              "require_parameters": false},
//! "models": ["llama-3.3-70b", "openai/gpt-5.4-mini"]
//! ```
//!
//! Every member Weir accepts it enforces; a member it does not know is a 400 naming it, so a
//! client never believes a preference holds that does not.

use serde_json::{Map, Value};
use weir_core::money::{Micros, PerMillion};

use crate::{
    error::GatewayError,
    wire::json::{range_error, type_error},
};

/// Most entries in one list member (`models`, `order`, `only`, `ignore`, `model_hints`).
const MAX_LIST: usize = 16;

/// What to order the candidates by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimise {
    /// The catalog's ranking: the order of a codename's models (then channel priority).
    Quality,
    /// Least expected time for the whole answer: measured time to first token plus the
    /// expected output at the measured tokens per second.
    Speed,
    /// Least measured time to first token (OpenRouter `sort: "latency"`).
    Latency,
    /// Most measured tokens per second (OpenRouter `sort: "throughput"`).
    Throughput,
    /// Least marked-up price for the request's expected tokens (`sort: "price"`).
    Cost,
}

/// Capabilities a candidate's model must have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Require {
    pub tools: bool,
    pub vision: bool,
    pub json_schema: bool,
}

/// Highest price the team will pay, per million tokens (marked up, as the team is charged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaxPrice {
    pub prompt: Option<PerMillion>,
    pub completion: Option<PerMillion>,
}

/// The routing hints of one request. `Default` is "no hints".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hints {
    pub optimise: Option<Optimise>,
    pub require: Require,
    pub max_price: MaxPrice,
    /// Which object the price limit came from (`weir` or `provider`), for error messages.
    pub max_price_from: &'static str,
    /// Models preferred among the candidates, in order (ids, upstream names or `*` patterns).
    pub model_hints: Vec<String>,
    /// Providers to try first, in this order.
    pub order: Vec<String>,
    /// Providers allowed (empty: any).
    pub only: Vec<String>,
    /// Providers never used.
    pub ignore: Vec<String>,
    /// With `false`, only the providers of `order` (and `only`) are tried.
    pub allow_fallbacks: bool,
    /// Models to fall back to, in order, after the requested one.
    pub models: Vec<String>,
}

impl Default for Hints {
    fn default() -> Self {
        Hints {
            optimise: None,
            require: Require::default(),
            max_price: MaxPrice::default(),
            max_price_from: "weir",
            model_hints: Vec::new(),
            order: Vec::new(),
            only: Vec::new(),
            ignore: Vec::new(),
            allow_fallbacks: true,
            models: Vec::new(),
        }
    }
}

/// Takes the routing members out of a request body: `None` when there are none (the common
/// case, which costs three map lookups).
pub fn take(m: &mut Map<String, Value>) -> Result<Option<Box<Hints>>, GatewayError> {
    let weir = m.remove("weir").filter(|v| !v.is_null());
    let provider = m.remove("provider").filter(|v| !v.is_null());
    let models = m.remove("models").filter(|v| !v.is_null());
    if weir.is_none() && provider.is_none() && models.is_none() {
        return Ok(None);
    }
    let mut h = Hints::default();
    if let Some(v) = provider {
        provider_object(v, &mut h)?;
    }
    // Weir's own members win over OpenRouter's where both say the same thing.
    if let Some(v) = weir {
        weir_object(v, &mut h)?;
    }
    if let Some(v) = models {
        h.models = string_list(v, "models")?;
    }
    Ok(Some(Box::new(h)))
}

fn object(v: Value, param: &'static str) -> Result<Map<String, Value>, GatewayError> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(type_error(param, "an object")),
    }
}

fn boolean(v: Value, param: &str) -> Result<bool, GatewayError> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        _ => Err(type_error(param.to_owned(), "a boolean")),
    }
}

fn string_list(v: Value, param: &str) -> Result<Vec<String>, GatewayError> {
    let Value::Array(a) = v else {
        return Err(type_error(param.to_owned(), "an array of strings"));
    };
    if a.len() > MAX_LIST {
        return Err(range_error(
            param.to_owned(),
            &format!("at most {MAX_LIST} entries"),
        ));
    }
    a.into_iter()
        .map(|s| match s {
            Value::String(s) if !s.is_empty() => Ok(s),
            _ => Err(type_error(
                param.to_owned(),
                "an array of non-empty strings",
            )),
        })
        .collect()
}

fn weir_object(v: Value, h: &mut Hints) -> Result<(), GatewayError> {
    for (k, v) in object(v, "weir")? {
        let param = format!("weir.{k}");
        match k.as_str() {
            "optimise" | "optimize" => {
                let choices = [
                    ("quality", Optimise::Quality),
                    ("speed", Optimise::Speed),
                    ("cost", Optimise::Cost),
                ];
                if let Some(o) = choice(v, param, &choices)? {
                    h.optimise = Some(o);
                }
            }
            "require_tools" => h.require.tools |= boolean(v, &param)?,
            "require_vision" => h.require.vision |= boolean(v, &param)?,
            "require_json_schema" => h.require.json_schema |= boolean(v, &param)?,
            "max_price" => {
                max_price(v, &param, &mut h.max_price)?;
                h.max_price_from = "weir";
            }
            "model_hints" => h.model_hints = string_list(v, &param)?,
            _ => return Err(unknown(param)),
        }
    }
    Ok(())
}

fn provider_object(v: Value, h: &mut Hints) -> Result<(), GatewayError> {
    for (k, v) in object(v, "provider")? {
        let param = format!("provider.{k}");
        match k.as_str() {
            "order" => h.order = string_list(v, &param)?,
            "only" => h.only = string_list(v, &param)?,
            "ignore" => h.ignore = string_list(v, &param)?,
            "allow_fallbacks" => {
                h.allow_fallbacks = match v {
                    Value::Null => true,
                    v => boolean(v, &param)?,
                }
            }
            "sort" => {
                let choices = [
                    ("price", Optimise::Cost),
                    ("throughput", Optimise::Throughput),
                    ("latency", Optimise::Latency),
                ];
                if let Some(o) = choice(v, param, &choices)? {
                    h.optimise = Some(o);
                }
            }
            "max_price" => {
                max_price(v, &param, &mut h.max_price)?;
                h.max_price_from = "provider";
            }
            // Only providers whose model supports every capability the request uses.
            "require_parameters" => {
                if boolean(v, &param)? {
                    h.require.tools = true;
                }
            }
            _ => return Err(unknown(param)),
        }
    }
    Ok(())
}

/// One of `choices` by name (`None` for JSON `null`), or a 400 listing them.
fn choice(
    v: Value,
    param: String,
    choices: &[(&str, Optimise)],
) -> Result<Option<Optimise>, GatewayError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => match choices.iter().find(|(name, _)| *name == s) {
            Some((_, o)) => Ok(Some(*o)),
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("'{n}'")).collect();
                Err(range_error(
                    param,
                    &format!("must be one of {}", names.join(", ")),
                ))
            }
        },
        _ => Err(type_error(param, "a string")),
    }
}

fn unknown(param: String) -> GatewayError {
    GatewayError::invalid_param(
        param.clone(),
        format!("Unrecognized routing hint: '{param}'. Weir enforces every hint it accepts, and does not know this one."),
    )
}

fn max_price(v: Value, param: &str, out: &mut MaxPrice) -> Result<(), GatewayError> {
    let Value::Object(o) = v else {
        return Err(type_error(param.to_owned(), "an object"));
    };
    for (k, v) in o {
        let p = format!("{param}.{k}");
        let price = match v {
            Value::Null => None,
            Value::Number(n) => Some(per_million(&n.to_string(), &p)?),
            Value::String(s) => Some(per_million(&s, &p)?),
            _ => return Err(type_error(p, "a number of US dollars per million tokens")),
        };
        match k.as_str() {
            "prompt" => out.prompt = price,
            "completion" => out.completion = price,
            _ => return Err(unknown(p)),
        }
    }
    Ok(())
}

/// A price in US dollars per million tokens, in exact decimal (no floating point).
fn per_million(s: &str, param: &str) -> Result<PerMillion, GatewayError> {
    match Micros::parse_usd(s) {
        Ok(Micros(m)) if m >= 0 => Ok(PerMillion(m)),
        _ => Err(range_error(
            param.to_owned(),
            "must be a non-negative amount of US dollars per million tokens, with at most 6 decimals",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Option<Box<Hints>>, GatewayError> {
        let Value::Object(mut m) = v else {
            unreachable!()
        };
        let out = take(&mut m);
        assert!(
            !m.contains_key("weir") && !m.contains_key("provider") && !m.contains_key("models")
        );
        out
    }

    #[test]
    fn no_hints_is_none() {
        assert_eq!(parse(json!({"model": "x"})).unwrap(), None);
        assert_eq!(parse(json!({"weir": null})).unwrap(), None);
    }

    #[test]
    fn every_member_is_read() {
        let h = parse(json!({
            "weir": {"optimise": "speed", "require_tools": true, "require_vision": true,
                     "require_json_schema": true, "max_price": {"prompt": 1.5, "completion": "2"},
                     "model_hints": ["groq/*"]},
            "provider": {"order": ["groq", "together"], "only": ["groq", "together", "x"],
                         "ignore": ["deepinfra"], "allow_fallbacks": false, "sort": "price"},
            "models": ["a", "b"]
        }))
        .unwrap()
        .unwrap();
        // weir.optimise wins over provider.sort.
        assert_eq!(h.optimise, Some(Optimise::Speed));
        assert_eq!(
            h.require,
            Require {
                tools: true,
                vision: true,
                json_schema: true
            }
        );
        assert_eq!(h.max_price.prompt, Some(PerMillion(1_500_000)));
        assert_eq!(h.max_price.completion, Some(PerMillion(2_000_000)));
        assert_eq!(h.model_hints, ["groq/*"]);
        assert_eq!(h.order, ["groq", "together"]);
        assert_eq!(h.only.len(), 3);
        assert_eq!(h.ignore, ["deepinfra"]);
        assert!(!h.allow_fallbacks);
        assert_eq!(h.models, ["a", "b"]);
    }

    #[test]
    fn openrouter_sorts_map_to_orders() {
        for (sort, want) in [
            ("price", Optimise::Cost),
            ("throughput", Optimise::Throughput),
            ("latency", Optimise::Latency),
        ] {
            let h = parse(json!({"provider": {"sort": sort}})).unwrap().unwrap();
            assert_eq!(h.optimise, Some(want));
            assert!(h.allow_fallbacks);
        }
    }

    #[test]
    fn bad_hints_name_the_member() {
        for (body, param) in [
            (json!({"weir": {"optimise": "fast"}}), "weir.optimise"),
            (json!({"weir": {"prefer": 1}}), "weir.prefer"),
            (json!({"weir": []}), "weir"),
            (
                json!({"weir": {"require_tools": "yes"}}),
                "weir.require_tools",
            ),
            (
                json!({"weir": {"max_price": {"prompt": -1}}}),
                "weir.max_price.prompt",
            ),
            (
                json!({"weir": {"max_price": {"prompt": "0.0000001"}}}),
                "weir.max_price.prompt",
            ),
            (
                json!({"provider": {"data_collection": "deny"}}),
                "provider.data_collection",
            ),
            (json!({"provider": {"sort": "random"}}), "provider.sort"),
            (json!({"provider": {"order": "groq"}}), "provider.order"),
            (json!({"models": ["a", ""]}), "models"),
            (json!({"models": vec!["m"; 17]}), "models"),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }
}
