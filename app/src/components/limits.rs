//! The limits form of a key or a team: requests, tokens and concurrency per minute, allowed
//! models and spend caps, each empty for none. It works without JavaScript (a plain form post).

use leptos::prelude::*;

use crate::{
    components::form::{action_error, CsrfField, FieldError, FormError},
    server_fns::limits::{LimitsView, SetLimits},
};

#[component]
pub fn LimitsForm(
    /// `"key"` or `"team"`.
    scope: &'static str,
    #[prop(optional)] key_id: Option<i64>,
    limits: LimitsView,
    /// Bumped after each save, so that the page reloads what it shows.
    #[prop(optional)]
    saved: Option<RwSignal<u32>>,
) -> AnyView {
    let set = ServerAction::<SetLimits>::new();
    let err = action_error(set.value());
    if let Some(saved) = saved {
        Effect::new(move |_| {
            if set.version().get() > 0 && matches!(set.value().get(), Some(Ok(()))) {
                saved.update(|v| *v += 1);
            }
        });
    }
    let prefix = match key_id {
        Some(id) => format!("{scope}-{id}"),
        None => scope.to_owned(),
    };
    let field =
        move |name: &'static str, label: &'static str, value: String, hint: &'static str| {
            let id = format!("{prefix}-{name}");
            view! {
                <div class="field">
                    <label for=id.clone()>{label}</label>
                    <input id=id name=name value=value placeholder=hint/>
                    <FieldError err name/>
                </div>
            }
        };
    view! {
        <ActionForm action=set attr:class="form-grid limits-form">
            <CsrfField/>
            <input type="hidden" name="scope" value=scope/>
            {key_id.map(|id| view! { <input type="hidden" name="key_id" value=id.to_string()/> })}
            {field("rpm", "Requests per minute", limits.rpm, "none")}
            {field("tpm", "Tokens per minute", limits.tpm, "none")}
            {field("concurrency", "Requests at once", limits.concurrency, "none")}
            {field("models", "Allowed models", limits.models, "any, e.g. openai/*, demo/echo")}
            {field("daily", "Spend cap per day ($, UTC)", limits.daily, "none")}
            {field("monthly", "Spend cap per month ($)", limits.monthly, "none")}
            {field("total", "Spend cap in total ($)", limits.total, "none")}
            <p class="hint">
                "Spent today $" {limits.spent_day} ", this month $" {limits.spent_month}
                ", in total $" {limits.spent_total} ". Every replica applies a change within a second."
            </p>
            <button type="submit" class="button primary small" disabled=move || set.pending().get()>"Save limits"</button>
            {move || matches!(set.value().get(), Some(Ok(()))).then(|| view! { <span class="saved" role="status">"Saved"</span> })}
        </ActionForm>
        <FormError err/>
    }
    .into_any()
}
