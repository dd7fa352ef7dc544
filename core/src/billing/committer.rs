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
//! - **Request-log rows** (already gathered by the caller) are written in transactions of
//!   [`LOG_CHUNK`] rows whenever no reservation is waiting, so that a large batch never holds
//!   a request up for long, and on SQLite every hot write goes through one connection.
//!
//! On a SQLite file the task runs on a thread of its own with its own connection
//! ([`Writer::Conn`]): a batch is one hop to that thread and back, instead of one hop to sqlx's
//! worker thread per statement. Elsewhere it is a task on the runtime using the pool.
//!
//! Nothing is kept only in memory: each caller waits until its own row is committed, the
//! reservation row is written before the upstream call, and a settlement still waiting in the
//! window when the process dies is finished by the reaper from the row, like one that never
//! started. Every write goes through the same [`reserve_many`] and [`finish_many`] as the
//! single-request functions.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    batch::Finish,
    pricing::Usage,
    reserve::{finish_many_with, finish_one, reserve_many_with, NewReservation, Settlement},
    BillingError,
};
use crate::{
    db::{Db, DbError},
    metering::{self, RequestRecord, UsageSource},
    writer::{self, Writer},
};

/// How long settlements wait to be committed together.
pub const SETTLE_WINDOW: Duration = Duration::from_millis(2);
/// The most requests committed in one transaction.
pub const MAX_BATCH: usize = 256;
const QUEUE: usize = 8_192;
/// Request-log rows per transaction.
pub const LOG_CHUNK: usize = 32;

/// Request-log rows being written, `LOG_CHUNK` at a time.
struct LogJob {
    rows: Arc<[RequestRecord]>,
    done: usize,
    reply: oneshot::Sender<Result<(), DbError>>,
}

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
    /// Write these request-log rows, [`LOG_CHUNK`] at a time between the other work.
    Log(Arc<[RequestRecord]>, oneshot::Sender<Result<(), DbError>>),
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
        let task = match db.sqlite_file() {
            Some(file) => spawn_thread(db.clone(), file.to_owned(), rrx, frx),
            None => {
                let db = db.clone();
                tokio::spawn(async move { run(&db, &mut Writer::Pool(&db), rrx, frx).await })
            }
        };
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
                FinishMsg::Flush(_) | FinishMsg::Log(..) => Err(stopped()),
            },
        }
    }

    /// [`metering::insert_batch`], on the committer's connection.
    pub async fn log(&self, rows: Arc<[RequestRecord]>) -> Result<(), DbError> {
        let (reply, rx) = oneshot::channel();
        match self.finishes.send(FinishMsg::Log(rows, reply)).await {
            Ok(()) => rx
                .await
                .unwrap_or(Err(DbError::Sqlx(sqlx::Error::WorkerCrashed))),
            Err(mpsc::error::SendError(FinishMsg::Log(rows, _))) => {
                metering::insert_batch(&self.db, &rows).await
            }
            Err(_) => Ok(()),
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

/// Runs the committer on a thread of its own, with its own connection to the SQLite file and
/// a single-threaded runtime for its timers and channels. The returned task ends with it.
fn spawn_thread(
    db: Db,
    file: std::path::PathBuf,
    reserves: mpsc::Receiver<ReserveOp>,
    finishes: mpsc::Receiver<FinishMsg>,
) -> tokio::task::JoinHandle<()> {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name("weir-committer".into())
        .spawn(move || {
            let _done = done_tx;
            // Timers only: the thread has no sockets, and without an IO driver it parks on a
            // futex instead of in epoll.
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "committer runtime failed to start");
                    return;
                }
            };
            rt.block_on(async move {
                match writer::open_sqlite(&file) {
                    Ok(mut conn) => run(&db, &mut Writer::Conn(&mut conn), reserves, finishes).await,
                    Err(e) => {
                        // Fall back to the pool, so billing still works.
                        tracing::error!(error = %e, "committer could not open its connection; using the pool");
                        run(&db, &mut Writer::Pool(&db), reserves, finishes).await
                    }
                }
            });
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "committer thread failed to start; requests write on their own");
    }
    tokio::spawn(async move {
        let _ = done_rx.await;
    })
}

