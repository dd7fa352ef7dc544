//! The guard in front of every console route:
//! - a mutation (any method but GET/HEAD/OPTIONS) whose `Origin` (or, without one, `Referer`)
//!   is not this server's own origin is refused with 403 before it runs;
//! - a signed-out visit to a private page is redirected (303) to `/login?next=…`;
//! - a signed-in non-operator asking for `/admin…` is served the not-found page (404);
//! - the client's address is recorded for log-in throttling.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use tower_sessions::Session;
use weir_app::ssr::{ClientAddr, SessionKeys};
use weir_core::Db;

#[derive(Clone)]
pub struct GuardConfig {
    pub db: Db,
    /// `scheme://host[:port]` of `WEIR_PUBLIC_URL`.
    pub origin: String,
}

/// The origin (`scheme://host[:port]`) of a URL.
pub fn origin_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..i + 3], &rest[..end]).to_ascii_lowercase()
        }
        None => url.to_ascii_lowercase(),
    }
}

fn is_private(path: &str) -> bool {
    weir_app::PRIVATE_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

fn same_origin(req: &Request, own: &str) -> bool {
    let h = req.headers();
    let presented = h
        .get(header::ORIGIN)
        .or_else(|| h.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .map(origin_of);
    // Also accept the Host the request was sent to, so that a server reached by another name
    // than WEIR_PUBLIC_URL (e.g. 127.0.0.1 and localhost) still works for its own pages.
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|host| format!("{}://{}", own.split("://").next().unwrap_or("http"), host))
        .map(|o| o.to_ascii_lowercase());
    match presented {
        Some(p) => p == own || host.is_some_and(|h| h == p),
        None => false,
    }
}

pub async fn guard(State(cfg): State<GuardConfig>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned() {
        req.extensions_mut().insert(ClientAddr(addr.ip()));
    }
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !same_origin(&req, &cfg.origin)
    {
        let _ = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20).await;
        return (
            StatusCode::FORBIDDEN,
            "This request came from another site and was refused (CSRF protection).",
        )
            .into_response();
    }
    let path = req.uri().path().to_owned();
    if method == Method::GET && is_private(&path) {
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "session layer missing").into_response();
        };
        let uid = session.get::<i64>(SessionKeys::USER).await.ok().flatten();
        let Some(uid) = uid else {
            let next = req
                .uri()
                .path_and_query()
                .map_or(path.clone(), |pq| pq.as_str().to_owned());
            let to = format!(
                "/login?next={}",
                weir_app::components::form::urlencode(&next)
            );
            return Redirect::to(&to).into_response();
        };
        if path == "/admin" || path.starts_with("/admin/") {
            let operator = weir_core::account::user_by_id(&cfg.db, uid)
                .await
                .ok()
                .flatten()
                .is_some_and(|u| u.is_operator);
            if !operator {
                // The admin pages render the not-found page for a non-operator (so hydration
                // matches); a streamed page cannot set its status after the first byte, so
                // the status is set here.
                let mut res = next.run(req).await;
                *res.status_mut() = StatusCode::NOT_FOUND;
                return res;
            }
        }
    }
    let _: &Body = req.body();
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/keys?x"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin_of("https://Weir.example"), "https://weir.example");
        assert!(is_private("/keys"));
        assert!(is_private("/admin/teams"));
        assert!(!is_private("/keysmith"));
        assert!(!is_private("/pricing"));
    }
}
