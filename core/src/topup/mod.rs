//! Stripe Checkout top-ups: the `topup` rows a team starts, and the webhook's state machine
//! that credits each one exactly once through the ledger (and reverses refunds and disputes).
//! No HTTP here: the server creates the Checkout Session and verifies the webhook's signature
//! ([`signature`]), then hands the parsed [`event::Event`] to [`apply`].
//!
//! # State machine
//!
//! `pending → processing → credited → partially_refunded | refunded`; `pending | processing →
//! failed | expired`; `mismatch` when Stripe's amount or currency differs from the row's (then
//! nothing is credited and the note says why). A paid completion credits from `pending`,
//! `processing`, `failed` or `expired` (Stripe took the money, so the books must show it even
//! when an `expired` was delivered first). Refunds are tracked by Stripe's cumulative
//! `amount_refunded`: the reversal is the difference to what was already reversed, so replays
//! and refunds out of order converge, and a refund seen before the completion is reversed
//! right after the credit. An open dispute reverses its amount; a won one gives it back.
//!
//! # Exactly once
//!
//! [`apply`] runs in one write transaction: it first inserts the event id into
//! `stripe_event` (a second delivery, even a concurrent one, finds it and does nothing), then
//! locks the top-up row (a no-op `UPDATE … RETURNING`, which takes the row lock on PostgreSQL;
//! SQLite serialises every write transaction anyway), then posts to the ledger under
//! references that are unique per effect (`topup:<id>`, `refund:<id>:<cumulative>`,
//! `dispute:<dispute id>`, `dispute-won:<dispute id>`). An error rolls everything back, event
//! row included, so Stripe's retry processes the event again.
//!
//! Ledger entries: a credit is `team +amount, stripe_clearing −amount`; a reversal the
//! opposite. A reversal may take the team's balance below zero, after which the gateway
//! admits nothing until it is topped up again.

pub mod event;
pub mod signature;

use sqlx::{any::AnyRow, Any, Row, Transaction};

use crate::{
    billing::{post_by, AccountRef, BillingError, Entry, SystemAccount},
    db::{now_ms, Db, DbError},
    money::Micros,
};

use event::{Charge, Dispute, Event, Session};

/// A created Checkout Session: where to send the customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutLink {
    pub session_id: String,
    pub url: String,
}

/// Creates the Checkout Session of a pending top-up (the server's Stripe client, handed to the
/// console). The error is a message for logs.
pub type StartCheckout = std::sync::Arc<
    dyn Fn(Topup) -> futures_util::future::BoxFuture<'static, Result<CheckoutLink, String>>
        + Send
        + Sync,
>;

/// Micro-USD per cent (Stripe amounts are in minor units).
pub const MICROS_PER_CENT: i64 = 10_000;

/// The currency of every top-up (balances are USD).
pub const CURRENCY: &str = "usd";

/// Where a top-up is in its life; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopupStatus {
    Pending,
    Processing,
    Credited,
    PartiallyRefunded,
    Refunded,
    Failed,
    Expired,
    Mismatch,
}

impl TopupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TopupStatus::Pending => "pending",
            TopupStatus::Processing => "processing",
            TopupStatus::Credited => "credited",
            TopupStatus::PartiallyRefunded => "partially_refunded",
            TopupStatus::Refunded => "refunded",
            TopupStatus::Failed => "failed",
            TopupStatus::Expired => "expired",
            TopupStatus::Mismatch => "mismatch",
        }
    }

    fn parse(s: &str) -> Result<TopupStatus, TopupError> {
        Ok(match s {
            "pending" => TopupStatus::Pending,
            "processing" => TopupStatus::Processing,
            "credited" => TopupStatus::Credited,
            "partially_refunded" => TopupStatus::PartiallyRefunded,
            "refunded" => TopupStatus::Refunded,
            "failed" => TopupStatus::Failed,
            "expired" => TopupStatus::Expired,
            "mismatch" => TopupStatus::Mismatch,
            other => {
                return Err(TopupError::Corrupt(format!(
                    "unknown top-up status {other:?}"
                )))
            }
        })
    }

    /// The credit has been posted (and perhaps partly or wholly reversed since).
    pub fn is_credited(self) -> bool {
        matches!(
            self,
            TopupStatus::Credited | TopupStatus::PartiallyRefunded | TopupStatus::Refunded
        )
    }
}

