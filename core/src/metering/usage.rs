//! Reading usage back: a team's requests (each with its charge), filtered and keyset-paginated,
//! totals of a filtered range, the dashboard's figures and the operator's team list.
//!
//! A request's cost is its `charge` row's (found by request id); a request without a charge
//! (refused before admission) costs 0. The sum of charges over a range is what the team's
//! usage ledger transactions debited for those requests. Totals and the dashboard read the
//! daily rollup `usage_daily` (written with the log rows, see `insert_in`); only the pages of
//! rows and the CSV read `request_log` itself, by its `(team_id, created_at)` index.

use std::collections::HashMap;

use sqlx::{any::AnyRow, Row};

use crate::{
    db::{Db, DbError},
    money::Micros,
};

pub(super) const DAY_MS: i64 = 86_400_000;

/// Succeeded (status below 400) or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Ok,
    Error,
}

/// Which requests: days are UTC days since the Unix epoch, both ends inclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub from_day: Option<i64>,
    pub to_day: Option<i64>,
    pub api_key_id: Option<i64>,
    pub model: Option<String>,
    pub status: Option<StatusFilter>,
}

/// One request as the usage history shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub request_id: String,
    pub created_at: i64,
    pub api_key_id: i64,
    pub key_name: String,
    pub model: String,
    /// The provider's name, when the request reached a channel.
    pub provider: Option<String>,
    pub endpoint: String,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: Micros,
    pub latency_ms: u64,
    pub status: u16,
    pub error_kind: Option<String>,
    /// `upstream`, `estimated` or `none`.
    pub usage_source: String,
}

/// Sums over a set of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: Micros,
}

/// The totals of a filtered range, overall, per model and per key (dearest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub all: UsageTotals,
    pub by_model: Vec<(String, UsageTotals)>,
    /// (key row id, key name, totals).
    pub by_key: Vec<(i64, String, UsageTotals)>,
}

/// Where a page of requests ends: the page after it starts below this `(created_at,
/// request_id)`, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub request_id: String,
}

impl Cursor {
    /// `<created_at>.<request_id>`: URL-safe, since request ids are.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.request_id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once('.')?;
        let ok_id = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok_id.then_some(())?;
        Some(Cursor {
            created_at: at.parse().ok()?,
            request_id: id.to_owned(),
        })
    }
}

/// A bound value of a dynamically built statement.
pub(super) enum Bind {
    Int(i64),
    Text(String),
}

/// `WHERE` conditions with their values, numbered from `$1`.
pub(super) struct Conditions {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Conditions {
    /// The conditions of `f` for team `team_id` on `request_log r`.
    pub fn new(team_id: i64, f: &UsageFilter) -> Conditions {
        let mut c = Conditions {
            sql: String::from("r.team_id = $1"),
            binds: vec![Bind::Int(team_id)],
        };
        if let Some(d) = f.from_day {
            c.push("r.created_at >= ", Bind::Int(d.saturating_mul(DAY_MS)));
        }
        if let Some(d) = f.to_day {
            c.push(
                "r.created_at < ",
                Bind::Int(d.saturating_add(1).saturating_mul(DAY_MS)),
            );
        }
        if let Some(k) = f.api_key_id {
            c.push("r.api_key_id = ", Bind::Int(k));
        }
        if let Some(m) = &f.model {
            c.push("r.model = ", Bind::Text(m.clone()));
        }
        match f.status {
            Some(StatusFilter::Ok) => c.sql.push_str(" AND r.status < 400"),
            Some(StatusFilter::Error) => c.sql.push_str(" AND r.status >= 400"),
            None => {}
        }
        c
    }

