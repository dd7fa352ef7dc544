//! `/admin/channels`: add a channel of any kind with its upstream key (shown afterwards only
//! as its last four characters), enable or disable it, send a "Test" request through it, and
//! see its health at a glance: this replica's breaker state and the last hour's requests,
//! 5xx share, mean latency and last failure from the request log.

use leptos::prelude::*;
use leptos_meta::Title;

use super::OperatorOnly;
use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format, LoadError, PageHeader,
    },
    server_fns::admin::{
        admin_list_channels, AdminAddChannel, AdminSetChannelEnabled, AdminTestChannel,
    },
};

#[component]
pub fn AdminChannelsPage() -> impl IntoView {
    view! { <OperatorOnly><AdminChannels/></OperatorOnly> }
}

#[component]
fn AdminChannels() -> impl IntoView {
    let add = ServerAction::<AdminAddChannel>::new();
    let toggle = ServerAction::<AdminSetChannelEnabled>::new();
    let test = ServerAction::<AdminTestChannel>::new();
    let err = action_error(add.value());
    let toggle_err = action_error(toggle.value());
    let test_err = action_error(test.value());
    let data = Resource::new(
        move || {
            (
                add.version().get(),
                toggle.version().get(),
                test.version().get(),
            )
        },
        |_| admin_list_channels(),
    );
    let added = move || {
        add.value()
            .get()
            .and_then(|r| r.ok())
            .map(|id| view! { <p class="notice" role="status">{format!("Channel added (id {id}).")}</p> })
    };
    let tested = move || {
        test.value().get().and_then(|r| r.ok()).map(|o| {
            view! {
                <p class=if o.ok { "notice test-result" } else { "form-error test-result" } role="status" data-channel=o.channel_id.to_string()>
                    {format!("Test of channel {}: {}", o.channel_id, o.summary)}
                </p>
            }
        })
    };
    view! {
        <Title text="Channels · Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Channels" lead="Upstream endpoints and their keys. Keys are encrypted at rest and shown only by their last four characters. A base URL on a private or loopback address needs the channel marked local."/>
            <p><a href="/admin">"← Admin"</a></p>
            <div class="panel">
                <h2>"Add a channel"</h2>
                <ActionForm action=add attr:class="form-grid">
                    <CsrfField/>
                    <div class="field"><label for="ch-name">"Name"</label>
                        <input id="ch-name" name="name" required maxlength="128" placeholder="openai-main"/>
                        <FieldError err name="name"/></div>
                    <div class="field"><label for="ch-provider">"Provider id"</label>
                        <input id="ch-provider" name="provider_id" required maxlength="128" placeholder="openai"/>
                        <FieldError err name="provider_id"/></div>
                    <div class="field"><label for="ch-kind">"Kind"</label>
                        <select id="ch-kind" name="kind">
                            <option value="openai">"OpenAI-compatible"</option>
                            <option value="anthropic">"Anthropic"</option>
                            <option value="gemini">"Gemini"</option>
                            <option value="cohere">"Cohere"</option>
                        </select>
                        <FieldError err name="kind"/></div>
                    <div class="field"><label for="ch-base">"Base URL"</label>
                        <input id="ch-base" name="base_url" required type="url" placeholder="https://api.openai.com/v1"/>
                        <FieldError err name="base_url"/></div>
                    <div class="field"><label for="ch-key">"Upstream API key"</label>
                        <input id="ch-key" name="api_key" required type="password" autocomplete="off"/>
                        <FieldError err name="api_key"/></div>
                    <div class="field"><label for="ch-priority">"Priority (higher first)"</label>
                        <input id="ch-priority" name="priority" inputmode="numeric" value="0"/>
                        <FieldError err name="priority"/></div>
                    <div class="field"><label for="ch-weight">"Weight"</label>
                        <input id="ch-weight" name="weight" inputmode="numeric" value="1"/>
                        <FieldError err name="weight"/></div>
                    <div class="field"><label for="ch-models">"Models served (ids, comma-separated; empty: all of the provider's)"</label>
                        <input id="ch-models" name="models"/>
                        <FieldError err name="models"/></div>
                    <div class="field checkbox"><label><input type="checkbox" name="local" id="ch-local"/>" Local (allow a private or loopback address)"</label></div>
                    <div class="field checkbox"><label><input type="checkbox" name="disabled" id="ch-disabled"/>" Add disabled"</label></div>
                    <button type="submit" class="button primary">"Add channel"</button>
                </ActionForm>
                <FormError err/>
                {added}
            </div>
            <FormError err=toggle_err/>
            <FormError err=test_err/>
            {tested}
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(rows) => view! {
                            <div class="table-wrap">
                                <table class="channels">
                                    <thead><tr>
                                        <th scope="col">"Channel"</th>
                                        <th scope="col">"Provider"</th>
                                        <th scope="col">"Kind"</th>
                                        <th scope="col">"Base URL"</th>
                                        <th scope="col">"Key"</th>
                                        <th scope="col" class="num">"Priority / weight"</th>
                                        <th scope="col">"Status"</th>
                                        <th scope="col">"Breaker"</th>
                                        <th scope="col" class="num">"Requests, 1 h"</th>
                                        <th scope="col" class="num">"5xx"</th>
                                        <th scope="col" class="num">"Mean latency"</th>
                                        <th scope="col">"Last error"</th>
                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|c| {
                                            let id = c.id.to_string();
                                            let id2 = id.clone();
                                            let row_name = c.name.clone();
                                            let next = !c.enabled;
                                            let key = if c.key_last4.is_empty() { c.key_source.clone() } else { format!("…{} ({})", c.key_last4, c.key_source) };
                                            let err_rate = if c.requests_1h > 0 { format!("{} ({}%)", c.errors_1h, c.errors_1h * 100 / c.requests_1h) } else { "-".to_owned() };
                                            let last = c.last_error.clone().map(|e| format!("{e}, {}", format::time(c.last_error_at.unwrap_or(0)))).unwrap_or_else(|| "-".into());
                                            view! {
                                                <tr data-channel=row_name>
                                                    <th scope="row">{c.name.clone()}{if c.is_local { " (local)" } else { "" }}</th>
                                                    <td>{c.provider_id.clone()}</td>
                                                    <td>{c.wire.clone()}</td>
                                                    <td class="base-url"><code>{c.base_url.clone()}</code></td>
                                                    <td class="key"><code>{key}</code></td>
                                                    <td class="num">{format!("{} / {}", c.priority, c.weight)}</td>
                                                    <td><span class=if c.enabled { "status status-active" } else { "status status-revoked" }>{if c.enabled { "enabled" } else { "disabled" }}</span></td>
                                                    <td>{c.breaker.clone()}</td>
                                                    <td class="num">{c.requests_1h}</td>
                                                    <td class="num">{err_rate}</td>
                                                    <td class="num">{c.avg_latency_ms.map_or("-".to_owned(), |m| format!("{m} ms"))}</td>
                                                    <td>{last}</td>
                                                    <td class="actions">
                                                        <ActionForm action=test>
                                                            <CsrfField/>
                                                            <input type="hidden" name="channel_id" value=id2/>
                                                            <button type="submit" class="button secondary small">"Test"</button>
                                                        </ActionForm>
                                                        <ActionForm action=toggle>
                                                            <CsrfField/>
                                                            <input type="hidden" name="channel_id" value=id/>
                                                            <input type="hidden" name="enabled" value=next.to_string()/>
                                                            <button type="submit" class="button secondary small">{if next { "Enable" } else { "Disable" }}</button>
                                                        </ActionForm>
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
