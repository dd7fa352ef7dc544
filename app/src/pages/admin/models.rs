//! `/admin/models`: add a model (id, upstream name, kind, context window, max output,
//! capabilities, modalities), activate or deactivate it, and set codenames with the models
//! behind them, in preference order.

use leptos::prelude::*;
use leptos_meta::Title;

use super::OperatorOnly;
use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format, LoadError, PageHeader,
    },
    server_fns::admin::{admin_list_models, AdminAddModel, AdminSetCodename, AdminSetModelActive},
};

#[component]
pub fn AdminModelsPage() -> impl IntoView {
    view! { <OperatorOnly><AdminModels/></OperatorOnly> }
}

#[component]
fn AdminModels() -> impl IntoView {
    let add = ServerAction::<AdminAddModel>::new();
    let toggle = ServerAction::<AdminSetModelActive>::new();
    let codename = ServerAction::<AdminSetCodename>::new();
    let err = action_error(add.value());
    let toggle_err = action_error(toggle.value());
    let cn_err = action_error(codename.value());
    let data = Resource::new(
        move || {
            (
                add.version().get(),
                toggle.version().get(),
                codename.version().get(),
            )
        },
        |_| admin_list_models(),
    );
    let added = move || {
        add.value()
            .get()
            .and_then(|r| r.ok())
            .map(|_| view! { <p class="notice" role="status">"Model added."</p> })
    };
    view! {
        <Title text="Models · Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Models and codenames" lead="What Weir sells. A model belongs to a provider; a channel of that provider serves it. Give it a price on the tariffs page."/>
            <p><a href="/admin">"← Admin"</a>" · "<a href="/admin/tariffs">"Tariffs →"</a></p>
            <div class="panel">
                <h2>"Add a model"</h2>
                <ActionForm action=add attr:class="form-grid">
                    <CsrfField/>
                    <div class="field"><label for="m-id">"Model id (what clients ask for)"</label>
                        <input id="m-id" name="id" required maxlength="128" placeholder="acme/large"/>
                        <FieldError err name="id"/></div>
                    <div class="field"><label for="m-provider">"Provider id"</label>
                        <input id="m-provider" name="provider_id" required maxlength="128"/>
                        <FieldError err name="provider_id"/></div>
                    <div class="field"><label for="m-upstream">"Upstream model name"</label>
                        <input id="m-upstream" name="upstream_model" required maxlength="200"/>
                        <FieldError err name="upstream_model"/></div>
                    <div class="field"><label for="m-kind">"Kind"</label>
                        <select id="m-kind" name="kind">
                            <option value="chat">"chat"</option>
                            <option value="embedding">"embedding"</option>
                        </select></div>
                    <div class="field"><label for="m-context">"Context window (tokens)"</label>
                        <input id="m-context" name="context_window" required inputmode="numeric" value="128000"/>
                        <FieldError err name="context_window"/></div>
                    <div class="field"><label for="m-max">"Max output tokens"</label>
                        <input id="m-max" name="max_output_tokens" inputmode="numeric"/>
                        <FieldError err name="max_output_tokens"/></div>
                    <div class="field"><label for="m-caps">"Capabilities (tools, vision, reasoning, json_schema)"</label>
                        <input id="m-caps" name="capabilities"/>
                        <FieldError err name="capabilities"/></div>
                    <div class="field"><label for="m-in">"Input modalities"</label>
                        <input id="m-in" name="input_modalities" value="text"/></div>
                    <div class="field"><label for="m-out">"Output modalities"</label>
                        <input id="m-out" name="output_modalities" value="text"/></div>
                    <button type="submit" class="button primary">"Add model"</button>
                </ActionForm>
                <FormError err/>
                {added}
            </div>
            <FormError err=toggle_err/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(all) => view! {
                            <div class="panel">
                                <h2>"Codenames"</h2>
                                <ActionForm action=codename attr:class="form-inline">
                                    <CsrfField/>
                                    <div class="field"><label for="cn-name">"Codename"</label>
                                        <input id="cn-name" name="name" required maxlength="128"/>
                                        <FieldError err=cn_err name="name"/></div>
                                    <div class="field"><label for="cn-models">"Models, in order"</label>
                                        <input id="cn-models" name="models" required/>
                                        <FieldError err=cn_err name="models"/></div>
                                    <div class="field"><label for="cn-desc">"Description"</label>
                                        <input id="cn-desc" name="description"/></div>
                                    <button type="submit" class="button secondary">"Set codename"</button>
                                </ActionForm>
                                <FormError err=cn_err/>
                                <ul class="plain codenames">
                                    {all.codenames.into_iter().map(|c| view! {
                                        <li><strong>{c.name}</strong>" → "{c.models.join(", ")}<span class="muted">{if c.description.is_empty() { String::new() } else { format!(" — {}", c.description) }}</span></li>
                                    }).collect_view()}
                                </ul>
                            </div>
                            <div class="table-wrap">
                                <table class="models">
                                    <thead><tr>
                                        <th scope="col">"Model"</th>
                                        <th scope="col">"Provider"</th>
                                        <th scope="col">"Upstream name"</th>
                                        <th scope="col">"Kind"</th>
                                        <th scope="col" class="num">"Context"</th>
                                        <th scope="col" class="num">"Max output"</th>
                                        <th scope="col">"Capabilities"</th>
                                        <th scope="col">"Modalities"</th>
                                        <th scope="col">"Source"</th>
                                        <th scope="col">"Status"</th>
                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr></thead>
                                    <tbody>
                                        {all.models.into_iter().map(|m| {
                                            let next = !m.active;
                                            let row_id = m.id.clone();
                                            let head_id = m.id.clone();
                                            view! {
                                                <tr data-model=row_id>
                                                    <th scope="row">{head_id}</th>
                                                    <td>{m.provider_id}</td>
                                                    <td>{m.upstream_model}</td>
                                                    <td>{m.kind}</td>
                                                    <td class="num">{format::context(m.context_window)}</td>
                                                    <td class="num">{m.max_output_tokens.map_or("-".to_owned(), |n| format::count(u64::from(n)))}</td>
                                                    <td>{m.capabilities.join(", ")}</td>
                                                    <td>{format!("{} → {}", m.input_modalities.join("+"), m.output_modalities.join("+"))}</td>
                                                    <td>{m.source}</td>
                                                    <td><span class=if m.active { "status status-active" } else { "status status-revoked" }>{if m.active { "active" } else { "inactive" }}</span></td>
                                                    <td>
                                                        <ActionForm action=toggle>
                                                            <CsrfField/>
                                                            <input type="hidden" name="model_id" value=m.id/>
                                                            <input type="hidden" name="active" value=next.to_string()/>
                                                            <button type="submit" class="button secondary small">{if next { "Activate" } else { "Deactivate" }}</button>
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
