//! `export_usage`: the filtered requests as CSV, streamed from the database in keyset chunks
//! (a month of requests never sits in memory). A plain GET, so a link downloads it.

use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, StreamingText, TextStream};

use crate::error::AppError;

#[server(endpoint = "usage/export.csv", input = GetUrl, output = StreamingText)]
pub async fn export_usage(
    from: Option<String>,
    to: Option<String>,
    key: Option<String>,
    model: Option<String>,
    status: Option<String>,
) -> Result<TextStream<AppError>, AppError> {
    use crate::ssr;
    use futures_util::StreamExt;
    ssr::run(async move {
        let caller = ssr::caller().await?;
        let (team_id, _) = caller.team()?;
        let query = super::UsageQuery {
            from: from.unwrap_or_default(),
            to: to.unwrap_or_default(),
            key: key.unwrap_or_default(),
            model: model.unwrap_or_default(),
            status: status.unwrap_or_default(),
            after: String::new(),
        };
        let filter = ssr::usage_filter(&query)?;
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.insert_header(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            res.insert_header(
                http::header::CONTENT_DISPOSITION,
                http::HeaderValue::from_static("attachment; filename=\"weir-usage.csv\""),
            );
        }
        let rows = weir_core::metering::csv_stream(caller.state.db.clone(), team_id, filter)
            .map(|r| r.map_err(|e| ssr::internal("exporting usage", e)));
        Ok(TextStream::new(rows))
    })
    .await
}
