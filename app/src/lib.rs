//! Weir console: the Leptos application shared by the server (SSR) and the browser (hydrate).
//!
//! Layout: `pages/<area>/` (one module per route), `components/` (the frame, forms, chart,
//! formatting), `server_fns/<area>/<action>.rs` (one server function per file), `error.rs`
//! (the one [`error::AppError`]) and `ssr/` (what only the server may see: the console
//! state, the session's caller, the CSRF check).
#![recursion_limit = "256"]

pub mod components;
pub mod error;
mod pages;
mod quickstart;
pub mod server_fns;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet};
use leptos_router::{
    components::{Outlet, ParentRoute, Route, Router, Routes},
    hooks::use_location,
    path,
};

use crate::{
    components::layout::{SiteFooter, SiteHeader},
    pages::*,
    server_fns::session::get_viewer,
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

/// Paths that need a signed-in user; the server redirects signed-out visits to `/login`.
pub const PRIVATE_PATHS: [&str; 10] = [
    "/dashboard",
    "/keys",
    "/usage",
    "/billing",
    "/members",
    "/models",
    "/quickstart",
    "/settings",
    "/admin",
    "/admin/teams",
];

/// The console: every page inside the frame. Unknown paths render [`NotFoundPage`] in it.
///
/// The routes sit directly under the router (not inside the frame's `Transition`), so that
/// `generate_route_list` sees every path and the server answers each with its own handler.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/weir.css"/>
        <Router>
            <Routes fallback=|| view! { <Frame><NotFoundPage/></Frame> }>
                <ParentRoute path=path!("") view=Framed>
                    <Route path=path!("") view=HomePage/>
                    <Route path=path!("/pricing") view=PricingPage/>
                    <Route path=path!("/signup") view=SignUpPage/>
                    <Route path=path!("/login") view=LogInPage/>
                    <Route path=path!("/logout") view=LogOutPage/>
                    <Route path=path!("/invite/:token") view=InvitePage/>
                    <Route path=path!("/dashboard") view=DashboardPage/>
                    <Route path=path!("/keys") view=KeysPage/>
                    <Route path=path!("/usage") view=UsagePage/>
                    <Route path=path!("/billing") view=BillingPage/>
                    <Route path=path!("/members") view=MembersPage/>
                    <Route path=path!("/models") view=ModelsPage/>
                    <Route path=path!("/quickstart") view=QuickstartPage/>
                    <Route path=path!("/settings") view=SettingsPage/>
                    <Route path=path!("/admin") view=AdminPage/>
                    <Route path=path!("/admin/teams") view=AdminTeamsPage/>
                    <Route path=path!("/admin/channels") view=AdminChannelsPage/>
                    <Route path=path!("/admin/models") view=AdminModelsPage/>
                    <Route path=path!("/admin/tariffs") view=AdminTariffsPage/>
                    <Route path=path!("/admin/import") view=AdminImportPage/>
                    <Route path=path!("/admin/audit") view=AdminAuditPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// The matched page inside the frame.
#[component]
fn Framed() -> impl IntoView {
    view! { <Frame><Outlet/></Frame> }
}

/// Header, page and footer, for the viewer of the current path (read again on every
/// navigation, so signing in or out shows at once).
#[component]
fn Frame(children: ChildrenFn) -> impl IntoView {
    let location = use_location();
    let who = Resource::new(move || location.pathname.get(), get_viewer);
    let children = StoredValue::new(children);
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let v = who.await.unwrap_or_default();
                provide_context(v);
                view! {
                    <SiteHeader/>
                    <main id="main" class="site-main">{children.read_value()()}</main>
                    <SiteFooter/>
                }
            })}
        </Transition>
    }
}
