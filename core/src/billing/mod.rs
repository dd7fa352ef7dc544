//! Billing: the money engine. An append-only double-entry ledger with a cached balance and
//! hold per team, reservations taken before a request runs and settled (or released) exactly
//! once after it, a reaper for reservations that were never finished, operator credits, and a
//! drift check that recomputes everything from the ledger.
//!
//! # Model
//!
//! - **Accounts** (`account`): one `team_balance` per team (created with the team, or by
//!   [`ensure_team_account`]) and one row per [`SystemAccount`]. `balance` is the cached sum
//!   of the account's ledger entries; `held` is the sum of the team's open reservations.
//! - **Ledger** (`ledger_txn`, `ledger_entry`): every money movement is one transaction whose
//!   entries sum to zero, written only by [`post`], which updates the cached balance of every
//!   touched account in the same database transaction. Entries and transactions cannot be
//!   updated or deleted (database triggers on both backends); corrections are new
//!   transactions. `ledger_txn.external_ref` is unique and is the idempotency key:
//!   `usage:<request_id>`, `manual:<uuid>` or an operator-supplied reference.
//! - **Reservations**: [`reserve`] holds a worst-case amount in one guarded `UPDATE`
//!   (`balance - held >= amount`) and records the request's `hold` row with its price
//!   snapshot. [`settle`] charges the actual usage at that snapshot and drops the hold;
//!   [`release`] drops the hold without a charge. Either one deletes the hold and writes the
//!   request's `charge` row (its usage row: usage, cost, status) in the same transaction, so
//!   each request is finished exactly once whatever the number of concurrent callers or
//!   replicas: a second finisher finds no hold.
//! - **Usage in the ledger**: the costs settled in one database transaction are posted as one
//!   `usage` transaction per team (team −Σ cost, `upstream_cost` +Σ upstream part,
//!   `revenue_markup` +Σ markup), referenced `usage:<request id of its first charge>`; each
//!   charge with a cost names it (`ledger_txn_id`). Settled one at a time, that is one
//!   transaction per request; settled by the [`Committer`], one per team per commit window.
//!   Costs are still computed and rounded per request, so the sum is exact.
//!
//! # Signs
//!
//! A team balance is a liability: money the team can spend. Credits to the team are positive
//! entries on `team_balance`; usage is a negative entry on `team_balance` balanced by positive
//! entries on `upstream_cost` and `revenue_markup`; a manual credit of `x` is `+x` on the team
//! and `-x` on `manual_adjustment`.
//!
//! # Overshoot bound
//!
//! [`settle`] charges the actual cost even when it exceeds the reservation, so a balance can go
//! below zero. By how much:
//!
//! - If the request's real input is at most the prompt token count passed to [`worst_case`],
//!   its output at most `max_output`, and the reservation was not lowered by the cap, then
//!   `cost ≤ reserved`: **no overshoot**. `worst_case` prices every token at the dearest line
//!   of its side and includes the per-line rounding slack (property-tested).
//! - Otherwise the overshoot of one request is at most
//!   `worst_case(actual_input, actual_output, snapshot, no cap) − reserved`: the price of the
//!   tokens the estimate missed plus whatever the cap cut off. [`extend`] lets a long stream
//!   grow its hold in chunks, which bounds the cap part to one chunk.
//! - Admission needs `balance − held ≥ amount`, so no request is admitted while the available
//!   balance is negative. Hence a team balance never goes below
//!   `−Σ overshoot(r)` over the requests that were in flight when it crossed zero.
//! - The reaper bills `prompt_estimate` input plus the checkpointed output, which is within
//!   the worst case whenever the checkpoint is within `max_output`.
//!
//! # Using it from the gateway
//!
//! 1. `amount = worst_case(counted_prompt_tokens, max_tokens or the model's max output,
//!    &tariff, cap)`, then [`reserve`] with a fresh `request_id`, the same tariff and
//!    `prompt_estimate = counted_prompt_tokens`. `InsufficientBalance` → 402; nothing to undo.
//! 2. While streaming, call [`checkpoint`] with the output tokens counted so far every few
//!    seconds (one small UPDATE). If the cap bound the amount, [`extend`] in chunks.
//! 3. Exactly one exit: [`settle`] with the usage in the inclusive convention (convert
//!    Anthropic-style exclusive counts first; clamp negative/absurd upstream numbers before
//!    calling), or [`release`] when nothing billable happened. Both are idempotent, so retry
//!    them freely after a database error.
//! 4. Run [`reap`]`(db, now_ms())` every minute on every replica. The reservation TTL must
//!    exceed the longest request (the total deadline) plus the settlement retry window: an
//!    expired reservation without a checkpoint is *released*, and a later `settle` then
//!    returns `already = true, status = Released, cost = 0` (nothing charged).
//!
//! # Throughput note
//!
//! Every settlement updates the `upstream_cost` and `revenue_markup` rows, so on PostgreSQL
//! settlements of different teams serialize on those two row locks for the rest of their
//! transaction (a few statements). On SQLite all writes serialize anyway. What a request costs
//! the database: admission writes two rows (the team's account and the hold, both on pages
//! that stay in cache, since only requests in flight have holds); a commit window writes, per
//! request, its charge and request-log rows and deletes its hold, and per team one ledger
//! transaction with three entries.

