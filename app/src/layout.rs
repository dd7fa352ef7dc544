//! The frame around every page: the header with the wordmark and navigation, and the footer.

use leptos::prelude::*;
use leptos_router::components::A;

/// Top bar: wordmark, navigation and the (not yet available) sign-in entry.
#[component]
pub fn SiteHeader() -> impl IntoView {
    view! {
        <header class="site-header">
            <div class="container header-inner">
                <a href="/" class="wordmark" aria-label="Weir home">
                    <img src="/favicon.svg" alt="" width="28" height="28"/>
                    <span>"Weir"</span>
                </a>
                <nav class="site-nav" aria-label="Main">
                    <A href="/" exact=true>
                        "Home"
                    </A>
                    <A href="/pricing">"Pricing"</A>
                    <a href="/#quickstart">"Docs"</a>
                </nav>
                // No href on purpose: an HTML placeholder link, neither focusable nor clickable,
                // until accounts exist.
                <a class="sign-in" title="Accounts arrive in a later release">
                    "Sign in"
                    <span class="badge">"Coming soon"</span>
                </a>
            </div>
        </header>
    }
}

/// Bottom bar: what this is, where to go next, and the health endpoint operators watch.
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
                    <a href="/#quickstart">"Quickstart"</a>
                    // rel=external: a server route, not a console page, so the router must not
                    // handle it on the client.
                    <a href="/healthz" rel="external">
                        "Health"
                    </a>
                </nav>
            </div>
        </footer>
    }
}
