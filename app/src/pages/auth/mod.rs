//! `/signup`, `/login` and `/logout`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::form::{action_error, urlencode, CsrfField, FieldError, FormError},
    server_fns::auth::{LogIn, LogOut, SignUp},
};

/// The `next` of the query string, carried through the form.
fn next_param() -> String {
    use_query_map()
        .get_untracked()
        .get("next")
        .unwrap_or_default()
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let act = ServerAction::<SignUp>::new();
    let err = action_error(act.value());
    let next = next_param();
    let login_href = format!("/login?next={}", urlencode(&next));
    view! {
        <Title text="Sign up · Weir"/>
        <section class="container narrow auth-card">
            <h1>"Create your account"</h1>
            <p class="lead">"A personal team with its own balance and keys comes with it."</p>
            <ActionForm action=act>
                <CsrfField/>
                <input type="hidden" name="next" value=next/>
                <div class="field">
                    <label for="email">"Email"</label>
                    <input id="email" type="email" name="email" autocomplete="email" required/>
                    <FieldError err name="email"/>
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input id="password" type="password" name="password" autocomplete="new-password" minlength="10" required/>
                    <p class="hint">"At least 10 characters."</p>
                    <FieldError err name="password"/>
                </div>
                <FormError err/>
                <button type="submit" class="button primary" disabled=move || act.pending().get()>"Sign up"</button>
            </ActionForm>
            <p class="switch">"Already have an account? " <a href=login_href>"Log in"</a></p>
        </section>
    }
}

#[component]
pub fn LogInPage() -> impl IntoView {
    let act = ServerAction::<LogIn>::new();
    let err = action_error(act.value());
    let next = next_param();
    let signup_href = format!("/signup?next={}", urlencode(&next));
    view! {
        <Title text="Log in · Weir"/>
        <section class="container narrow auth-card">
            <h1>"Log in"</h1>
            <ActionForm action=act>
                <CsrfField/>
                <input type="hidden" name="next" value=next/>
                <div class="field">
                    <label for="email">"Email"</label>
                    <input id="email" type="email" name="email" autocomplete="username" required/>
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input id="password" type="password" name="password" autocomplete="current-password" required/>
                </div>
                <FormError err/>
                <button type="submit" class="button primary" disabled=move || act.pending().get()>"Log in"</button>
            </ActionForm>
            <p class="switch">"New here? " <a href=signup_href>"Sign up"</a></p>
        </section>
    }
}

#[component]
pub fn LogOutPage() -> impl IntoView {
    let act = ServerAction::<LogOut>::new();
    view! {
        <Title text="Log out · Weir"/>
        <section class="container narrow auth-card">
            <h1>"Log out"</h1>
            <ActionForm action=act>
                <CsrfField/>
                <button type="submit" class="button primary">"Log out"</button>
            </ActionForm>
        </section>
    }
}
