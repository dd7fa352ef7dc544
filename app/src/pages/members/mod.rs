//! `/members` (list, invite by link, remove) and `/invite/:token` (join by link).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::{
    components::form::urlencode,
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        format,
        limits::LimitsForm,
        LoadError, PageHeader,
    },
    server_fns::limits::team_limits,
    server_fns::members::{
        invite_details, list_members, AcceptInvite, CreateInvite, LeaveTeam, RemoveMember,
    },
};

#[component]
pub fn MembersPage() -> impl IntoView {
    let invite = ServerAction::<CreateInvite>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let leave = ServerAction::<LeaveTeam>::new();
    let invite_err = action_error(invite.value());
    let remove_err = action_error(remove.value());
    let leave_err = action_error(leave.value());
    let data = Resource::new(move || remove.version().get(), |_| list_members());
    view! {
        <Title text="Members · Weir"/>
        <section class="container section">
            <PageHeader title="Members" lead="Owners and admins manage keys and members; members see usage and create their own keys."/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(p) => view! {
                            {p.can_manage.then(|| view! {
                                <div class="panel">
                                    <h2>"Invite someone"</h2>
                                    <ActionForm action=invite attr:class="form-inline">
                                        <CsrfField/>
                                        <div class="field">
                                            <label for="invite-role">"Role"</label>
                                            <select id="invite-role" name="role">
                                                <option value="member">"member"</option>
                                                <option value="admin">"admin"</option>
                                            </select>
                                            <FieldError err=invite_err name="role"/>
                                        </div>
                                        <button type="submit" class="button primary">"Create invite link"</button>
                                    </ActionForm>
                                    <FormError err=invite_err/>
                                    {move || invite.value().get().and_then(|r| r.ok()).map(|link| view! {
                                        <div class="field">
                                            <label for="invite-link">"Invite link (single use, valid 7 days)"</label>
                                            <input id="invite-link" readonly value=link data-testid="invite-link"/>
                                        </div>
                                    })}
                                </div>
                            })}
                            <FormError err=remove_err/>
                            <div class="table-wrap">
                                <table>
                                    <thead><tr>
                                        <th scope="col">"Email"</th>
                                        <th scope="col">"Role"</th>
                                        <th scope="col">"Joined"</th>
                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr></thead>
                                    <tbody>
                                        {p.members.iter().map(|m| {
                                            let show_remove = p.can_manage && !m.is_me;
                                            let uid = m.user_id;
                                            let email = m.email.clone();
                                            view! {
                                                <tr>
                                                    <th scope="row">{m.email.clone()}{m.is_me.then_some(" (you)")}</th>
                                                    <td>{m.role.clone()}</td>
                                                    <td>{format::time(m.joined_at)}</td>
                                                    <td>{show_remove.then(|| view! {
                                                        <ActionForm action=remove>
                                                            <CsrfField/>
                                                            <input type="hidden" name="user_id" value=uid.to_string()/>
                                                            <button type="submit" class="button danger small" aria-label=format!("Remove {email}")>"Remove"</button>
                                                        </ActionForm>
                                                    })}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            <div class="panel">
                                <h2>"Leave this team"</h2>
                                <ActionForm action=leave>
                                    <CsrfField/>
                                    <button type="submit" class="button danger">{format!("Leave {}", p.team_name)}</button>
                                </ActionForm>
                                <FormError err=leave_err/>
                            </div>
                        }.into_any(),
                    }
                })}
            </Suspense>
            <TeamLimits/>
        </section>
    }
}

/// The team's own limits, applied to every key of the team together with the key's.
#[component]
fn TeamLimits() -> impl IntoView {
    let saved = RwSignal::new(0u32);
    let data = Resource::new(move || saved.get(), |_| team_limits());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                data.await.ok().map(|p| view! {
                    <div class="panel" id="team-limits">
                        <h2>"Team limits"</h2>
                        <p>"Apply to all of the team's keys together, on top of each key's own (set on the "
                            <a href="/keys">"keys page"</a> "). Now: "
                            <strong data-testid="team-limits">{p.limits.summary.clone()}</strong></p>
                        {if p.can_manage {
                            view! { <LimitsForm scope="team" limits=p.limits saved/> }.into_any()
                        } else {
                            view! { <p class="hint">"Owners and admins can change them."</p> }.into_any()
                        }}
                    </div>
                })
            })}
        </Suspense>
    }
}

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.get().get("token").unwrap_or_default();
    let accept = ServerAction::<AcceptInvite>::new();
    let err = action_error(accept.value());
    let data = Resource::new(token, invite_details);
    view! {
        <Title text="Invitation · Weir"/>
        <section class="container narrow auth-card">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let t = token();
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(i) => {
                            let here = format!("/invite/{t}");
                            view! {
                                <h1>{format!("Join {}", i.team_name)}</h1>
                                <p class="lead">{format!("You are invited as {}.", i.role)}</p>
                                {if i.signed_in {
                                    view! {
                                        <ActionForm action=accept>
                                            <CsrfField/>
                                            <input type="hidden" name="token" value=t.clone()/>
                                            <button type="submit" class="button primary">"Join team"</button>
                                        </ActionForm>
                                        <FormError err/>
                                    }.into_any()
                                } else {
                                    view! {
                                        <p>"Sign up or log in first; this link brings you back here."</p>
                                        <div class="hero-actions">
                                            <a class="button primary" href=format!("/signup?next={}", urlencode(&here))>"Sign up"</a>
                                            <a class="button secondary" href=format!("/login?next={}", urlencode(&here))>"Log in"</a>
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
