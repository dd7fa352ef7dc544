//! The usage filters of the URL, checked and turned into the domain's filter.

use weir_core::metering::{StatusFilter, UsageFilter};

use crate::{components::format, error::AppError, server_fns::usage::UsageQuery};

pub fn usage_filter(q: &UsageQuery) -> Result<UsageFilter, AppError> {
    let day = |field: &str, s: &str| -> Result<Option<i64>, AppError> {
        match s.trim() {
            "" => Ok(None),
            s => format::parse_date(s)
                .map(Some)
                .ok_or_else(|| AppError::field(field, "Use a date like 2026-12-31.")),
        }
    };
    let from_day = day("from", &q.from)?;
    let to_day = day("to", &q.to)?;
    if let (Some(f), Some(t)) = (from_day, to_day) {
        if f > t {
            return Err(AppError::field(
                "to",
                "The end date is before the start date.",
            ));
        }
    }
    let api_key_id = match q.key.trim() {
        "" => None,
        k => Some(
            k.parse::<i64>()
                .map_err(|_| AppError::field("key", "Choose a key from the list."))?,
        ),
    };
    let status = match q.status.trim() {
        "" => None,
        "ok" => Some(StatusFilter::Ok),
        "error" => Some(StatusFilter::Error),
        _ => return Err(AppError::field("status", "Choose succeeded or failed.")),
    };
    let model = Some(q.model.trim().to_owned()).filter(|m| !m.is_empty());
    Ok(UsageFilter {
        from_day,
        to_day,
        api_key_id,
        model,
        status,
    })
}
