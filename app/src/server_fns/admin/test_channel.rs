//! `admin_test_channel`: a one-token request through one channel (its base URL checked by the
//! SSRF guard again first), answered with what happened.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What a "Test" request found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    pub channel_id: i64,
    pub ok: bool,
    /// `HTTP 200 in 35 ms: "pong"` or why it failed (never the key or upstream's raw text).
    pub summary: String,
}

#[server(endpoint = "admin/test_channel")]
pub async fn admin_test_channel(
    channel_id: i64,
    #[server(default)] csrf: String,
) -> Result<ProbeOutcome, AppError> {
    use crate::ssr;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        (caller.state.probe)(channel_id).await
    })
    .await
}
