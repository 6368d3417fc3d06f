//! The sweeper, in every gateway, every `gateway.sweeper_interval_ms`:
//!
//! 1. **unpublished**: re-publishes generations that were committed (202
//!    given) but never confirmed by the broker — a crash or a broker
//!    outage between the commit and the publish;
//! 2. **re-drive**: re-publishes generations whose confirmed job is gone —
//!    the broker lost it (a purge, a lost node) or its worker died — once
//!    no queued copy can still reach them (`shared::models::lease`): under
//!    no live lease, and published before the newest job the workers have
//!    taken from the queue (or the queue is empty), at most
//!    `gateway.redrive_batch` per pass;
//! 3. **maximum age**: fails what is still processing after
//!    `gateway.max_processing_age_ms` with `generation_timeout` (refunded
//!    once; the worker's event relay sends `generation.failed`), and sets
//!    the oldest processing generation's age as a metric.
//!
//! A job published twice is harmless: the worker skips finished
//! generations, and a copy that finds a live lease or was superseded by a
//! re-drive.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use shared::db::DbError;
use shared::ids::GenerationId;
use shared::messages::JobMessage;
use shared::models::{Generation, QueueProgress};

use crate::generations::publish_job;
use crate::state::State;
use shared::amqp::Lane;

const BATCH: i64 = 500;
/// Clocks of gateways and workers may disagree, and a publish is marked a
/// little after it is sent: re-drive only what was published this much
/// before the queue's progress.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(2);
/// The error of a generation past the maximum age.
pub const TIMEOUT_CODE: &str = "generation_timeout";

/// One pass: publishes what is due; returns how many it tried.
pub async fn sweep_once(state: &State) -> Result<usize, DbError> {
    let grace = chrono::Duration::milliseconds(state.settings.gateway.sweeper_grace_ms as i64);
    let older_than = Utc::now() - grace;
    let due = state
        .db
        .run(move |conn| Generation::unpublished(conn, older_than, BATCH).map_err(DbError::from))
        .await?;
    for (id, characters, traceparent) in &due {
        // The job continues the trace of the request that created it.
        let trace = shared::trace::continue_from(traceparent.as_deref());
        trace
            .scope(publish_job(state, GenerationId(*id), *characters, None))
            .await;
    }
    if !due.is_empty() {
        tracing::info!(count = due.len(), "sweeper re-published generations");
    }
    Ok(due.len())
}

/// One re-drive pass: re-publishes the processing generations no queued
/// copy can reach any more, lane by lane (each lane's queue has its own
/// progress); returns how many.
pub async fn redrive_once(state: &State) -> Result<usize, DbError> {
    let mut total = 0;
    for lane in Lane::ALL {
        total += redrive_lane(state, lane).await?;
    }
    Ok(total)
}

