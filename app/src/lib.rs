//! Weir console: the Leptos application shared by the server (SSR) and the browser (hydrate).
#![recursion_limit = "256"]

mod layout;
mod pages;
mod quickstart;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

use crate::{
    layout::{SiteFooter, SiteHeader},
    pages::{HomePage, NotFoundPage, PricingPage},
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta
                    name="description"
                    content="Weir: a self-hostable LLM API gateway with prepaid, metered billing."
                />
                <meta name="theme-color" content="#4338ca"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The console: layout around the routed pages. Unknown paths render [`NotFoundPage`].
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/weir.css"/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <SiteHeader/>
            <main id="main" class="site-main">
                <Routes fallback=|| view! { <NotFoundPage/> }>
                    <Route path=StaticSegment("") view=HomePage/>
                    <Route path=StaticSegment("pricing") view=PricingPage/>
                </Routes>
            </main>
            <SiteFooter/>
        </Router>
    }
}
