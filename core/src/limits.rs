//! Limits on API keys and teams: requests, tokens and concurrent requests per minute, the models
//! a key may use, and spend caps per UTC day, per calendar month and in total.
//!
//! The rules live in `usage_limit`, one row per key or team that has any. They reach the
//! gateway with the key's row: [`KeyVerifier`](crate::auth::KeyVerifier) reads them in the same
//! query and caches them in the [`Caller`](crate::auth::Caller), and every change bumps the
//! auth epoch, so every replica applies a change within a second, as it does a revocation.
//!
//! Rates are counted by the gateway's limiter (in process, or in Redis for many replicas).
//! Spend caps are counted here, in the database, in the same transaction and the same guarded
//! `UPDATE` style as the balance hold (see `billing::batch`): a capped request is admitted only
//! if `spent in the window + open holds + its own hold ≤ cap`, so concurrent requests on any
//! number of replicas cannot pass a cap together. Settlement moves a hold's amount out of
//! `held` and the actual cost into the window's `spent`.
//!
//! # Overshoot bound
//!
//! A cap is passed only by what settlement charges beyond the holds: the same bound as the
//! balance's (see `billing`): for each request in flight when the cap was reached, the price
//! of the tokens its estimate missed. With `max_tokens` set and Weir's prompt count at least
//! the upstream's, that is zero. A hold open across midnight counts against the new day too
//! (conservative); its cost is spent on the day it settles.

use chrono::{Datelike, TimeZone, Utc};
use sqlx::Row;

use crate::{
    db::{now_ms, Db, DbError},
    money::Micros,
};

/// Whose limits: an API key's (`api_key.id`) or a team's (`team.id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Key,
    Team,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Team => "team",
        }
    }

    /// The hold's `caps` bit for this scope.
    pub fn cap_bit(self) -> i64 {
        match self {
            Scope::Key => 1,
            Scope::Team => 2,
        }
    }
}

/// One key's or team's rules; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub concurrency: Option<u32>,
    /// Model patterns (`*` matches any run of characters); `None` is any model.
    pub models: Option<Vec<String>>,
    pub day_cap: Option<Micros>,
    pub month_cap: Option<Micros>,
    pub total_cap: Option<Micros>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        *self == Rules::default()
    }

    pub fn has_cap(&self) -> bool {
        self.day_cap.is_some() || self.month_cap.is_some() || self.total_cap.is_some()
    }

    /// Whether a request naming `requested`, served by catalog model `model_id`, is allowed.
    pub fn allows(&self, requested: &str, model_id: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| glob(p, requested) || glob(p, model_id)))
    }

    /// Parses a comma-separated pattern list; empty is `None` (any model).
    pub fn parse_models(s: &str) -> Option<Vec<String>> {
        let v: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        (!v.is_empty()).then_some(v)
    }
}

/// Parses a per-minute or concurrency limit as typed in a form or on the command line: empty
/// (or `none`) is no limit.
pub fn parse_rate(s: &str) -> Result<Option<u32>, &'static str> {
    match s.trim() {
        "" | "none" | "-" => Ok(None),
        v => v
            .replace(['_', ','], "")
            .parse()
            .map(Some)
            .map_err(|_| "a whole number, or empty for no limit"),
    }
}

/// Parses a spend cap in dollars (`1`, `$2.50`): empty (or `none`) is no cap.
pub fn parse_cap(s: &str) -> Result<Option<Micros>, &'static str> {
    match s.trim().trim_start_matches('$') {
        "" | "none" | "-" => Ok(None),
        v => match Micros::parse_usd(v) {
            Ok(m) if m.0 >= 0 => Ok(Some(m)),
            _ => Err("a dollar amount like 25 or 2.50, or empty for no cap"),
        },
    }
}

/// The rules a request is checked against: its key's and its team's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub key: Rules,
    pub team: Rules,
}

impl Limits {
    /// The hold's `caps` bits: which spend caps the request counts against.
    pub fn caps(&self) -> i64 {
        let bit = |r: &Rules, s: Scope| if r.has_cap() { s.cap_bit() } else { 0 };
        bit(&self.key, Scope::Key) | bit(&self.team, Scope::Team)
    }

    pub fn allows(&self, requested: &str, model_id: &str) -> bool {
        self.key.allows(requested, model_id) && self.team.allows(requested, model_id)
    }
}

