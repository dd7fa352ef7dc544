//! The drift check behind `weir ledger check`: recomputes what the cached columns claim from
//! the ledger, the holds and the charges, and lists every disagreement. Read-only; it scans the
//! ledger and the charges, so run it off-peak (nightly), not per request.

use std::fmt;

use futures_util::TryStreamExt;
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
    /// The cached `account.held` differs from the sum of the team's open holds.
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
    /// A `usage` ledger transaction whose team debit (`debited`, as a positive number) is not
    /// the sum of the costs of the charges that name it (`charged`).
    Usage {
        txn_id: i64,
        external_ref: String,
        charged: Micros,
        debited: Micros,
    },
    /// A charge whose ledger link is wrong: a released one that names a transaction, one that
    /// names a transaction that is not a `usage` one, or one whose transaction debits another
    /// team.
    Charge {
        request_id: String,
        status: String,
        cost: Micros,
        txn_id: Option<i64>,
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
                txn_id,
                external_ref,
                charged,
                debited,
            } => write!(
                f,
                "usage txn {txn_id} ({external_ref}) debits {debited} but its charges cost {charged}"
            ),
            Drift::Charge {
                request_id,
                status,
                cost,
                txn_id,
            } => write!(
                f,
                "charge {request_id} ({status}, cost {cost}) names ledger txn {txn_id:?}, which does not charge it"
            ),
        }
    }
}

/// Recomputes and compares: each account's cached balance against the sum of its entries;
/// each account's hold against its team's open holds; each transaction's entries against
/// zero; each usage transaction against the charges that name it.
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
           (SELECT team_id, CAST(SUM(amount) AS BIGINT) AS total FROM hold GROUP BY team_id) h \
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

    // Each usage transaction's team debit against the sum of the charges that name it: two
    // aggregates in transaction order, compared as they stream (a join of the two aggregates
    // is quadratic on SQLite, which has no index on either side).
    let mut charged = sqlx::query(
        "SELECT ledger_txn_id AS txn, CAST(SUM(cost) AS BIGINT) AS total FROM charge \
         WHERE ledger_txn_id IS NOT NULL GROUP BY ledger_txn_id ORDER BY ledger_txn_id",
    )
    .fetch(db.pool());
    let mut debited = sqlx::query(
        "SELECT t.id AS txn, t.external_ref, \
           CAST(-COALESCE(SUM(CASE WHEN a.kind = 'team_balance' THEN e.amount END), 0) AS BIGINT) AS total \
         FROM ledger_txn t LEFT JOIN ledger_entry e ON e.txn_id = t.id \
         LEFT JOIN account a ON a.id = e.account_id \
         WHERE t.kind = 'usage' GROUP BY t.id, t.external_ref ORDER BY t.id",
    )
    .fetch(db.pool());
    let read = |r: &Option<sqlx::any::AnyRow>| -> Result<Option<(i64, i64)>, sqlx::Error> {
        r.as_ref()
            .map(|r| Ok((r.try_get("txn")?, r.try_get("total")?)))
            .transpose()
    };
    let mut c = charged.try_next().await?;
    let mut d = debited.try_next().await?;
    loop {
        // Step the side with the lower transaction id, or both when they name the same one.
        let (ck, dk) = (read(&c)?, read(&d)?);
        let txn_id = match (ck, dk) {
            (None, None) => break,
            (Some((ct, _)), Some((dt, _))) => ct.min(dt),
            (Some((t, _)), None) | (None, Some((t, _))) => t,
        };
        let mut charged_total = 0;
        if let Some((_, total)) = ck.filter(|(t, _)| *t == txn_id) {
            charged_total = total;
            c = charged.try_next().await?;
        }
        let (mut debited_total, mut external_ref) = (0, String::new());
        if let Some((_, total)) = dk.filter(|(t, _)| *t == txn_id) {
            debited_total = total;
            if let Some(row) = &d {
                external_ref = row.try_get("external_ref")?;
            }
            d = debited.try_next().await?;
        }
        if charged_total != debited_total {
            out.push(Drift::Usage {
                txn_id,
                external_ref,
                charged: Micros(charged_total),
                debited: Micros(debited_total),
            });
        }
    }
    drop((charged, debited));

    // (`+e.account_id`: look entries up by transaction, not by account, which would scan
    // every entry of the team for each charge.)
    for r in sqlx::query(
        "SELECT c.request_id, c.status, c.cost, c.ledger_txn_id FROM charge c \
         JOIN ledger_txn t ON t.id = c.ledger_txn_id \
         WHERE c.status = 'released' OR t.kind <> 'usage' \
            OR NOT EXISTS (SELECT 1 FROM ledger_entry e JOIN account a ON a.id = +e.account_id \
                           WHERE e.txn_id = c.ledger_txn_id AND a.team_id = c.team_id \
                             AND a.kind = 'team_balance') \
         ORDER BY c.request_id",
    )
    .fetch_all(db.pool())
    .await?
    {
        out.push(Drift::Charge {
            request_id: r.try_get("request_id")?,
            status: r.try_get("status")?,
            cost: Micros(r.try_get("cost")?),
            txn_id: r.try_get("ledger_txn_id")?,
        });
    }

    Ok(out)
}
