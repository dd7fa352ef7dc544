//! CSV export of a team's filtered requests, streamed: the rows are read in keyset pages of
//! [`EXPORT_PAGE`] and each page becomes one chunk of text, so a month of requests never sits
//! in memory.

use futures_util::Stream;

use super::usage::{list_requests, Cursor, UsageFilter, UsageRow};
use crate::db::{Db, DbError};

/// Rows read per database query.
pub const EXPORT_PAGE: u32 = 1000;

const HEADER: [&str; 17] = [
    "time",
    "request_id",
    "key",
    "model",
    "provider",
    "endpoint",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "error",
    "usage_source",
    "key_id",
];

/// A text field as a spreadsheet should see it: one starting like a formula (`=`, `+`, `-`,
/// `@`, tab, CR) is prefixed with `'` so that opening the file never runs it.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn write_rows(rows: &[UsageRow], header: bool) -> Result<String, DbError> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 160 + 200));
    let err = |e: csv::Error| DbError::Sqlx(sqlx::Error::Protocol(e.to_string()));
    if header {
        w.write_record(HEADER).map_err(err)?;
    }
    for r in rows {
        w.write_record([
            time(r.created_at).as_str(),
            &r.request_id,
            &cell(&r.key_name),
            &cell(&r.model),
            &cell(r.provider.as_deref().unwrap_or("")),
            &r.endpoint,
            &r.input_tokens.to_string(),
            &r.cached_tokens.to_string(),
            &r.cache_write_tokens.to_string(),
            &r.output_tokens.to_string(),
            &r.reasoning_tokens.to_string(),
            &r.cost.to_string(),
            &r.latency_ms.to_string(),
            &r.status.to_string(),
            r.error_kind.as_deref().unwrap_or(""),
            &r.usage_source,
            &r.api_key_id.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| DbError::Sqlx(sqlx::Error::Protocol(e.to_string())))?;
    String::from_utf8(bytes).map_err(|e| DbError::Sqlx(sqlx::Error::Protocol(e.to_string())))
}

enum State {
    Start,
    After(Cursor),
    Done,
}

/// The team's requests matching `filter`, newest first, as CSV text in chunks: the header
/// with the first page, then one chunk per page.
pub fn csv_stream(
    db: Db,
    team_id: i64,
    filter: UsageFilter,
) -> impl Stream<Item = Result<String, DbError>> + Send + 'static {
    futures_util::stream::try_unfold(State::Start, move |state| {
        let db = db.clone();
        let filter = filter.clone();
        async move {
            let (after, header) = match state {
                State::Done => return Ok(None),
                State::Start => (None, true),
                State::After(c) => (Some(c), false),
            };
            let (rows, next) =
                list_requests(&db, team_id, &filter, after.as_ref(), EXPORT_PAGE).await?;
            let text = write_rows(&rows, header)?;
            let state = next.map_or(State::Done, State::After);
            Ok(Some((text, state)))
        }
    })
}
