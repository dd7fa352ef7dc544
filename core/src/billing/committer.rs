//! Group commit for the request path: one task per process writes the reservations and
//! settlements of many concurrent requests in few transactions.
//!
//! - A **reservation** is urgent (its request waits for it before calling upstream): the task
//!   takes every reservation queued at that moment and commits them together at once. Under
//!   load the batch grows by itself while the previous one commits; alone, a request waits for
//!   exactly one transaction, as it would without the committer.
//! - A **finished request** (its settlement or release, and its request-log row) only needs
//!   to be durable soon, not now (its client has its answer). The request path hands it over
//!   with [`Committer::done`] and does not wait: no task, no reply. Finished requests are
//!   gathered for [`SETTLE_WINDOW`] (the first one to arrive wakes the committer, the others
//!   just join the inbox) and written in one transaction, [`MAX_BATCH`] at most, out of the
//!   way of reservations. A failed write is retried by the committer with a backoff.
//! - A reservation refused for want of balance while settlements are waiting commits those
//!   first and is tried again, so the window never refuses a request that fits once the holds
//!   of finished requests are dropped.
//!
//! On a SQLite file the task runs on a thread of its own with its own connection
//! ([`Writer::Conn`]): a batch is one hop to that thread and back, instead of one hop to sqlx's
//! worker thread per statement. Elsewhere it is a task on the runtime using the pool.
//!
//! No money state is kept only in memory: the hold is committed before the
//! upstream call, and a settlement still waiting in the window when the process dies is
//! finished by the reaper from that row, like one that never started. Every write goes
//! through the same batch code as the single-request functions.

use std::{
    mem,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot, Notify},
    time::Instant,
};

use super::{
    batch::Finish,
    pricing::Usage,
    reserve::{
        finish_and_log_with, finish_one, finish_one_with, reserve_many_with, NewReservation,
        Settlement,
    },
    BillingError,
};
use crate::{
    db::Db,
    metering::{self, RequestRecord, UsageSource},
    writer::{self, Writer},
};

/// How long settlements wait to be committed together.
pub const SETTLE_WINDOW: Duration = Duration::from_millis(2);

/// How settlement windows close: after `length`, or (`batch` > 0) as soon as `batch` finished
/// requests wait, whichever comes first.
#[derive(Clone, Copy, Debug)]
struct WindowRule {
    length: Duration,
    batch: usize,
}

/// [`SETTLE_WINDOW`] in production. For profiling only, `WEIR_SETTLE_BATCH` (1 to
/// [`MAX_BATCH`]) closes each window once that many finished requests wait, with a 1 s window
/// for the rest: under valgrind a request takes ~50 times as long, and a 2 ms window would
/// hold one request instead of the ~15 it holds at full speed (`bench/instructions` sets 15,
/// which also makes the batching the same however fast the machine runs).
fn window_rule() -> WindowRule {
    let batch = std::env::var("WEIR_SETTLE_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|b| (1..=MAX_BATCH).contains(b));
    match batch {
        Some(batch) => WindowRule {
            length: Duration::from_secs(1),
            batch,
        },
        None => WindowRule {
            length: SETTLE_WINDOW,
            batch: 0,
        },
    }
}

/// The most requests committed in one transaction.
pub const MAX_BATCH: usize = 256;
const QUEUE: usize = 8_192;
/// How many times a settlement or request-log row whose write failed is tried (with a
/// backoff from [`FIRST_RETRY`] up to [`LAST_RETRY`]) before it is left to the reaper (a
/// settlement) or dropped (a log row).
const MAX_ATTEMPTS: u32 = 10;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(10);

struct ReserveOp {
    r: NewReservation,
    reply: oneshot::Sender<Result<(), BillingError>>,
}

/// A finished request handed over without waiting: its request-log row and, if it held a
/// reservation, how to finish that.
struct Done {
    record: RequestRecord,
    finish: Option<Finish>,
    attempts: u32,
}

/// A settlement or release whose caller waits for the outcome.
struct FinishOp {
    request_id: String,
    finish: Finish,
    reply: oneshot::Sender<Result<Settlement, BillingError>>,
    attempts: u32,
}

/// What waits for the next window.
#[derive(Default)]
struct Inbox {
    done: Vec<Done>,
    ops: Vec<FinishOp>,
    flushers: Vec<oneshot::Sender<()>>,
    /// Set once the committer has stopped; work handed over later is written by the caller.
    closed: bool,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.done.is_empty() && self.ops.is_empty()
    }
}

