//! Pieces every page uses: the frame (header, footer), form helpers (CSRF field, errors
//! beside fields), empty states, the spend chart, and number formatting.

pub mod chart;
pub mod form;
pub mod format;
pub mod layout;
pub mod limits;

use leptos::prelude::*;

use crate::server_fns::session::Viewer;

/// The viewer of the page being shown (provided by the frame around every route).
pub fn viewer() -> Viewer {
    use_context::<Viewer>().unwrap_or_default()
}

/// The title block of a console page.
#[component]
pub fn PageHeader(
    title: &'static str,
    #[prop(optional)] lead: Option<&'static str>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <div class="page-head">
            <div>
                <h1>{title}</h1>
                {lead.map(|l| view! { <p class="lead">{l}</p> })}
            </div>
            {children.map(|c| view! { <div class="page-actions">{c()}</div> })}
        </div>
    }
}

/// What to show where a list is empty: what it is, and what to do next.
#[component]
pub fn EmptyState(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="empty">
            <p class="empty-title">{title}</p>
            <p>{children()}</p>
        </div>
    }
}

/// A resource that failed: the message, and the log-in link when the session ended.
#[component]
pub fn LoadError(error: crate::error::AppError) -> impl IntoView {
    let signed_out = matches!(error, crate::error::AppError::Unauthorized);
    view! {
        <div class="notice error" role="alert">
            <p>{error.to_string()}</p>
            {signed_out.then(|| view! { <a class="button primary" href="/login" rel="external">"Log in"</a> })}
        </div>
    }
}
