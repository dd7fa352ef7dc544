//! `load_dashboard`: balance, held and available; spend, requests and tokens today, over 7
//! and 30 days; spend per day for the chart; the latest requests.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    error::AppError,
    server_fns::usage::{RequestView, TotalsView},
};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardView {
    pub team_name: String,
    pub balance: i64,
    pub held: i64,
    pub available: i64,
    pub today: TotalsView,
    pub week: TotalsView,
    pub month: TotalsView,
    /// (day since the epoch, micro-USD), 30 entries, oldest first.
    pub daily_spend: Vec<(i64, i64)>,
    pub latest: Vec<RequestView>,
}

#[server(endpoint = "dashboard/load_dashboard")]
pub async fn load_dashboard() -> Result<DashboardView, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, _) = caller.team()?;
        let today = weir_core::db::now_ms().div_euclid(86_400_000);
        let d = weir_core::metering::dashboard(&caller.state.db, team_id, today)
            .await
            .map_err(|e| ssr::internal("loading the dashboard", e))?;
        Ok(DashboardView {
            team_name: caller
                .current
                .as_ref()
                .map(|m| m.team.name.clone())
                .unwrap_or_default(),
            balance: d.balance.0,
            held: d.held.0,
            available: d.available.0,
            today: d.today.into(),
            week: d.week.into(),
            month: d.month.into(),
            daily_spend: d
                .daily_spend
                .into_iter()
                .map(|(day, m)| (day, m.0))
                .collect(),
            latest: d.latest.into_iter().map(Into::into).collect(),
        })
    })
    .await
}