/// One top-up row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topup {
    pub id: String,
    pub team_id: i64,
    pub created_by: Option<i64>,
    pub amount: Micros,
    pub currency: String,
    pub status: TopupStatus,
    pub session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub payment_intent: Option<String>,
    pub receipt_url: Option<String>,
    /// Stripe's cumulative refunded amount as last seen.
    pub refunded: Micros,
    /// How much of the credit has been reversed for refunds.
    pub refund_reversed: Micros,
    pub dispute_id: Option<String>,
    pub dispute_status: Option<String>,
    /// The amount reversed for an open or lost dispute.
    pub disputed: Micros,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub credited_at: Option<i64>,
}

impl Topup {
    /// The Stripe amount (minor units, cents) of this top-up.
    pub fn cents(&self) -> i64 {
        self.amount.0 / MICROS_PER_CENT
    }

    /// The `Idempotency-Key` of the Checkout Session creation for this top-up.
    pub fn idempotency_key(&self) -> String {
        format!("topup-create-{}", self.id)
    }
}

const COLUMNS: &str =
    "id, team_id, created_by, amount, currency, status, session_id, checkout_url, \
    payment_intent, receipt_url, refunded, refund_reversed, dispute_id, dispute_status, disputed, \
    note, created_at, updated_at, credited_at";

fn from_row(r: &AnyRow) -> Result<Topup, TopupError> {
    Ok(Topup {
        id: r.try_get("id")?,
        team_id: r.try_get("team_id")?,
        created_by: r.try_get("created_by")?,
        amount: Micros(r.try_get("amount")?),
        currency: r.try_get("currency")?,
        status: TopupStatus::parse(&r.try_get::<String, _>("status")?)?,
        session_id: r.try_get("session_id")?,
        checkout_url: r.try_get("checkout_url")?,
        payment_intent: r.try_get("payment_intent")?,
        receipt_url: r.try_get("receipt_url")?,
        refunded: Micros(r.try_get("refunded")?),
        refund_reversed: Micros(r.try_get("refund_reversed")?),
        dispute_id: r.try_get("dispute_id")?,
        dispute_status: r.try_get("dispute_status")?,
        disputed: Micros(r.try_get("disputed")?),
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        credited_at: r.try_get("credited_at")?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TopupError {
    /// The amount is outside the configured bounds or not a whole number of cents.
    #[error("the amount must be between {min} and {max} USD, in whole cents")]
    Amount { min: Micros, max: Micros },
    #[error("no such top-up")]
    NotFound,
    /// A stored value Weir cannot read (never written by this code).
    #[error("corrupt top-up row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TopupError {
    fn from(e: sqlx::Error) -> Self {
        TopupError::Db(DbError::Sqlx(e))
    }
}

/// The bounds of a top-up amount (`WEIR_TOPUP_MIN` / `WEIR_TOPUP_MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub min: Micros,
    pub max: Micros,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min: Micros(5_000_000),
            max: Micros(10_000_000_000),
        }
    }
}

