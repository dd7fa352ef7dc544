//! Set-based reservation and settlement: many requests in one database transaction, with a
//! number of statements that does not grow with the number of requests. This is what makes
//! group commit pay off (see [`Committer`](super::Committer)): a batch of 32 settlements costs
//! about as many round trips to the database as one.
//!
//! Every multi-row statement is cut into chunks of 32, 16, 8, 4, 2 or 1 rows (see
//! [`chunked`](crate::db::chunked)).
//!
//! The single-request functions ([`reserve`](super::reserve), [`settle`](super::settle),
//! [`release`](super::release)) and the reaper are this code with one item, so the property
//! and concurrency tests of the engine cover it.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
};

use super::{
    ledger::{apply_deltas, AccountRef, SystemAccount},
    pricing::{price, Usage},
    reserve::{duration_ms, NewReservation},
    tokens_from_db, tokens_to_db, BillingError,
};
use crate::{
    catalog::Tariff,
    metering::UsageSource,
    money::{Micros, PerMillion},
    writer::{Arg, Row, WriteTx},
};

/// How a request ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Charge this usage at the reservation's price snapshot.
    Settle { usage: Usage, source: UsageSource },
    /// Drop the hold without a charge.
    Release,
}

/// The most rows in one multi-row statement.
const CHUNK: usize = 32;

fn chunked<T>(items: &[T]) -> Vec<&[T]> {
    crate::db::chunked(items, CHUNK)
}

/// `($first, ..), ($first+cols, ..), ..`: `rows` tuples of `cols` numbered placeholders, with
/// `fixed` (already formatted, e.g. `'usage'`) inserted at the start of every tuple.
fn tuples(sql: &mut String, rows: usize, cols: usize, first: usize, fixed: &str) {
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(fixed);
        for c in 0..cols {
            if c > 0 || !fixed.is_empty() {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${}", first + r * cols + c);
        }
        sql.push(')');
    }
}

/// `$first, $first+1, ..` (`n` placeholders), for `IN (...)` lists.
fn list(sql: &mut String, n: usize, first: usize) {
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${}", first + i);
    }
}

/// Holds `amount` on the team's balance if it is available: the one guarded `UPDATE`.
async fn hold(
    tx: &mut WriteTx<'_>,
    team_id: i64,
    amount: i64,
    now: i64,
) -> Result<bool, BillingError> {
    let done = tx
        .execute(
            "UPDATE account SET held = held + $1, updated_at = $2 \
             WHERE team_id = $3 AND kind = 'team_balance' AND balance - held >= $1",
            &[amount.into(), now.into(), team_id.into()],
        )
        .await?;
    Ok(done == 1)
}

