//! The frame around every page: the header (wordmark, navigation, team switcher, log-out)
//! and the footer.

use leptos::prelude::*;
use leptos_router::components::A;

use super::form::CsrfField;
use crate::server_fns::{auth::LogOut, teams::SwitchTeam};

/// The pages of a signed-in user, in the order of the navigation.
const CONSOLE_NAV: [(&str, &str); 8] = [
    ("/dashboard", "Dashboard"),
    ("/keys", "API keys"),
    ("/usage", "Usage"),
    ("/billing", "Billing"),
    ("/members", "Members"),
    ("/models", "Models"),
    ("/quickstart", "Quickstart"),
    ("/settings", "Settings"),
];

#[component]
pub fn SiteHeader() -> impl IntoView {
    let viewer = super::viewer();
    let log_out = ServerAction::<LogOut>::new();
    let switch = ServerAction::<SwitchTeam>::new();
    let user = viewer.user.clone();
    view! {
        <header class="site-header">
            <div class="container header-inner">
                <a href=if user.is_some() { "/dashboard" } else { "/" } class="wordmark" aria-label="Weir home">
                    <img src="/favicon.svg" alt="" width="28" height="28"/>
                    <span>"Weir"</span>
                </a>
                {match user {
                    None => view! {
                        <nav class="site-nav" aria-label="Main">
                            <A href="/" exact=true>"Home"</A>
                            <A href="/pricing">"Pricing"</A>
                            <a href="/#quickstart">"Docs"</a>
                        </nav>
                        <div class="header-actions">
                            <a class="button secondary small" href="/login">"Log in"</a>
                            <a class="button primary small" href="/signup">"Sign up"</a>
                        </div>
                    }
                        .into_any(),
                    Some(u) => {
                        let current = u.team.as_ref().map(|t| t.id);
                        let teams = u.teams.clone();
                        view! {
                            <nav class="site-nav console-nav" aria-label="Main">
                                {CONSOLE_NAV
                                    .iter()
                                    .map(|(href, label)| view! { <A href=*href>{*label}</A> })
                                    .collect_view()}
                                {u.is_operator.then(|| view! { <A href="/admin">"Admin"</A> })}
                            </nav>
                            <div class="header-actions">
                                <ActionForm action=switch attr:class="team-switch">
                                    <CsrfField/>
                                    <label for="team-switch" class="sr-only">"Current team"</label>
                                    <select id="team-switch" name="team_id" aria-label="Current team">
                                        {teams
                                            .into_iter()
                                            .map(|t| {
                                                let selected = Some(t.id) == current;
                                                view! {
                                                    <option value=t.id.to_string() selected=selected>
                                                        {t.name}
                                                    </option>
                                                }
                                            })
                                            .collect_view()}
                                    </select>
                                    <button type="submit" class="button secondary small">"Switch"</button>
                                </ActionForm>
                                <span class="who" title="Signed in">{u.email.clone()}</span>
                                <ActionForm action=log_out>
                                    <CsrfField/>
                                    <button type="submit" class="button secondary small">"Log out"</button>
                                </ActionForm>
                            </div>
                        }
                            .into_any()
                    }
                }}
            </div>
        </header>
    }
}

#[component]
pub fn SiteFooter() -> impl IntoView {
    view! {
        <footer class="site-footer">
            <div class="container footer-inner">
                <p class="footer-brand">
                    <strong>"Weir"</strong>
                    " · self-hostable LLM API gateway · Apache-2.0"
                </p>
                <nav class="footer-nav" aria-label="Footer">
                    <A href="/pricing">"Pricing"</A>
                    <a href="/api/public/models" rel="external">"Models JSON"</a>
                    <a href="/healthz" rel="external">"Health"</a>
                </nav>
            </div>
        </footer>
    }
}
