//! The ledger: the one posting function, team accounts, operator credits and balances.

use std::{collections::BTreeMap, sync::LazyLock};

use sqlx::{Any, Row, Transaction};

use super::{batch::insert_entries, is_unique_violation, BillingError};
use crate::writer::{Sql, WriteTx};
use crate::{
    db::{now_ms, Db},
    money::Micros,
};

/// The accounts that belong to Weir rather than to a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SystemAccount {
    /// Money received through Stripe, not yet reconciled.
    StripeClearing,
    /// Weir's markup earned on usage.
    RevenueMarkup,
    /// What usage costs upstream (owed to providers).
    UpstreamCost,
    /// The counterpart of operator credits and debits.
    ManualAdjustment,
}

impl SystemAccount {
    pub const ALL: [SystemAccount; 4] = [
        SystemAccount::StripeClearing,
        SystemAccount::RevenueMarkup,
        SystemAccount::UpstreamCost,
        SystemAccount::ManualAdjustment,
    ];

    /// The `account.kind` of this account.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemAccount::StripeClearing => "stripe_clearing",
            SystemAccount::RevenueMarkup => "revenue_markup",
            SystemAccount::UpstreamCost => "upstream_cost",
            SystemAccount::ManualAdjustment => "manual_adjustment",
        }
    }
}

/// An account named by what it is, not by its row id. The order (teams first, then system
/// accounts) is the order in which a posting locks account rows, so concurrent postings never
/// deadlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccountRef {
    /// The `team_balance` account of this team id.
    Team(i64),
    System(SystemAccount),
}

/// One line of a ledger transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub account: AccountRef,
    pub amount: Micros,
}

/// The id of a `ledger_txn` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LedgerTxnId(pub i64);

/// Posts one ledger transaction inside the caller's write transaction: refuses entries that do
/// not sum to zero ([`BillingError::Unbalanced`]), inserts the transaction (a second use of
/// `external_ref` is [`BillingError::Duplicate`]) and its non-zero entries, and updates the
/// cached balance of every touched account. Commit is the caller's.
pub async fn post(
    tx: &mut Transaction<'static, Any>,
    kind: &str,
    external_ref: &str,
    memo: Option<&str>,
    entries: &[Entry],
) -> Result<LedgerTxnId, BillingError> {
    post_by(tx, kind, external_ref, memo, None, entries).await
}