/// Reserves every item inside `tx`. The inner results are per item (`InsufficientBalance`,
/// `InvalidAmount`); an outer error means `tx` must be rolled back, `Duplicate` included (a
/// request id that exists already; its hold is in `tx`).
///
/// The requests of one team are held with one guarded `UPDATE` for their sum when it fits,
/// otherwise one by one in order, so each is admitted exactly when it would have been alone
/// after the ones before it.
pub(super) async fn reserve_in(
    tx: &mut WriteTx<'_>,
    items: &[&NewReservation],
    now: i64,
) -> Result<Vec<Result<(), BillingError>>, BillingError> {
    let mut out: Vec<Result<(), BillingError>> = Vec::with_capacity(items.len());
    let mut teams: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, r) in items.iter().enumerate() {
        if r.amount.0 < 0 {
            out.push(Err(BillingError::InvalidAmount(
                "a reservation cannot be negative",
            )));
        } else {
            out.push(Ok(()));
            teams.entry(r.team_id).or_default().push(i);
        }
    }
    for (team_id, idxs) in &teams {
        let total: i128 = idxs.iter().map(|i| i128::from(items[*i].amount.0)).sum();
        let at_once = match i64::try_from(total) {
            Ok(total) => hold(tx, *team_id, total, now).await?,
            Err(_) => false,
        };
        if !at_once {
            for i in idxs {
                if !hold(tx, *team_id, items[*i].amount.0, now).await? {
                    out[*i] = Err(BillingError::InsufficientBalance);
                }
            }
        }
    }
    let admitted: Vec<&NewReservation> = items
        .iter()
        .zip(&out)
        .filter(|(_, o)| o.is_ok())
        .map(|(r, _)| *r)
        .collect();
    const COLS: usize = 13;
    for chunk in chunked(&admitted) {
        let mut sql = String::from(
            "INSERT INTO reservation (request_id, team_id, api_key_id, model, amount, \
               price_input, price_cached_input, price_cache_write, price_output, price_reasoning, \
               markup_bps, prompt_estimate, expires_at, status, checkpoint_output_tokens, created_at) \
             VALUES ",
        );
        // Every tuple ends with the constant columns; `tuples` puts fixed text first, so build
        // these by hand: ($2..$14, 'reserved', 0, $1).
        for r in 0..chunk.len() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            list(&mut sql, COLS, 2 + r * COLS);
            sql.push_str(", 'reserved', 0, $1)");
        }
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(1 + chunk.len() * COLS);
        args.push(now.into());
        for r in chunk {
            let t = &r.tariff;
            args.extend([
                Arg::from(&r.request_id),
                r.team_id.into(),
                r.api_key_id.into(),
                (&r.model).into(),
                r.amount.0.into(),
                t.input.0.into(),
                t.cached_input.map(|p| p.0).into(),
                t.cache_write.map(|p| p.0).into(),
                t.output.0.into(),
                t.reasoning.map(|p| p.0).into(),
                t.markup_bps.into(),
                tokens_to_db(r.prompt_estimate).into(),
                now.saturating_add(duration_ms(r.ttl)).into(),
            ]);
        }
        match tx.execute(&sql, &args).await {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {
                let id = match chunk {
                    [one] => one.request_id.clone(),
                    _ => String::from("(one of a batch)"),
                };
                return Err(BillingError::Duplicate(id));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// An open reservation taken over by the current transaction.
#[derive(Clone, Debug)]
pub(super) struct Claimed {
    pub(super) team_id: i64,
    pub(super) amount: i64,
    pub(super) model: String,
    pub(super) tariff: Tariff,
    pub(super) prompt_estimate: u64,
    pub(super) checkpoint: u64,
}

/// A row of the claim's `RETURNING` list.
fn claimed_from_row(mut r: Row) -> Result<(String, Claimed), BillingError> {
    if r.len() != 12 {
        return Err(BillingError::Db(crate::db::DbError::Sqlx(
            sqlx::Error::ColumnIndexOutOfBounds {
                index: 11,
                len: r.len(),
            },
        )));
    }
    let opt = |v: Option<i64>| v.map(PerMillion);
    Ok((
        r[0].text()?,
        Claimed {
            team_id: r[1].int()?,
            amount: r[2].int()?,
            model: r[3].text()?,
            tariff: Tariff {
                input: PerMillion(r[4].int()?),
                cached_input: opt(r[5].opt_int()?),
                cache_write: opt(r[6].opt_int()?),
                output: PerMillion(r[7].int()?),
                reasoning: opt(r[8].opt_int()?),
                markup_bps: r[9].int()?,
            },
            prompt_estimate: tokens_from_db(r[10].int()?),
            checkpoint: tokens_from_db(r[11].int()?),
        },
    ))
}

/// Takes every reservation of `ids` that is still `reserved` and expired at `expired_by`
/// (`i64::MAX` for "any"). The `UPDATE` locks the rows on PostgreSQL, so a concurrent claimer
/// waits, then sees them finished and gets nothing; on SQLite the write transaction already
/// excludes it. The caller must finish every claimed row in the same transaction.
pub(super) async fn claim_in(
    tx: &mut WriteTx<'_>,
    ids: &[&str],
    expired_by: i64,
    now: i64,
) -> Result<HashMap<String, Claimed>, BillingError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in chunked(ids) {
        let mut sql = String::from(
            "UPDATE reservation SET finished_at = $1 \
             WHERE status = 'reserved' AND expires_at <= $2 AND request_id IN (",
        );
        list(&mut sql, chunk.len(), 3);
        sql.push_str(
            ") RETURNING request_id, team_id, amount, model, price_input, price_cached_input, \
               price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate, \
               checkpoint_output_tokens",
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(2 + chunk.len());
        args.extend([Arg::from(now), expired_by.into()]);
        args.extend(chunk.iter().map(|id| Arg::from(*id)));
        for row in tx.fetch(&sql, &args).await? {
            let (id, c) = claimed_from_row(row)?;
            out.insert(id, c);
        }
    }
    Ok(out)
}

/// Finishes claimed reservations inside `tx`: settled ones become usage rows and get their
/// `usage:<request_id>` ledger transaction, released ones just drop their hold, and every
/// touched account is updated once for the whole batch. Returns the cost of each item (0 for
/// a release), in order.
pub(super) async fn apply(
    tx: &mut WriteTx<'_>,
    items: &[(&str, &Claimed, Finish)],
    now: i64,
) -> Result<Vec<Micros>, BillingError> {
    struct Settled<'a> {
        id: &'a str,
        /// `usage:<request_id>`, the ledger transaction's idempotency key.
        external_ref: String,
        c: &'a Claimed,
        usage: Usage,
        source: UsageSource,
        upstream: i64,
        markup: i64,
        total: i64,
    }
    let mut costs = Vec::with_capacity(items.len());
    let mut settled: Vec<Settled<'_>> = Vec::new();
    let mut released: Vec<&str> = Vec::new();
    // Net balance and hold change per account, in lock order (teams, then system accounts).
    let mut deltas: BTreeMap<AccountRef, (i128, i128)> = BTreeMap::new();
    for (id, c, finish) in items {
        let team = deltas.entry(AccountRef::Team(c.team_id)).or_default();
        team.1 -= i128::from(c.amount);
        match finish {
            Finish::Settle { usage, source } => {
                let usage = usage.normalized();
                let charge = price(&usage, &c.tariff);
                team.0 -= i128::from(charge.total.0);
                costs.push(charge.total);
                settled.push(Settled {
                    id,
                    external_ref: format!("usage:{id}"),
                    c,
                    usage,
                    source: *source,
                    upstream: charge.upstream.0,
                    markup: charge.markup.0,
                    total: charge.total.0,
                });
            }
            Finish::Release => {
                costs.push(Micros::ZERO);
                released.push(id);
            }
        }
    }
    for s in &settled {
        for (account, amount) in [
            (SystemAccount::UpstreamCost, s.upstream),
            (SystemAccount::RevenueMarkup, s.markup),
        ] {
            if amount != 0 {
                deltas.entry(AccountRef::System(account)).or_default().0 += i128::from(amount);
            }
        }
    }

    // The usage rows.
    const USAGE_COLS: usize = 8;
    for chunk in chunked(&settled) {
        let mut sql = String::from(
            "WITH v (request_id, input_tokens, cached_tokens, cache_write_tokens, output_tokens, \
               reasoning_tokens, usage_source, cost) AS (VALUES ",
        );
        tuples(&mut sql, chunk.len(), USAGE_COLS, 1, "");
        sql.push_str(
            ") UPDATE reservation SET status = 'settled', input_tokens = v.input_tokens, \
               cached_tokens = v.cached_tokens, cache_write_tokens = v.cache_write_tokens, \
               output_tokens = v.output_tokens, reasoning_tokens = v.reasoning_tokens, \
               usage_source = v.usage_source, cost = v.cost \
             FROM v WHERE reservation.request_id = v.request_id",
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * USAGE_COLS);
        for s in chunk {
            let u = &s.usage;
            args.extend([
                Arg::from(s.id),
                tokens_to_db(u.input).into(),
                tokens_to_db(u.cached_input).into(),
                tokens_to_db(u.cache_write).into(),
                tokens_to_db(u.output).into(),
                tokens_to_db(u.reasoning).into(),
                s.source.as_str().into(),
                s.total.into(),
            ]);
        }
        tx.execute(&sql, &args).await?;
    }
    for chunk in chunked(&released) {
        let mut sql =
            String::from("UPDATE reservation SET status = 'released' WHERE request_id IN (");
        list(&mut sql, chunk.len(), 1);
        sql.push(')');
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| Arg::from(*id)).collect();
        tx.execute(&sql, &args).await?;
    }

    // The ledger transactions, one per settled request (the idempotency key is its id).
    let mut txn_ids: HashMap<String, i64> = HashMap::with_capacity(settled.len());
    for chunk in chunked(&settled) {
        let mut sql =
            String::from("INSERT INTO ledger_txn (kind, created_at, external_ref, memo) VALUES ");
        tuples(&mut sql, chunk.len(), 2, 2, "'usage', $1");
        sql.push_str(" RETURNING id, external_ref");
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(1 + chunk.len() * 2);
        args.push(now.into());
        for s in chunk {
            args.extend([Arg::from(&s.external_ref), (&s.c.model).into()]);
        }
        let rows = match tx.fetch(&sql, &args).await {
            Ok(rows) => rows,
            Err(e) if e.is_unique_violation() => {
                return Err(BillingError::Duplicate(String::from("usage:")))
            }
            Err(e) => return Err(e.into()),
        };
        for mut row in rows {
            let id = row.first().map(|c| c.int()).transpose()?;
            let external_ref = row.get_mut(1).map(|c| c.text()).transpose()?;
            if let (Some(id), Some(r)) = (id, external_ref) {
                txn_ids.insert(r, id);
            }
        }
    }

    let accounts = apply_deltas(tx, &deltas, now).await?;

    // The entries: team −total, upstream_cost +upstream, revenue_markup +markup (non-zero only).
    let mut lines: Vec<(i64, i64, i64)> = Vec::with_capacity(settled.len() * 3);
    for s in &settled {
        let Some(txn) = txn_ids.get(&s.external_ref) else {
            return Err(BillingError::NotFound(s.external_ref.clone()));
        };
        for (account, amount) in [
            (AccountRef::Team(s.c.team_id), -s.total),
            (AccountRef::System(SystemAccount::UpstreamCost), s.upstream),
            (AccountRef::System(SystemAccount::RevenueMarkup), s.markup),
        ] {
            if amount != 0 {
                let id = accounts.get(&account).copied().ok_or(match account {
                    AccountRef::Team(t) => BillingError::UnknownTeam(t),
                    AccountRef::System(s) => BillingError::MissingAccount(s.as_str()),
                })?;
                lines.push((*txn, id, amount));
            }
        }
    }
    insert_entries(tx, &lines).await?;
    Ok(costs)
}

