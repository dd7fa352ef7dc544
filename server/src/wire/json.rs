//! Typed reads out of a decoded JSON object, each failing with a 400 that names the parameter,
//! the way OpenAI words its own validation errors.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::GatewayError;

pub type Obj = Map<String, Value>;

/// Parses a request body that must be a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Obj, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::invalid(
            "The request body is empty; expected a JSON object.",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(GatewayError::invalid(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(GatewayError::invalid(format!(
            "We could not parse the JSON body of your request: {e}."
        ))),
    }
}

pub fn type_error(param: impl Into<Cow<'static, str>>, expected: &str) -> GatewayError {
    let param = param.into();
    GatewayError::invalid_param(
        param.clone(),
        format!("Invalid type for '{param}': expected {expected}."),
    )
}

pub fn range_error(param: impl Into<Cow<'static, str>>, rule: &str) -> GatewayError {
    let param = param.into();
    GatewayError::invalid_param(
        param.clone(),
        format!("Invalid value for '{param}': {rule}."),
    )
}

pub fn missing(param: &'static str) -> GatewayError {
    GatewayError::invalid_param(param, format!("Missing required parameter: '{param}'."))
}

/// Removes `key`; JSON `null` counts as absent.
pub fn take(m: &mut Obj, key: &str) -> Option<Value> {
    match m.remove(key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

pub fn take_string(m: &mut Obj, key: &'static str) -> Result<Option<String>, GatewayError> {
    match take(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(key, "a string")),
    }
}

pub fn take_bool(m: &mut Obj, key: &'static str) -> Result<Option<bool>, GatewayError> {
    match take(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(type_error(key, "a boolean")),
    }
}

/// A number within `[min, max]`.
pub fn take_f64(
    m: &mut Obj,
    key: &'static str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, GatewayError> {
    match take(m, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(range_error(
                key,
                &format!("must be between {min} and {max}"),
            )),
        },
        Some(_) => Err(type_error(key, "a number")),
    }
}

/// An integer within `[min, max]`.
pub fn take_int(
    m: &mut Obj,
    key: &'static str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, GatewayError> {
    match take(m, key) {
        None => Ok(None),
        Some(v) => int_value(&v, key, min, max).map(Some),
    }
}

pub fn int_value(
    v: &Value,
    param: impl Into<Cow<'static, str>>,
    min: i64,
    max: i64,
) -> Result<i64, GatewayError> {
    let param = param.into();
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(x) if (min..=max).contains(&x) => Ok(x),
            Some(_) | None if n.is_i64() || n.is_u64() => Err(range_error(
                param,
                &format!("must be an integer between {min} and {max}"),
            )),
            _ => Err(type_error(param, "an integer")),
        },
        _ => Err(type_error(param, "an integer")),
    }
}

pub fn take_u32(
    m: &mut Obj,
    key: &'static str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, GatewayError> {
    Ok(take_int(m, key, i64::from(min), i64::from(max))?.and_then(|x| u32::try_from(x).ok()))
}

pub fn take_object(m: &mut Obj, key: &'static str) -> Result<Option<Obj>, GatewayError> {
    match take(m, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(type_error(key, "an object")),
    }
}

pub fn take_array(m: &mut Obj, key: &'static str) -> Result<Option<Vec<Value>>, GatewayError> {
    match take(m, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(type_error(key, "an array")),
    }
}

/// Reads a string field of a nested object, naming it by its full path in errors.
pub fn str_field<'a>(m: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, GatewayError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(format!("{path}.{key}"), "a string")),
    }
}

/// The owned version of [`str_field`].
pub fn take_str_field(m: &mut Obj, key: &str, path: &str) -> Result<Option<String>, GatewayError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(format!("{path}.{key}"), "a string")),
    }
}

/// Serialises a JSON value into bytes; a `Value` always serialises, so the fallback is never
/// taken.
pub fn to_bytes(v: &Value) -> bytes::Bytes {
    serde_json::to_vec(v)
        .map(bytes::Bytes::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_checked() {
        let mut m = json!({"a": -1, "b": 9223372036854775808u64, "c": 1.5, "d": "x", "t": 3.0})
            .as_object()
            .cloned()
            .unwrap();
        assert!(take_u32(&mut m, "a", 0, 10).is_err());
        assert!(take_int(&mut m, "b", 0, i64::MAX).is_err());
        assert!(take_int(&mut m, "c", 0, 10).is_err());
        assert!(take_f64(&mut m, "d", 0.0, 2.0).is_err());
        assert!(take_f64(&mut m, "t", 0.0, 2.0).is_err());
        assert_eq!(take_u32(&mut m, "missing", 0, 1).unwrap(), None);
    }
}
