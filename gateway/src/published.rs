//! `published_at` without a database write per request: once the broker has
//! confirmed a job, its generation id is queued here, and one task writes
//! whatever has gathered in one UPDATE (group commit: a batch per flush,
//! no timer; while one flush runs, the next batch gathers).
//!
//! Nothing depends on the mark being written promptly. A generation left
//! unmarked (a crash before the flush, the database down) is published once
//! more by the sweeper after its grace, and the worker skips a job whose
//! generation is already finished.

use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use shared::db::{Db, DbError};
use shared::models::Generation;

/// At most this many marks wait; beyond it the sweeper covers them.
const MAX_PENDING: usize = 100_000;
/// At most this many ids per UPDATE.
const MAX_BATCH: usize = 5_000;

#[derive(Default)]
pub struct PublishedMarks {
    pending: Mutex<Vec<Uuid>>,
    ready: Notify,
}

impl PublishedMarks {
    /// Notes that the broker confirmed the job of generation `id`.
    pub fn mark(&self, id: Uuid) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() < MAX_PENDING {
            pending.push(id);
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// Writes one batch of what is pending; what fails stays pending.
    pub async fn flush(&self, db: &Db) -> Result<usize, DbError> {
        let batch: Vec<Uuid> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let n = pending.len().min(MAX_BATCH);
            pending.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let ids = batch.clone();
        let written = db
            .run(move |conn| Generation::mark_published(conn, &ids).map_err(DbError::from))
            .await;
        if written.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let room = MAX_PENDING.saturating_sub(pending.len());
            pending.extend(batch.into_iter().take(room));
        }
        written
    }

    /// Flushes as marks arrive until cancelled, then once more.
    pub async fn run(&self, db: Db, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.ready.notified() => {}
            }
            loop {
                match self.flush(&db).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not mark published generations; retrying");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                        }
                    }
                }
            }
        }
        if let Err(e) = self.flush(&db).await {
            tracing::warn!(error = %e, "could not mark published generations at shutdown; the sweeper will publish them again");
        }
    }
}
