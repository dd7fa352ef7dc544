//! `list_usage`: one page of the current team's requests (keyset-paginated, newest first)
//! with the filters from the URL, the totals of the whole filtered range, and the choices for
//! the filter controls.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{RequestView, TotalsView};
use crate::error::AppError;

/// Filters as they appear in the page's query string; empty (or absent) means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageQuery {
    /// `YYYY-MM-DD`, inclusive, UTC.
    pub from: String,
    pub to: String,
    /// The key's row id.
    pub key: String,
    pub model: String,
    /// `ok` or `error`.
    pub status: String,
    /// Opaque cursor of the page to show.
    pub after: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePage {
    pub rows: Vec<RequestView>,
    pub next: Option<String>,
    pub totals: TotalsView,
    pub by_model: Vec<(String, TotalsView)>,
    pub by_key: Vec<(String, TotalsView)>,
    /// (id, name) of every key of the team, for the filter.
    pub keys: Vec<(i64, String)>,
}

/// Rows per page.
pub const PAGE_SIZE: u32 = 50;

#[server(endpoint = "usage/list_usage")]
pub async fn list_usage(#[server(default)] query: UsageQuery) -> Result<UsagePage, AppError> {
    use crate::ssr;
    use weir_core::metering::{self, Cursor};
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, _) = caller.team()?;
        let filter = crate::ssr::usage_filter(&query)?;
        let db = &caller.state.db;
        let after = match query.after.as_str() {
            "" => None,
            s => Some(Cursor::decode(s).ok_or_else(|| {
                AppError::Invalid("That page link is not valid any more.".into())
            })?),
        };
        let (rows, next) = metering::list_requests(db, team_id, &filter, after.as_ref(), PAGE_SIZE)
            .await
            .map_err(|e| ssr::internal("listing usage", e))?;
        let totals = metering::totals(db, team_id, &filter)
            .await
            .map_err(|e| ssr::internal("usage totals", e))?;
        let keys = weir_core::auth::list_team_keys(db, team_id)
            .await
            .map_err(|e| ssr::internal("listing keys", e))?
            .into_iter()
            .map(|k| (k.id, k.name))
            .collect();
        Ok(UsagePage {
            rows: rows.into_iter().map(Into::into).collect(),
            next: next.map(|c| c.encode()),
            totals: totals.all.into(),
            by_model: totals
                .by_model
                .into_iter()
                .map(|(m, t)| (m, t.into()))
                .collect(),
            by_key: totals
                .by_key
                .into_iter()
                .map(|(_, name, t)| (name, t.into()))
                .collect(),
            keys,
        })
    })
    .await
}