    /// The conditions of `f` for team `team_id` on `usage_daily u` (whose rows are per UTC day,
    /// key, model and outcome, so every filter but the page cursor applies to it exactly).
    pub fn daily(team_id: i64, f: &UsageFilter) -> Conditions {
        let mut c = Conditions {
            sql: String::from("u.team_id = $1"),
            binds: vec![Bind::Int(team_id)],
        };
        if let Some(d) = f.from_day {
            c.push("u.day >= ", Bind::Int(d));
        }
        if let Some(d) = f.to_day {
            c.push("u.day <= ", Bind::Int(d));
        }
        if let Some(k) = f.api_key_id {
            c.push("u.api_key_id = ", Bind::Int(k));
        }
        if let Some(m) = &f.model {
            c.push("u.model = ", Bind::Text(m.clone()));
        }
        match f.status {
            Some(StatusFilter::Ok) => c.sql.push_str(" AND u.ok = 1"),
            Some(StatusFilter::Error) => c.sql.push_str(" AND u.ok = 0"),
            None => {}
        }
        c
    }

    /// `AND <lhs>$n` with `v` as `$n`.
    pub fn push(&mut self, lhs: &str, v: Bind) {
        self.binds.push(v);
        self.sql.push_str(" AND ");
        self.sql.push_str(lhs);
        self.sql.push('$');
        self.sql.push_str(&self.binds.len().to_string());
    }

    /// The next placeholder number.
    pub fn next(&self) -> usize {
        self.binds.len() + 1
    }

    pub fn bind<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for b in &self.binds {
            q = match b {
                Bind::Int(v) => q.bind(*v),
                Bind::Text(v) => q.bind(v.as_str()),
            };
        }
        q
    }
}

fn count(row: &AnyRow, col: &str) -> Result<u64, sqlx::Error> {
    Ok(u64::try_from(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0)).unwrap_or(0))
}

pub(super) const ROW_COLUMNS: &str = "r.request_id, r.created_at, r.api_key_id, \
    COALESCE(k.name, '') AS key_name, r.model, p.name AS provider, r.endpoint, r.input_tokens, \
    r.cached_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens, \
    COALESCE(c.cost, 0) AS cost, r.latency_ms, r.status, r.error_kind, r.usage_source";

pub(super) const ROW_JOINS: &str = "request_log r \
    LEFT JOIN charge c ON c.request_id = r.request_id \
    LEFT JOIN api_key k ON k.id = r.api_key_id \
    LEFT JOIN channel ch ON ch.id = r.channel_id \
    LEFT JOIN provider p ON p.id = ch.provider_id";

pub(super) fn usage_row(r: &AnyRow) -> Result<UsageRow, sqlx::Error> {
    Ok(UsageRow {
        request_id: r.try_get("request_id")?,
        created_at: r.try_get("created_at")?,
        api_key_id: r.try_get("api_key_id")?,
        key_name: r.try_get("key_name")?,
        model: r.try_get("model")?,
        provider: r.try_get("provider")?,
        endpoint: r.try_get("endpoint")?,
        input_tokens: count(r, "input_tokens")?,
        cached_tokens: count(r, "cached_tokens")?,
        cache_write_tokens: count(r, "cache_write_tokens")?,
        output_tokens: count(r, "output_tokens")?,
        reasoning_tokens: count(r, "reasoning_tokens")?,
        cost: Micros(r.try_get("cost")?),
        latency_ms: count(r, "latency_ms")?,
        status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
        error_kind: r.try_get("error_kind")?,
        usage_source: r.try_get("usage_source")?,
    })
}

/// One page of the team's requests matching `f`, newest first, starting after `after`; and
/// the cursor of the next page when there is one. Read in order from an index on
/// `(team_id, created_at, request_id)` (on SQLite the request id is the table's key, which ends
/// every index entry), never by OFFSET; `usage_queries_use_their_indexes` checks the plans.
pub async fn list_requests(
    db: &Db,
    team_id: i64,
    f: &UsageFilter,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<(Vec<UsageRow>, Option<Cursor>), DbError> {
    let (sql, c) = page_query(team_id, f, after, limit);
    let rows = c.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    let mut out = rows
        .iter()
        .map(usage_row)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next = if out.len() > limit as usize {
        out.truncate(limit as usize);
        out.last().map(|r| Cursor {
            created_at: r.created_at,
            request_id: r.request_id.clone(),
        })
    } else {
        None
    };
    Ok((out, next))
}

/// The statement of one page of [`list_requests`] (`limit + 1` rows, to tell whether another
/// page follows) and its bound values.
pub(super) fn page_query(
    team_id: i64,
    f: &UsageFilter,
    after: Option<&Cursor>,
    limit: u32,
) -> (String, Conditions) {
    let mut c = Conditions::new(team_id, f);
    if let Some(a) = after {
        let n = c.next();
        c.sql.push_str(&format!(
            " AND (r.created_at < ${n} OR (r.created_at = ${n} AND r.request_id < ${}))",
            n + 1
        ));
        c.binds.push(Bind::Int(a.created_at));
        c.binds.push(Bind::Text(a.request_id.clone()));
    }
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM {ROW_JOINS} WHERE {} \
         ORDER BY r.created_at DESC, r.request_id DESC LIMIT {}",
        c.sql,
        u64::from(limit) + 1
    );
    (sql, c)
}

