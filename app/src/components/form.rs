//! Form helpers: the CSRF token every mutation posts, errors beside the field that caused
//! them, and the form-level error above the buttons.

use leptos::prelude::*;

use crate::error::AppError;

/// The hidden CSRF field (the session's token).
#[component]
pub fn CsrfField() -> impl IntoView {
    let token = super::viewer().csrf.unwrap_or_default();
    view! { <input type="hidden" name="csrf" value=token/> }
}

/// The error about `name`, shown under its input.
#[component]
pub fn FieldError(err: Signal<Option<AppError>>, name: &'static str) -> impl IntoView {
    let id = format!("{name}-error");
    move || {
        err.get().and_then(|e| e.for_field(name)).map(|m| {
            view! {
                <p class="field-error" id=id.clone() role="alert">
                    {m}
                </p>
            }
        })
    }
}

/// An error that is not about one field.
#[component]
pub fn FormError(err: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        err.get()
            .filter(|e| !matches!(e, AppError::Field { .. }))
            .map(|e| {
                view! {
                    <p class="form-error" role="alert">
                        {e.to_string()}
                    </p>
                }
            })
    }
}

/// The error of an action's last result, as a signal for [`FieldError`] and [`FormError`].
pub fn action_error<T, S>(value: S) -> Signal<Option<AppError>>
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
{
    Signal::derive(move || value.get().and_then(|r| r.err()))
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
