//! `/admin/tariffs`: set a model's price (upstream cost per line item, per million tokens,
//! plus markup in basis points), for every channel or one, now or from a scheduled UTC time;
//! and the history of versions with their state. Requests keep the price they were admitted
//! with.

use leptos::prelude::*;
use leptos_meta::Title;

use super::OperatorOnly;
use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format, LoadError, PageHeader,
    },
    server_fns::admin::{admin_list_tariffs, AdminSetTariff},
};

#[component]
pub fn AdminTariffsPage() -> impl IntoView {
    view! { <OperatorOnly><AdminTariffs/></OperatorOnly> }
}

#[component]
fn AdminTariffs() -> impl IntoView {
    let set = ServerAction::<AdminSetTariff>::new();
    let err = action_error(set.value());
    let data = Resource::new(
        move || set.version().get(),
        |_| admin_list_tariffs(String::new()),
    );
    let saved = move || {
        set.value()
            .get()
            .and_then(|r| r.ok())
            .map(|id| view! { <p class="notice" role="status">{format!("Tariff version {id} saved.")}</p> })
    };
    let opt = |p: Option<i64>| p.map_or("-".to_owned(), format::usd);
    view! {
        <Title text="Tariffs · Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Tariffs" lead="Prices in dollars per million tokens (the upstream's cost) plus your markup in basis points (100 = 1 %). A new version applies to requests admitted after it takes effect."/>
            <p><a href="/admin">"← Admin"</a>" · "<a href="/admin/models">"Models →"</a></p>
            <div class="panel">
                <h2>"Set a price"</h2>
                <ActionForm action=set attr:class="form-grid">
                    <CsrfField/>
                    <div class="field"><label for="t-model">"Model id"</label>
                        <input id="t-model" name="model_id" required/>
                        <FieldError err name="model_id"/></div>
                    <div class="field"><label for="t-channel">"Only on channel (name or id; empty: all)"</label>
                        <input id="t-channel" name="channel"/>
                        <FieldError err name="channel"/><FieldError err name="channel_id"/></div>
                    <div class="field"><label for="t-input">"Input $ / Mtok"</label>
                        <input id="t-input" name="input" required inputmode="decimal" placeholder="2.50"/>
                        <FieldError err name="input"/></div>
                    <div class="field"><label for="t-cached">"Cached input $ / Mtok (empty: input price)"</label>
                        <input id="t-cached" name="cached_input" inputmode="decimal"/>
                        <FieldError err name="cached_input"/></div>
                    <div class="field"><label for="t-write">"Cache write $ / Mtok (empty: input price)"</label>
                        <input id="t-write" name="cache_write" inputmode="decimal"/>
                        <FieldError err name="cache_write"/></div>
                    <div class="field"><label for="t-output">"Output $ / Mtok"</label>
                        <input id="t-output" name="output" required inputmode="decimal" placeholder="10.00"/>
                        <FieldError err name="output"/></div>
                    <div class="field"><label for="t-reasoning">"Reasoning $ / Mtok (empty: output price)"</label>
                        <input id="t-reasoning" name="reasoning" inputmode="decimal"/>
                        <FieldError err name="reasoning"/></div>
                    <div class="field"><label for="t-markup">"Markup (basis points)"</label>
                        <input id="t-markup" name="markup_bps" inputmode="numeric" value="0"/>
                        <FieldError err name="markup_bps"/></div>
                    <div class="field"><label for="t-from">"Takes effect (UTC; empty: now)"</label>
                        <input id="t-from" name="effective_from" type="datetime-local"/>
                        <FieldError err name="effective_from"/></div>
                    <button type="submit" class="button primary">"Save price"</button>
                </ActionForm>
                <FormError err/>
                {saved}
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(rows) => view! {
                            <h2>"History"</h2>
                            <div class="table-wrap">
                                <table class="tariffs">
                                    <thead><tr>
                                        <th scope="col">"Model"</th>
                                        <th scope="col">"Channel"</th>
                                        <th scope="col" class="num">"Input"</th>
                                        <th scope="col" class="num">"Cached"</th>
                                        <th scope="col" class="num">"Cache write"</th>
                                        <th scope="col" class="num">"Output"</th>
                                        <th scope="col" class="num">"Reasoning"</th>
                                        <th scope="col" class="num">"Markup"</th>
                                        <th scope="col">"From (UTC)"</th>
                                        <th scope="col">"State"</th>
                                        <th scope="col">"Source"</th>
                                    </tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|v| { let (row_model, row_state) = (v.model_id.clone(), v.state.clone()); view! {
                                            <tr data-model=row_model data-state=row_state>
                                                <th scope="row">{v.model_id}</th>
                                                <td>{v.channel.unwrap_or_else(|| "all".into())}</td>
                                                <td class="num">{format::usd(v.input)}</td>
                                                <td class="num">{opt(v.cached_input)}</td>
                                                <td class="num">{opt(v.cache_write)}</td>
                                                <td class="num">{format::usd(v.output)}</td>
                                                <td class="num">{opt(v.reasoning)}</td>
                                                <td class="num">{format!("{} bps", v.markup_bps)}</td>
                                                <td>{format::time(v.effective_from)}</td>
                                                <td>{v.state}</td>
                                                <td>{v.source}</td>
                                            </tr>
                                        }}).collect_view()}
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
