//! The drift check behind `weir ledger check`: recomputes what the cached columns claim from
//! the ledger and the reservations, and lists every disagreement. Read-only; it scans the
//! ledger and the reservations, so run it off-peak (nightly), not per request.

use std::fmt;

use sqlx::Row;

use super::BillingError;
use crate::{db::Db, money::Micros};

/// One disagreement found by [`check`]. An empty list means the books are consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// The cached `account.balance` differs from the sum of the account's ledger entries.
    Balance {
        account_id: i64,
        kind: String,
        team_id: Option<i64>,
        cached: Micros,
        computed: Micros,
    },
    /// The cached `account.held` differs from the sum of the team's open reservations.
    Held {
        account_id: i64,
        team_id: Option<i64>,
        cached: Micros,
        computed: Micros,
    },
    /// A ledger transaction whose entries do not sum to zero.
    Unbalanced {
        txn_id: i64,
        external_ref: String,
        sum: Micros,
    },
    /// A finished reservation whose ledger side disagrees: a settled one whose
    /// `usage:<request_id>` transaction is missing or debits the team a different amount than
    /// its cost (`charged` is what the ledger debited, as a positive number), or a released one
    /// that has a usage transaction.
    Usage {
        request_id: String,
        status: String,
        cost: Micros,
        charged: Micros,
        txns: i64,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Balance {
                account_id,
                kind,
                team_id,
                cached,
                computed,
            } => write!(
                f,
                "account {account_id} ({kind}, team {team_id:?}): cached balance {cached} but ledger sum {computed}"
            ),
            Drift::Held {
                account_id,
                team_id,
                cached,
                computed,
            } => write!(
                f,
                "account {account_id} (team {team_id:?}): cached hold {cached} but open reservations {computed}"
            ),
            Drift::Unbalanced {
                txn_id,
                external_ref,
                sum,
            } => write!(
                f,
                "ledger txn {txn_id} ({external_ref}) sums to {sum}, not 0"
            ),
            Drift::Usage {
                request_id,
                status,
                cost,
                charged,
                txns,
            } => write!(
                f,
                "reservation {request_id} ({status}, cost {cost}): {txns} usage txn(s) charging {charged}"
            ),
        }
    }
}

/// Recomputes and compares: each account's cached balance against the sum of its entries;
/// each account's hold against its team's open reservations; each transaction's entries
/// against zero; each finished reservation against its usage transaction.
pub async fn check(db: &Db) -> Result<Vec<Drift>, BillingError> {
    let mut out = Vec::new();

    for r in sqlx::query(
        "SELECT a.id, a.kind, a.team_id, a.balance, COALESCE(s.total, 0) AS computed \
         FROM account a LEFT JOIN \
           (SELECT account_id, CAST(SUM(amount) AS BIGINT) AS total FROM ledger_entry GROUP BY account_id) s \
           ON s.account_id = a.id \
         WHERE a.balance <> COALESCE(s.total, 0) ORDER BY a.id",
    )
    .fetch_all(db.pool())
    .await?
    {
        out.push(Drift::Balance {
            account_id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            team_id: r.try_get("team_id")?,
            cached: Micros(r.try_get("balance")?),
            computed: Micros(r.try_get("computed")?),
        });
    }

    for r in sqlx::query(
        "SELECT a.id, a.team_id, a.held, COALESCE(h.total, 0) AS computed \
         FROM account a LEFT JOIN \
           (SELECT team_id, CAST(SUM(amount) AS BIGINT) AS total FROM reservation \
            WHERE status = 'reserved' GROUP BY team_id) h \
           ON h.team_id = a.team_id \
         WHERE a.held <> COALESCE(h.total, 0) ORDER BY a.id",
    )
    .fetch_all(db.pool())
    .await?
    {
        out.push(Drift::Held {
            account_id: r.try_get("id")?,
            team_id: r.try_get("team_id")?,
            cached: Micros(r.try_get("held")?),
            computed: Micros(r.try_get("computed")?),
        });
    }

    for r in sqlx::query(
        "SELECT t.id, t.external_ref, CAST(SUM(e.amount) AS BIGINT) AS total \
         FROM ledger_txn t JOIN ledger_entry e ON e.txn_id = t.id \
         GROUP BY t.id, t.external_ref HAVING SUM(e.amount) <> 0 ORDER BY t.id",
    )
    .fetch_all(db.pool())
    .await?
    {
        out.push(Drift::Unbalanced {
            txn_id: r.try_get("id")?,
            external_ref: r.try_get("external_ref")?,
            sum: Micros(r.try_get("total")?),
        });
    }

    for r in sqlx::query(
        "SELECT r.request_id, r.status, COALESCE(r.cost, 0) AS cost, COUNT(t.id) AS txns, \
           COALESCE(CAST(SUM(e.amount) AS BIGINT), 0) AS debited \
         FROM reservation r \
         LEFT JOIN ledger_txn t ON t.external_ref = 'usage:' || r.request_id \
         LEFT JOIN account a ON a.team_id = r.team_id AND a.kind = 'team_balance' \
         LEFT JOIN ledger_entry e ON e.txn_id = t.id AND e.account_id = a.id \
         WHERE r.status <> 'reserved' \
         GROUP BY r.request_id, r.status, r.cost \
         HAVING (r.status = 'settled' AND (COUNT(t.id) = 0 OR COALESCE(SUM(e.amount), 0) + COALESCE(r.cost, 0) <> 0)) \
             OR (r.status = 'released' AND COUNT(t.id) > 0) \
         ORDER BY r.request_id",
    )
    .fetch_all(db.pool())
    .await?
    {
        let debited: i64 = r.try_get("debited")?;
        out.push(Drift::Usage {
            request_id: r.try_get("request_id")?,
            status: r.try_get("status")?,
            cost: Micros(r.try_get("cost")?),
            charged: Micros(debited.saturating_neg()),
            txns: r.try_get("txns")?,
        });
    }

    Ok(out)
}
