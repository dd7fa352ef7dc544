//! `/billing`: balance and the team's ledger; top-ups arrive with Stripe.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::{format, EmptyState, LoadError, PageHeader},
    server_fns::billing::list_ledger,
};

fn kind_label(kind: &str) -> &str {
    match kind {
        "usage" => "Usage",
        "manual" | "credit" => "Adjustment",
        "topup" => "Top-up",
        other => other,
    }
}

#[component]
pub fn BillingPage() -> impl IntoView {
    let params = use_query_map();
    let before = Memo::new(move |_| {
        params
            .get()
            .get("before")
            .and_then(|b| b.parse::<i64>().ok())
    });
    let data = Resource::new(move || before.get(), list_ledger);
    view! {
        <Title text="Billing · Weir"/>
        <section class="container section">
            <PageHeader title="Billing" lead="The team's prepaid balance and every movement of it."/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(p) => view! {
                            <div class="stats">
                                <div class="stat"><p class="stat-label">"Balance"</p><p class="stat-value num">{format::usd(p.balance)}</p></div>
                                <div class="stat"><p class="stat-label">"Held (in flight)"</p><p class="stat-value num">{format::usd(p.held)}</p></div>
                                <div class="stat"><p class="stat-label">"Available"</p><p class="stat-value num">{format::usd(p.balance - p.held)}</p></div>
                            </div>
                            <div class="panel topup">
                                <button type="button" class="button primary" disabled=true aria-describedby="topup-note">"Top up"</button>
                                <p id="topup-note" class="hint">"Card top-ups through Stripe are coming. Until then the operator credits balances."</p>
                            </div>
                            {if p.rows.is_empty() {
                                view! { <EmptyState title="No transactions yet">"Credits, top-ups and usage appear here."</EmptyState> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap">
                                        <table>
                                            <thead><tr>
                                                <th scope="col">"Time (UTC)"</th>
                                                <th scope="col">"Kind"</th>
                                                <th scope="col">"Reason"</th>
                                                <th scope="col" class="num">"Amount"</th>
                                            </tr></thead>
                                            <tbody>
                                                {p.rows.iter().map(|r| view! {
                                                    <tr>
                                                        <td class="nowrap">{format::time(r.created_at)}</td>
                                                        <td>{kind_label(&r.kind).to_owned()}</td>
                                                        <td>{r.memo.clone().unwrap_or_default()}</td>
                                                        <td class=if r.amount < 0 { "num negative" } else { "num positive" }>{format::usd(r.amount)}</td>
                                                    </tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                    <nav class="pager" aria-label="Pages">
                                        {p.next.map(|n| view! { <a href=format!("/billing?before={n}")>"Older →"</a> })}
                                    </nav>
                                }.into_any()
                            }}
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
