//! `/models` (signed in), `/pricing` (public) — the live catalog at the price a team pays,
//! with search, provider and capability filters and sorting kept in the query string — and
//! `/quickstart`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::{format, viewer, EmptyState, LoadError, PageHeader},
    quickstart::snippets,
    server_fns::catalog::{list_models, ModelView, CAPABILITIES},
};

#[derive(Clone, Debug, Default, PartialEq)]
struct CatalogQuery {
    q: String,
    provider: String,
    capability: String,
    sort: String,
}

fn apply(models: Vec<ModelView>, f: &CatalogQuery) -> Vec<ModelView> {
    let q = f.q.trim().to_lowercase();
    let mut v: Vec<ModelView> = models
        .into_iter()
        .filter(|m| {
            q.is_empty() || m.id.to_lowercase().contains(&q) || m.name.to_lowercase().contains(&q)
        })
        .filter(|m| f.provider.is_empty() || m.provider_id == f.provider)
        .filter(|m| f.capability.is_empty() || m.capabilities.contains(&f.capability))
        .collect();
    match f.sort.as_str() {
        "price" => v.sort_by_key(|m| (m.input.unwrap_or(i64::MAX), m.output.unwrap_or(i64::MAX))),
        "price_desc" => {
            v.sort_by_key(|m| std::cmp::Reverse((m.input.unwrap_or(0), m.output.unwrap_or(0))))
        }
        "context" => v.sort_by_key(|m| std::cmp::Reverse(m.context_window)),
        _ => {}
    }
    v
}

fn price_cell(p: Option<i64>) -> impl IntoView {
    view! { <td class="num">{p.map(format::per_million).unwrap_or_else(|| "—".into())}</td> }
}

