//! Reservations: hold the worst case before a request runs, then settle the actual usage at the
//! price snapshot or release the hold, exactly once per request.

use std::{sync::LazyLock, time::Duration};

use sqlx::{any::AnyRow, Row};

use super::{
    batch::{self, Finish},
    pricing::Usage,
    tokens_from_db, tokens_to_db, BillingError,
};
use crate::{
    catalog::Tariff,
    db::{now_ms, Db},
    metering::{self, RequestRecord, UsageSource},
    money::{Micros, PerMillion},
    writer::{Cell, Sql, WriteTx, Writer},
};

/// What the gateway reserves before calling upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReservation {
    /// Unique per request (UUIDv7); also the usage row's key.
    pub request_id: String,
    pub team_id: i64,
    pub api_key_id: i64,
    /// The catalog model id, stored on the usage row and as the ledger memo.
    pub model: String,
    /// The amount to hold, normally [`worst_case`](super::worst_case). Must not be negative.
    pub amount: Micros,
    /// The tariff in force now; settlement charges at this snapshot.
    pub tariff: Tariff,
    /// How long the hold may stay open before the reaper finishes it. Must exceed the longest
    /// possible request (the gateway's total deadline) with margin.
    pub ttl: Duration,
    /// Weir's own count of the prompt tokens, billed by the reaper if the request never settles
    /// but had produced output (see [`checkpoint`]).
    pub prompt_estimate: u64,
    /// Which spend caps the hold counts against ([`Limits::caps`](crate::limits::Limits::caps):
    /// bit 1 the key's, bit 2 the team's); 0 for none.
    pub caps: i64,
}

/// The state of a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationStatus {
    Reserved,
    Settled,
    Released,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "reserved",
            ReservationStatus::Settled => "settled",
            ReservationStatus::Released => "released",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "reserved" => Some(ReservationStatus::Reserved),
            "settled" => Some(ReservationStatus::Settled),
            "released" => Some(ReservationStatus::Released),
            _ => None,
        }
    }
}

/// The result of [`settle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// What the team was charged for this request (0 if it was released).
    pub cost: Micros,
    /// True when the request had already been finished before this call (by an earlier or
    /// concurrent `settle`, a `release`, or the reaper); nothing changed.
    pub already: bool,
    /// How the request ended: `Settled`, or `Released` when it had been released.
    pub status: ReservationStatus,
}

/// A reservation as stored: its hold while open, its charge once finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub request_id: String,
    pub team_id: i64,
    pub api_key_id: i64,
    pub model: String,
    pub amount: Micros,
    pub tariff: Tariff,
    pub prompt_estimate: u64,
    pub status: ReservationStatus,
    /// The (normalized) usage charged, once settled.
    pub usage: Option<Usage>,
    pub usage_source: Option<UsageSource>,
    pub cost: Option<Micros>,
    pub checkpoint_output_tokens: u64,
    pub created_at: i64,
    /// When the reaper may finish it (`None` once finished).
    pub expires_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn parse_source(s: &str) -> Option<UsageSource> {
    match s {
        "upstream" => Some(UsageSource::Upstream),
        "estimated" => Some(UsageSource::Estimated),
        "none" => Some(UsageSource::None),
        _ => None,
    }
}

pub(super) fn tariff_from_row(r: &AnyRow) -> Result<Tariff, sqlx::Error> {
    let opt = |k: &str| -> Result<Option<PerMillion>, sqlx::Error> {
        Ok(r.try_get::<Option<i64>, _>(k)?.map(PerMillion))
    };
    Ok(Tariff {
        input: PerMillion(r.try_get("price_input")?),
        cached_input: opt("price_cached_input")?,
        cache_write: opt("price_cache_write")?,
        output: PerMillion(r.try_get("price_output")?),
        reasoning: opt("price_reasoning")?,
        markup_bps: r.try_get("markup_bps")?,
    })
}

/// Holds `r.amount` on the team's balance and records the reservation, in one write
/// transaction. The hold is one guarded `UPDATE` (`balance - held >= amount`), so concurrent
/// reservations can never together exceed the balance. Errors: `InsufficientBalance` (nothing
/// held; also when the team has no account), `Duplicate` for a reused request id,
/// `InvalidAmount` for a negative amount.
pub async fn reserve(db: &Db, r: &NewReservation) -> Result<(), BillingError> {
    reserve_with(&mut Writer::Pool(db), r).await
}

