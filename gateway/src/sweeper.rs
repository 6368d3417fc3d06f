//! The sweeper: re-publishes generations that were committed (202 given)
//! but never confirmed by the broker — a crash or a broker outage between
//! the commit and the publish. Runs in every gateway; a job published
//! twice is harmless because the worker skips finished generations.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use shared::db::DbError;
use shared::ids::GenerationId;
use shared::models::Generation;

use crate::generations::publish_job;
use crate::state::State;

const BATCH: i64 = 500;

/// One pass: publishes what is due; returns how many it tried.
pub async fn sweep_once(state: &State) -> Result<usize, DbError> {
    let grace = chrono::Duration::milliseconds(state.settings.gateway.sweeper_grace_ms as i64);
    let older_than = Utc::now() - grace;
    let due = state
        .db
        .run(move |conn| Generation::unpublished(conn, older_than, BATCH).map_err(DbError::from))
        .await?;
    for (id, traceparent) in &due {
        // The job continues the trace of the request that created it.
        let trace = shared::trace::continue_from(traceparent.as_deref());
        trace.scope(publish_job(state, GenerationId(*id))).await;
    }
    if !due.is_empty() {
        tracing::info!(count = due.len(), "sweeper re-published generations");
    }
    Ok(due.len())
}

/// Sweeps every `gateway.sweeper_interval_ms` until cancelled.
pub async fn run(state: Arc<State>, cancel: CancellationToken) {
    let interval = Duration::from_millis(state.settings.gateway.sweeper_interval_ms);
    shared::tasks::every(interval, cancel, "sweeper", || sweep_once(&state)).await;
}
