//! `/usage`: the request table with filters kept in the query string, keyset pages, totals
//! per model and per key for the filtered range, and CSV export of exactly those rows.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::form::urlencode,
    components::{format, EmptyState, LoadError, PageHeader},
    server_fns::usage::{list_usage, RequestView, TotalsView, UsageQuery},
};

/// Requests as a table (also on the dashboard).
#[component]
pub fn RequestTable(rows: Vec<RequestView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="usage-table">
                <thead><tr>
                    <th scope="col">"Time (UTC)"</th>
                    <th scope="col">"Key"</th>
                    <th scope="col">"Model"</th>
                    <th scope="col">"Provider"</th>
                    <th scope="col" class="num">"Input"</th>
                    <th scope="col" class="num">"Cached"</th>
                    <th scope="col" class="num">"Cache write"</th>
                    <th scope="col" class="num">"Output"</th>
                    <th scope="col" class="num">"Reasoning"</th>
                    <th scope="col" class="num">"Cost"</th>
                    <th scope="col" class="num">"Latency"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Usage"</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|r| {
                        let ok = r.status < 400;
                        view! {
                            <tr>
                                <td class="nowrap">{format::time(r.created_at)}</td>
                                <td>{r.key_name}</td>
                                <td><code>{r.model}</code></td>
                                <td>{r.provider.unwrap_or_default()}</td>
                                <td class="num">{format::count(r.input_tokens)}</td>
                                <td class="num">{format::count(r.cached_tokens)}</td>
                                <td class="num">{format::count(r.cache_write_tokens)}</td>
                                <td class="num">{format::count(r.output_tokens)}</td>
                                <td class="num">{format::count(r.reasoning_tokens)}</td>
                                <td class="num">{format::usd(r.cost)}</td>
                                <td class="num">{format!("{} ms", format::count(r.latency_ms))}</td>
                                <td><span class=if ok { "status status-active" } else { "status status-revoked" }>{r.status}</span></td>
                                <td>{if r.usage_source == "estimated" { "estimated" } else if r.usage_source == "upstream" { "reported" } else { "none" }}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn totals_table(title: &'static str, rows: Vec<(String, TotalsView)>) -> impl IntoView {
    view! {
        <div class="panel">
            <h2>{title}</h2>
            <div class="table-wrap">
                <table>
                    <thead><tr>
                        <th scope="col">"Name"</th>
                        <th scope="col" class="num">"Requests"</th>
                        <th scope="col" class="num">"Input"</th>
                        <th scope="col" class="num">"Output"</th>
                        <th scope="col" class="num">"Cost"</th>
                    </tr></thead>
                    <tbody>
                        {rows.into_iter().map(|(name, t)| view! {
                            <tr>
                                <th scope="row">{name}</th>
                                <td class="num">{format::count(t.requests)}</td>
                                <td class="num">{format::count(t.input_tokens)}</td>
                                <td class="num">{format::count(t.output_tokens)}</td>
                                <td class="num">{format::usd(t.cost)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </div>
    }
}

/// The query string of a filter (without the page cursor).
fn filter_qs(q: &UsageQuery) -> String {
    [
        ("from", &q.from),
        ("to", &q.to),
        ("key", &q.key),
        ("model", &q.model),
        ("status", &q.status),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={}", urlencode(v)))
    .collect::<Vec<_>>()
    .join("&")
}

#[component]
pub fn UsagePage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        let p = params.get();
        let g = |k: &str| p.get(k).unwrap_or_default();
        UsageQuery {
            from: g("from"),
            to: g("to"),
            key: g("key"),
            model: g("model"),
            status: g("status"),
            after: g("after"),
        }
    });
    let data = Resource::new(move || query.get(), list_usage);
    view! {
        <Title text="Usage · Weir"/>
        <section class="container section">
            <PageHeader title="Usage" lead="Every request of the current team, newest first. Dates are UTC days."/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let q = query.get_untracked();
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(page) => {
                            let qs = filter_qs(&q);
                            let csv = format!("/api/usage/export.csv?{qs}");
                            let next = page.next.clone().map(|c| {
                                let sep = if qs.is_empty() { "" } else { "&" };
                                format!("/usage?{qs}{sep}after={}", urlencode(&c))
                            });
                            let t = page.totals.clone();
                            view! {
                                <form method="get" action="/usage" class="panel filters">
                                    <div class="field"><label for="f-from">"From"</label>
                                        <input id="f-from" type="date" name="from" value=q.from.clone()/></div>
                                    <div class="field"><label for="f-to">"To"</label>
                                        <input id="f-to" type="date" name="to" value=q.to.clone()/></div>
                                    <div class="field"><label for="f-key">"Key"</label>
                                        <select id="f-key" name="key">
                                            <option value="">"Any key"</option>
                                            {page.keys.iter().map(|(id, name)| {
                                                let v = id.to_string();
                                                let sel = v == q.key;
                                                view! { <option value=v selected=sel>{name.clone()}</option> }
                                            }).collect_view()}
                                        </select></div>
                                    <div class="field"><label for="f-model">"Model"</label>
                                        <input id="f-model" name="model" value=q.model.clone() placeholder="any"/></div>
                                    <div class="field"><label for="f-status">"Status"</label>
                                        <select id="f-status" name="status">
                                            <option value="" selected=q.status.is_empty()>"Any"</option>
                                            <option value="ok" selected=q.status == "ok">"Succeeded"</option>
                                            <option value="error" selected=q.status == "error">"Failed"</option>
                                        </select></div>
                                    <button type="submit" class="button primary">"Filter"</button>
                                    <a class="button secondary" href="/usage" rel="external">"Clear"</a>
                                    <a class="button secondary" href=csv rel="external" download="weir-usage.csv">"Export CSV"</a>
                                </form>
                                <div class="stats">
                                    <div class="stat"><p class="stat-label">"Requests"</p><p class="stat-value num" data-testid="total-requests">{format::count(t.requests)}</p></div>
                                    <div class="stat"><p class="stat-label">"Tokens"</p><p class="stat-value num">{format::count(t.tokens())}</p></div>
                                    <div class="stat"><p class="stat-label">"Cost"</p><p class="stat-value num" data-testid="total-cost">{format::usd(t.cost)}</p></div>
                                </div>
                                {if page.rows.is_empty() {
                                    view! {
                                        <EmptyState title="No requests match">
                                            "Widen the filters, or send a first request with the " <a href="/quickstart">"Quickstart"</a> "."
                                        </EmptyState>
                                    }.into_any()
                                } else {
                                    view! {
                                        <RequestTable rows=page.rows.clone()/>
                                        <nav class="pager" aria-label="Pages">
                                            {(!q.after.is_empty()).then(|| view! { <a href=format!("/usage?{qs}")>"← Newest"</a> })}
                                            {next.map(|n| view! { <a href=n>"Older →"</a> })}
                                        </nav>
                                        <div class="grid-2">
                                            {totals_table("By model", page.by_model.clone())}
                                            {totals_table("By key", page.by_key.clone())}
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
