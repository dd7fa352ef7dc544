//! `/admin` and its pages (teams, channels, models, tariffs, import, audit): the operator's area. Anyone else gets the not-found page,
//! rendered by these same routes on the server (with status 404, set by the guard) and in the
//! browser, so that hydration sees the same page on both sides.

mod audit;
mod channels;
mod import;
mod models;
mod tariffs;

pub use audit::AdminAuditPage;
pub use channels::AdminChannelsPage;
pub use import::AdminImportPage;
pub use models::AdminModelsPage;
pub use tariffs::AdminTariffsPage;

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format, viewer, LoadError, PageHeader,
    },
    pages::NotFoundPage,
    server_fns::admin::{admin_list_teams, AdminAdjustBalance, AdminSetTeamActive},
};

/// The children for the operator; the not-found page for everyone else.
#[component]
fn OperatorOnly(children: Children) -> impl IntoView {
    if viewer().user.is_some_and(|u| u.is_operator) {
        children().into_any()
    } else {
        view! { <NotFoundPage/> }.into_any()
    }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    view! { <OperatorOnly><AdminHome/></OperatorOnly> }
}

#[component]
pub fn AdminTeamsPage() -> impl IntoView {
    view! { <OperatorOnly><AdminTeams/></OperatorOnly> }
}

#[component]
fn AdminHome() -> impl IntoView {
    view! {
        <Title text="Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Admin" lead="Operate this Weir: teams and their balances, upstream channels, models, prices, and the log of every catalog change."/>
            <ul class="plain">
                <li><a href="/admin/teams">"Teams →"</a></li>
                <li><a href="/admin/channels">"Channels and their health →"</a></li>
                <li><a href="/admin/models">"Models and codenames →"</a></li>
                <li><a href="/admin/tariffs">"Tariffs →"</a></li>
                <li><a href="/admin/import">"Import a price list →"</a></li>
                <li><a href="/admin/audit">"Audit log →"</a></li>
            </ul>
        </section>
    }
}

#[component]
fn AdminTeams() -> impl IntoView {
    let toggle = ServerAction::<AdminSetTeamActive>::new();
    let adjust = ServerAction::<AdminAdjustBalance>::new();
    let err = action_error(adjust.value());
    let toggle_err = action_error(toggle.value());
    let data = Resource::new(
        move || (toggle.version().get(), adjust.version().get()),
        |_| admin_list_teams(),
    );
    view! {
        <Title text="Teams · Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Teams" lead="Every team on this server. Credits and debits are ledger transactions with your account as the actor."/>
            <FormError err=toggle_err/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(teams) => {
                            let options = teams.iter().map(|t| (t.id, t.name.clone())).collect::<Vec<_>>();
                            view! {
                                <div class="panel">
                                    <h2>"Credit or debit a team"</h2>
                                    <ActionForm action=adjust attr:class="form-inline">
                                        <CsrfField/>
                                        <div class="field"><label for="adj-team">"Team"</label>
                                            <select id="adj-team" name="team_id">
                                                {options.into_iter().map(|(id, name)| view! { <option value=id.to_string()>{name}</option> }).collect_view()}
                                            </select></div>
                                        <div class="field"><label for="adj-amount">"Amount (USD, negative to debit)"</label>
                                            <input id="adj-amount" name="amount" required inputmode="decimal" placeholder="25.00"/>
                                            <FieldError err name="amount"/></div>
                                        <div class="field"><label for="adj-reason">"Reason"</label>
                                            <input id="adj-reason" name="reason" required maxlength="500"/>
                                            <FieldError err name="reason"/></div>
                                        <button type="submit" class="button primary">"Apply"</button>
                                    </ActionForm>
                                    <FormError err/>
                                </div>
                                <div class="table-wrap">
                                    <table>
                                        <thead><tr>
                                            <th scope="col">"Team"</th>
                                            <th scope="col" class="num">"Balance"</th>
                                            <th scope="col" class="num">"Held"</th>
                                            <th scope="col" class="num">"Spend, 30 days"</th>
                                            <th scope="col" class="num">"Members"</th>
                                            <th scope="col">"Created"</th>
                                            <th scope="col">"Status"</th>
                                            <th scope="col"><span class="sr-only">"Actions"</span></th>
                                        </tr></thead>
                                        <tbody>
                                            {teams.into_iter().map(|t| {
                                                let id = t.id;
                                                let next = !t.active;
                                                view! {
                                                    <tr>
                                                        <th scope="row">{t.name.clone()}</th>
                                                        <td class="num">{format::usd(t.balance)}</td>
                                                        <td class="num">{format::usd(t.held)}</td>
                                                        <td class="num">{format::usd(t.spend_30d)}</td>
                                                        <td class="num">{t.members}</td>
                                                        <td>{format::time(t.created_at)}</td>
                                                        <td><span class=if t.active { "status status-active" } else { "status status-revoked" }>{if t.active { "active" } else { "inactive" }}</span></td>
                                                        <td>
                                                            <ActionForm action=toggle>
                                                                <CsrfField/>
                                                                <input type="hidden" name="team_id" value=id.to_string()/>
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
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}
