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
    sync::LazyLock,
};

use super::{
    caps,
    ledger::{apply_deltas, AccountRef, SystemAccount},
    pricing::{price, Usage},
    reserve::{duration_ms, NewReservation},
    tokens_from_db, tokens_to_db, BillingError,
};
use crate::{
    catalog::Tariff,
    metering::UsageSource,
    money::{Micros, PerMillion},
    writer::{Arg, Row, Sql, SqlByRows, WriteTx},
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
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(
            "UPDATE account SET held = held + $1, updated_at = $2 \
             WHERE team_id = $3 AND kind = 'team_balance' AND balance - held >= $1",
        )
    });
    let done = tx
        .execute(&SQL, &[amount.into(), now.into(), team_id.into()])
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
    // Spend caps first (cap rows before account rows, each in sorted order: see `caps`).
    let mut capped: BTreeMap<(crate::limits::Scope, i64), Vec<usize>> = BTreeMap::new();
    for (i, r) in items.iter().enumerate() {
        if r.caps != 0 && out[i].is_ok() {
            for s in caps::subjects(r.caps, r.api_key_id, r.team_id) {
                capped.entry(s).or_default().push(i);
            }
        }
    }
    // What each item took from which cap row, to give back if a later step refuses it.
    let mut took: Vec<(crate::limits::Scope, i64, usize)> = Vec::new();
    for ((scope, owner), idxs) in &capped {
        for i in idxs {
            if out[*i].is_err() {
                continue;
            }
            match caps::take(tx, *scope, *owner, items[*i].amount.0, now).await {
                Ok(()) => took.push((*scope, *owner, *i)),
                Err(e @ BillingError::SpendCap { .. }) => out[*i] = Err(e),
                Err(e) => return Err(e),
            }
        }
    }
    if !took.is_empty() {
        // An item refused by its team's cap after its key's took: give the key's back.
        for (scope, owner, i) in &took {
            if out[*i].is_err() {
                caps::untake(tx, *scope, *owner, items[*i].amount.0, now).await?;
            }
        }
        took.retain(|(_, _, i)| out[*i].is_ok());
    }
    for (team_id, idxs) in &teams {
        let idxs: Vec<usize> = idxs.iter().copied().filter(|i| out[*i].is_ok()).collect();
        let idxs = &idxs;
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
    // Give back the caps of items whose balance could not be held.
    for (scope, owner, i) in &took {
        if out[*i].is_err() {
            caps::untake(tx, *scope, *owner, items[*i].amount.0, now).await?;
        }
    }
    let admitted: Vec<&NewReservation> = items
        .iter()
        .zip(&out)
        .filter(|(_, o)| o.is_ok())
        .map(|(r, _)| *r)
        .collect();
    // A request id is used once: the hold's primary key refuses one that is still open, and
    // the insert skips one that already has a charge (a finished request), which makes the
    // batch fail as a duplicate.
    const COLS: usize = 14;
    static SQL: SqlByRows = SqlByRows::new();
    for chunk in chunked(&admitted) {
        let sql = SQL.get(chunk.len(), |rows| {
            let mut sql = String::from(
                "INSERT INTO hold (created_at, request_id, team_id, api_key_id, model, amount, \
                   price_input, price_cached_input, price_cache_write, price_output, \
                   price_reasoning, markup_bps, prompt_estimate, expires_at, caps) \
                 SELECT $1, v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, \
                   v.column7, v.column8, v.column9, v.column10, v.column11, v.column12, \
                   v.column13, v.column14 \
                 FROM (VALUES ",
            );
            tuples(&mut sql, rows, COLS, 2, "");
            sql.push_str(
                ") AS v WHERE NOT EXISTS (SELECT 1 FROM charge c WHERE c.request_id = v.column1)",
            );
            sql
        });
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
                r.caps.into(),
            ]);
        }
        let duplicate = || {
            BillingError::Duplicate(match chunk {
                [one] => one.request_id.clone(),
                _ => String::from("(one of a batch)"),
            })
        };
        match tx.execute(&sql, &args).await {
            Ok(n) if n == chunk.len() as u64 => {}
            Ok(_) => return Err(duplicate()),
            Err(e) if e.is_unique_violation() => return Err(duplicate()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// An open reservation taken over (its hold deleted) by the current transaction.
#[derive(Clone, Debug)]
pub(super) struct Claimed {
    pub(super) team_id: i64,
    pub(super) api_key_id: i64,
    pub(super) amount: i64,
    pub(super) model: String,
    pub(super) tariff: Tariff,
    pub(super) prompt_estimate: u64,
    pub(super) checkpoint: u64,
    pub(super) created_at: i64,
    /// Which spend caps its hold counts against (see `caps`).
    pub(super) caps: i64,
}

const CLAIMED_COLS: usize = 15;

/// A row of the claim's `RETURNING` list.
fn claimed_from_row(mut r: Row) -> Result<(String, Claimed), BillingError> {
    if r.len() != CLAIMED_COLS {
        return Err(BillingError::Db(crate::db::DbError::Sqlx(
            sqlx::Error::ColumnIndexOutOfBounds {
                index: CLAIMED_COLS - 1,
                len: r.len(),
            },
        )));
    }
    let opt = |v: Option<i64>| v.map(PerMillion);
    Ok((
        r[0].text()?,
        Claimed {
            team_id: r[1].int()?,
            api_key_id: r[2].int()?,
            amount: r[3].int()?,
            model: r[4].text()?,
            tariff: Tariff {
                input: PerMillion(r[5].int()?),
                cached_input: opt(r[6].opt_int()?),
                cache_write: opt(r[7].opt_int()?),
                output: PerMillion(r[8].int()?),
                reasoning: opt(r[9].opt_int()?),
                markup_bps: r[10].int()?,
            },
            prompt_estimate: tokens_from_db(r[11].int()?),
            checkpoint: tokens_from_db(r[12].int()?),
            created_at: r[13].int()?,
            caps: r[14].int()?,
        },
    ))
}

/// Takes every open reservation of `ids` that expired at `expired_by` (`i64::MAX` for "any"),
/// deleting its hold. On PostgreSQL the `DELETE` locks the rows, so a concurrent claimer waits,
/// then finds them gone and gets nothing; on SQLite the write transaction already excludes it.
/// The caller must finish every claimed reservation in the same transaction ([`apply`]), or
/// roll back.
pub(super) async fn claim_in(
    tx: &mut WriteTx<'_>,
    ids: &[&str],
    expired_by: i64,
) -> Result<HashMap<String, Claimed>, BillingError> {
    let mut out = HashMap::with_capacity(ids.len());
    static SQL: SqlByRows = SqlByRows::new();
    for chunk in chunked(ids) {
        let sql = SQL.get(chunk.len(), |rows| {
            let mut sql =
                String::from("DELETE FROM hold WHERE expires_at <= $1 AND request_id IN (");
            list(&mut sql, rows, 2);
            sql.push_str(
                ") RETURNING request_id, team_id, api_key_id, amount, model, price_input, \
                   price_cached_input, price_cache_write, price_output, price_reasoning, \
                   markup_bps, prompt_estimate, checkpoint_output_tokens, created_at, caps",
            );
            sql
        });
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(1 + chunk.len());
        args.push(expired_by.into());
        args.extend(chunk.iter().map(|id| Arg::from(*id)));
        for row in tx.fetch(&sql, &args).await? {
            let (id, c) = claimed_from_row(row)?;
            out.insert(id, c);
        }
    }
    Ok(out)
}

/// Finishes claimed reservations inside `tx`: each becomes a `charge` row (settled at its usage
/// and price snapshot, or released at no cost), the settled costs are posted to the ledger as
/// one `usage` transaction per team (team −Σ cost, `upstream_cost` +Σ upstream,
/// `revenue_markup` +Σ markup; its reference is `usage:<first request id>`), and every touched
/// account is updated once for the whole batch. Returns the cost of each item (0 for a
/// release), in order.
pub(super) async fn apply(
    tx: &mut WriteTx<'_>,
    items: &[(&str, &Claimed, Finish)],
    now: i64,
) -> Result<Vec<Micros>, BillingError> {
    struct Done<'a> {
        id: &'a str,
        c: &'a Claimed,
        /// `None` when released.
        usage: Option<(Usage, UsageSource)>,
        total: i64,
    }
    /// One team's share of the batch: its usage transaction's entries.
    #[derive(Default)]
    struct TeamUsage<'a> {
        first: &'a str,
        requests: usize,
        total: i128,
        upstream: i128,
        markup: i128,
    }
    let mut costs = Vec::with_capacity(items.len());
    let mut done: Vec<Done<'_>> = Vec::with_capacity(items.len());
    // Net balance and hold change per account, in lock order (teams, then system accounts).
    let mut deltas: BTreeMap<AccountRef, (i128, i128)> = BTreeMap::new();
    let mut per_team: BTreeMap<i64, TeamUsage<'_>> = BTreeMap::new();
    for (id, c, finish) in items {
        let team = deltas.entry(AccountRef::Team(c.team_id)).or_default();
        team.1 -= i128::from(c.amount);
        match finish {
            Finish::Settle { usage, source } => {
                let usage = usage.normalized();
                let charge = price(&usage, &c.tariff);
                costs.push(charge.total);
                if charge.total.0 != 0 {
                    team.0 -= i128::from(charge.total.0);
                    let u = per_team.entry(c.team_id).or_insert_with(|| TeamUsage {
                        first: id,
                        ..TeamUsage::default()
                    });
                    u.requests += 1;
                    u.total += i128::from(charge.total.0);
                    u.upstream += i128::from(charge.upstream.0);
                    u.markup += i128::from(charge.markup.0);
                }
                done.push(Done {
                    id,
                    c,
                    usage: Some((usage, *source)),
                    total: charge.total.0,
                });
            }
            Finish::Release => {
                costs.push(Micros::ZERO);
                done.push(Done {
                    id,
                    c,
                    usage: None,
                    total: 0,
                });
            }
        }
    }
    // Capped holds leave their cap rows' `held` and their costs are spent, before any account
    // row is locked (see `caps`), one statement per cap row.
    let mut capped: BTreeMap<(crate::limits::Scope, i64), (i64, i64)> = BTreeMap::new();
    for d in done.iter().filter(|d| d.c.caps != 0) {
        for s in caps::subjects(d.c.caps, d.c.api_key_id, d.c.team_id) {
            let e = capped.entry(s).or_default();
            e.0 = e.0.saturating_add(d.c.amount);
            e.1 = e.1.saturating_add(d.total);
        }
    }
    for ((scope, owner), (held, cost)) in capped {
        caps::settle(tx, scope, owner, held, cost, now).await?;
    }
    let amount = |v: i128, what: &'static str| {
        i64::try_from(v).map_err(|_| BillingError::InvalidAmount(what))
    };
    for u in per_team.values() {
        for (account, v) in [
            (SystemAccount::UpstreamCost, u.upstream),
            (SystemAccount::RevenueMarkup, u.markup),
        ] {
            if v != 0 {
                deltas.entry(AccountRef::System(account)).or_default().0 += v;
            }
        }
    }

    // The usage transactions, one per team with something to pay.
    let teams: Vec<(&i64, &TeamUsage<'_>)> = per_team.iter().collect();
    let refs: Vec<String> = teams
        .iter()
        .map(|(_, u)| format!("usage:{}", u.first))
        .collect();
    let memos: Vec<String> = teams
        .iter()
        .map(|(_, u)| match u.requests {
            1 => String::from("1 request"),
            n => format!("{n} requests"),
        })
        .collect();
    let mut txn_of_team: HashMap<i64, i64> = HashMap::with_capacity(teams.len());
    let mut team_of_ref: HashMap<&str, i64> = HashMap::with_capacity(teams.len());
    for ((team, _), r) in teams.iter().zip(&refs) {
        team_of_ref.insert(r.as_str(), **team);
    }
    let keyed: Vec<(&String, &String, i64)> = refs
        .iter()
        .zip(&memos)
        .zip(&teams)
        .map(|((r, m), (team, _))| (r, m, **team))
        .collect();
    static TXN_SQL: SqlByRows = SqlByRows::new();
    for chunk in chunked(&keyed) {
        let sql = TXN_SQL.get(chunk.len(), |rows| {
            let mut sql = String::from(
                "INSERT INTO ledger_txn (kind, created_at, external_ref, memo, team_id) VALUES ",
            );
            tuples(&mut sql, rows, 3, 2, "'usage', $1");
            sql.push_str(" RETURNING id, external_ref");
            sql
        });
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(1 + chunk.len() * 3);
        args.push(now.into());
        for (r, memo, team) in chunk {
            args.extend([Arg::from(*r), Arg::from(*memo), Arg::from(*team)]);
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
                if let Some(team) = team_of_ref.get(r.as_str()) {
                    txn_of_team.insert(*team, id);
                }
            }
        }
    }

    let accounts = apply_deltas(tx, &deltas, now).await?;

    // The entries of each usage transaction (non-zero only).
    let mut lines: Vec<(i64, i64, i64)> = Vec::with_capacity(teams.len() * 3);
    for (team, u) in &teams {
        let txn = *txn_of_team
            .get(*team)
            .ok_or_else(|| BillingError::NotFound(format!("usage:{}", u.first)))?;
        for (account, v) in [
            (AccountRef::Team(**team), -u.total),
            (AccountRef::System(SystemAccount::UpstreamCost), u.upstream),
            (AccountRef::System(SystemAccount::RevenueMarkup), u.markup),
        ] {
            if v != 0 {
                let id = accounts.get(&account).copied().ok_or(match account {
                    AccountRef::Team(t) => BillingError::UnknownTeam(t),
                    AccountRef::System(s) => BillingError::MissingAccount(s.as_str()),
                })?;
                lines.push((txn, id, amount(v, "usage total out of range")?));
            }
        }
    }
    insert_entries(tx, &lines).await?;

    // The charges: the request's usage rows.
    const CHARGE_COLS: usize = 23;
    static CHARGE_SQL: SqlByRows = SqlByRows::new();
    for chunk in chunked(&done) {
        let sql = CHARGE_SQL.get(chunk.len(), |rows| {
            let mut sql = String::from(
                "INSERT INTO charge (finished_at, request_id, team_id, api_key_id, model, \
                   amount, price_input, price_cached_input, price_cache_write, price_output, \
                   price_reasoning, markup_bps, prompt_estimate, status, input_tokens, \
                   cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, \
                   usage_source, cost, ledger_txn_id, checkpoint_output_tokens, created_at) \
                 VALUES ",
            );
            tuples(&mut sql, rows, CHARGE_COLS, 2, "$1");
            sql
        });
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(1 + chunk.len() * CHARGE_COLS);
        args.push(now.into());
        for d in chunk {
            let (c, t) = (d.c, &d.c.tariff);
            let tok = |f: fn(&Usage) -> u64| d.usage.as_ref().map(|(u, _)| tokens_to_db(f(u)));
            let txn = (d.total != 0)
                .then(|| txn_of_team.get(&c.team_id).copied())
                .flatten();
            args.extend([
                Arg::from(d.id),
                c.team_id.into(),
                c.api_key_id.into(),
                (&c.model).into(),
                c.amount.into(),
                t.input.0.into(),
                t.cached_input.map(|p| p.0).into(),
                t.cache_write.map(|p| p.0).into(),
                t.output.0.into(),
                t.reasoning.map(|p| p.0).into(),
                t.markup_bps.into(),
                tokens_to_db(c.prompt_estimate).into(),
                Arg::from(if d.usage.is_some() {
                    "settled"
                } else {
                    "released"
                }),
                tok(|u| u.input).into(),
                tok(|u| u.cached_input).into(),
                tok(|u| u.cache_write).into(),
                tok(|u| u.output).into(),
                tok(|u| u.reasoning).into(),
                d.usage.as_ref().map(|(_, s)| s.as_str()).into(),
                d.total.into(),
                txn.into(),
                tokens_to_db(c.checkpoint).into(),
                c.created_at.into(),
            ]);
        }
        match tx.execute(&sql, &args).await {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {
                return Err(BillingError::Duplicate(String::from("(a charge)")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(costs)
}

/// Inserts ledger entry rows `(txn_id, account_id, amount)`.
pub(super) async fn insert_entries(
    tx: &mut WriteTx<'_>,
    lines: &[(i64, i64, i64)],
) -> Result<(), BillingError> {
    static SQL: SqlByRows = SqlByRows::new();
    for chunk in chunked(lines) {
        let sql = SQL.get(chunk.len(), |rows| {
            let mut sql =
                String::from("INSERT INTO ledger_entry (txn_id, account_id, amount) VALUES ");
            tuples(&mut sql, rows, 3, 1, "");
            sql
        });
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
    let claimed = claim_in(tx, &ids, i64::MAX).await?;
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
