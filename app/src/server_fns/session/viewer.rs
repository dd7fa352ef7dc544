//! `viewer`: the signed-in user (if any), their teams and the session's CSRF token, for the
//! header and every form.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRef {
    pub id: i64,
    pub name: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
}

impl TeamRef {
    pub fn can_manage(&self) -> bool {
        self.role == "owner" || self.role == "admin"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerUser {
    pub id: i64,
    pub email: String,
    pub is_operator: bool,
    pub team: Option<TeamRef>,
    pub teams: Vec<TeamRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// The token every form posts back; absent on public pages of a visitor without a session.
    pub csrf: Option<String>,
    pub user: Option<ViewerUser>,
    /// This server's public base URL (no trailing slash), for snippets and links.
    pub base_url: String,
}

#[server(endpoint = "session/viewer")]
pub async fn get_viewer(path: String) -> Result<Viewer, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let session = ssr::session().await?;
        let user = match ssr::caller().await {
            Ok(c) => {
                let tr = |m: &weir_core::team::Membership| TeamRef {
                    id: m.team.id,
                    name: m.team.name.clone(),
                    role: m.role.as_str().to_owned(),
                };
                Some(ViewerUser {
                    id: c.user.id,
                    email: c.user.email.clone(),
                    is_operator: c.user.is_operator,
                    team: c.current.as_ref().map(tr),
                    teams: c.teams.iter().map(tr).collect(),
                })
            }
            Err(AppError::Unauthorized) => None,
            Err(e) => return Err(e),
        };
        // A visitor gets a session (and its cookie) only where there is a form to post.
        let needs_form = user.is_some()
            || ["/login", "/signup", "/invite"]
                .iter()
                .any(|p| path.starts_with(p));
        let csrf = if needs_form {
            Some(ssr::ensure_csrf(&session).await?)
        } else {
            None
        };
        Ok(Viewer {
            csrf,
            user,
            base_url: ssr::state()?.public_url,
        })
    })
    .await
}