/// [`reserve`] through `w`.
pub(super) async fn reserve_with(
    w: &mut Writer<'_>,
    r: &NewReservation,
) -> Result<(), BillingError> {
    let mut tx = w.begin().await?;
    match batch::reserve_in(&mut tx, &[r], now_ms()).await {
        Ok(mut out) => {
            let one = out.pop().unwrap_or(Err(BillingError::InsufficientBalance));
            if one.is_ok() {
                tx.commit().await?;
            } else {
                // Give the SQLite write lock back at once instead of when the connection is
                // recycled.
                tx.rollback().await?;
            }
            one
        }
        Err(e) => {
            // Undo the hold now rather than when the connection goes back to the pool: the
            // team's account row stays locked until then on PostgreSQL.
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// Reserves many requests in one transaction (group commit), with the same per-request
/// outcome as [`reserve`] called for each in order. A database failure, or a reused request
/// id anywhere in the batch, falls back to one transaction per request, so one bad item never
/// fails the others.
pub async fn reserve_many(db: &Db, items: &[NewReservation]) -> Vec<Result<(), BillingError>> {
    reserve_many_with(&mut Writer::Pool(db), items).await
}

/// [`reserve_many`] through `w`.
pub(super) async fn reserve_many_with(
    w: &mut Writer<'_>,
    items: &[NewReservation],
) -> Vec<Result<(), BillingError>> {
    if let [one] = items {
        return vec![reserve_with(w, one).await];
    }
    let refs: Vec<&NewReservation> = items.iter().collect();
    let attempt = async {
        let mut tx = w.begin().await?;
        let res = batch::reserve_in(&mut tx, &refs, now_ms()).await;
        tx.end(res).await
    };
    match attempt.await {
        Ok(out) => out,
        Err(e) => {
            tracing::debug!(error = %e, n = items.len(), "batched reservation failed; one by one");
            let mut out = Vec::with_capacity(items.len());
            for r in items {
                out.push(reserve_with(w, r).await);
            }
            out
        }
    }
}

/// Reads the stored outcome of a finished reservation.
async fn finished(w: &mut Writer<'_>, request_id: &str) -> Result<Settlement, BillingError> {
    let not_found = || BillingError::NotFound(request_id.to_owned());
    let mut row = match w {
        Writer::Pool(db) => {
            let row = sqlx::query("SELECT status, cost FROM charge WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(db.pool())
                .await?
                .ok_or_else(not_found)?;
            vec![
                Cell::Text(row.try_get("status")?),
                Cell::Null.or_int(row.try_get::<Option<i64>, _>("cost")?),
            ]
        }
        Writer::Conn(_) => {
            static SQL: LazyLock<Sql> =
                LazyLock::new(|| Sql::new("SELECT status, cost FROM charge WHERE request_id = $1"));
            let mut tx = w.begin().await?;
            let rows = tx.fetch(&SQL, &[request_id.into()]).await?;
            tx.commit().await?;
            rows.into_iter().next().ok_or_else(not_found)?
        }
    };
    if row.len() != 2 {
        return Err(not_found());
    }
    let status = ReservationStatus::parse(&row[0].text()?).ok_or_else(not_found)?;
    Ok(Settlement {
        cost: Micros(row[1].opt_int()?.unwrap_or(0)),
        already: true,
        status,
    })
}

/// Charges the request's actual `usage` at its price snapshot and drops its hold, in one
/// transaction: the hold is deleted and the request's charge (usage row) written (`status =
/// 'settled'`, tokens, `usage_source`, cost), the ledger gets `usage:<request_id>` (team
/// −total, `upstream_cost` +upstream, `revenue_markup` +markup), and the team's `held` drops
/// by the reserved amount
/// while its `balance` drops by the cost, which may exceed the reservation (see the overshoot
/// bound in the [module docs](super)).
///
/// Idempotent: if the request is already settled or released (including by a concurrent call
/// or the reaper), nothing changes and the stored outcome is returned with `already = true`.
/// `NotFound` if no reservation has this id.
pub async fn settle(
    db: &Db,
    request_id: &str,
    usage: &Usage,
    source: UsageSource,
) -> Result<Settlement, BillingError> {
    let finish = Finish::Settle {
        usage: *usage,
        source,
    };
    finish_one(db, request_id, finish).await
}

/// Drops the hold of a request that will not be charged (failed before any billable work),
/// without a ledger transaction. Returns `true` if this call released it, `false` if it was
/// already settled or released (idempotent). `NotFound` if no reservation has this id.
pub async fn release(db: &Db, request_id: &str) -> Result<bool, BillingError> {
    finish_one(db, request_id, Finish::Release)
        .await
        .map(|s| !s.already)
}

/// [`settle`] or [`release`] by a [`Finish`], in its own transaction.
pub async fn finish_one(
    db: &Db,
    request_id: &str,
    finish: Finish,
) -> Result<Settlement, BillingError> {
    finish_one_with(&mut Writer::Pool(db), request_id, finish).await
}

/// [`finish_one`] through `w`.
pub(super) async fn finish_one_with(
    w: &mut Writer<'_>,
    request_id: &str,
    finish: Finish,
) -> Result<Settlement, BillingError> {
    let item = [(request_id, finish)];
    let done = try_finish(w, &item).await?;
    match outcomes(w, &item, done).await.pop() {
        Some(outcome) => outcome,
        None => Err(BillingError::NotFound(request_id.to_owned())),
    }
}

/// Settles or releases many requests in one transaction (group commit), each with the outcome
/// [`settle`] or [`release`] would give it (`status` says which happened; `already` that it
/// had been finished before). A database failure falls back to one transaction per request.
pub async fn finish_many(
    db: &Db,
    items: &[(&str, Finish)],
) -> Vec<Result<Settlement, BillingError>> {
    finish_many_with(&mut Writer::Pool(db), items).await
}

/// [`finish_many`] through `w`.
pub(super) async fn finish_many_with(
    w: &mut Writer<'_>,
    items: &[(&str, Finish)],
) -> Vec<Result<Settlement, BillingError>> {
    match try_finish(w, items).await {
        Ok(done) => outcomes(w, items, done).await,
        Err(e) => {
            tracing::debug!(error = %e, n = items.len(), "batched settlement failed; one by one");
            let mut out = Vec::with_capacity(items.len());
            for (request_id, finish) in items {
                out.push(finish_one_with(w, request_id, *finish).await);
            }
            out
        }
    }
}

/// [`finish_many`] of `items` and the request-log rows `rows` in one transaction. On a
/// database failure nothing is written and the error is returned; the caller decides how to
/// retry.
pub(super) async fn finish_and_log_with(
    w: &mut Writer<'_>,
    items: &[(&str, Finish)],
    rows: &[&RequestRecord],
) -> Result<Vec<Result<Settlement, BillingError>>, BillingError> {
    let mut tx = w.begin().await?;
    let res = async {
        let done = batch::finish_in(&mut tx, items, now_ms()).await?;
        metering::insert_in(&mut tx, rows).await?;
        Ok::<_, BillingError>(done)
    }
    .await;
    let done = tx.end(res).await?;
    Ok(outcomes(w, items, done).await)
}

/// One transaction finishing `items`: per item, its cost if this call finished it.
async fn try_finish(
    w: &mut Writer<'_>,
    items: &[(&str, Finish)],
) -> Result<Vec<Option<Micros>>, BillingError> {
    let mut tx = w.begin().await?;
    let res = batch::finish_in(&mut tx, items, now_ms()).await;
    tx.end(res).await
}

/// What each item's caller is told: its settlement, the stored outcome of a request that was
/// finished before (`already`), or `NotFound`.
async fn outcomes(
    w: &mut Writer<'_>,
    items: &[(&str, Finish)],
    done: Vec<Option<Micros>>,
) -> Vec<Result<Settlement, BillingError>> {
    let mut out = Vec::with_capacity(items.len());
    for ((request_id, finish), cost) in items.iter().zip(done) {
        out.push(match cost {
            Some(cost) => Ok(Settlement {
                cost,
                already: false,
                status: match finish {
                    Finish::Settle { .. } => ReservationStatus::Settled,
                    Finish::Release => ReservationStatus::Released,
                },
            }),
            None => finished(w, request_id).await,
        });
    }
    out
}

/// Records how many output tokens a running request has produced so far, so that the reaper
/// can bill them if the process dies before settling. Only grows; ignored once the request is
/// finished or for an unknown id. One single-statement write, cheap enough every few seconds.
pub async fn checkpoint(db: &Db, request_id: &str, output_tokens: u64) -> Result<(), BillingError> {
    sqlx::query(
        "UPDATE hold SET checkpoint_output_tokens = $2 \
         WHERE request_id = $1 AND checkpoint_output_tokens < $2",
    )
    .bind(request_id)
    .bind(tokens_to_db(output_tokens))
    .execute(db.write_pool())
    .await?;
    Ok(())
}

/// Grows the hold of an open reservation by `additional` (a long or capped stream extending
/// its budget), with the same guarded `UPDATE` as [`reserve`]. Returns the new reserved amount.
/// `InsufficientBalance` leaves everything unchanged; `Finished` if the request is no longer
/// open; `NotFound` for an unknown id.
pub async fn extend(db: &Db, request_id: &str, additional: Micros) -> Result<Micros, BillingError> {
    if additional.0 < 0 {
        return Err(BillingError::InvalidAmount(
            "an extension cannot be negative",
        ));
    }
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE hold SET amount = amount + $2 WHERE request_id = $1 \
         RETURNING team_id, api_key_id, amount, caps",
    )
    .bind(request_id)
    .bind(additional.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        finished(&mut Writer::Pool(db), request_id).await?;
        return Err(BillingError::Finished(request_id.to_owned()));
    };
    let team_id: i64 = row.try_get("team_id")?;
    let amount: i64 = row.try_get("amount")?;
    let caps: i64 = row.try_get("caps")?;
    if caps != 0 {
        let api_key_id: i64 = row.try_get("api_key_id")?;
        let mut w = WriteTx::within(&mut tx);
        if let Err(e) =
            super::caps::extend(&mut w, caps, api_key_id, team_id, additional, now_ms()).await
        {
            drop(w);
            tx.rollback().await?;
            return Err(e);
        }
    }
    let held = sqlx::query(
        "UPDATE account SET held = held + $1, updated_at = $2 \
         WHERE team_id = $3 AND kind = 'team_balance' AND balance - held >= $1",
    )
    .bind(additional.0)
    .bind(now_ms())
    .bind(team_id)
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() == 0 {
        // Unlock the hold at once (a settle may be waiting on it).
        tx.rollback().await?;
        return Err(BillingError::InsufficientBalance);
    }
    tx.commit().await?;
    Ok(Micros(amount))
}

/// Reads one reservation: its hold while it is open, its charge (the usage row) once finished.
pub async fn reservation(db: &Db, request_id: &str) -> Result<Option<Reservation>, BillingError> {
    let open = sqlx::query(
        "SELECT request_id, team_id, api_key_id, model, amount, price_input, price_cached_input, \
           price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate, \
           checkpoint_output_tokens, created_at, expires_at \
         FROM hold WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(db.pool())
    .await?;
    if let Some(r) = open {
        return Ok(Some(Reservation {
            request_id: r.try_get("request_id")?,
            team_id: r.try_get("team_id")?,
            api_key_id: r.try_get("api_key_id")?,
            model: r.try_get("model")?,
            amount: Micros(r.try_get("amount")?),
            tariff: tariff_from_row(&r)?,
            prompt_estimate: tokens_from_db(r.try_get("prompt_estimate")?),
            status: ReservationStatus::Reserved,
            usage: None,
            usage_source: None,
            cost: None,
            checkpoint_output_tokens: tokens_from_db(r.try_get("checkpoint_output_tokens")?),
            created_at: r.try_get("created_at")?,
            expires_at: Some(r.try_get("expires_at")?),
            finished_at: None,
        }));
    }
    let row = sqlx::query(
        "SELECT request_id, team_id, api_key_id, model, amount, price_input, price_cached_input, \
           price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate, status, \
           input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, \
           usage_source, cost, checkpoint_output_tokens, created_at, finished_at \
         FROM charge WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let status = ReservationStatus::parse(&r.try_get::<String, _>("status")?)
        .ok_or_else(|| BillingError::NotFound(request_id.to_owned()))?;
    let tok = |k: &str| -> Result<Option<u64>, sqlx::Error> {
        Ok(r.try_get::<Option<i64>, _>(k)?.map(tokens_from_db))
    };
    let usage = match tok("input_tokens")? {
        Some(input) => Some(Usage {
            input,
            cached_input: tok("cached_tokens")?.unwrap_or(0),
            cache_write: tok("cache_write_tokens")?.unwrap_or(0),
            output: tok("output_tokens")?.unwrap_or(0),
            reasoning: tok("reasoning_tokens")?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(Some(Reservation {
        request_id: r.try_get("request_id")?,
        team_id: r.try_get("team_id")?,
        api_key_id: r.try_get("api_key_id")?,
        model: r.try_get("model")?,
        amount: Micros(r.try_get("amount")?),
        tariff: tariff_from_row(&r)?,
        prompt_estimate: tokens_from_db(r.try_get("prompt_estimate")?),
        status,
        usage,
        usage_source: r
            .try_get::<Option<String>, _>("usage_source")?
            .as_deref()
            .and_then(parse_source),
        cost: Some(Micros(r.try_get("cost")?)),
        checkpoint_output_tokens: tokens_from_db(r.try_get("checkpoint_output_tokens")?),
        created_at: r.try_get("created_at")?,
        expires_at: None,
        finished_at: Some(r.try_get("finished_at")?),
    }))
}
