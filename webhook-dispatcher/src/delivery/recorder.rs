//! Group commit of attempt outcomes: sends hand their outcome to one task,
//! which commits every outcome waiting at that moment in one transaction
//! ([`store::record_batch`]) and answers each sender. While a commit runs
//! the next outcomes queue up, so under load a batch holds many outcomes
//! and at light load a lone outcome is committed at once: no timer, no
//! added latency.
//!
//! Nothing is weakened: a sender learns its outcome is recorded only after
//! the commit; each outcome is still recorded only under its lease (a lost
//! lease writes nothing of it); a crash before the commit loses records
//! only, never deliveries (their leases run out and they are sent again,
//! with the same `webhook-id`). A batch that fails as a whole (a deadlock,
//! an outcome the database refuses) is recorded again one outcome per
//! transaction, so one bad outcome cannot hold up the others.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::store::{self, Outcome};
use crate::state::State;

/// Outcomes per transaction at most.
const MAX_BATCH: usize = 256;

struct Pending {
    outcome: Outcome,
    done: oneshot::Sender<Result<bool, RecordError>>,
}

/// Why an outcome was not recorded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    pub message: String,
    /// The database was unreachable: recording again later may work.
    pub unavailable: bool,
}

impl RecordError {
    fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: false,
        }
    }
}

impl From<shared::db::DbError> for RecordError {
    fn from(e: shared::db::DbError) -> Self {
        Self {
            unavailable: e.is_unavailable(),
            message: e.to_string(),
        }
    }
}

/// Cheap to clone; the recorder stops when every clone is dropped and the
/// queue is drained.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Recorder {
    pub fn start(ctx: State) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(run(ctx, rx)))
    }

    /// Records `outcome` in the next batch: `Ok(true)` once committed,
    /// `Ok(false)` when its lease was lost (nothing of it written).
    pub async fn record(&self, outcome: Outcome) -> Result<bool, RecordError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Pending { outcome, done })
            .map_err(|_| RecordError::other("the recorder has stopped"))?;
        answer
            .await
            .map_err(|_| RecordError::other("the recorder dropped the outcome"))?
    }
}

async fn run(ctx: State, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&ctx, std::mem::take(&mut batch)).await;
    }
}

async fn commit(ctx: &State, batch: Vec<Pending>) {
    let (outcomes, waiters): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.outcome, p.done)).unzip();
    let days = ctx.config.disable_after_failing_days;
    let answers = ctx
        .db
        .run(move |conn| {
            let answers = match store::record_batch(conn, &outcomes, days) {
                Ok(done) => done.into_iter().map(Ok).collect(),
                // The connection is gone: one by one would fail the same way.
                Err(e) if shared::db::is_connection_lost(&e) => {
                    return Err(shared::db::DbError::Query(e));
                }
                Err(e) => {
                    tracing::warn!(error = %e, outcomes = outcomes.len(), "recording a batch failed; recording its outcomes one by one");
                    outcomes
                        .iter()
                        .map(|o| {
                            store::record(conn, &o.claimed, &o.log, &o.verdict, days)
                                .map_err(|e| RecordError::from(shared::db::DbError::Query(e)))
                        })
                        .collect::<Vec<_>>()
                }
            };
            Ok::<_, shared::db::DbError>(answers)
        })
        .await;
    match answers {
        Ok(answers) => {
            for (waiter, answer) in waiters.into_iter().zip(answers) {
                let _ = waiter.send(answer);
            }
        }
        Err(e) => {
            let e = RecordError::from(e);
            for waiter in waiters {
                let _ = waiter.send(Err(e.clone()));
            }
        }
    }
}
