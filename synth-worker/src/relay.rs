//! The event relay: publishes the `generation.completed` / `.failed` event of
//! finished generations that no worker announced.
//!
//! A worker finishes a generation in PostgreSQL first and publishes its
//! event after; when that publish fails (the broker is down, or its events
//! queue cannot take messages), the job is acked all the same, so one sick
//! queue does not stop synthesis, and the row (`event_published_at` NULL)
//! is the event's outbox. Every worker runs this relay: every
//! `worker.event_relay_interval_ms` it publishes the events of generations
//! that finished more than `worker.event_relay_grace_ms` ago and are still
//! unannounced. Two relays may publish the same event; its id is derived
//! from the generation, so the dispatcher keeps one delivery per endpoint.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use shared::models::Generation;

use crate::consumer::announce;
use crate::state::State;

/// Events published per pass at most.
const BATCH: i64 = 200;

/// One pass: publishes the due events, oldest first, until one fails.
/// Returns how many were published.
pub async fn relay_once(ctx: &State, grace: Duration) -> anyhow::Result<usize> {
    let before = Utc::now() - chrono::Duration::from_std(grace)?;
    let due = ctx
        .db
        .run(move |c| Generation::unannounced(c, before, BATCH).map_err(anyhow::Error::from))
        .await?;
    for (published, generation) in due.iter().enumerate() {
        if let Err(e) = announce(ctx, generation).await {
            return Err(e.context(format!("relayed {published} of {} events", due.len())));
        }
    }
    if !due.is_empty() {
        tracing::info!(
            count = due.len(),
            "event relay published unannounced events"
        );
    }
    Ok(due.len())
}

/// Relays every `interval` until cancelled.
pub async fn run(ctx: Arc<State>, interval: Duration, grace: Duration, cancel: CancellationToken) {
    shared::tasks::every(interval, cancel, "event relay", || relay_once(&ctx, grace)).await;
}