/// The filter form and the price table, over the live catalog.
#[component]
fn Catalog(action: &'static str) -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        let p = params.get();
        let g = |k: &str| p.get(k).unwrap_or_default();
        CatalogQuery {
            q: g("q"),
            provider: g("provider"),
            capability: g("capability"),
            sort: g("sort"),
        }
    });
    let data = Resource::new(|| (), |_| list_models());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let f = query.get();
                match data.await {
                    Err(e) => view! { <LoadError error=e/> }.into_any(),
                    Ok(all) => {
                        let mut providers: Vec<(String, String)> = all.iter().map(|m| (m.provider_id.clone(), m.provider.clone())).collect();
                        providers.sort();
                        providers.dedup();
                        let total = all.len();
                        let rows = apply(all, &f);
                        view! {
                            <form method="get" action=action class="panel filters" role="search">
                                <div class="field"><label for="c-q">"Search"</label>
                                    <input id="c-q" type="search" name="q" value=f.q.clone() placeholder="model or provider"/></div>
                                <div class="field"><label for="c-provider">"Provider"</label>
                                    <select id="c-provider" name="provider">
                                        <option value="">"All providers"</option>
                                        {providers.into_iter().map(|(id, name)| { let sel = id == f.provider; view! { <option value=id selected=sel>{name}</option> } }).collect_view()}
                                    </select></div>
                                <div class="field"><label for="c-cap">"Capability"</label>
                                    <select id="c-cap" name="capability">
                                        <option value="">"Any"</option>
                                        {CAPABILITIES.iter().map(|c| { let sel = *c == f.capability; view! { <option value=*c selected=sel>{c.replace('_', " ")}</option> } }).collect_view()}
                                    </select></div>
                                <div class="field"><label for="c-sort">"Sort by"</label>
                                    <select id="c-sort" name="sort">
                                        <option value="" selected=f.sort.is_empty()>"Name"</option>
                                        <option value="price" selected=f.sort == "price">"Price, lowest first"</option>
                                        <option value="price_desc" selected=f.sort == "price_desc">"Price, highest first"</option>
                                        <option value="context" selected=f.sort == "context">"Context, largest first"</option>
                                    </select></div>
                                <button type="submit" class="button primary">"Apply"</button>
                            </form>
                            <p class="note">{format!("{} of {} models. Prices are per million tokens and include this server's markup.", rows.len(), total)}</p>
                            {if rows.is_empty() {
                                view! { <EmptyState title="No model matches">"Clear the search or choose another provider."</EmptyState> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap">
                                        <table class="price-table">
                                            <thead><tr>
                                                <th scope="col">"Model"</th>
                                                <th scope="col">"Provider"</th>
                                                <th scope="col" class="num">"Context"</th>
                                                <th scope="col" class="num">"Max output"</th>
                                                <th scope="col">"Capabilities"</th>
                                                <th scope="col" class="num">"Input"</th>
                                                <th scope="col" class="num">"Cached input"</th>
                                                <th scope="col" class="num">"Cache write"</th>
                                                <th scope="col" class="num">"Output"</th>
                                                <th scope="col" class="num">"Reasoning"</th>
                                            </tr></thead>
                                            <tbody>
                                                {rows.into_iter().map(|m| view! {
                                                    <tr data-model=m.id.clone()>
                                                        <th scope="row"><code>{m.id.clone()}</code>
                                                            {(!m.available).then(|| view! { <span class="badge" title="No channel serves it on this server yet">"not served"</span> })}
                                                            <span class="modalities">{format!("{} → {}", m.input_modalities.join(", "), m.output_modalities.join(", "))}</span>
                                                        </th>
                                                        <td>{m.provider.clone()}</td>
                                                        <td class="num">{format::context(m.context_window)}</td>
                                                        <td class="num">{m.max_output_tokens.map(|n| format::count(u64::from(n))).unwrap_or_else(|| "—".into())}</td>
                                                        <td><ul class="chips">{m.capabilities.iter().map(|c| view! { <li class="chip">{c.replace('_', " ")}</li> }).collect_view()}</ul></td>
                                                        {price_cell(m.input)}
                                                        {price_cell(m.cached_input)}
                                                        {price_cell(m.cache_write)}
                                                        {price_cell(m.output)}
                                                        {price_cell(m.reasoning)}
                                                    </tr>
                                                }).collect_view()}
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
    }
}

#[component]
pub fn PricingPage() -> impl IntoView {
    view! {
        <Title text="Pricing · Weir"/>
        <section class="container section">
            <PageHeader title="Pricing" lead="Each request is billed from your team's prepaid balance at the model's price per million tokens, plus this server's markup. The same list as JSON: /api/public/models."/>
            <Catalog action="/pricing"/>
        </section>
    }
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    view! {
        <Title text="Models · Weir"/>
        <section class="container section">
            <PageHeader title="Models" lead="What your keys can call, at the price your team pays."/>
            <Catalog action="/models"/>
        </section>
    }
}

#[component]
pub fn QuickstartPage() -> impl IntoView {
    let base = viewer().base_url;
    let key = RwSignal::new(String::new());
    view! {
        <Title text="Quickstart · Weir"/>
        <section class="container section">
            <PageHeader title="Quickstart" lead="Point any OpenAI- or Anthropic-compatible client at this server."/>
            <div class="panel">
                <div class="field">
                    <label for="qs-key">"Your key (stays in this page)"</label>
                    <input id="qs-key" placeholder="weir_dev_… (or leave empty for $WEIR_KEY)" autocomplete="off"
                        on:input=move |ev| key.set(event_target_value(&ev))/>
                </div>
                <p>"Base URL: " <code>{format!("{base}/v1")}</code></p>
            </div>
            {move || {
                let k = key.get();
                let k = if k.trim().is_empty() { "$WEIR_KEY".to_owned() } else { k.trim().to_owned() };
                snippets(&base, &k).into_iter().map(|s| view! {
                    <div class="panel snippet" id=s.slug>
                        <h2>{s.label}</h2>
                        {(!s.note.is_empty()).then(|| view! { <p class="hint">{s.note}</p> })}
                        <pre><code>{s.code}</code></pre>
                    </div>
                }).collect_view()
            }}
        </section>
    }
}