/// `*` matches any run of characters (none included); everything else matches itself, ASCII
/// case-insensitively.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it is currently taken to stop at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// UTC day number (days since 1970-01-01) of a Unix-ms instant.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Month number (months since 1970-01) of a Unix-ms instant, in UTC.
pub fn month_of(ms: i64) -> i64 {
    let t = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    i64::from(t.year() - 1970) * 12 + i64::from(t.month0())
}

/// Seconds from `ms` until the next UTC midnight (the day cap's reset).
pub fn secs_to_next_day(ms: i64) -> u64 {
    let next = (day_of(ms) + 1) * 86_400_000;
    u64::try_from((next - ms + 999) / 1000).unwrap_or(1).max(1)
}

/// Seconds from `ms` until the first of next month, UTC (the month cap's reset).
pub fn secs_to_next_month(ms: i64) -> u64 {
    let m = month_of(ms) + 1;
    let (y, mo) = (1970 + m.div_euclid(12), m.rem_euclid(12) + 1);
    let next = Utc
        .with_ymd_and_hms(y as i32, mo as u32, 1, 0, 0, 0)
        .single()
        .map_or(ms + 86_400_000, |t| t.timestamp_millis());
    u64::try_from((next - ms + 999) / 1000).unwrap_or(1).max(1)
}

/// What a key or team has spent against its caps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spend {
    pub day: Micros,
    pub month: Micros,
    pub total: Micros,
    /// Open holds of capped requests.
    pub held: Micros,
}

impl Spend {
    /// What the tightest cap still allows (`None` without caps), never below zero.
    pub fn remaining(&self, rules: &Rules) -> Option<Micros> {
        [
            rules.day_cap.map(|c| c.0 - self.day.0),
            rules.month_cap.map(|c| c.0 - self.month.0),
            rules.total_cap.map(|c| c.0 - self.total.0),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|r| Micros((r - self.held.0).max(0)))
    }
}