async fn run(
    db: &Db,
    w: &mut Writer<'_>,
    mut reserves: mpsc::Receiver<ReserveOp>,
    mut finishes: mpsc::Receiver<FinishMsg>,
) {
    let mut pending: Vec<FinishOp> = Vec::new();
    let mut flushers: Vec<oneshot::Sender<()>> = Vec::new();
    let mut logs: VecDeque<LogJob> = VecDeque::new();
    let mut deadline: Option<Instant> = None;
    let (mut reserves_open, mut finishes_open) = (true, true);
    while reserves_open || finishes_open || !logs.is_empty() {
        if let Writer::Conn(conn) = w {
            if db.take_wal_restart() {
                // Between our transactions nothing else writes, so this copies the frames the
                // checkpointer has not yet, and our next transaction starts the WAL over.
                if let Err(e) = writer::checkpoint(conn) {
                    tracing::warn!(error = %e, "WAL checkpoint on the committer's connection failed");
                }
            }
        }
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
                    reserve_batch(w, batch, &mut pending, &mut finishes, &mut flushers, &mut logs)
                        .await;
                    if pending.is_empty() {
                        deadline = None;
                    }
                }
            },
            () = tokio::time::sleep_until(due), if deadline.is_some() => {
                finish_batch(w, &mut pending, &mut flushers).await;
                deadline = None;
            }
            () = std::future::ready(()), if !logs.is_empty() => write_logs(w, &mut logs).await,
            msg = finishes.recv(), if finishes_open => match msg {
                None => finishes_open = false,
                Some(msg) => {
                    let forced = take(msg, &mut pending, &mut flushers, &mut logs);
                    if forced || pending.len() >= MAX_BATCH {
                        finish_batch(w, &mut pending, &mut flushers).await;
                        deadline = None;
                    } else if deadline.is_none() && !pending.is_empty() {
                        deadline = Some(Instant::now() + SETTLE_WINDOW);
                    }
                }
            },
        }
    }
    finish_batch(w, &mut pending, &mut flushers).await;
}

/// Writes the next [`LOG_CHUNK`] rows of the first log job, answering it once all are in.
async fn write_logs(w: &mut Writer<'_>, logs: &mut VecDeque<LogJob>) {
    let Some(job) = logs.front_mut() else { return };
    let end = (job.done + LOG_CHUNK).min(job.rows.len());
    let res = metering::insert_batch_with(w, &job.rows[job.done..end]).await;
    job.done = end;
    if res.is_err() || end == job.rows.len() {
        if let Some(job) = logs.pop_front() {
            let _ = job.reply.send(res);
        }
    }
}

/// Adds a message to the waiting work; true if it asks for a flush.
fn take(
    msg: FinishMsg,
    pending: &mut Vec<FinishOp>,
    flushers: &mut Vec<oneshot::Sender<()>>,
    logs: &mut VecDeque<LogJob>,
) -> bool {
    match msg {
        FinishMsg::Log(rows, reply) => {
            logs.push_back(LogJob {
                rows,
                done: 0,
                reply,
            });
            false
        }
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
    w: &mut Writer<'_>,
    batch: Vec<ReserveOp>,
    pending: &mut Vec<FinishOp>,
    finishes: &mut mpsc::Receiver<FinishMsg>,
    flushers: &mut Vec<oneshot::Sender<()>>,
    logs: &mut VecDeque<LogJob>,
) {
    let (items, replies): (Vec<NewReservation>, Vec<_>) =
        batch.into_iter().map(|op| (op.r, op.reply)).unzip();
    let mut results = reserve_many_with(w, &items).await;
    let refused: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Err(BillingError::InsufficientBalance)))
        .map(|(i, _)| i)
        .collect();
    if !refused.is_empty() {
        while let Ok(msg) = finishes.try_recv() {
            take(msg, pending, flushers, logs);
        }
        if !pending.is_empty() {
            // Finished requests still hold their reservations: drop those holds, try again.
            finish_batch(w, pending, flushers).await;
            let again: Vec<NewReservation> = refused.iter().map(|i| items[*i].clone()).collect();
            for (i, r) in refused.iter().zip(reserve_many_with(w, &again).await) {
                results[*i] = r;
            }
        }
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

async fn finish_batch(
    w: &mut Writer<'_>,
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
        let results = finish_many_with(w, &items).await;
        for (op, result) in ops.into_iter().zip(results) {
            let _ = op.reply.send(result);
        }
    }
    for f in flushers.drain(..) {
        let _ = f.send(());
    }
}
