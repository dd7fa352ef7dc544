//! Tariffs as the operator sets them (console and `weir tariff set`): the upstream cost per
//! line item (per million tokens) plus a markup in basis points, for a model or for a model on
//! one channel, as a new version that takes effect now or at a scheduled time. Versions are
//! never edited: history is the table itself. A request keeps the tariff it was admitted
//! with (the reservation stores the snapshot), so a change never reprices requests in flight.

use sqlx::Row;

use super::{audit, CatalogError, Tariff, EPOCH};
use crate::{
    db::{bump_counter, now_ms, Db},
    money::{Micros, PerMillion},
};

/// A new tariff version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TariffInput {
    pub model_id: String,
    /// Only for this channel; `None`: the model's tariff on every channel without its own.
    pub channel_id: Option<i64>,
    pub tariff: Tariff,
    /// When it takes effect (Unix ms); `None`: now.
    pub effective_from: Option<i64>,
}

/// Whether a version is in force, waiting, or replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionState {
    Scheduled,
    InForce,
    Superseded,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Scheduled => "scheduled",
            VersionState::InForce => "in force",
            VersionState::Superseded => "superseded",
        }
    }
}

/// One stored tariff version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TariffVersion {
    pub id: i64,
    pub model_id: String,
    pub channel_id: Option<i64>,
    pub channel_name: Option<String>,
    pub tariff: Tariff,
    pub effective_from: i64,
    /// `seed`, `import` or `operator`.
    pub source: String,
    pub state: VersionState,
}

/// The largest markup accepted: 1000 % (100,000 basis points).
pub const MAX_MARKUP_BPS: i64 = 100_000;
/// A version may start at most this far in the past (clock skew between a browser and us).
const PAST_SLACK_MS: i64 = 60_000;

/// Parses a price in dollars per million tokens ("2.50", "$0.075") into integer micro-USD
/// per million tokens, exactly (at most 6 decimal places), never negative.
pub fn parse_price(s: &str) -> Result<PerMillion, String> {
    let t = s.trim().trim_start_matches('$').trim();
    let m = Micros::parse_usd(t).map_err(|_| {
        "A price in dollars per million tokens, like 2.50 (up to 6 decimals).".to_owned()
    })?;
    if m.0 < 0 {
        return Err("Prices cannot be negative.".to_owned());
    }
    if m.0 > 1_000_000_000_000 {
        return Err("At most $1,000,000 per million tokens.".to_owned());
    }
    Ok(PerMillion(m.0))
}

/// An optional price: empty means "not priced separately".
pub fn parse_optional_price(s: &str) -> Result<Option<PerMillion>, String> {
    if s.trim().is_empty() {
        Ok(None)
    } else {
        parse_price(s).map(Some)
    }
}

/// Parses a markup in basis points (150 = 1.5 %).
pub fn parse_markup_bps(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let t = if t.is_empty() { "0" } else { t };
    match t.parse::<i64>() {
        Ok(n) if (0..=MAX_MARKUP_BPS).contains(&n) => Ok(n),
        _ => Err(format!(
            "Basis points from 0 to {MAX_MARKUP_BPS} (150 = 1.5 %)."
        )),
    }
}

/// Parses when a version starts: empty or `now`, RFC 3339 (`2026-12-24T09:00:00Z`), or a
/// UTC date and time as an HTML `datetime-local` field sends it (`2026-12-24T09:00`).
pub fn parse_when(s: &str) -> Result<Option<i64>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("now") {
        return Ok(None);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(Some(dt.timestamp_millis()));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(Some(dt.and_utc().timestamp_millis()));
        }
    }
    Err("A UTC time like 2026-12-24T09:00, an RFC 3339 time, or now.".to_owned())
}

fn describe(t: &Tariff) -> String {
    let p = |p: PerMillion| Micros(p.0).to_string();
    let o = |p: Option<PerMillion>| p.map_or("-".to_owned(), |p| Micros(p.0).to_string());
    format!(
        "input {} cached {} cache-write {} output {} reasoning {} per Mtok, markup {} bps",
        p(t.input),
        o(t.cached_input),
        o(t.cache_write),
        p(t.output),
        o(t.reasoning),
        t.markup_bps
    )
}