/// The columns of `usage_limit` that hold rules, for the verifier's join (prefix `p`).
pub(crate) fn rules_from_row(r: &sqlx::any::AnyRow, p: &str) -> Result<Rules, sqlx::Error> {
    let int =
        |c: &str| -> Result<Option<i64>, sqlx::Error> { r.try_get(format!("{p}{c}").as_str()) };
    let rate = |c: &str| -> Result<Option<u32>, sqlx::Error> {
        Ok(int(c)?.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
    };
    let models: Option<String> = r.try_get(format!("{p}allowed_models").as_str())?;
    Ok(Rules {
        rpm: rate("rpm")?,
        tpm: rate("tpm")?,
        concurrency: rate("max_concurrent")?,
        models: models.as_deref().and_then(Rules::parse_models),
        day_cap: int("day_cap")?.map(Micros),
        month_cap: int("month_cap")?.map(Micros),
        total_cap: int("total_cap")?.map(Micros),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for LimitError {
    fn from(e: sqlx::Error) -> Self {
        LimitError::Db(DbError::Sqlx(e))
    }
}

/// The rules and spend of a key or team (default rules and no spend without a row).
pub async fn get(db: &Db, scope: Scope, owner_id: i64) -> Result<(Rules, Spend), LimitError> {
    let row = sqlx::query(
        "SELECT rpm, tpm, max_concurrent, allowed_models, day_cap, month_cap, total_cap, \
         day, day_spent, month, month_spent, total_spent, held \
         FROM usage_limit WHERE scope = $1 AND owner_id = $2",
    )
    .bind(scope.as_str())
    .bind(owner_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else {
        return Ok(Default::default());
    };
    Ok((rules_from_row(&r, "")?, spend_from_row(&r, now_ms())?))
}

/// The rules and spend of every key of a team that has any, by key row id (for the keys page).
pub async fn of_team_keys(
    db: &Db,
    team_id: i64,
) -> Result<std::collections::HashMap<i64, (Rules, Spend)>, LimitError> {
    let rows = sqlx::query(
        "SELECT l.owner_id, l.rpm, l.tpm, l.max_concurrent, l.allowed_models, l.day_cap, \
           l.month_cap, l.total_cap, l.day, l.day_spent, l.month, l.month_spent, l.total_spent, l.held \
         FROM usage_limit l JOIN api_key k ON k.id = l.owner_id \
         WHERE l.scope = 'key' AND k.team_id = $1",
    )
    .bind(team_id)
    .fetch_all(db.pool())
    .await?;
    let now = now_ms();
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(
            r.try_get("owner_id")?,
            (rules_from_row(&r, "")?, spend_from_row(&r, now)?),
        );
    }
    Ok(out)
}

fn spend_from_row(r: &sqlx::any::AnyRow, now: i64) -> Result<Spend, sqlx::Error> {
    let in_window = |w: &str, v: &str, current: i64| -> Result<Micros, sqlx::Error> {
        let at: i64 = r.try_get(w)?;
        Ok(Micros(if at == current { r.try_get(v)? } else { 0 }))
    };
    Ok(Spend {
        day: in_window("day", "day_spent", day_of(now))?,
        month: in_window("month", "month_spent", month_of(now))?,
        total: Micros(r.try_get("total_spent")?),
        held: Micros(r.try_get("held")?),
    })
}

/// The row id of a key by its key id (the part of the key after the environment).
pub async fn key_row_id(db: &Db, key_id: &str) -> Result<Option<i64>, LimitError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM api_key WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Replaces a key's or team's rules (keeping what it has spent) and bumps the auth epoch, so
/// every replica applies them within a second.
pub async fn set(db: &Db, scope: Scope, owner_id: i64, rules: &Rules) -> Result<(), LimitError> {
    for c in [rules.day_cap, rules.month_cap, rules.total_cap]
        .into_iter()
        .flatten()
    {
        if c.0 < 0 {
            return Err(LimitError::Invalid("a spend cap cannot be negative"));
        }
    }
    let models = rules.models.as_ref().map(|v| v.join(","));
    let rate = |v: Option<u32>| v.map(i64::from);
    let cap = |v: Option<Micros>| v.map(|m| m.0);
    let mut tx = db.begin_write().await?;
    let exists = match scope {
        Scope::Key => "SELECT 1 FROM api_key WHERE id = $1",
        Scope::Team => "SELECT 1 FROM team WHERE id = $1",
    };
    if sqlx::query(exists)
        .bind(owner_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_none()
    {
        return Err(LimitError::Invalid("no such key or team"));
    }
    sqlx::query(
        "INSERT INTO usage_limit (scope, owner_id, rpm, tpm, max_concurrent, allowed_models, \
           day_cap, month_cap, total_cap, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (scope, owner_id) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm, \
           max_concurrent = excluded.max_concurrent, allowed_models = excluded.allowed_models, \
           day_cap = excluded.day_cap, month_cap = excluded.month_cap, \
           total_cap = excluded.total_cap, updated_at = excluded.updated_at",
    )
    .bind(scope.as_str())
    .bind(owner_id)
    .bind(rate(rules.rpm))
    .bind(rate(rules.tpm))
    .bind(rate(rules.concurrency))
    .bind(models)
    .bind(cap(rules.day_cap))
    .bind(cap(rules.month_cap))
    .bind(cap(rules.total_cap))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    crate::auth::bump_epoch(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("openai/*", "openai/gpt-4o-mini"));
        assert!(!glob("openai/*", "anthropic/claude"));
        assert!(glob("*mini*", "openai/gpt-4o-mini"));
        assert!(glob("GPT-4o", "gpt-4o"));
        assert!(!glob("gpt-4o", "gpt-4o-mini"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }

    #[test]
    fn windows() {
        // 2026-12-07T23:59:59Z
        let t = Utc
            .with_ymd_and_hms(2026, 12, 7, 23, 59, 59)
            .unwrap()
            .timestamp_millis();
        assert_eq!(secs_to_next_day(t), 1);
        assert_eq!(secs_to_next_month(t), 24 * 86_400 + 1);
        assert_eq!(month_of(t), 56 * 12 + 11);
        assert_eq!(month_of(0), 0);
        assert_eq!(day_of(t + 1000), day_of(t) + 1);
    }

    #[test]
    fn remaining_is_the_tightest_cap_less_holds() {
        let rules = Rules {
            day_cap: Some(Micros(1_000_000)),
            total_cap: Some(Micros(5_000_000)),
            ..Rules::default()
        };
        let spend = Spend {
            day: Micros(400_000),
            month: Micros(0),
            total: Micros(4_800_000),
            held: Micros(100_000),
        };
        assert_eq!(spend.remaining(&rules), Some(Micros(100_000)));
        assert_eq!(Spend::default().remaining(&Rules::default()), None);
    }
}
