//! Group commit for the request path: one task per process writes the reservations and
//! settlements of many concurrent requests in few transactions.
//!
//! - A **reservation** is urgent (its request waits for it before calling upstream): the task
//!   takes every reservation queued at that moment and commits them together at once. Under
//!   load the batch grows by itself while the previous one commits; alone, a request waits for
//!   exactly one transaction, as it would without the committer.
//! - A **settlement or release** only needs to be durable soon, not now (its client has its
//!   answer): they are gathered for up to [`SETTLE_WINDOW`] (or [`MAX_BATCH`] of them) and
//!   committed together, out of the way of reservations.
//! - A reservation refused for want of balance while settlements are waiting commits those
//!   first and is tried again, so the window never refuses a request that fits once the holds
//!   of finished requests are dropped.
//!
//! Nothing is kept only in memory: each caller waits until its own row is committed, the
//! reservation row is written before the upstream call, and a settlement still waiting in the
//! window when the process dies is finished by the reaper from the row, like one that never
//! started. Every write goes through the same [`reserve_many`] and [`finish_many`] as the
//! single-request functions.

use std::time::Duration;

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    batch::Finish,
    pricing::Usage,
    reserve::{finish_many, finish_one, reserve_many, NewReservation, Settlement},
    BillingError,
};
use crate::{db::Db, metering::UsageSource};

/// How long settlements wait to be committed together.
pub const SETTLE_WINDOW: Duration = Duration::from_millis(2);
/// The most requests committed in one transaction.
pub const MAX_BATCH: usize = 256;
const QUEUE: usize = 8_192;

struct ReserveOp {
    r: NewReservation,
    reply: oneshot::Sender<Result<(), BillingError>>,
}

struct FinishOp {
    request_id: String,
    finish: Finish,
    reply: oneshot::Sender<Result<Settlement, BillingError>>,
}

enum FinishMsg {
    Op(FinishOp),
    /// Commit everything waiting, then answer.
    Flush(oneshot::Sender<()>),
}

/// The handle the request path uses; cheap to clone. When its task has stopped, calls fall
/// back to their own transactions.
#[derive(Clone)]
pub struct Committer {
    db: Db,
    reserves: mpsc::Sender<ReserveOp>,
    finishes: mpsc::Sender<FinishMsg>,
}

impl Committer {
    /// Starts the committer task. It ends, after committing what is waiting, when every
    /// handle is gone.
    pub fn spawn(db: Db) -> (Committer, tokio::task::JoinHandle<()>) {
        let (rtx, rrx) = mpsc::channel(QUEUE);
        let (ftx, frx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(db.clone(), rrx, frx));
        (
            Committer {
                db,
                reserves: rtx,
                finishes: ftx,
            },
            task,
        )
    }

    /// [`reserve`](super::reserve), committed with whatever else is being reserved now.
    pub async fn reserve(&self, r: NewReservation) -> Result<(), BillingError> {
        let (reply, rx) = oneshot::channel();
        match self.reserves.send(ReserveOp { r, reply }).await {
            Ok(()) => match rx.await {
                Ok(res) => res,
                Err(_) => Err(stopped()),
            },
            Err(mpsc::error::SendError(op)) => super::reserve(&self.db, &op.r).await,
        }
    }

    /// [`settle`](super::settle), committed within [`SETTLE_WINDOW`].
    pub async fn settle(
        &self,
        request_id: String,
        usage: Usage,
        source: UsageSource,
    ) -> Result<Settlement, BillingError> {
        self.finish(request_id, Finish::Settle { usage, source })
            .await
    }

    /// [`release`](super::release), committed within [`SETTLE_WINDOW`].
    pub async fn release(&self, request_id: String) -> Result<bool, BillingError> {
        self.finish(request_id, Finish::Release)
            .await
            .map(|s| !s.already)
    }

    async fn finish(&self, request_id: String, finish: Finish) -> Result<Settlement, BillingError> {
        let (reply, rx) = oneshot::channel();
        let op = FinishOp {
            request_id,
            finish,
            reply,
        };
        match self.finishes.send(FinishMsg::Op(op)).await {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(stopped())),
            Err(mpsc::error::SendError(msg)) => match msg {
                FinishMsg::Op(op) => finish_one(&self.db, &op.request_id, op.finish).await,
                FinishMsg::Flush(_) => Err(stopped()),
            },
        }
    }

    /// Commits every settlement waiting in the window now.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.finishes.send(FinishMsg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The error a caller gets if the task died while holding its request (it retries).