mod batch;
#[cfg(test)]
mod cap_tests;
mod caps;
mod check;
mod committer;
mod ledger;
mod pricing;
mod reaper;
mod reserve;
#[cfg(test)]
mod tests;

use crate::db::DbError;

pub use batch::Finish;
pub use caps::CapWindow;
pub use check::{check, Drift};
pub use committer::{Committer, MAX_BATCH, SETTLE_WINDOW};
pub(crate) use ledger::ensure_team_account_tx;
pub use ledger::{
    balance, credit, credit_by, ensure_team_account, post, post_by, team_ledger, AccountRef, Entry,
    LedgerRow, LedgerTxnId, SystemAccount,
};
pub use pricing::{price, worst_case, Charge, Usage};
pub use reaper::{reap, ReapReport};
pub use reserve::{
    checkpoint, extend, finish_many, finish_one, release, reservation, reserve, reserve_many,
    settle, NewReservation, Reservation, ReservationStatus, Settlement,
};

/// Errors of the billing engine. `InsufficientBalance` is the caller's 402; the rest are for
/// logs (database details never reach API callers).
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The team's available balance (`balance - held`) does not cover the amount.
    #[error("insufficient balance")]
    InsufficientBalance,
    /// The request's hold would pass a spend cap of its key or team (the caller's 429).
    #[error("the {} {} spend cap is reached", .scope.as_str(), .window.as_str())]
    SpendCap {
        scope: crate::limits::Scope,
        window: CapWindow,
    },
    /// A ledger transaction or reservation with this reference / request id already exists.
    #[error("{0:?} already exists")]
    Duplicate(String),
    /// No reservation with this request id.
    #[error("no reservation {0:?}")]
    NotFound(String),
    /// The reservation is already settled or released.
    #[error("reservation {0:?} is already finished")]
    Finished(String),
    /// The team has no balance account (the team does not exist).
    #[error("team {0} has no balance account")]
    UnknownTeam(i64),
    /// A system account row is missing (a broken migration).
    #[error("system account {0} is missing")]
    MissingAccount(&'static str),
    /// The entries of a transaction do not sum to zero.
    #[error("ledger transaction does not balance (sum {0})")]
    Unbalanced(i128),
    /// A negative, zero or out-of-range amount where it is not allowed.
    #[error("invalid amount: {0}")]
    InvalidAmount(&'static str),
    /// An external reference that is empty or in a namespace Weir reserves for itself.
    #[error("invalid external reference {0:?}")]
    InvalidRef(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for BillingError {
    fn from(e: sqlx::Error) -> Self {
        BillingError::Db(DbError::Sqlx(e))
    }
}

/// True when `e` is a unique-constraint violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A token count as stored (BIGINT): counts beyond `i64::MAX` are clamped.
fn tokens_to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored token count back as `u64` (negative values, which the code never writes, read as 0).
fn tokens_from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