/// The inbox, shared by the handles and the committer.
struct Shared {
    inbox: Mutex<Inbox>,
    /// Wakes the committer when the inbox gets its first item (or its `batch`-th, see
    /// [`WindowRule`]), or a flush is asked for.
    wake: Notify,
    batch: usize,
}

impl Shared {
    fn new(batch: usize) -> Shared {
        Shared {
            inbox: Mutex::default(),
            wake: Notify::new(),
            batch,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `inbox` holds a full batch (never, without a batch rule).
    fn full(&self, inbox: &Inbox) -> bool {
        self.batch > 0 && inbox.done.len() + inbox.ops.len() >= self.batch
    }

    /// Adds `item` to the inbox, waking the committer if it was empty; gives it back if the
    /// committer has stopped.
    fn put<T>(&self, item: T, add: impl FnOnce(&mut Inbox, T)) -> Result<(), T> {
        let mut inbox = self.lock();
        if inbox.closed {
            return Err(item);
        }
        let first = inbox.is_empty();
        add(&mut inbox, item);
        let full = self.full(&inbox);
        drop(inbox);
        if first || full {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Marks the inbox closed when the committer stops, however it stops; callers still waiting
/// on an operation it holds get an error (and retry on their own).
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        let mut inbox = self.0.lock();
        inbox.closed = true;
        let left = mem::take(&mut inbox.done);
        inbox.ops.clear();
        inbox.flushers.clear();
        drop(inbox);
        if !left.is_empty() {
            tracing::error!(
                requests = left.len(),
                "committer stopped with requests unwritten; the reaper will settle their reservations"
            );
        }
    }
}

/// The handle the request path uses; cheap to clone. When its task has stopped, calls fall
/// back to their own transactions.
#[derive(Clone)]
pub struct Committer {
    db: Db,
    reserves: mpsc::Sender<ReserveOp>,
    shared: Arc<Shared>,
}

impl Committer {
    /// Starts the committer task. It ends, after committing what is waiting, when every
    /// handle is gone.
    pub fn spawn(db: Db) -> (Committer, tokio::task::JoinHandle<()>) {
        let (rtx, rrx) = mpsc::channel(QUEUE);
        let window = window_rule();
        let shared = Arc::new(Shared::new(window.batch));
        let window = window.length;
        let task = match db.sqlite_file() {
            Some(file) => spawn_thread(db.clone(), file.to_owned(), rrx, shared.clone(), window),
            None => {
                let (db, shared) = (db.clone(), shared.clone());
                tokio::spawn(
                    async move { run(&db, &mut Writer::Pool(&db), rrx, shared, window).await },
                )
            }
        };
        (
            Committer {
                db,
                reserves: rtx,
                shared,
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

    /// Hands over a finished request without waiting for anything: its request-log row and,
    /// if it held a reservation, its settlement or release. They are committed together,
    /// with the other requests that finished within [`SETTLE_WINDOW`]; a failed write is
    /// retried by the committer, and a settlement that is never written (the process died)
    /// is finished by the reaper from the hold.
    pub fn done(&self, record: RequestRecord, finish: Option<Finish>) {
        let d = Done {
            record,
            finish,
            attempts: 0,
        };
        if let Err(d) = self.shared.put(d, |inbox, d| inbox.done.push(d)) {
            // The committer has stopped: write it from here.
            let db = self.db.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = write_done(&mut Writer::Pool(&db), &d).await {
                            tracing::error!(request_id = %d.record.request_id, error = %e, "writing a finished request failed");
                        }
                    });
                }
                Err(_) => {
                    tracing::error!(request_id = %d.record.request_id, "finished request dropped outside the runtime")
                }
            }
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
            attempts: 0,
        };
        match self.shared.put(op, |inbox, op| inbox.ops.push(op)) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(stopped())),
            Err(op) => finish_one(&self.db, &op.request_id, op.finish).await,
        }
    }