impl Limits {
    /// Refuses amounts outside `[min, max]` or with a fraction of a cent.
    pub fn check(&self, amount: Micros) -> Result<(), TopupError> {
        if amount < self.min || amount > self.max || amount.0 % MICROS_PER_CENT != 0 {
            return Err(TopupError::Amount {
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// Writes a `pending` top-up of `amount` for the team (checked against `limits`).
pub async fn create(
    db: &Db,
    team_id: i64,
    created_by: Option<i64>,
    amount: Micros,
    limits: &Limits,
) -> Result<Topup, TopupError> {
    limits.check(amount)?;
    let id = format!("tu_{}", uuid::Uuid::now_v7().simple());
    let now = now_ms();
    let row = sqlx::query(&format!(
        "INSERT INTO topup (id, team_id, created_by, amount, currency, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(team_id)
    .bind(created_by)
    .bind(amount.0)
    .bind(CURRENCY)
    .bind(now)
    .fetch_one(db.write_pool())
    .await?;
    from_row(&row)
}

/// Records the Checkout Session created for the top-up (a retried creation returns the same
/// session, so the same id may be recorded twice).
pub async fn attach_session(
    db: &Db,
    topup_id: &str,
    session_id: &str,
    url: &str,
) -> Result<(), TopupError> {
    sqlx::query(
        "UPDATE topup SET session_id = $2, checkout_url = $3, updated_at = $4 \
         WHERE id = $1 AND (session_id IS NULL OR session_id = $2)",
    )
    .bind(topup_id)
    .bind(session_id)
    .bind(url)
    .bind(now_ms())
    .execute(db.write_pool())
    .await?;
    Ok(())
}

/// Marks a pending top-up whose Checkout Session could not be created as failed.
pub async fn fail_start(db: &Db, topup_id: &str, note: &str) -> Result<(), TopupError> {
    sqlx::query(
        "UPDATE topup SET status = 'failed', note = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'pending' AND session_id IS NULL",
    )
    .bind(topup_id)
    .bind(note)
    .bind(now_ms())
    .execute(db.write_pool())
    .await?;
    Ok(())
}

/// The team's top-ups, newest first.
pub async fn list(db: &Db, team_id: i64, limit: u32) -> Result<Vec<Topup>, TopupError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM topup WHERE team_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(team_id)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One of the team's top-ups, by id; another team's is [`TopupError::NotFound`].
pub async fn get(db: &Db, team_id: i64, topup_id: &str) -> Result<Topup, TopupError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM topup WHERE id = $1 AND team_id = $2"
    ))
    .bind(topup_id)
    .bind(team_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or(TopupError::NotFound)
}

/// What [`apply`] did with an event (stored in `stripe_event.outcome`, logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This event id was processed before: nothing done.
    Duplicate,
    /// The top-up was credited.
    Credited,
    /// Paid later (a delayed payment method): marked `processing`.
    Processing,
    Failed,
    Expired,
    /// A refund reversed this much (zero when it was already reversed, or is waiting for the
    /// credit).
    Refunded(Micros),
    /// A dispute reversed this much.
    Disputed(Micros),
    /// A closed dispute gave back this much (zero when lost).
    DisputeClosed(Micros),
    /// The receipt link or payment intent was recorded.
    Receipt,
    /// Stripe's amount or currency differs from the top-up's: recorded, not credited.
    Mismatch,
    /// The top-up is already past what this event would do.
    AlreadyDone,
    /// Not about a top-up Weir created (or of the wrong mode): ignored.
    Ignored(&'static str),
    /// An event type Weir does not handle.
    Unhandled,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Duplicate => "duplicate",
            Outcome::Credited => "credited",
            Outcome::Processing => "processing",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
            Outcome::Refunded(_) => "refunded",
            Outcome::Disputed(_) => "disputed",
            Outcome::DisputeClosed(_) => "dispute_closed",
            Outcome::Receipt => "receipt",
            Outcome::Mismatch => "mismatch",
            Outcome::AlreadyDone => "already_done",
            Outcome::Ignored(_) => "ignored",
            Outcome::Unhandled => "unhandled",
        }
    }
}

/// The result of [`apply`]: what happened, and to which top-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    pub topup_id: Option<String>,
}

/// Applies one verified Stripe event in one transaction (see the module doc). `livemode` is
/// the mode of the configured secret key: events of the other mode are ignored. An `Err` has
/// changed nothing (the caller answers 5xx so that Stripe retries).
pub async fn apply(db: &Db, ev: &Event, livemode: bool) -> Result<Applied, TopupError> {
    let mut tx = db.begin_write().await?;
    let fresh: Option<String> = sqlx::query_scalar(
        "INSERT INTO stripe_event (event_id, type, outcome, received_at) VALUES ($1, $2, 'processing', $3) \
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    )
    .bind(&ev.id)
    .bind(&ev.kind)
    .bind(now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    if fresh.is_none() {
        tx.rollback().await?;
        return Ok(Applied {
            outcome: Outcome::Duplicate,
            topup_id: None,
        });
    }
    let (outcome, topup_id) = if ev.livemode != livemode {
        (
            Outcome::Ignored("event of the other mode (live/test)"),
            None,
        )
    } else {
        dispatch(&mut tx, ev).await?
    };
    sqlx::query("UPDATE stripe_event SET outcome = $2, topup_id = $3 WHERE event_id = $1")
        .bind(&ev.id)
        .bind(outcome.as_str())
        .bind(topup_id.as_deref())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Applied { outcome, topup_id })
}

type Tx = Transaction<'static, Any>;

async fn dispatch(tx: &mut Tx, ev: &Event) -> Result<(Outcome, Option<String>), TopupError> {
    let kind = ev.kind.as_str();
    if kind.starts_with("checkout.session.") {
        if !matches!(
            kind,
            "checkout.session.completed"
                | "checkout.session.async_payment_succeeded"
                | "checkout.session.async_payment_failed"
                | "checkout.session.expired"
        ) {
            return Ok((Outcome::Unhandled, None));
        }
        let Some(s) = ev.object::<Session>() else {
            return Ok((Outcome::Ignored("not a Checkout Session"), None));
        };
        let Some(t) = lock_for_session(tx, &s).await? else {
            return Ok((Outcome::Ignored("not a session Weir created"), None));
        };
        let id = t.id.clone();
        let outcome = match kind {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded"
                if s.payment_status.as_deref() == Some("paid") =>
            {
                credit(tx, &t, &s).await?
            }
            "checkout.session.completed" => {
                set_status_from(tx, &t, &[TopupStatus::Pending], TopupStatus::Processing).await?
            }
            "checkout.session.async_payment_failed" => {
                set_status_from(
                    tx,
                    &t,
                    &[TopupStatus::Pending, TopupStatus::Processing],
                    TopupStatus::Failed,
                )
                .await?
            }
            "checkout.session.expired" => {
                set_status_from(
                    tx,
                    &t,
                    &[TopupStatus::Pending, TopupStatus::Processing],
                    TopupStatus::Expired,
                )
                .await?
            }
            // async_payment_succeeded without `paid`: nothing to credit yet.
            _ => Outcome::AlreadyDone,
        };
        return Ok((outcome, Some(id)));
    }
    match kind {
        "charge.succeeded" | "charge.refunded" => {
            let Some(c) = ev.object::<Charge>() else {
                return Ok((Outcome::Ignored("not a Charge"), None));
            };
            let Some(t) = lock_for_charge(tx, &c).await? else {
                return Ok((Outcome::Ignored("not a payment Weir created"), None));
            };
            let id = t.id.clone();
            let outcome = if kind == "charge.refunded" {
                refund(tx, &t, &c).await?
            } else {
                receipt(tx, &t, &c).await?
            };
            Ok((outcome, Some(id)))
        }
        "charge.dispute.created" | "charge.dispute.closed" => {
            let Some(d) = ev.object::<Dispute>() else {
                return Ok((Outcome::Ignored("not a Dispute"), None));
            };
            let Some(t) = (match d.payment_intent.as_deref() {
                Some(pi) => lock_where(tx, "payment_intent", pi).await?,
                None => None,
            }) else {
                return Ok((Outcome::Ignored("not a payment Weir credited"), None));
            };
            let id = t.id.clone();
            let outcome = if kind == "charge.dispute.created" {
                dispute_created(tx, &t, &d).await?
            } else {
                dispute_closed(tx, &t, &d).await?
            };
            Ok((outcome, Some(id)))
        }
        _ => Ok((Outcome::Unhandled, None)),
    }
}

/// Locks and reads the top-up a row matches (`column = value`), if any. The no-op write takes
/// the row lock on PostgreSQL, so concurrent events for one top-up run one after the other.
async fn lock_where(tx: &mut Tx, column: &str, value: &str) -> Result<Option<Topup>, TopupError> {
    // `column` is one of three literals from this module, never input.
    let sql =
        format!("UPDATE topup SET updated_at = updated_at WHERE {column} = $1 RETURNING {COLUMNS}");
    let row = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// True when `claimed` (a team id from Stripe metadata) is absent or names `team_id`.
fn same_team(claimed: Option<&String>, team_id: i64) -> bool {
    claimed.is_none_or(|c| c.trim() == team_id.to_string())
}

/// The top-up of a session event: by the `topup_id` Weir put in the metadata, else by the
/// session id; cross-checked against the stored session id and team.
async fn lock_for_session(tx: &mut Tx, s: &Session) -> Result<Option<Topup>, TopupError> {
    let t = match s.metadata.get("topup_id") {
        Some(id) => lock_where(tx, "id", id).await?,
        None => lock_where(tx, "session_id", &s.id).await?,
    };
    let Some(t) = t else { return Ok(None) };
    if t.session_id.as_deref().is_some_and(|sid| sid != s.id) {
        tracing::warn!(topup = %t.id, session = %s.id, "a session event names a top-up of another session");
        return Ok(None);
    }
    if !same_team(s.metadata.get("team_id"), t.team_id)
        || !same_team(s.client_reference_id.as_ref(), t.team_id)
    {
        tracing::warn!(topup = %t.id, session = %s.id, "a session event names another team");
        return Ok(None);
    }
    Ok(Some(t))
}

/// The top-up of a charge: by the PaymentIntent metadata's `topup_id`, else the stored
/// payment intent.
async fn lock_for_charge(tx: &mut Tx, c: &Charge) -> Result<Option<Topup>, TopupError> {
    let t = match (c.metadata.get("topup_id"), c.payment_intent.as_deref()) {
        (Some(id), _) => lock_where(tx, "id", id).await?,
        (None, Some(pi)) => lock_where(tx, "payment_intent", pi).await?,
        (None, None) => None,
    };
    let Some(t) = t else { return Ok(None) };
    if let (Some(mine), Some(theirs)) = (t.payment_intent.as_deref(), c.payment_intent.as_deref()) {
        if mine != theirs {
            tracing::warn!(topup = %t.id, "a charge event names a top-up of another payment");
            return Ok(None);
        }
    }
    if !same_team(c.metadata.get("team_id"), t.team_id) {
        return Ok(None);
    }
    Ok(Some(t))
}

async fn set_status_from(
    tx: &mut Tx,
    t: &Topup,
    from: &[TopupStatus],
    to: TopupStatus,
) -> Result<Outcome, TopupError> {
    if !from.contains(&t.status) {
        return Ok(Outcome::AlreadyDone);
    }
    sqlx::query("UPDATE topup SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(&t.id)
        .bind(to.as_str())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(match to {
        TopupStatus::Processing => Outcome::Processing,
        TopupStatus::Failed => Outcome::Failed,
        TopupStatus::Expired => Outcome::Expired,
        _ => Outcome::AlreadyDone,
    })
}

/// Posts `team ±amount, stripe_clearing ∓amount` under `external_ref`.
async fn post_team(
    tx: &mut Tx,
    kind: &str,
    external_ref: &str,
    memo: &str,
    team_id: i64,
    amount: Micros,
) -> Result<(), TopupError> {
    let negated = amount
        .0
        .checked_neg()
        .ok_or(BillingError::InvalidAmount("amount out of range"))?;
    post_by(
        tx,
        kind,
        external_ref,
        Some(memo),
        Some("stripe"),
        &[
            Entry {
                account: AccountRef::Team(team_id),
                amount,
            },
            Entry {
                account: AccountRef::System(SystemAccount::StripeClearing),
                amount: Micros(negated),
            },
        ],
    )
    .await?;
    Ok(())
}

async fn credit(tx: &mut Tx, t: &Topup, s: &Session) -> Result<Outcome, TopupError> {
    if t.status.is_credited() {
        return Ok(Outcome::AlreadyDone);
    }
    if t.status == TopupStatus::Mismatch {
        return Ok(Outcome::Mismatch);
    }
    let currency = s.currency.as_deref().map(str::to_ascii_lowercase);
    if s.amount_total != Some(t.cents()) || currency.as_deref() != Some(t.currency.as_str()) {
        let note = format!(
            "Stripe reported {} {} for a top-up of {} {}; not credited",
            s.amount_total
                .map_or("no amount".to_owned(), |a| a.to_string()),
            currency.as_deref().unwrap_or("no currency"),
            t.cents(),
            t.currency
        );
        tracing::error!(topup = %t.id, session = %s.id, "{note}");
        sqlx::query("UPDATE topup SET status = 'mismatch', note = $2, session_id = COALESCE(session_id, $3), updated_at = $4 WHERE id = $1")
            .bind(&t.id)
            .bind(&note)
            .bind(&s.id)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        return Ok(Outcome::Mismatch);
    }
    match post_team(
        tx,
        "topup",
        &format!("topup:{}", t.id),
        "Stripe top-up",
        t.team_id,
        t.amount,
    )
    .await
    {
        Ok(()) => {}
        Err(TopupError::Billing(BillingError::Duplicate(_))) => return Ok(Outcome::AlreadyDone),
        Err(e) => return Err(e),
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE topup SET status = 'credited', session_id = COALESCE(session_id, $2), \
         payment_intent = COALESCE(payment_intent, $3), credited_at = $4, updated_at = $4, note = NULL \
         WHERE id = $1",
    )
    .bind(&t.id)
    .bind(&s.id)
    .bind(s.payment_intent.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    // A refund delivered before this completion is reversed now.
    reverse_refunds(tx, t, TopupStatus::Credited, t.refunded).await?;
    Ok(Outcome::Credited)
}

/// Reverses what `refunded` (Stripe's cumulative refund, capped at the amount) adds to what
/// was already reversed, and sets the refund status. Only for a credited top-up (`status` is
/// its status now).
async fn reverse_refunds(
    tx: &mut Tx,
    t: &Topup,
    status: TopupStatus,
    refunded: Micros,
) -> Result<Micros, TopupError> {
    let target = Micros(refunded.0.min(t.amount.0));
    let delta = target.0 - t.refund_reversed.0;
    if delta <= 0 || !status.is_credited() {
        return Ok(Micros::ZERO);
    }
    post_team(
        tx,
        "refund",
        &format!("refund:{}:{}", t.id, target.0),
        "Stripe refund",
        t.team_id,
        Micros(-delta),
    )
    .await?;
    let new_status = if target >= t.amount {
        TopupStatus::Refunded
    } else {
        TopupStatus::PartiallyRefunded
    };
    sqlx::query(
        "UPDATE topup SET refund_reversed = $2, status = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(&t.id)
    .bind(target.0)
    .bind(new_status.as_str())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(Micros(delta))
}

async fn refund(tx: &mut Tx, t: &Topup, c: &Charge) -> Result<Outcome, TopupError> {
    if c.currency
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some(t.currency.as_str())
    {
        return Ok(Outcome::Ignored("refund in another currency"));
    }
    let seen = Micros(
        c.amount_refunded
            .max(0)
            .saturating_mul(MICROS_PER_CENT)
            .min(t.amount.0),
    );
    let refunded = if seen > t.refunded { seen } else { t.refunded };
    sqlx::query(
        "UPDATE topup SET refunded = $2, receipt_url = COALESCE(receipt_url, $3), \
         payment_intent = COALESCE(payment_intent, $4), updated_at = $5 WHERE id = $1",
    )
    .bind(&t.id)
    .bind(refunded.0)
    .bind(c.receipt_url.as_deref())
    .bind(c.payment_intent.as_deref())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    let reversed = reverse_refunds(tx, t, t.status, refunded).await?;
    Ok(Outcome::Refunded(reversed))
}

async fn receipt(tx: &mut Tx, t: &Topup, c: &Charge) -> Result<Outcome, TopupError> {
    sqlx::query(
        "UPDATE topup SET receipt_url = COALESCE($2, receipt_url), \
         payment_intent = COALESCE(payment_intent, $3), updated_at = $4 WHERE id = $1",
    )
    .bind(&t.id)
    .bind(c.receipt_url.as_deref())
    .bind(c.payment_intent.as_deref())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(Outcome::Receipt)
}

/// The disputed amount that can be reversed: the dispute's amount, at most what is still
/// credited after refunds.
fn disputable(t: &Topup, d: &Dispute) -> Micros {
    let claimed = d
        .amount
        .unwrap_or(t.cents())
        .max(0)
        .saturating_mul(MICROS_PER_CENT);
    Micros(claimed.min(t.amount.0 - t.refund_reversed.0).max(0))
}

async fn set_dispute(
    tx: &mut Tx,
    t: &Topup,
    d: &Dispute,
    status: &str,
    disputed: Micros,
) -> Result<(), TopupError> {
    sqlx::query(
        "UPDATE topup SET dispute_id = $2, dispute_status = $3, disputed = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(&t.id)
    .bind(&d.id)
    .bind(status)
    .bind(disputed.0)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn dispute_created(tx: &mut Tx, t: &Topup, d: &Dispute) -> Result<Outcome, TopupError> {
    if t.dispute_id.as_deref() == Some(d.id.as_str()) || !t.status.is_credited() {
        // Seen already (or closed before it was opened), or nothing credited to reverse.
        return Ok(Outcome::AlreadyDone);
    }
    let amount = disputable(t, d);
    if amount.0 > 0 {
        post_team(
            tx,
            "dispute",
            &format!("dispute:{}", d.id),
            "Stripe dispute opened",
            t.team_id,
            Micros(-amount.0),
        )
        .await?;
    }
    set_dispute(tx, t, d, "open", amount).await?;
    Ok(Outcome::Disputed(amount))
}

async fn dispute_closed(tx: &mut Tx, t: &Topup, d: &Dispute) -> Result<Outcome, TopupError> {
    let same = t.dispute_id.as_deref() == Some(d.id.as_str());
    if same && t.dispute_status.as_deref() != Some("open") {
        return Ok(Outcome::AlreadyDone);
    }
    let lost = d.status.as_deref() == Some("lost");
    // What the dispute has reversed so far (nothing when its opening was never seen).
    let reversed = if same { t.disputed } else { Micros::ZERO };
    if lost {
        // Closed as lost before its opening was seen: reverse now.
        let mut disputed = reversed;
        if !same && t.status.is_credited() {
            disputed = disputable(t, d);
            if disputed.0 > 0 {
                post_team(
                    tx,
                    "dispute",
                    &format!("dispute:{}", d.id),
                    "Stripe dispute lost",
                    t.team_id,
                    Micros(-disputed.0),
                )
                .await?;
            }
        }
        set_dispute(tx, t, d, "lost", disputed).await?;
        return Ok(Outcome::DisputeClosed(Micros::ZERO));
    }
    if reversed.0 > 0 {
        post_team(
            tx,
            "dispute_won",
            &format!("dispute-won:{}", d.id),
            "Stripe dispute won",
            t.team_id,
            reversed,
        )
        .await?;
    }
    set_dispute(tx, t, d, "won", Micros::ZERO).await?;
    Ok(Outcome::DisputeClosed(reversed))
}
