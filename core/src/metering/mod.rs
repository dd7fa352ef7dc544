//! Metering: the request log row written once per gateway request (its usage, outcome and
//! timings), inserted in batches off the hot path; and reading it back for the console
//! (usage history, totals, CSV export, the dashboard).

mod export;
mod usage;

pub use export::csv_stream;
pub use usage::{
    admin_teams, dashboard, list_requests, totals, AdminTeamRow, Cursor, Dashboard, StatusFilter,
    Totals, UsageFilter, UsageRow, UsageTotals,
};

use crate::{
    db::{Db, DbError},
    writer::{Arg, Cell, Sql, SqlByRows, WriteTx, Writer},
};

/// Where a request's token counts came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageSource {
    /// The upstream reported them.
    Upstream,
    /// Weir counted or estimated them (the stream ended without a report).
    Estimated,
    /// Nothing was generated.
    None,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Upstream => "upstream",
            UsageSource::Estimated => "estimated",
            UsageSource::None => "none",
        }
    }
}

/// One row of `request_log`.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub request_id: String,
    pub team_id: i64,
    pub api_key_id: i64,
    pub endpoint: &'static str,
    pub model: String,
    /// The name the channel was sent, when one was tried.
    pub upstream_model: Option<String>,
    pub channel_id: Option<i64>,
    pub status: u16,
    pub error_kind: Option<&'static str>,
    pub stream: bool,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub usage_source: UsageSource,
    pub attempts: u32,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub created_at: i64,
}

const COLUMNS: usize = 20;

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Rows per `INSERT` statement (20 parameters each).
const ROWS_PER_STATEMENT: usize = 16;

/// Inserts rows in one transaction; a row whose `request_id` already exists is skipped, so a
/// retried batch never duplicates.
pub async fn insert_batch(db: &Db, rows: &[RequestRecord]) -> Result<(), DbError> {
    insert_batch_with(&mut Writer::Pool(db), rows).await
}

/// [`insert_batch`] through `w`.
pub async fn insert_batch_with(w: &mut Writer<'_>, rows: &[RequestRecord]) -> Result<(), DbError> {
    let rows: Vec<&RequestRecord> = rows.iter().collect();
    let mut tx = w.begin().await?;
    let res = insert_in(&mut tx, &rows).await;
    tx.end(res).await
}

/// Inserts `rows` inside `tx` (a row whose `request_id` already exists is skipped).
pub async fn insert_in(tx: &mut WriteTx<'_>, rows: &[&RequestRecord]) -> Result<(), DbError> {
    static SQL: SqlByRows = SqlByRows::new();
    let mut inserted: Vec<String> = Vec::with_capacity(rows.len());
    for chunk in crate::db::chunked(rows, ROWS_PER_STATEMENT) {
        let sql = SQL.get(chunk.len(), |n| {
            let mut sql = String::from(
                "INSERT INTO request_log (request_id, team_id, api_key_id, endpoint, model, upstream_model, channel_id, status, error_kind, stream, \
                 input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, usage_source, attempts, \
                 latency_ms, ttfb_ms, created_at) VALUES ",
            );
            for i in 0..n {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..COLUMNS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push('$');
                    sql.push_str(&(i * COLUMNS + c + 1).to_string());
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
            sql
        });
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * COLUMNS);
        for r in chunk {
            args.extend([
                Arg::from(&r.request_id),
                r.team_id.into(),
                r.api_key_id.into(),
                r.endpoint.into(),
                (&r.model).into(),
                r.upstream_model.as_deref().into(),
                r.channel_id.into(),
                i64::from(r.status).into(),
                r.error_kind.into(),
                i64::from(r.stream).into(),
                clamp(r.input_tokens).into(),
                clamp(r.cached_tokens).into(),
                clamp(r.cache_write_tokens).into(),
                clamp(r.output_tokens).into(),
                clamp(r.reasoning_tokens).into(),
                r.usage_source.as_str().into(),
                i64::from(r.attempts).into(),
                clamp(r.latency_ms).into(),
                r.ttfb_ms.map(clamp).into(),
                r.created_at.into(),
            ]);
        }
        for mut row in tx.fetch(&sql, &args).await? {
            if let Some(id) = row.first_mut() {
                inserted.push(id.text()?);
            }
        }
    }
    if inserted.len() == rows.len() {
        roll_up(tx, rows).await?;
    } else {
        // A retried batch: only the rows not logged before count.
        inserted.sort_unstable();
        let fresh: Vec<&RequestRecord> = rows
            .iter()
            .copied()
            .filter(|r| inserted.binary_search(&r.request_id).is_ok())
            .collect();
        roll_up(tx, &fresh).await?;
    }
    touch_keys(tx, rows).await
}

/// One row of `usage_daily` being added to.
struct Group<'a> {
    team_id: i64,
    day: i64,
    api_key_id: i64,
    model: &'a str,
    ok: bool,
    sums: [i64; 7],
}

