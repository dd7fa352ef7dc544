//! Spend caps on the money path (the rules are in [`crate::limits`]): a capped request's hold
//! is counted against its key's and team's caps by one guarded `UPDATE` per cap row, in the
//! transaction that holds its balance, and settlement moves it from `held` to the window's
//! `spent`. Requests without caps (`caps = 0` on their hold) never touch `usage_limit`.
//!
//! Lock order, so that PostgreSQL transactions never wait on each other in a cycle: admission
//! locks cap rows (sorted by scope and owner) before the team's account row; settlement and
//! extension lock the request's hold, then cap rows (sorted), then account rows.

use std::sync::LazyLock;

use super::BillingError;
use crate::{
    limits::{day_of, month_of, secs_to_next_day, secs_to_next_month, Scope},
    money::Micros,
    writer::{Sql, WriteTx},
};

/// Which cap refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapWindow {
    Day,
    Month,
    Total,
}

impl CapWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            CapWindow::Day => "daily",
            CapWindow::Month => "monthly",
            CapWindow::Total => "total",
        }
    }

    /// Seconds until the cap's window starts again (`None` for the total cap).
    pub fn retry_after_secs(self, now: i64) -> Option<u64> {
        match self {
            CapWindow::Day => Some(secs_to_next_day(now)),
            CapWindow::Month => Some(secs_to_next_month(now)),
            CapWindow::Total => None,
        }
    }
}

/// The cap rows a hold with `caps` bits counts against, in lock order.
pub(super) fn subjects(
    caps: i64,
    api_key_id: i64,
    team_id: i64,
) -> impl Iterator<Item = (Scope, i64)> {
    [(Scope::Key, api_key_id), (Scope::Team, team_id)]
        .into_iter()
        .filter(move |(s, _)| caps & s.cap_bit() != 0)
}

/// Counts `amount` against one cap row if every cap of it still has room.
pub(super) async fn take(
    tx: &mut WriteTx<'_>,
    scope: Scope,
    owner_id: i64,
    amount: i64,
    now: i64,
) -> Result<(), BillingError> {
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(
            "UPDATE usage_limit SET \
               day_spent = CASE WHEN day = $2 THEN day_spent ELSE 0 END, day = $2, \
               month_spent = CASE WHEN month = $3 THEN month_spent ELSE 0 END, month = $3, \
               held = held + $1, updated_at = $4 \
             WHERE scope = $5 AND owner_id = $6 \
               AND (day_cap IS NULL OR (CASE WHEN day = $2 THEN day_spent ELSE 0 END) + held + $1 <= day_cap) \
               AND (month_cap IS NULL OR (CASE WHEN month = $3 THEN month_spent ELSE 0 END) + held + $1 <= month_cap) \
               AND (total_cap IS NULL OR total_spent + held + $1 <= total_cap)",
        )
    });
    let (day, month) = (day_of(now), month_of(now));
    let args = [
        amount.into(),
        day.into(),
        month.into(),
        now.into(),
        scope.as_str().into(),
        owner_id.into(),
    ];
    if tx.execute(&SQL, &args).await? == 1 {
        return Ok(());
    }
    // Refused, or no row (the caps were removed since the key was read): say which cap.
    static WHICH: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(
            "SELECT \
               CASE WHEN day_cap IS NOT NULL AND (CASE WHEN day = $2 THEN day_spent ELSE 0 END) + held + $1 > day_cap THEN 1 \
                    WHEN month_cap IS NOT NULL AND (CASE WHEN month = $3 THEN month_spent ELSE 0 END) + held + $1 > month_cap THEN 2 \
                    WHEN total_cap IS NOT NULL AND total_spent + held + $1 > total_cap THEN 3 \
                    ELSE 0 END \
             FROM usage_limit WHERE scope = $4 AND owner_id = $5",
        )
    });
    let args = [
        amount.into(),
        day.into(),
        month.into(),
        scope.as_str().into(),
        owner_id.into(),
    ];
    let rows = tx.fetch(&WHICH, &args).await?;
    let window = match rows
        .first()
        .and_then(|r| r.first())
        .map(|c| c.int())
        .transpose()?
    {
        Some(1) => CapWindow::Day,
        Some(2) => CapWindow::Month,
        Some(3) => CapWindow::Total,
        // No row: nothing to count against.
        _ => return Ok(()),
    };
    Err(BillingError::SpendCap { scope, window })
}

/// Takes back a hold counted by [`take`] (its balance hold failed in the same transaction).
pub(super) async fn untake(
    tx: &mut WriteTx<'_>,
    scope: Scope,
    owner_id: i64,
    amount: i64,
    now: i64,
) -> Result<(), BillingError> {
    settle(tx, scope, owner_id, amount, 0, now).await
}

/// Moves `held` out of a cap row's holds and counts `cost` as spent in the current windows.
pub(super) async fn settle(
    tx: &mut WriteTx<'_>,
    scope: Scope,
    owner_id: i64,
    held: i64,
    cost: i64,
    now: i64,
) -> Result<(), BillingError> {
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(
            "UPDATE usage_limit SET \
               day_spent = (CASE WHEN day = $2 THEN day_spent ELSE 0 END) + $1, day = $2, \
               month_spent = (CASE WHEN month = $3 THEN month_spent ELSE 0 END) + $1, month = $3, \
               total_spent = total_spent + $1, \
               held = CASE WHEN held > $4 THEN held - $4 ELSE 0 END, updated_at = $5 \
             WHERE scope = $6 AND owner_id = $7",
        )
    });
    let args = [
        cost.into(),
        day_of(now).into(),
        month_of(now).into(),
        held.into(),
        now.into(),
        scope.as_str().into(),
        owner_id.into(),
    ];
    tx.execute(&SQL, &args).await?;
    Ok(())
}

/// Grows the holds counted against a request's caps (an extension), guarded like [`take`].
pub(super) async fn extend(
    tx: &mut WriteTx<'_>,
    caps: i64,
    api_key_id: i64,
    team_id: i64,
    additional: Micros,
    now: i64,
) -> Result<(), BillingError> {
    for (scope, owner) in subjects(caps, api_key_id, team_id) {
        take(tx, scope, owner, additional.0, now).await?;
    }
    Ok(())
}