    /// Commits everything waiting in the window now.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        {
            let mut inbox = self.shared.lock();
            if inbox.closed {
                return;
            }
            inbox.flushers.push(tx);
        }
        self.shared.wake.notify_one();
        let _ = rx.await;
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
    shared: Arc<Shared>,
    window: Duration,
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
                    Ok(mut conn) => {
                        run(&db, &mut Writer::Conn(&mut conn), reserves, shared, window).await
                    }
                    Err(e) => {
                        // Fall back to the pool, so billing still works.
                        tracing::error!(error = %e, "committer could not open its connection; using the pool");
                        run(&db, &mut Writer::Pool(&db), reserves, shared, window).await
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

/// How a window's write went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Written; what arrived meanwhile (if anything) waits for the next window.
    Done,
    /// Written, and a full batch is already waiting: write it at once.
    More,
    /// Some writes failed; they are back in the inbox to be tried again.
    Failed,
}

async fn run(
    db: &Db,
    w: &mut Writer<'_>,
    mut reserves: mpsc::Receiver<ReserveOp>,
    shared: Arc<Shared>,
    window: Duration,
) {
    let _closer = Closer(shared.clone());
    let mut deadline: Option<Instant> = None;
    let mut retry = window;
    loop {
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
            op = reserves.recv() => match op {
                // Every handle is gone.
                None => break,
                Some(op) => {
                    let mut batch = vec![op];
                    while batch.len() < MAX_BATCH {
                        match reserves.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    reserve_batch(w, batch, &shared).await;
                }
            },
            () = tokio::time::sleep_until(due), if deadline.is_some() => {
                deadline = None;
                match write_window(w, &shared).await {
                    Window::Done => retry = window,
                    Window::More => {
                        retry = window;
                        deadline = Some(Instant::now());
                    }
                    Window::Failed => {
                        retry = (retry * 2).clamp(FIRST_RETRY, LAST_RETRY);
                        deadline = Some(Instant::now() + retry);
                    }
                }
            }
            () = shared.wake.notified() => {}
        }
        // Open the window for what has arrived; a flush closes it at once (but does not cut
        // a backoff short).
        let inbox = shared.lock();
        if (!inbox.flushers.is_empty() || shared.full(&inbox)) && retry == window {
            deadline = Some(Instant::now());
        } else if deadline.is_none() && !inbox.is_empty() {
            deadline = Some(Instant::now() + retry);
        }
    }
    // Write what is left, retrying failures as above.
    loop {
        match write_window(w, &shared).await {
            Window::Done if shared.lock().is_empty() => break,
            Window::Done | Window::More => retry = window,
            Window::Failed => {
                retry = (retry * 2).clamp(FIRST_RETRY, LAST_RETRY);
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Takes the first `n` items of `v` (all of them without copying when they fit).
fn take_up_to<T>(v: &mut Vec<T>, n: usize) -> Vec<T> {
    if v.len() <= n {
        mem::take(v)
    } else {
        v.drain(..n).collect()
    }
}

/// Writes the settlements and request-log rows waiting in the inbox (up to [`MAX_BATCH`] of
/// each) in one transaction. If it fails, each request is written on its own; those that
/// still fail go back to the inbox until [`MAX_ATTEMPTS`].
async fn write_window(w: &mut Writer<'_>, shared: &Shared) -> Window {
    let (done, ops) = {
        let mut inbox = shared.lock();
        let done = take_up_to(&mut inbox.done, MAX_BATCH);
        (done, take_up_to(&mut inbox.ops, MAX_BATCH))
    };
    let mut failed = false;
    if !done.is_empty() || !ops.is_empty() {
        let items: Vec<(&str, Finish)> = done
            .iter()
            .filter_map(|d| d.finish.map(|f| (d.record.request_id.as_str(), f)))
            .chain(ops.iter().map(|op| (op.request_id.as_str(), op.finish)))
            .collect();
        let rows: Vec<&RequestRecord> = done.iter().map(|d| &d.record).collect();
        match finish_and_log_with(w, &items, &rows).await {
            Ok(results) => {
                let detached = items.len() - ops.len();
                let mut results = results.into_iter();
                for (id, res) in items
                    .iter()
                    .map(|(id, _)| id)
                    .zip(results.by_ref().take(detached))
                {
                    if let Err(e) = res {
                        tracing::warn!(request_id = %id, error = %e, "nothing to settle for a finished request");
                    }
                }
                for (op, res) in ops.into_iter().zip(results) {
                    let _ = op.reply.send(res);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = done.len() + ops.len(), "settlement window failed; writing its requests one by one");
                let (mut again, mut again_ops) = (Vec::new(), Vec::new());
                for mut d in done {
                    if let Err(e) = write_done(w, &d).await {
                        d.attempts += 1;
                        if retryable(&e) && d.attempts < MAX_ATTEMPTS {
                            again.push(d);
                        } else {
                            tracing::error!(request_id = %d.record.request_id, error = %e, "finished request abandoned; the reaper will settle its reservation");
                        }
                    }
                }
                for mut op in ops {
                    match finish_one_with(w, &op.request_id, op.finish).await {
                        Err(e) if retryable(&e) && op.attempts + 1 < MAX_ATTEMPTS => {
                            op.attempts += 1;
                            again_ops.push(op);
                        }
                        res => {
                            let _ = op.reply.send(res);
                        }
                    }
                }
                failed = !again.is_empty() || !again_ops.is_empty();
                let mut inbox = shared.lock();
                inbox.done.splice(0..0, again);
                inbox.ops.splice(0..0, again_ops);
            }
        }
    }
    let mut inbox = shared.lock();
    if failed {
        Window::Failed
    } else if inbox.done.len() >= MAX_BATCH || inbox.ops.len() >= MAX_BATCH {
        Window::More
    } else {
        if inbox.is_empty() {
            for f in inbox.flushers.drain(..) {
                let _ = f.send(());
            }
        }
        Window::Done
    }
}

/// A database failure, worth trying again; anything else will not change.
fn retryable(e: &BillingError) -> bool {
    matches!(e, BillingError::Db(_))
}

/// One finished request in transactions of its own: its settlement, then its log row (both
/// idempotent, so a retry after a partial failure writes nothing twice).
async fn write_done(w: &mut Writer<'_>, d: &Done) -> Result<(), BillingError> {
    if let Some(finish) = d.finish {
        match finish_one_with(w, &d.record.request_id, finish).await {
            Ok(_) | Err(BillingError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    metering::insert_batch_with(w, std::slice::from_ref(&d.record)).await?;
    Ok(())
}

async fn reserve_batch(w: &mut Writer<'_>, batch: Vec<ReserveOp>, shared: &Shared) {
    let (items, replies): (Vec<NewReservation>, Vec<_>) =
        batch.into_iter().map(|op| (op.r, op.reply)).unzip();
    let mut results = reserve_many_with(w, &items).await;
    let refused: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Err(BillingError::InsufficientBalance)))
        .map(|(i, _)| i)
        .collect();
    let waiting = !shared.lock().is_empty();
    if !refused.is_empty() && waiting {
        // Finished requests still hold their reservations: drop those holds, try again.
        while write_window(w, shared).await == Window::More {}
        let again: Vec<NewReservation> = refused.iter().map(|i| items[*i].clone()).collect();
        for (i, r) in refused.iter().zip(reserve_many_with(w, &again).await) {
            results[*i] = r;
        }
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}
