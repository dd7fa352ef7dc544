//! The request-log writer: finalisers hand it one record per request without waiting; a
//! background task inserts them in batches, and flushes what is left on shutdown.

use std::time::Duration;

use tokio::sync::mpsc;
use weir_core::{billing::Committer, metering::RequestRecord};

const QUEUE: usize = 65_536;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct LogSender(mpsc::Sender<RequestRecord>);

impl LogSender {
    /// Queues a record. Never blocks the caller: when the queue is full the record is handed
    /// to a task that waits for room, so no record is dropped.
    pub fn send(&self, rec: RequestRecord) {
        if let Err(mpsc::error::TrySendError::Full(rec)) = self.0.try_send(rec) {
            let tx = self.0.clone();
            tokio::spawn(async move {
                let _ = tx.send(rec).await;
            });
        }
    }
}

/// Starts the writer, which writes through the billing committer (on SQLite, every hot write
/// goes through its one connection). It ends when every sender is gone and the queue is
/// drained.
pub fn spawn(committer: Committer) -> (LogSender, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<RequestRecord>(QUEUE);
    let task = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(weir_core::metering::MAX_BATCH);
        loop {
            buf.clear();
            if rx.recv_many(&mut buf, weir_core::metering::MAX_BATCH).await == 0 {
                break;
            }
            // Gather a little more when traffic is flowing, to write fewer, larger batches.
            if buf.len() < weir_core::metering::MAX_BATCH {
                tokio::time::sleep(FLUSH_EVERY).await;
                while buf.len() < weir_core::metering::MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => buf.push(r),
                        Err(_) => break,
                    }
                }
            }
            let rows: std::sync::Arc<[RequestRecord]> = buf.drain(..).collect();
            let mut delay = Duration::from_millis(200);
            for attempt in 0..8 {
                match committer.log(rows.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, attempt, rows = rows.len(), "request log insert failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
    });
    (LogSender(tx), task)
}
