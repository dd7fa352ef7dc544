//! `/dashboard`: balance, spend, requests and tokens, the 30-day chart, the latest requests.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::{chart::SpendChart, format, EmptyState, LoadError, PageHeader},
    pages::usage::RequestTable,
    server_fns::{dashboard::load_dashboard, usage::TotalsView},
};

#[component]
fn Stat(
    label: &'static str,
    value: String,
    #[prop(optional)] note: Option<String>,
) -> impl IntoView {
    view! {
        <div class="stat">
            <p class="stat-label">{label}</p>
            <p class="stat-value num">{value}</p>
            {note.map(|n| view! { <p class="stat-note">{n}</p> })}
        </div>
    }
}

fn window_row(label: &'static str, t: &TotalsView) -> impl IntoView {
    view! {
        <tr>
            <th scope="row">{label}</th>
            <td class="num">{format::usd(t.cost)}</td>
            <td class="num">{format::count(t.requests)}</td>
            <td class="num">{format::count(t.tokens())}</td>
        </tr>
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| load_dashboard());
    view! {
        <Title text="Dashboard · Weir"/>
        <section class="container section">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(d) => view! {
                            <PageHeader title="Dashboard">
                                <span class="team-name">{d.team_name.clone()}</span>
                            </PageHeader>
                            <div class="stats">
                                <Stat label="Balance" value=format::usd(d.balance)/>
                                <Stat label="Held (in flight)" value=format::usd(d.held)/>
                                <Stat label="Available" value=format::usd(d.available)
                                    note=if d.available <= 0 { "Requests are refused until the team is topped up.".to_owned() } else { String::new() }/>
                            </div>
                            <div class="grid-2">
                                <div class="panel">
                                    <h2>"Spend, last 30 days"</h2>
                                    <SpendChart days=d.daily_spend.clone()/>
                                </div>
                                <div class="panel">
                                    <h2>"Totals"</h2>
                                    <div class="table-wrap">
                                        <table>
                                            <thead><tr>
                                                <th scope="col">"Window"</th>
                                                <th scope="col" class="num">"Spend"</th>
                                                <th scope="col" class="num">"Requests"</th>
                                                <th scope="col" class="num">"Tokens"</th>
                                            </tr></thead>
                                            <tbody>
                                                {window_row("Today", &d.today)}
                                                {window_row("Last 7 days", &d.week)}
                                                {window_row("Last 30 days", &d.month)}
                                            </tbody>
                                        </table>
                                    </div>
                                </div>
                            </div>
                            <div class="panel">
                                <h2>"Latest requests"</h2>
                                {if d.latest.is_empty() {
                                    view! {
                                        <EmptyState title="No requests yet">
                                            "Create a key on the " <a href="/keys">"API keys"</a> " page and follow the "
                                            <a href="/quickstart">"Quickstart"</a> "."
                                        </EmptyState>
                                    }.into_any()
                                } else {
                                    view! { <RequestTable rows=d.latest.clone()/> <p><a href="/usage">"All usage →"</a></p> }.into_any()
                                }}
                            </div>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
