//! `/settings`: the account, and creating another team.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        viewer, PageHeader,
    },
    server_fns::teams::CreateTeam,
};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let create = ServerAction::<CreateTeam>::new();
    let err = action_error(create.value());
    let v = viewer();
    let email = v.user.as_ref().map(|u| u.email.clone()).unwrap_or_default();
    let teams = v.user.map(|u| u.teams).unwrap_or_default();
    view! {
        <Title text="Settings · Weir"/>
        <section class="container section">
            <PageHeader title="Settings"/>
            <div class="panel">
                <h2>"Account"</h2>
                <p>"Signed in as " <strong>{email}</strong></p>
            </div>
            <div class="panel">
                <h2>"Your teams"</h2>
                <ul class="plain">
                    {teams.into_iter().map(|t| view! { <li>{t.name}" · "{t.role}</li> }).collect_view()}
                </ul>
            </div>
            <div class="panel">
                <h2>"Create a team"</h2>
                <ActionForm action=create attr:class="form-inline">
                    <CsrfField/>
                    <div class="field">
                        <label for="team-name">"Name"</label>
                        <input id="team-name" name="name" required maxlength="64"/>
                        <FieldError err name="name"/>
                    </div>
                    <button type="submit" class="button primary">"Create team"</button>
                </ActionForm>
                <FormError err/>
            </div>
        </section>
    }
}