async fn redrive_lane(state: &State, lane: Lane) -> Result<usize, DbError> {
    let broker = state.publisher.broker();
    let queue = broker.topology().lane_queue(lane);
    let now = Utc::now();
    let grace = chrono::Duration::milliseconds(state.settings.gateway.redrive_grace_ms as i64);
    // How far the queue has been consumed: everything, when nothing is
    // ready in it; without the broker nothing can be published anyway.
    let through = match broker.ready_messages(&queue).await {
        Ok(0) => Some(now),
        Ok(_) => {
            let q = queue.clone();
            state
                .db
                .run(move |c| QueueProgress::consumed_through(c, &q).map_err(DbError::from))
                .await?
        }
        Err(e) => {
            tracing::debug!(error = %e, "re-drive skipped: the broker does not answer");
            return Ok(0);
        }
    };
    let Some(through) = through else {
        return Ok(0);
    };
    let published_before = (through - CLOCK_SLACK).min(now - grace);
    let limit = state.settings.gateway.redrive_batch;
    let max = i64::try_from(state.settings.amqp.interactive_max_chars).unwrap_or(i64::MAX);
    let characters = match lane {
        Lane::Interactive => i64::MIN..=max,
        Lane::Bulk => max.saturating_add(1)..=i64::MAX,
    };
    let due = state
        .db
        .run(move |c| {
            Generation::redrive_due(c, published_before, now, limit, characters)
                .map_err(DbError::from)
        })
        .await?;
    let exchange = broker.topology().jobs_exchange();
    let mut published = 0u64;
    for r in &due {
        let id = GenerationId(r.id);
        let job = JobMessage::SynthesizeV1 {
            generation_id: id,
            redrive: r.redrives,
            // The request that streamed it has given up on chunks by now:
            // it is answered from the stored file.
            stream_to: None,
        };
        let trace = shared::trace::continue_from(r.traceparent.as_deref());
        let message_id = format!("{id}.redrive-{}", r.redrives);
        let sent = trace
            .scope(
                state
                    .publisher
                    .publish(&exchange, lane.routing_key(), &message_id, &job),
            )
            .await;
        match sent {
            Ok(()) => published += 1,
            // Its redriven_at is set: the next pass after the grace tries again.
            Err(e) => {
                tracing::warn!(error = %e, generation_id = %id, "re-drive not published; retrying after the grace");
                break;
            }
        }
    }
    if !due.is_empty() {
        broker.metrics().generations_redriven(published);
        tracing::warn!(
            count = due.len(),
            published,
            lane = lane.as_str(),
            "sweeper re-drove generations whose job no queued copy could reach"
        );
    }
    Ok(due.len())
}

/// One maximum-age pass: fails what is still processing past
/// `gateway.max_processing_age_ms`, and records the oldest one's age.
pub async fn expire_once(state: &State) -> Result<usize, DbError> {
    let max_age = state.settings.gateway.max_processing_age_ms;
    let now = Utc::now();
    let created_before = now - chrono::Duration::milliseconds(max_age as i64);
    let expired = state
        .db
        .run(move |c| {
            let ids = Generation::processing_since_before(c, created_before, BATCH)?;
            let message = format!(
                "the generation was not finished within {} s of being accepted; its credits are refunded",
                max_age / 1000
            );
            let error = serde_json::json!({ "code": TIMEOUT_CODE, "message": message });
            let mut failed = 0;
            for id in ids {
                if Generation::fail(c, id, error.clone())? {
                    failed += 1;
                }
            }
            let oldest = Generation::oldest_processing(c)?;
            Ok::<_, DbError>((failed, oldest))
        })
        .await;
    let (failed, oldest) = expired?;
    let metrics = state.publisher.broker().metrics();
    let age = oldest.map_or(Duration::ZERO, |t| (now - t).to_std().unwrap_or_default());
    metrics.set_oldest_processing(age);
    if failed > 0 {
        metrics.generations_timed_out(failed as u64);
        tracing::warn!(
            count = failed,
            max_age_ms = max_age,
            "failed generations past the maximum age (generation_timeout)"
        );
    }
    Ok(failed)
}

/// Sweeps every `gateway.sweeper_interval_ms` until cancelled. Each of the
/// three passes is bounded by [`PASS_BOUND`]: a call to the broker or the
/// database that never returns must not stop the sweeper for good (what a
/// cut-short pass left is done by the next one).
pub async fn run(state: Arc<State>, cancel: CancellationToken) {
    let interval = Duration::from_millis(state.settings.gateway.sweeper_interval_ms);
    shared::tasks::every(interval, cancel, "sweeper", || async {
        let published = bounded("unpublished", sweep_once(&state)).await?;
        let redriven = bounded("re-drive", redrive_once(&state)).await?;
        let expired = bounded("maximum age", expire_once(&state)).await?;
        Ok::<_, String>(published + redriven + expired)
    })
    .await;
}

/// How long one sweeper pass may take.
const PASS_BOUND: Duration = Duration::from_secs(30);

async fn bounded(
    pass: &str,
    work: impl std::future::Future<Output = Result<usize, DbError>>,
) -> Result<usize, String> {
    match tokio::time::timeout(PASS_BOUND, work).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(format!("{pass}: {e}")),
        Err(_) => Err(format!("{pass}: cut short after {PASS_BOUND:?}")),
    }
}
