//! The delivery loop: claims due deliveries under a lease ([`store`]), sends
//! each ([`send`]) with at most `dispatcher.concurrency` in flight, and
//! records the outcome. It wakes when the consumer commits new deliveries,
//! when a send finishes and frees a slot, or every `poll_interval` (retries
//! that came due, leases that ran out, other replicas' events).
//!
//! Only as many rows are claimed as there are free slots, so a claimed row
//! is always being sent, and its lease never runs out in a queue of ours.
//! On shutdown it stops claiming and finishes the sends in flight.
//!
//! Outcomes are recorded by one [`recorder`] task that commits all the
//! outcomes waiting for it in one transaction (group commit): one commit per
//! batch instead of one per attempt. A send keeps its slot until its outcome
//! is committed. The guarantee does not change: an outcome is recorded only
//! under its lease, and a crash before the commit loses only records, so
//! those deliveries are sent again when their leases run out (at least once,
//! with the same `webhook-id`).

pub mod payload;
pub mod recorder;
pub mod send;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use shared::messages::Event;
use shared::models::WebhookEndpoint;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::schedule::{next_delay, random_jitter, retry_after_secs};
use crate::state::State;
use recorder::Recorder;
use send::Attempt;
use store::{AttemptLog, Claimed, Outcome, Verdict};

/// Runs until `cancel` fires, then waits for the sends in flight.
pub async fn run(ctx: State, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(ctx.config.concurrency));
    let (recorder, recording) = Recorder::start(ctx.clone());
    let mut in_flight = JoinSet::new();
    loop {
        while let Some(done) = in_flight.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "a delivery task failed");
            }
        }
        if cancel.is_cancelled() {
            break;
        }
        let free = slots.available_permits();
        let mut maybe_more = false;
        if free > 0 {
            let limit = ctx.config.batch_size.min(free as i64);
            match claim(&ctx, limit).await {
                Ok(batch) => {
                    // A full batch means more may be due right now.
                    maybe_more = batch.len() as i64 == limit;
                    for (claimed, endpoint) in batch {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let trace = shared::trace::continue_from(
                            claimed
                                .payload
                                .get(crate::consumer::TRACE_FIELD)
                                .and_then(|v| v.as_str()),
                        );
                        let span = tracing::info_span!("deliver", delivery_id = %claimed.id, endpoint_id = %claimed.endpoint_id, attempt = claimed.attempts + 1, trace_id = %trace.trace_id(), span_id = %trace.span_id());
                        in_flight.spawn(
                            trace
                                .scope(deliver(
                                    ctx.clone(),
                                    recorder.clone(),
                                    claimed,
                                    endpoint,
                                    slot,
                                    cancel.clone(),
                                ))
                                .instrument(span),
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not claim deliveries"),
            }
        }
        if maybe_more && slots.available_permits() > 0 {
            continue;
        }
        let full = slots.available_permits() == 0;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(ctx.config.poll_interval) => {}
            Some(_) = in_flight.join_next(), if full => {}
        }
    }
    // Graceful shutdown: what was claimed is sent and recorded.
    while in_flight.join_next().await.is_some() {}
    drop(recorder);
    if let Err(e) = recording.await {
        tracing::error!(error = %e, "the recorder failed");
    }
}

type Batch = Vec<(Claimed, Option<WebhookEndpoint>)>;

async fn claim(ctx: &State, limit: i64) -> Result<Batch, shared::db::DbError> {
    let lease_ms = i64::try_from(ctx.config.lease.as_millis()).unwrap_or(i64::MAX);
    ctx.db
        .run(move |conn| {
            let claimed = store::claim(conn, lease_ms, limit)?;
            if claimed.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<_> = claimed.iter().map(|c| c.endpoint_id).collect();
            let endpoints = store::endpoints(conn, &ids)?;
            Ok(claimed
                .into_iter()
                .map(|c| {
                    let endpoint = endpoints.iter().find(|e| e.id == c.endpoint_id).cloned();
                    (c, endpoint)
                })
                .collect())
        })
        .await
}

