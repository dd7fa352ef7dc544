//! The router's fallback: a styled "page not found" that also answers HTTP 404.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn NotFoundPage() -> impl IntoView {
    // On the server, turn the response into a real 404 so that crawlers and monitors see it.
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }

    view! {
        <Title text="Page not found · Weir"/>
        <section class="container not-found">
            <p class="status-code" aria-hidden="true">
                "404"
            </p>
            <h1>"Page not found"</h1>
            <p class="lead">"There is nothing at this address. It may have moved, or never existed."</p>
            <div class="hero-actions">
                <A href="/" {..} class="button primary">
                    "Back to home"
                </A>
                <A href="/pricing" {..} class="button secondary">
                    "See pricing"
                </A>
            </div>
        </section>
    }
}
