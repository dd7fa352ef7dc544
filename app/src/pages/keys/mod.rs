//! `/keys`: create a key (its secret shown once, with a copy button), list and revoke keys.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format,
        limits::LimitsForm,
        EmptyState, LoadError, PageHeader,
    },
    server_fns::keys::{list_keys, CreateKey, KeyView, RevokeKey},
};

/// Copies `text` to the clipboard (in the browser; nothing on the server).
fn copy(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

#[component]
fn SecretDialog(secret: RwSignal<Option<String>>) -> impl IntoView {
    let copied = RwSignal::new(false);
    move || {
        secret.get().map(|s| {
            let for_copy = s.clone();
            view! {
                <div class="dialog-backdrop">
                    <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="secret-title">
                        <h2 id="secret-title">"Your new API key"</h2>
                        <p>"Copy it now: this is the only time Weir shows it. Weir keeps only a hash."</p>
                        <div class="secret-row">
                            <code class="secret" data-testid="new-key-secret">{s}</code>
                            <button type="button" class="button secondary" on:click=move |_| {
                                copy(&for_copy);
                                copied.set(true);
                            }>{move || if copied.get() { "Copied" } else { "Copy" }}</button>
                        </div>
                        <a class="button primary" href="/keys" on:click=move |ev| {
                            ev.prevent_default();
                            secret.set(None);
                            copied.set(false);
                        }>"Done"</a>
                    </div>
                </div>
            }
        })
    }
}

fn key_row(
    k: KeyView,
    revoke: ServerAction<RevokeKey>,
    can_manage: bool,
    saved: RwSignal<u32>,
) -> AnyView {
    let status = if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| e <= now_ms()) {
        "expired"
    } else {
        "active"
    };
    let id = k.id;
    let edit_label = format!("Edit limits of {}", k.name);
    view! {
        <tr class=format!("key-{status}")>
            <th scope="row">{k.name.clone()}</th>
            <td><code>{format!("{}_…{}", k.prefix, k.last4)}</code></td>
            <td><span class=format!("env env-{}", k.env)>{k.env.clone()}</span></td>
            <td>{k.created_by.clone().unwrap_or_else(|| "CLI".into())}</td>
            <td>{format::time(k.created_at)}</td>
            <td>{k.last_used_at.map(format::time).unwrap_or_else(|| "never".into())}</td>
            <td>{k.expires_at.map(format::time).unwrap_or_else(|| "never".into())}</td>
            <td><span class=format!("status status-{status}")>{status}</span></td>
            <td class="limits-cell">
                <span class="limits-summary" data-testid="key-limits">{k.limits.summary.clone()}</span>
            </td>
            <td>
                {k.can_revoke.then(|| view! {
                    <ActionForm action=revoke>
                        <CsrfField/>
                        <input type="hidden" name="key_id" value=id.to_string()/>
                        <button type="submit" class="button danger small" aria-label=format!("Revoke {}", k.name)>"Revoke"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
        {(can_manage && k.revoked_at.is_none()).then(|| view! {
            <tr class="limits-row">
                <td colspan="10">
                    <details class="limits-edit" data-testid=format!("limits-{id}")>
                        <summary>{edit_label}</summary>
                        <LimitsForm scope="key" key_id=id limits=k.limits.clone() saved/>
                    </details>
                </td>
            </tr>
        }.into_any())}
    }
    .into_any()
}

/// Now, in Unix ms, on either side.
fn now_ms() -> i64 {
    #[cfg(feature = "ssr")]
    {
        weir_core::db::now_ms()
    }
    #[cfg(not(feature = "ssr"))]
    {
        // f64 here is a clock reading for display only, never money.
        #[allow(clippy::cast_possible_truncation)]
        let now = js_sys::Date::now() as i64;
        now
    }
}

#[component]
pub fn KeysPage() -> impl IntoView {
    let create = ServerAction::<CreateKey>::new();
    let revoke = ServerAction::<RevokeKey>::new();
    let err = action_error(create.value());
    let revoke_err = action_error(revoke.value());
    let saved = RwSignal::new(0u32);
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get(), saved.get()),
        |_| list_keys(),
    );
    view! {
        <Title text="API keys · Weir"/>
        <section class="container section">
            <PageHeader title="API keys" lead="Keys call the API for the current team. Each is scoped to an environment and can be revoked on its own."/>
            <div class="panel">
                <h2>"Create a key"</h2>
                <ActionForm action=create attr:class="form-inline">
                    <CsrfField/>
                    <div class="field">
                        <label for="key-name">"Name"</label>
                        <input id="key-name" name="name" required maxlength="64" placeholder="e.g. backend prod"/>
                        <FieldError err name="name"/>
                    </div>
                    <div class="field">
                        <label for="key-env">"Environment"</label>
                        <select id="key-env" name="environment">
                            <option value="dev">"dev"</option>
                            <option value="staging">"staging"</option>
                            <option value="prod">"prod"</option>
                        </select>
                        <FieldError err name="environment"/>
                    </div>
                    <div class="field">
                        <label for="key-expiry">"Expires after (days, optional)"</label>
                        <input id="key-expiry" name="expires_in_days" inputmode="numeric" placeholder="never"/>
                        <FieldError err name="expires_in_days"/>
                    </div>
                    <button type="submit" class="button primary" disabled=move || create.pending().get()>"Create key"</button>
                </ActionForm>
                <FormError err/>
            </div>
            <FormError err=revoke_err/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(page) => {
                            let secret = RwSignal::new(page.fresh_secret.clone());
                            view! {
                                <SecretDialog secret/>
                                {if page.keys.is_empty() {
                                    view! {
                                        <EmptyState title="No keys yet">
                                            "Create one above, then try it with the " <a href="/quickstart">"Quickstart"</a> "."
                                        </EmptyState>
                                    }.into_any()
                                } else {
                                    view! {
                                        <div class="table-wrap">
                                            <table class="keys-table">
                                                <thead><tr>
                                                    <th scope="col">"Name"</th>
                                                    <th scope="col">"Key"</th>
                                                    <th scope="col">"Environment"</th>
                                                    <th scope="col">"Created by"</th>
                                                    <th scope="col">"Created"</th>
                                                    <th scope="col">"Last used"</th>
                                                    <th scope="col">"Expires"</th>
                                                    <th scope="col">"Status"</th>
                                                    <th scope="col">"Limits"</th>
                                                    <th scope="col"><span class="sr-only">"Actions"</span></th>
                                                </tr></thead>
                                                <tbody>
                                                    {page.keys.into_iter().map(|k| key_row(k, revoke, page.can_manage, saved)).collect_view()}
                                                </tbody>
                                            </table>
                                        </div>
                                    }.into_any()
                                }}
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}