/// Sums of `usage_daily u`, cast back to BIGINT: PostgreSQL sums BIGINTs as NUMERIC.
const SUMS: &str = "CAST(SUM(u.requests) AS BIGINT) AS requests, \
    CAST(SUM(u.input_tokens) AS BIGINT) AS input_tokens, \
    CAST(SUM(u.cached_tokens) AS BIGINT) AS cached_tokens, \
    CAST(SUM(u.cache_write_tokens) AS BIGINT) AS cache_write_tokens, \
    CAST(SUM(u.output_tokens) AS BIGINT) AS output_tokens, \
    CAST(SUM(u.reasoning_tokens) AS BIGINT) AS reasoning_tokens, \
    CAST(SUM(u.cost) AS BIGINT) AS cost";

fn sums(r: &AnyRow) -> Result<UsageTotals, sqlx::Error> {
    Ok(UsageTotals {
        requests: count(r, "requests")?,
        input_tokens: count(r, "input_tokens")?,
        cached_tokens: count(r, "cached_tokens")?,
        cache_write_tokens: count(r, "cache_write_tokens")?,
        output_tokens: count(r, "output_tokens")?,
        reasoning_tokens: count(r, "reasoning_tokens")?,
        cost: Micros(r.try_get::<Option<i64>, _>("cost")?.unwrap_or(0)),
    })
}

/// Totals of the team's requests matching `f`: overall, per model and per key. Read from the
/// daily rollup (`usage_daily`), so a month of a busy team costs a few hundred rows.
pub async fn totals(db: &Db, team_id: i64, f: &UsageFilter) -> Result<Totals, DbError> {
    let c = Conditions::daily(team_id, f);
    let sql = format!(
        "SELECT u.model, u.api_key_id, {SUMS} FROM usage_daily u WHERE {} \
         GROUP BY u.model, u.api_key_id",
        c.sql
    );
    let rows = c.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    let mut all = UsageTotals::default();
    let mut by_model: HashMap<String, UsageTotals> = HashMap::new();
    let mut by_key: HashMap<i64, UsageTotals> = HashMap::new();
    for r in &rows {
        let t = sums(r)?;
        add(&mut all, &t);
        add(by_model.entry(r.try_get("model")?).or_default(), &t);
        add(by_key.entry(r.try_get("api_key_id")?).or_default(), &t);
    }
    let names = key_names(db, team_id).await?;
    let mut by_model: Vec<_> = by_model.into_iter().collect();
    by_model.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
    let mut by_key: Vec<_> = by_key
        .into_iter()
        .map(|(id, t)| (id, names.get(&id).cloned().unwrap_or_default(), t))
        .collect();
    by_key.sort_by(|a, b| b.2.cost.cmp(&a.2.cost).then_with(|| a.0.cmp(&b.0)));
    Ok(Totals {
        all,
        by_model,
        by_key,
    })
}

fn add(into: &mut UsageTotals, t: &UsageTotals) {
    into.requests += t.requests;
    into.input_tokens = into.input_tokens.saturating_add(t.input_tokens);
    into.cached_tokens = into.cached_tokens.saturating_add(t.cached_tokens);
    into.cache_write_tokens = into.cache_write_tokens.saturating_add(t.cache_write_tokens);
    into.output_tokens = into.output_tokens.saturating_add(t.output_tokens);
    into.reasoning_tokens = into.reasoning_tokens.saturating_add(t.reasoning_tokens);
    into.cost = Micros(into.cost.0.saturating_add(t.cost.0));
}