/// Adds a tariff version (`source = operator`); returns its id.
pub async fn set(db: &Db, actor: &str, input: &TariffInput) -> Result<i64, CatalogError> {
    let t = &input.tariff;
    let prices = [
        Some(t.input),
        t.cached_input,
        t.cache_write,
        Some(t.output),
        t.reasoning,
    ];
    if prices.iter().flatten().any(|p| p.0 < 0) {
        return Err(CatalogError::invalid("input", "Prices cannot be negative."));
    }
    if !(0..=MAX_MARKUP_BPS).contains(&t.markup_bps) {
        return Err(CatalogError::invalid(
            "markup_bps",
            format!("Basis points from 0 to {MAX_MARKUP_BPS}."),
        ));
    }
    let now = now_ms();
    let from = input.effective_from.unwrap_or(now);
    if from < now - PAST_SLACK_MS {
        return Err(CatalogError::invalid(
            "effective_from",
            "A new price starts now or later; requests already charged keep theirs.",
        ));
    }
    let from = from.max(now);
    let mut tx = db.begin_write().await?;
    let provider: Option<String> =
        sqlx::query_scalar("SELECT provider_id FROM model WHERE id = $1")
            .bind(&input.model_id)
            .fetch_optional(&mut *tx)
            .await?;
    let provider = provider.ok_or_else(|| {
        CatalogError::invalid("model_id", format!("No model {}.", input.model_id))
    })?;
    let mut target = input.model_id.clone();
    if let Some(ch) = input.channel_id {
        let row = sqlx::query("SELECT name, provider_id FROM channel WHERE id = $1")
            .bind(ch)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::invalid("channel_id", format!("No channel {ch}.")))?;
        let ch_provider: String = row.try_get("provider_id")?;
        if ch_provider != provider {
            return Err(CatalogError::invalid(
                "channel_id",
                "That channel does not serve this model's provider.",
            ));
        }
        let name: String = row.try_get("name")?;
        target = format!("{target} on {name}");
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tariff (model_id, channel_id, input, cached_input, cache_write, output, reasoning, markup_bps, effective_from, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'operator') RETURNING id",
    )
    .bind(&input.model_id)
    .bind(input.channel_id)
    .bind(t.input.0)
    .bind(t.cached_input.map(|p| p.0))
    .bind(t.cache_write.map(|p| p.0))
    .bind(t.output.0)
    .bind(t.reasoning.map(|p| p.0))
    .bind(t.markup_bps)
    .bind(from)
    .fetch_one(&mut *tx)
    .await?;
    let when = chrono::DateTime::from_timestamp_millis(from)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let action = if from > now + 1000 {
        "tariff.schedule"
    } else {
        "tariff.set"
    };
    audit::record(
        &mut tx,
        actor,
        action,
        &target,
        &format!("{}, from {when}", describe(t)),
    )
    .await?;
    bump_counter(&mut *tx, EPOCH).await?;
    tx.commit().await?;
    Ok(id)
}

/// Tariff versions, newest first, for one model or all, with their state at `now`.
pub async fn history(
    db: &Db,
    model_id: Option<&str>,
    limit: i64,
) -> Result<Vec<TariffVersion>, CatalogError> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT t.id, t.model_id, t.channel_id, c.name AS channel_name, t.input, t.cached_input, t.cache_write, \
         t.output, t.reasoning, t.markup_bps, t.effective_from, t.source \
         FROM tariff t LEFT JOIN channel c ON c.id = t.channel_id \
         WHERE ($1 = '' OR t.model_id = $1) ORDER BY t.effective_from DESC, t.id DESC LIMIT $2",
    )
    .bind(model_id.unwrap_or(""))
    .bind(limit.clamp(1, 5000))
    .fetch_all(db.pool())
    .await?;
    let mut seen_in_force: std::collections::HashSet<(String, Option<i64>)> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let model_id: String = r.try_get("model_id")?;
        let channel_id: Option<i64> = r.try_get("channel_id")?;
        let effective_from: i64 = r.try_get("effective_from")?;
        let state = if effective_from > now {
            VersionState::Scheduled
        } else if seen_in_force.insert((model_id.clone(), channel_id)) {
            VersionState::InForce
        } else {
            VersionState::Superseded
        };
        out.push(TariffVersion {
            id: r.try_get("id")?,
            model_id,
            channel_id,
            channel_name: r.try_get("channel_name")?,
            tariff: Tariff::from_row(&r)?,
            effective_from,
            source: r.try_get("source")?,
            state,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prices_markups_and_times_exactly() {
        assert_eq!(parse_price("2.50"), Ok(PerMillion(2_500_000)));
        assert_eq!(parse_price("$0.075"), Ok(PerMillion(75_000)));
        assert_eq!(parse_price("0.000001"), Ok(PerMillion(1)));
        assert_eq!(parse_price("0"), Ok(PerMillion(0)));
        assert!(
            parse_price("0.0000001").is_err(),
            "sub-micro refused, not rounded"
        );
        assert!(parse_price("-1").is_err());
        assert!(parse_price("1e3").is_err());
        assert!(parse_price("NaN").is_err());
        assert!(parse_price("99999999999999999999").is_err());
        assert_eq!(parse_optional_price(" "), Ok(None));
        assert_eq!(parse_markup_bps("1500"), Ok(1500));
        assert_eq!(parse_markup_bps(""), Ok(0));
        assert!(parse_markup_bps("-1").is_err());
        assert!(parse_markup_bps("1.5").is_err());
        assert_eq!(parse_when("now"), Ok(None));
        assert_eq!(parse_when("2026-12-24T09:00"), Ok(Some(1_798_102_800_000)));
        assert_eq!(
            parse_when("2026-12-24T10:00:00+01:00"),
            Ok(Some(1_798_102_800_000))
        );
        assert!(parse_when("tomorrow").is_err());
    }
}
