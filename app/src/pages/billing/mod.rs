//! `/billing`: balance, Stripe top-ups (presets, a custom amount, the history with status
//! and receipt) and the team's ledger. Coming back from Stripe (`?topup=…`) shows that
//! top-up's status; the credit itself only ever comes from the verified webhook.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format, EmptyState, LoadError, PageHeader,
    },
    server_fns::billing::{list_ledger, list_topups, StartTopup, TopupView},
};

/// The preset amounts, in dollars.
const PRESETS: [u32; 4] = [10, 25, 50, 100];

fn status_label(status: &str) -> &str {
    match status {
        "pending" => "Waiting for payment",
        "processing" => "Payment processing",
        "credited" => "Credited",
        "partially_refunded" => "Partly refunded",
        "refunded" => "Refunded",
        "failed" => "Failed",
        "expired" => "Expired",
        "mismatch" => "Held for review",
        other => other,
    }
}

fn kind_label(kind: &str) -> &str {
    match kind {
        "usage" => "Usage",
        "manual" | "credit" => "Adjustment",
        "topup" => "Top-up",
        "refund" => "Refund",
        "dispute" => "Dispute",
        "dispute_won" => "Dispute won",
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
    let focus = Memo::new(move |_| params.get().get("topup"));
    let cancelled = Memo::new(move |_| params.get().get("cancelled").is_some());
    let topups = Resource::new(move || focus.get(), list_topups);
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
                            <Suspense fallback=|| ()>
                                {move || Suspend::new(async move {
                                    match topups.await {
                                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                                        Ok(t) => view! {
                                            {t.focus.clone().map(|f| view! { <TopupBanner topup=f cancelled=cancelled.get()/> })}
                                            <TopupPanel enabled=t.enabled reason=t.reason.clone() min=t.min max=t.max/>
                                            <TopupHistory rows=t.rows.clone()/>
                                        }.into_any(),
                                    }
                                })}
                            </Suspense>
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

/// What became of the top-up the browser came back from Stripe with (display only).
#[component]
fn TopupBanner(topup: TopupView, cancelled: bool) -> impl IntoView {
    let message = match topup.status.as_str() {
        "credited" => format!("Thank you: {} was added to the balance.", format::usd(topup.amount)),
        "pending" if cancelled => "The payment was cancelled; nothing was charged.".to_owned(),
        "pending" | "processing" => format!(
            "Payment of {} received by Stripe. The balance grows as soon as Stripe confirms it; reload in a moment.",
            format::usd(topup.amount)
        ),
        other => format!("Top-up of {}: {}.", format::usd(topup.amount), status_label(other)),
    };
    view! { <p class="panel notice" role="status" data-testid="topup-status">{message}</p> }
}

/// Preset amounts, a custom amount, and why the button is disabled when it is.
#[component]
fn TopupPanel(enabled: bool, reason: Option<String>, min: i64, max: i64) -> impl IntoView {
    let start = ServerAction::<StartTopup>::new();
    let err = action_error(start.value());
    let pending = start.pending();
    let disabled = move || !enabled || pending.get();
    view! {
        <div class="panel topup">
            <h2>"Top up"</h2>
            <div class="form-inline" role="group" aria-label="Preset amounts">
                {PRESETS.iter().map(|d| view! {
                    <ActionForm action=start>
                        <CsrfField/>
                        <input type="hidden" name="amount" value=d.to_string()/>
                        <button type="submit" class="button" disabled=disabled aria-describedby="topup-note">{format!("${d}")}</button>
                    </ActionForm>
                }).collect_view()}
            </div>
            <ActionForm action=start attr:class="form-inline">
                <CsrfField/>
                <div class="field">
                    <label for="topup-amount">"Other amount (USD)"</label>
                    <input id="topup-amount" name="amount" inputmode="decimal" required placeholder="25.00"/>
                    <FieldError err name="amount"/>
                </div>
                <button type="submit" class="button primary" disabled=disabled aria-describedby="topup-note">"Top up"</button>
            </ActionForm>
            <FormError err/>
            <p id="topup-note" class="hint">{reason.unwrap_or_else(|| format!(
                "From {} to {}, paid by card on Stripe Checkout. The balance grows once Stripe confirms the payment.",
                format::usd(min), format::usd(max)
            ))}</p>
        </div>
    }
}

/// The team's top-ups with status and Stripe's receipt.
#[component]
fn TopupHistory(rows: Vec<TopupView>) -> impl IntoView {
    (!rows.is_empty()).then(|| view! {
        <h2>"Top-ups"</h2>
        <div class="table-wrap">
            <table data-testid="topups">
                <thead><tr>
                    <th scope="col">"Time (UTC)"</th>
                    <th scope="col" class="num">"Amount"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Receipt"</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|t| view! {
                        <tr>
                            <td class="nowrap">{format::time(t.created_at)}</td>
                            <td class="num">{format::usd(t.amount)}</td>
                            <td>{status_label(&t.status).to_owned()}
                                {(t.refunded > 0).then(|| format!(" ({} refunded)", format::usd(t.refunded)))}
                                {t.note.map(|n| view! { <span class="hint">{format!(" {n}")}</span> })}
                            </td>
                            <td>{t.receipt_url.map(|u| view! { <a href=u rel="noopener" target="_blank">"Receipt"</a> })}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}