async fn key_names(db: &Db, team_id: i64) -> Result<HashMap<i64, String>, DbError> {
    let rows = sqlx::query("SELECT id, name FROM api_key WHERE team_id = $1")
        .bind(team_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// What the dashboard shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dashboard {
    pub balance: Micros,
    pub held: Micros,
    pub available: Micros,
    pub today: UsageTotals,
    /// The last 7 days, today included.
    pub week: UsageTotals,
    /// The last 30 days, today included.
    pub month: UsageTotals,
    /// (day, spend) for the 30 days ending `today`, oldest first, days without spend as 0.
    pub daily_spend: Vec<(i64, Micros)>,
    /// The latest requests, newest first.
    pub latest: Vec<UsageRow>,
}

/// Requests on the dashboard.
pub const DASHBOARD_LATEST: u32 = 10;

/// The team's dashboard for UTC day `today`: its last 30 days of the daily rollup.
pub async fn dashboard(db: &Db, team_id: i64, today: i64) -> Result<Dashboard, DbError> {
    let (balance, held) = crate::billing::balance(db, team_id)
        .await
        .map_err(|e| match e {
            crate::billing::BillingError::Db(d) => d,
            other => DbError::Sqlx(sqlx::Error::Protocol(other.to_string())),
        })?;
    let first = today - 29;
    let f = UsageFilter {
        from_day: Some(first),
        to_day: Some(today),
        ..UsageFilter::default()
    };
    let c = Conditions::daily(team_id, &f);
    let sql = format!(
        "SELECT u.day, {SUMS} FROM usage_daily u WHERE {} GROUP BY u.day",
        c.sql
    );
    let rows = c.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    let mut per_day: HashMap<i64, UsageTotals> = HashMap::new();
    for r in &rows {
        per_day.insert(r.try_get("day")?, sums(r)?);
    }
    let mut d = Dashboard {
        balance,
        held,
        available: Micros(balance.0.saturating_sub(held.0)),
        ..Dashboard::default()
    };
    for day in first..=today {
        let t = per_day.get(&day).copied().unwrap_or_default();
        if day == today {
            add(&mut d.today, &t);
        }
        if day > today - 7 {
            add(&mut d.week, &t);
        }
        add(&mut d.month, &t);
        d.daily_spend.push((day, t.cost));
    }
    d.latest = list_requests(db, team_id, &UsageFilter::default(), None, DASHBOARD_LATEST)
        .await?
        .0;
    Ok(d)
}

/// A team as the operator's team list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTeamRow {
    pub id: i64,
    pub name: String,
    pub active: bool,
    pub balance: Micros,
    pub held: Micros,
    /// What the team's requests of the last 30 days cost (the usage the ledger debited).
    pub spend_30d: Micros,
    pub members: i64,
    pub created_at: i64,
}

/// Every team, by name, with its balance, 30-day spend and member count.
pub async fn admin_teams(db: &Db, today: i64) -> Result<Vec<AdminTeamRow>, DbError> {
    let since = today - 29;
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.active, t.created_at, \
         COALESCE(a.balance, 0) AS balance, COALESCE(a.held, 0) AS held, \
         (SELECT COUNT(*) FROM team_member m WHERE m.team_id = t.id) AS members, \
         (SELECT CAST(SUM(u.cost) AS BIGINT) FROM usage_daily u \
          WHERE u.team_id = t.id AND u.day >= $1) AS usage \
         FROM team t LEFT JOIN account a ON a.team_id = t.id AND a.kind = 'team_balance' \
         ORDER BY t.name",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(AdminTeamRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                active: r.try_get::<i64, _>("active")? != 0,
                balance: Micros(r.try_get("balance")?),
                held: Micros(r.try_get("held")?),
                spend_30d: Micros(r.try_get::<Option<i64>, _>("usage")?.unwrap_or(0)),
                members: r.try_get("members")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(out)
}