/// Sends one claimed delivery and records the outcome; holds `_slot` until
/// the outcome is committed.
async fn deliver(
    ctx: State,
    recorder: Recorder,
    claimed: Claimed,
    endpoint: Option<WebhookEndpoint>,
    _slot: OwnedSemaphorePermit,
    cancel: CancellationToken,
) {
    let (log, verdict) = attempt(&ctx, &claimed, endpoint).await;
    ctx.metrics.webhook_attempt(match &verdict {
        Verdict::Succeeded => "succeeded",
        Verdict::RetryAt(_) => "retry",
        Verdict::Exhausted => "exhausted",
        Verdict::Gone => "gone",
        Verdict::Abandoned => "abandoned",
    });
    tracing::info!(status = ?log.status_code, error = ?log.error, duration_ms = log.duration_ms, ?verdict, "delivery attempted");
    // The attempt was made: recording it is worth waiting for while the
    // database is briefly down, since an unrecorded success is sent again
    // once the lease runs out. Until then the lease is ours (the fence in
    // `store::record_batch` guards the rest); shutdown does not wait for it.
    let outcome = Outcome {
        claimed,
        log,
        verdict,
    };
    let mut pause = std::time::Duration::from_millis(250);
    let recorded = loop {
        match recorder.record(outcome.clone()).await {
            Err(e)
                if e.unavailable
                    && !cancel.is_cancelled()
                    && Utc::now() + pause < outcome.claimed.lease_until =>
            {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "could not record a delivery attempt yet; retrying within the lease");
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            other => break other,
        }
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "lease lost before the result was recorded; the newer owner's result stands"
        ),
        // The lease runs out and the attempt is made again: at least once.
        Err(e) => tracing::error!(error = %e, "could not record a delivery attempt"),
    }
}

async fn attempt(
    ctx: &State,
    claimed: &Claimed,
    endpoint: Option<WebhookEndpoint>,
) -> (AttemptLog, Verdict) {
    let abandon = |reason: String| {
        let log = AttemptLog {
            error: Some(reason),
            ..AttemptLog::default()
        };
        (log, Verdict::Abandoned)
    };
    let Some(endpoint) = endpoint else {
        return abandon("the endpoint no longer exists".to_owned());
    };
    if !endpoint.enabled {
        let reason = endpoint
            .disabled_reason
            .as_deref()
            .unwrap_or("no reason given");
        return abandon(format!("the endpoint is disabled ({reason})"));
    }
    let event: Event = match serde_json::from_value(claimed.payload.clone()) {
        Ok(e) => e,
        Err(e) => return abandon(format!("the stored event cannot be read: {e}")),
    };
    let now = Utc::now();
    let result = match payload::sign(&event, endpoint.signing_secrets(now), &ctx.config, now) {
        Ok(request) => send::send(&ctx.client, &endpoint.url, &request, &ctx.config.targets).await,
        // A malformed secret may be fixed by a rotation: a failed attempt.
        Err(e) => Attempt {
            error: Some(format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
            ..Attempt::default()
        },
    };
    let verdict = verdict(ctx, claimed.attempts + 1, &result);
    let refusal = result
        .status
        .filter(|_| !result.is_success())
        .map(|s| format!("the endpoint answered HTTP {s}"));
    let log = AttemptLog {
        status_code: result.status.map(i32::from),
        error: result.error.or(refusal),
        response_body: result.body,
        duration_ms: i64::try_from(result.duration.as_millis()).unwrap_or(i64::MAX),
    };
    (log, verdict)
}

/// 2xx succeeds, 410 disables, anything else is retried on the schedule.
fn verdict(ctx: &State, attempts: i32, result: &Attempt) -> Verdict {
    if result.is_success() && result.error.is_none() {
        return Verdict::Succeeded;
    }
    if result.status == Some(410) {
        return Verdict::Gone;
    }
    let now = Utc::now();
    let asked = result
        .status
        .and_then(|s| retry_after_secs(s, result.retry_after.as_deref(), now));
    match next_delay(
        &ctx.config.retry_schedule_secs,
        attempts,
        asked,
        random_jitter(),
    ) {
        Some(delay) => Verdict::RetryAt(
            now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        ),
        None => Verdict::Exhausted,
    }
}