/// Inserts ledger entry rows `(txn_id, account_id, amount)`.
pub(super) async fn insert_entries(
    tx: &mut WriteTx<'_>,
    lines: &[(i64, i64, i64)],
) -> Result<(), BillingError> {
    for chunk in chunked(lines) {
        let mut sql = String::from("INSERT INTO ledger_entry (txn_id, account_id, amount) VALUES ");
        tuples(&mut sql, chunk.len(), 3, 1, "");
        let args: Vec<Arg<'_>> = chunk
            .iter()
            .flat_map(|(txn, account, amount)| {
                [Arg::from(*txn), (*account).into(), (*amount).into()]
            })
            .collect();
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

/// Claims and finishes `items` inside `tx`. Returns, per item, the cost if this call finished
/// it, or `None` if it was not open (already finished, unknown, or named twice in the batch).
pub(super) async fn finish_in(
    tx: &mut WriteTx<'_>,
    items: &[(&str, Finish)],
    now: i64,
) -> Result<Vec<Option<Micros>>, BillingError> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (i, (id, _)) in items.iter().enumerate() {
        first.entry(*id).or_insert(i);
    }
    let ids: Vec<&str> = items
        .iter()
        .enumerate()
        .filter(|(i, (id, _))| first.get(id) == Some(i))
        .map(|(_, (id, _))| *id)
        .collect();
    let claimed = claim_in(tx, &ids, i64::MAX, now).await?;
    let mut todo: Vec<(&str, &Claimed, Finish)> = Vec::with_capacity(claimed.len());
    let mut slot: Vec<Option<usize>> = vec![None; items.len()];
    for (i, (id, finish)) in items.iter().enumerate() {
        if first.get(id) != Some(&i) {
            continue;
        }
        if let Some(c) = claimed.get(*id) {
            slot[i] = Some(todo.len());
            todo.push((id, c, *finish));
        }
    }
    let costs = apply(tx, &todo, now).await?;
    Ok(slot.into_iter().map(|s| s.map(|k| costs[k])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_largest_first() {
        let v: Vec<usize> = (0..100).collect();
        let sizes: Vec<usize> = chunked(&v).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![32, 32, 32, 4]);
        assert_eq!(chunked::<u8>(&[]).len(), 0);
        let v: Vec<usize> = (0..23).collect();
        let sizes: Vec<usize> = chunked(&v).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![16, 4, 2, 1]);
        assert_eq!(crate::db::chunked(&v, 0).len(), 23);
    }

    #[test]
    fn placeholders() {
        let mut s = String::new();
        tuples(&mut s, 2, 3, 1, "");
        assert_eq!(s, "($1, $2, $3), ($4, $5, $6)");
        let mut s = String::new();
        tuples(&mut s, 2, 2, 2, "'usage', $1");
        assert_eq!(s, "('usage', $1, $2, $3), ('usage', $1, $4, $5)");
        let mut s = String::new();
        list(&mut s, 3, 3);
        assert_eq!(s, "$3, $4, $5");
    }
}