fn stopped() -> BillingError {
    BillingError::Db(crate::db::DbError::Sqlx(sqlx::Error::WorkerCrashed))
}

async fn run(
    db: Db,
    mut reserves: mpsc::Receiver<ReserveOp>,
    mut finishes: mpsc::Receiver<FinishMsg>,
) {
    let mut pending: Vec<FinishOp> = Vec::new();
    let mut flushers: Vec<oneshot::Sender<()>> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let (mut reserves_open, mut finishes_open) = (true, true);
    while reserves_open || finishes_open {
        let due = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            op = reserves.recv(), if reserves_open => match op {
                None => reserves_open = false,
                Some(op) => {
                    let mut batch = vec![op];
                    while batch.len() < MAX_BATCH {
                        match reserves.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    reserve_batch(&db, batch, &mut pending, &mut finishes, &mut flushers).await;
                    if pending.is_empty() {
                        deadline = None;
                    }
                }
            },
            msg = finishes.recv(), if finishes_open => match msg {
                None => finishes_open = false,
                Some(msg) => {
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + SETTLE_WINDOW);
                    }
                    let forced = take(msg, &mut pending, &mut flushers);
                    if forced || pending.len() >= MAX_BATCH {
                        finish_batch(&db, &mut pending, &mut flushers).await;
                        deadline = None;
                    }
                }
            },
            () = tokio::time::sleep_until(due), if deadline.is_some() => {
                finish_batch(&db, &mut pending, &mut flushers).await;
                deadline = None;
            }
        }
    }
    finish_batch(&db, &mut pending, &mut flushers).await;
}

/// Adds a message to the waiting settlements; true if it asks for a flush.
fn take(
    msg: FinishMsg,
    pending: &mut Vec<FinishOp>,
    flushers: &mut Vec<oneshot::Sender<()>>,
) -> bool {
    match msg {
        FinishMsg::Op(op) => {
            pending.push(op);
            false
        }
        FinishMsg::Flush(tx) => {
            flushers.push(tx);
            true
        }
    }
}

async fn reserve_batch(
    db: &Db,
    batch: Vec<ReserveOp>,
    pending: &mut Vec<FinishOp>,
    finishes: &mut mpsc::Receiver<FinishMsg>,
    flushers: &mut Vec<oneshot::Sender<()>>,
) {
    let (items, replies): (Vec<NewReservation>, Vec<_>) =
        batch.into_iter().map(|op| (op.r, op.reply)).unzip();
    let mut results = reserve_many(db, &items).await;
    let refused: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Err(BillingError::InsufficientBalance)))
        .map(|(i, _)| i)
        .collect();
    if !refused.is_empty() {
        while let Ok(msg) = finishes.try_recv() {
            take(msg, pending, flushers);
        }
        if !pending.is_empty() {
            // Finished requests still hold their reservations: drop those holds, try again.
            finish_batch(db, pending, flushers).await;
            let again: Vec<NewReservation> = refused.iter().map(|i| items[*i].clone()).collect();
            for (i, r) in refused.iter().zip(reserve_many(db, &again).await) {
                results[*i] = r;
            }
        }
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

async fn finish_batch(
    db: &Db,
    pending: &mut Vec<FinishOp>,
    flushers: &mut Vec<oneshot::Sender<()>>,
) {
    while !pending.is_empty() {
        let n = pending.len().min(MAX_BATCH);
        let ops: Vec<FinishOp> = pending.drain(..n).collect();
        let items: Vec<(&str, Finish)> = ops
            .iter()
            .map(|op| (op.request_id.as_str(), op.finish))
            .collect();
        let results = finish_many(db, &items).await;
        for (op, result) in ops.into_iter().zip(results) {
            let _ = op.reply.send(result);
        }
    }
    for f in flushers.drain(..) {
        let _ = f.send(());
    }
}