/// Adds the newly inserted `rows` to `usage_daily`, each with its charge's cost (a charge is
/// finished before or in the transaction that logs its request; no charge costs 0).
async fn roll_up(tx: &mut WriteTx<'_>, rows: &[&RequestRecord]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    static COSTS: SqlByRows = SqlByRows::new();
    let mut costs: Vec<(String, i64)> = Vec::new();
    for chunk in crate::db::chunked(rows, 32) {
        let sql = COSTS.get(chunk.len(), |n| {
            let params: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
            format!(
                "SELECT request_id, cost FROM charge WHERE cost > 0 AND request_id IN ({})",
                params.join(",")
            )
        });
        let args: Vec<Arg<'_>> = chunk.iter().map(|r| Arg::from(&r.request_id)).collect();
        for mut row in tx.fetch(&sql, &args).await? {
            let cost = row.get(1).map(Cell::int).transpose()?.unwrap_or(0);
            if let Some(id) = row.first_mut() {
                costs.push((id.text()?, cost));
            }
        }
    }
    costs.sort_unstable();
    // A batch is mostly one team, key and model: a short list beats a map.
    let mut groups: Vec<Group<'_>> = Vec::new();
    for r in rows {
        let day = r.created_at.div_euclid(usage::DAY_MS);
        let ok = r.status < 400;
        let cost = costs
            .binary_search_by(|(id, _)| id.as_str().cmp(&r.request_id))
            .map_or(0, |i| costs[i].1);
        let add = [
            1,
            clamp(r.input_tokens),
            clamp(r.cached_tokens),
            clamp(r.cache_write_tokens),
            clamp(r.output_tokens),
            clamp(r.reasoning_tokens),
            cost,
        ];
        let i = match groups.iter().position(|g| {
            g.team_id == r.team_id
                && g.day == day
                && g.api_key_id == r.api_key_id
                && g.model == r.model
                && g.ok == ok
        }) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    team_id: r.team_id,
                    day,
                    api_key_id: r.api_key_id,
                    model: &r.model,
                    ok,
                    sums: [0; 7],
                });
                groups.len() - 1
            }
        };
        for (s, a) in groups[i].sums.iter_mut().zip(add) {
            *s = s.saturating_add(a);
        }
    }
    static UPSERT: std::sync::LazyLock<Sql> = std::sync::LazyLock::new(|| {
        Sql::new(
            "INSERT INTO usage_daily (team_id, day, api_key_id, model, ok, requests, input_tokens, \
             cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (team_id, day, api_key_id, model, ok) DO UPDATE SET \
             requests = usage_daily.requests + excluded.requests, \
             input_tokens = usage_daily.input_tokens + excluded.input_tokens, \
             cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens, \
             cache_write_tokens = usage_daily.cache_write_tokens + excluded.cache_write_tokens, \
             output_tokens = usage_daily.output_tokens + excluded.output_tokens, \
             reasoning_tokens = usage_daily.reasoning_tokens + excluded.reasoning_tokens, \
             cost = usage_daily.cost + excluded.cost",
        )
    });
    for g in &groups {
        let [requests, input, cached, cache_write, output, reasoning, cost] = g.sums;
        tx.execute(
            &UPSERT,
            &[
                g.team_id.into(),
                g.day.into(),
                g.api_key_id.into(),
                g.model.into(),
                i64::from(g.ok).into(),
                requests.into(),
                input.into(),
                cached.into(),
                cache_write.into(),
                output.into(),
                reasoning.into(),
                cost.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// How stale `api_key.last_used_at` may get: a key's row is written at most once per this.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Moves `api_key.last_used_at` forward for the keys of `rows`, but only for keys whose value
/// is more than [`LAST_USED_RESOLUTION_MS`] old, so a busy key's row is written once a minute,
/// not once per batch.
async fn touch_keys(tx: &mut WriteTx<'_>, rows: &[&RequestRecord]) -> Result<(), DbError> {
    let mut latest: Vec<(i64, i64)> = Vec::new();
    for r in rows {
        match latest.iter_mut().find(|(k, _)| *k == r.api_key_id) {
            Some((_, t)) => *t = (*t).max(r.created_at),
            None => latest.push((r.api_key_id, r.created_at)),
        }
    }
    static SQL: std::sync::LazyLock<Sql> = std::sync::LazyLock::new(|| {
        Sql::new(
            "UPDATE api_key SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
    });
    for (key, at) in latest {
        tx.execute(
            &SQL,
            &[
                at.into(),
                key.into(),
                at.saturating_sub(LAST_USED_RESOLUTION_MS).into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// A request-log row for tests.
#[cfg(test)]
pub(crate) fn sample_record(id: &str, team_id: i64) -> RequestRecord {
    RequestRecord {
        request_id: id.into(),
        team_id,
        api_key_id: 2,
        endpoint: "chat",
        model: "demo/echo".into(),
        upstream_model: Some("echo-1".into()),
        channel_id: Some(3),
        status: 200,
        error_kind: None,
        stream: true,
        input_tokens: 10,
        cached_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: 5,
        reasoning_tokens: 0,
        usage_source: UsageSource::Upstream,
        attempts: 1,
        latency_ms: 12,
        ttfb_ms: Some(3),
        created_at: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn batches_insert_once() {
        let t = TestDb::new().await.unwrap();
        let rows: Vec<_> = (0..1200)
            .map(|i| sample_record(&format!("r{i}"), 1))
            .collect();
        insert_batch(&t.db, &rows).await.unwrap();
        insert_batch(&t.db, &rows[..10]).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_log")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(n, 1200);
        t.cleanup().await;
    }

    /// The plan of `sql` with `c`'s values, one line per step: SQLite's `EXPLAIN QUERY PLAN`,
    /// or PostgreSQL's `EXPLAIN` with sequential scans priced out (a test table is small enough
    /// that the planner would rightly scan it; what is asked here is whether an index serves the
    /// query at all).
    async fn plan(db: &crate::db::Db, sql: &str, c: &usage::Conditions) -> String {
        let mut conn = db.pool().acquire().await.unwrap();
        let pg = db.backend() == crate::db::Backend::Postgres;
        let explain = if pg {
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .unwrap();
            format!("EXPLAIN {sql}")
        } else {
            format!("EXPLAIN QUERY PLAN {sql}")
        };
        let rows = c
            .bind(sqlx::query(&explain))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        if pg {
            sqlx::query("RESET enable_seqscan")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let col = if pg { "QUERY PLAN" } else { "detail" };
        rows.iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, col).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The console's usage queries are served by indexes on both backends: a page of the
    /// request table (filtered by day range and key, after a cursor) walks
    /// the team-and-time index of `request_log` in order with no sort step, and totals read `usage_daily` by its
    /// primary key's `(team_id, day)` prefix.
    #[tokio::test]
    async fn usage_queries_use_their_indexes() {
        let t = TestDb::new().await.unwrap();
        let rows: Vec<_> = (0..50)
            .map(|i| sample_record(&format!("p{i}"), 1))
            .collect();
        insert_batch(&t.db, &rows).await.unwrap();
        let pg = t.db.backend() == crate::db::Backend::Postgres;
        let f = UsageFilter {
            from_day: Some(0),
            to_day: Some(30),
            api_key_id: Some(1),
            ..UsageFilter::default()
        };
        let cursor = Cursor {
            created_at: 10,
            request_id: "p9".into(),
        };
        let (sql, c) = usage::page_query(1, &f, Some(&cursor), 50);
        let page = plan(&t.db, &sql, &c).await;
        let index = if pg {
            "request_log_team_page"
        } else {
            "request_log_team_time"
        };
        assert!(page.contains(index), "{page}");
        if pg {
            assert!(!page.contains("Seq Scan on request_log"), "{page}");
            assert!(!page.contains("Sort"), "{page}");
        } else {
            assert!(!page.contains("SCAN r"), "{page}");
            assert!(!page.contains("TEMP B-TREE"), "{page}");
        }
        let d = usage::Conditions::daily(1, &f);
        let sql = format!(
            "SELECT u.model, u.api_key_id, SUM(u.cost) FROM usage_daily u WHERE {} \
             GROUP BY u.model, u.api_key_id",
            d.sql
        );
        let daily = plan(&t.db, &sql, &d).await;
        if pg {
            assert!(daily.contains("usage_daily_pkey"), "{daily}");
        } else {
            assert!(
                daily.contains("SEARCH u USING PRIMARY KEY (team_id=? AND day>? AND day<?)"),
                "{daily}"
            );
        }
        t.cleanup().await;
    }

    /// The rollup counts each logged row once, a retried batch included, and splits by day,
    /// key, model and outcome.
    #[tokio::test]
    async fn the_daily_rollup_counts_each_row_once() {
        let t = TestDb::new().await.unwrap();
        let rows: Vec<_> = (0..40)
            .map(|i| {
                let mut r = sample_record(&format!("u{i}"), 1);
                r.created_at = (i % 2) * usage::DAY_MS + 5;
                r.model = if i % 4 < 2 { "a".into() } else { "b".into() };
                r.status = if i == 7 { 502 } else { 200 };
                r
            })
            .collect();
        insert_batch(&t.db, &rows[..25]).await.unwrap();
        // A retry of part of the first batch along with new rows.
        insert_batch(&t.db, &rows[20..]).await.unwrap();
        let all = totals(&t.db, 1, &UsageFilter::default()).await.unwrap();
        assert_eq!(all.all.requests, 40);
        assert_eq!(all.all.input_tokens, 400);
        let groups: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_daily")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        // Two days × two models, and the failed request's own row.
        assert_eq!(groups, 5);
        let failed = UsageFilter {
            status: Some(StatusFilter::Error),
            ..UsageFilter::default()
        };
        assert_eq!(totals(&t.db, 1, &failed).await.unwrap().all.requests, 1);
        let day_one = UsageFilter {
            from_day: Some(1),
            to_day: Some(1),
            model: Some("a".into()),
            ..UsageFilter::default()
        };
        assert_eq!(totals(&t.db, 1, &day_one).await.unwrap().all.requests, 10);
        t.cleanup().await;
    }
}