/// [`post`], recording who did it (`actor`, e.g. `user:<id>` or `cli`).
pub async fn post_by(
    tx: &mut Transaction<'static, Any>,
    kind: &str,
    external_ref: &str,
    memo: Option<&str>,
    actor: Option<&str>,
    entries: &[Entry],
) -> Result<LedgerTxnId, BillingError> {
    let sum: i128 = entries.iter().map(|e| i128::from(e.amount.0)).sum();
    if sum != 0 {
        return Err(BillingError::Unbalanced(sum));
    }
    // Net balance and hold change per account, in lock order.
    let mut deltas: BTreeMap<AccountRef, (i128, i128)> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.amount.0 != 0) {
        deltas.entry(e.account).or_default().0 += i128::from(e.amount.0);
    }
    let now = now_ms();
    // The team whose statement lists the transaction: its one team account, if it has one.
    let mut teams = deltas.keys().filter_map(|a| match a {
        AccountRef::Team(t) => Some(*t),
        AccountRef::System(_) => None,
    });
    let team_id = match (teams.next(), teams.next()) {
        (Some(t), None) => Some(t),
        _ => None,
    };
    let txn_id: i64 = match sqlx::query_scalar(
        "INSERT INTO ledger_txn (kind, external_ref, memo, created_at, team_id, actor) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(kind)
    .bind(external_ref)
    .bind(memo)
    .bind(now)
    .bind(team_id)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await
    {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(BillingError::Duplicate(external_ref.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };

    let mut w = WriteTx::within(tx);
    let ids = apply_deltas(&mut w, &deltas, now).await?;

    let lines: Vec<(i64, i64, i64)> = entries
        .iter()
        .filter(|e| e.amount.0 != 0)
        .filter_map(|e| ids.get(&e.account).map(|id| (txn_id, *id, e.amount.0)))
        .collect();
    insert_entries(&mut w, &lines).await?;
    Ok(LedgerTxnId(txn_id))
}

/// Adds `(balance, held)` deltas to the accounts, in lock order (the map's order), and returns
/// their row ids. An account that does not exist is `UnknownTeam` / `MissingAccount`.
pub(super) async fn apply_deltas(
    tx: &mut WriteTx<'_>,
    deltas: &BTreeMap<AccountRef, (i128, i128)>,
    now: i64,
) -> Result<BTreeMap<AccountRef, i64>, BillingError> {
    let mut ids: BTreeMap<AccountRef, i64> = BTreeMap::new();
    for (account, (d_balance, d_held)) in deltas {
        let d_balance = i64::try_from(*d_balance)
            .map_err(|_| BillingError::InvalidAmount("balance change out of range"))?;
        let d_held = i64::try_from(*d_held)
            .map_err(|_| BillingError::InvalidAmount("hold change out of range"))?;
        let rows = match account {
            AccountRef::Team(team_id) => {
                static SQL: LazyLock<Sql> = LazyLock::new(|| {
                    Sql::new(
                        "UPDATE account SET balance = balance + $1, held = held + $2, \
                         updated_at = $3 WHERE team_id = $4 AND kind = 'team_balance' \
                         RETURNING id",
                    )
                });
                tx.fetch(
                    &SQL,
                    &[
                        d_balance.into(),
                        d_held.into(),
                        now.into(),
                        (*team_id).into(),
                    ],
                )
                .await?
            }
            AccountRef::System(s) => {
                static SQL: LazyLock<Sql> = LazyLock::new(|| {
                    Sql::new(
                        "UPDATE account SET balance = balance + $1, held = held + $2, \
                         updated_at = $3 WHERE team_id IS NULL AND kind = $4 RETURNING id",
                    )
                });
                tx.fetch(
                    &SQL,
                    &[
                        d_balance.into(),
                        d_held.into(),
                        now.into(),
                        s.as_str().into(),
                    ],
                )
                .await?
            }
        };
        let id = rows
            .first()
            .and_then(|r| r.first())
            .map(|c| c.int())
            .transpose()?;
        let id = id.ok_or(match account {
            AccountRef::Team(t) => BillingError::UnknownTeam(*t),
            AccountRef::System(s) => BillingError::MissingAccount(s.as_str()),
        })?;
        ids.insert(*account, id);
    }
    Ok(ids)
}

/// Creates the team's balance account if it does not exist (inside the caller's transaction).
/// Does nothing when the team itself does not exist.
pub(crate) async fn ensure_team_account_tx(
    tx: &mut Transaction<'static, Any>,
    team_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account (team_id, kind, balance, held, updated_at) \
         SELECT id, 'team_balance', 0, 0, $2 FROM team WHERE id = $1 \
         ON CONFLICT (team_id) DO NOTHING",
    )
    .bind(team_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes sure the team has its balance account (teams get one at creation; this is for teams
/// created by other means). [`BillingError::UnknownTeam`] if the team does not exist.
pub async fn ensure_team_account(db: &Db, team_id: i64) -> Result<(), BillingError> {
    let mut tx = db.begin_write().await?;
    ensure_team_account_tx(&mut tx, team_id).await?;
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM account WHERE team_id = $1 AND kind = 'team_balance'")
            .bind(team_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    found.map(|_| ()).ok_or(BillingError::UnknownTeam(team_id))
}

/// An operator credit (positive `amount`) or debit (negative) of a team, with a reason: ledger
/// transaction kind `adjustment`, entries `team ±amount` and `manual_adjustment ∓amount`.
///
/// `external_ref` makes the call idempotent: a second call with the same reference changes
/// nothing and returns [`BillingError::Duplicate`] (treat it as "already done"). Without one, a
/// fresh `manual:<uuid>` is used. References starting with `usage:` are refused (that namespace
/// is settlement's). A debit may take the balance below zero; requests are then refused.
pub async fn credit(
    db: &Db,
    team_id: i64,
    amount: Micros,
    reason: &str,
    external_ref: Option<&str>,
) -> Result<LedgerTxnId, BillingError> {
    credit_by(db, team_id, amount, reason, external_ref, "cli").await
}

/// [`credit`], recording who made the adjustment (`user:<id>` from the console, `cli`).
pub async fn credit_by(
    db: &Db,
    team_id: i64,
    amount: Micros,
    reason: &str,
    external_ref: Option<&str>,
    actor: &str,
) -> Result<LedgerTxnId, BillingError> {
    if amount.0 == 0 {
        return Err(BillingError::InvalidAmount("a credit cannot be zero"));
    }
    let negated = amount
        .0
        .checked_neg()
        .ok_or(BillingError::InvalidAmount("credit out of range"))?;
    let external_ref = match external_ref {
        Some(r) if r.trim().is_empty() || r.starts_with("usage:") => {
            return Err(BillingError::InvalidRef(r.to_owned()))
        }
        Some(r) => r.to_owned(),
        None => format!("manual:{}", uuid::Uuid::new_v4()),
    };
    let mut tx = db.begin_write().await?;
    ensure_team_account_tx(&mut tx, team_id).await?;
    let id = post_by(
        &mut tx,
        "adjustment",
        &external_ref,
        Some(reason),
        Some(actor),
        &[
            Entry {
                account: AccountRef::Team(team_id),
                amount,
            },
            Entry {
                account: AccountRef::System(SystemAccount::ManualAdjustment),
                amount: Micros(negated),
            },
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The team's cached `(balance, held)`; what it can still spend is `balance - held`. A team
/// without an account reads as `(0, 0)`.
pub async fn balance(db: &Db, team_id: i64) -> Result<(Micros, Micros), BillingError> {
    let row = sqlx::query(
        "SELECT balance, held FROM account WHERE team_id = $1 AND kind = 'team_balance'",
    )
    .bind(team_id)
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(r) => Ok((Micros(r.try_get("balance")?), Micros(r.try_get("held")?))),
        None => Ok((Micros::ZERO, Micros::ZERO)),
    }
}

/// One transaction of a team's statement: what it did to the team's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: i64,
    /// `usage`, `adjustment`, `topup`...
    pub kind: String,
    pub memo: Option<String>,
    /// The change to the team's balance (negative for usage).
    pub amount: Micros,
    pub created_at: i64,
    pub actor: Option<String>,
}

/// The team's ledger transactions, newest first, `limit` at a time: those with an id below
/// `before` (keyset). Returns the page and the `before` of the next page, if any.
pub async fn team_ledger(
    db: &Db,
    team_id: i64,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<LedgerRow>, Option<i64>), BillingError> {
    let rows = sqlx::query(
        "SELECT t.id, t.kind, t.memo, t.created_at, t.actor, \
         (SELECT CAST(SUM(e.amount) AS BIGINT) FROM ledger_entry e JOIN account a ON a.id = e.account_id \
          WHERE e.txn_id = t.id AND a.team_id = $1) AS amount \
         FROM ledger_txn t WHERE t.team_id = $1 AND t.id < $2 ORDER BY t.id DESC LIMIT $3",
    )
    .bind(team_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(LedgerRow {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                memo: r.try_get("memo")?,
                amount: Micros(r.try_get::<Option<i64>, _>("amount")?.unwrap_or(0)),
                created_at: r.try_get("created_at")?,
                actor: r.try_get("actor")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next = if out.len() > limit as usize {
        out.truncate(limit as usize);
        out.last().map(|r| r.id)
    } else {
        None
    };
    Ok((out, next))
}
