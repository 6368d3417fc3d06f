//! The `synth.jobs` consumer: [`handle`] decides about one delivery (tests
//! call it directly) and [`run`] wraps it in `shared::amqp::run_consumer`.
//!
//! Why nothing is lost or finished twice — the order of effects is:
//! 1. put the audio in the object store (key derived from the generation,
//!    so a repeat overwrites it with equivalent audio);
//! 2. `Generation::complete`/`fail`: a conditional UPDATE from `processing`,
//!    so exactly one delivery finishes the row and credits are refunded once;
//! 3. publish the event (confirmed by the broker; its id is derived from the
//!    generation, so a repeat is deduplicated downstream);
//! 4. set `event_published_at`; 5. ack.
//!
//! A crash or error in 1–2 leaves the job unacked, so the broker redelivers
//! it (`Retry`, or the dropped channel). The redelivery re-reads the row:
//! still `processing` → redo from 1; finished but `event_published_at` NULL
//! → redo 3–5 only; finished and announced → ack. When 3 or 4 fails, the
//! generation is finished and committed, and the row is the event's outbox:
//! the job is acked and the event relay (`crate::relay`) publishes the event
//! later, so a broker that takes no events does not stop synthesis. A crash
//! between 2 and 5 redelivers the job, which then does 3–5.
//!
//! Before 1, the delivery claims the generation (`crate::lease`): a copy
//! that finds another live claim, or that a re-drive superseded, is acked
//! without rendering; the claim is renewed while 1 runs and given up when
//! the job is retried. A copy lost by the broker is re-published by the
//! gateway's sweeper once no queued copy can reach its generation.

use std::sync::Arc;
use std::time::Duration;

use shared::amqp::{Incoming, Lane, Outcome, run_consumer};
use shared::ids::GenerationId;
use shared::messages::{EventMessage, JobMessage};
use shared::models::{Claim, Generation, GenerationStatus};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::engine::Priority;
use crate::events::terminal_event;
use crate::render::{JobError, render_and_store};
use crate::state::State;

/// Decides about one delivery of `synth.jobs`.
pub async fn handle(ctx: &State, incoming: Incoming) -> Outcome {
    handle_in(ctx, Lane::Bulk, incoming).await
}

/// Decides about one delivery of `lane`'s queue: its chunks get the
/// engines at the lane's priority.
pub async fn handle_in(ctx: &State, lane: Lane, incoming: Incoming) -> Outcome {
    let job = match serde_json::from_slice::<JobMessage>(&incoming.data) {
        Ok(job) => job,
        Err(e) => {
            // Poison: no retry can make it parse; dead-letter it for a human.
            tracing::error!(error = %e, message_id = ?incoming.message_id, "unreadable job; rejecting");
            return Outcome::Reject;
        }
    };
    let queue = ctx.broker.topology().lane_queue(lane);
    ctx.leases
        .consumed(&ctx.db, &queue, incoming.published_at)
        .await;
    let (generation_id, redrive, stream_to) = match job {
        JobMessage::SynthesizeV1 {
            generation_id,
            redrive,
            stream_to,
        } => (generation_id, redrive, stream_to),
        JobMessage::CloneVoiceV1 { voice_id } => {
            let span = tracing::info_span!("clone_voice", voice_id = %voice_id);
            // Acked whatever happens: the voice's row is the job, and the
            // scan (`crate::cloning::scan_once`) retries what failed.
            if let Err(e) = crate::cloning::run(ctx, &voice_id).instrument(span).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    voice_id,
                    "clone failed for now; the scan retries it"
                );
            }
            return Outcome::Ack;
        }
        JobMessage::SynthesizePartsV1 {
            generation_id,
            parts,
        } => {
            let span =
                tracing::info_span!("synthesize_parts", generation_id = %generation_id, parts);
            crate::parts::help(ctx, generation_id.0, parts)
                .instrument(span)
                .await;
            return Outcome::Ack;
        }
        JobMessage::PreviewV1 {
            voice,
            text,
            format,
            key,
        } => {
            let span = tracing::info_span!("preview", key = %key);
            return crate::preview::handle(ctx, voice, &text, format, &key)
                .instrument(span)
                .await;
        }
    };
    let span = tracing::info_span!("synthesize", generation_id = %generation_id, redelivered = incoming.redelivered, redrive, lane = lane.as_str());
    let priority = match lane {
        Lane::Interactive => Priority::Interactive,
        Lane::Bulk => Priority::Bulk,
    };
    match process(ctx, generation_id, redrive, stream_to.as_deref(), priority)
        .instrument(span.clone())
        .await
    {
        Ok(()) => Outcome::Ack,
        Err(e) => {
            span.in_scope(|| {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "job failed for now; it will be retried"
                )
            });
            Outcome::Retry
        }
    }
}

/// Consumes both lanes' queues (each with `prefetch`) until `cancel`
/// fires, then gives the jobs in flight `drain` to finish; the rest go back
/// to their queue, their leases released.
pub async fn run(ctx: Arc<State>, prefetch: u16, drain: Duration, cancel: CancellationToken) {
    let lanes = Lane::ALL.map(|lane| {
        let queue = ctx.broker.topology().lane_queue(lane);
        let broker = ctx.broker.clone();
        let handler_ctx = ctx.clone();
        run_consumer(
            broker,
            queue,
            prefetch,
            cancel.clone(),
            drain,
            move |incoming| {
                let ctx = handler_ctx.clone();
                async move { handle_in(&ctx, lane, incoming).await }
            },
        )
    });
    futures_util::future::join_all(lanes).await;
    ctx.leases.release_all(&ctx.db).await;
}

/// `Err` means "retry": every permanent problem is settled on the row.
async fn process(
    ctx: &State,
    id: GenerationId,
    redrive: i32,
    stream_to: Option<&str>,
    priority: Priority,
) -> anyhow::Result<()> {
    let Some(mut generation) = load(ctx, id.0).await? else {
        // Nothing will ever render it (a deleted workspace, a foreign job).
        tracing::warn!("no such generation; dropping the job");
        return Ok(());
    };
    if generation.status() == GenerationStatus::Processing {
        let (claim, holder) = ctx.leases.claim(&ctx.db, id.0, redrive).await?;
        match claim {
            Claim::Claimed => {}
            Claim::Held => {
                // Another delivery (of this worker or another) renders it;
                // should that die, the lease expires and the sweeper
                // re-drives the generation.
                tracing::info!("another delivery holds the generation's lease; dropping this copy");
                return Ok(());
            }
            Claim::Superseded => {
                tracing::info!("a re-drive superseded this copy of the job; dropping it");
                return Ok(());
            }
            Claim::Finished => {
                generation = load(ctx, id.0)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("generation vanished"))?;
                return announce_or_relay(ctx, &generation).await;
            }
        }
        let metrics = ctx.broker.metrics();
        let started = std::time::Instant::now();
        let Some(rendered) = ctx
            .leases
            .hold(
                &ctx.db,
                &holder,
                render_and_store(ctx, &generation, stream_to, priority),
            )
            .await
        else {
            // Timed out, or claimed by another worker after our lease
            // expired (the database was unreachable for longer than it).
            tracing::warn!("lost the generation's lease; stopped rendering it");
            return Ok(());
        };
        let finished = match rendered {
            Ok(audio) => {
                metrics.observe_synthesis(&generation.format, started.elapsed());
                let gid = id.0;
                ctx.db
                    .run(move |c| {
                        Generation::complete(c, gid, audio.duration_ms, &audio.storage_key)
                            .map_err(anyhow::Error::from)
                    })
                    .await?
            }
            Err(JobError::Permanent { code, message }) => {
                tracing::info!(code, message, "generation cannot succeed; failing it");
                let error = JobError::to_json(code, &message);
                let gid = id.0;
                ctx.db
                    .run(move |c| Generation::fail(c, gid, error).map_err(anyhow::Error::from))
                    .await?
            }
            Err(JobError::Transient(e)) => {
                // Back to the queue: the next copy may claim it at once.
                ctx.leases.release(&ctx.db, &holder).await;
                return Err(e);
            }
        };
        generation = load(ctx, id.0)
            .await?
            .ok_or_else(|| anyhow::anyhow!("generation vanished"))?;
        if finished {
            metrics.generation_finished(&generation.status);
        } else {
            // Another delivery of the same job got there first; fine.
            tracing::info!("generation was finished concurrently");
        }
    } else {
        tracing::info!(
            status = generation.status,
            "generation already finished; not rendering again"
        );
    }
    announce_or_relay(ctx, &generation).await
}

/// Announces a finished generation; when that fails, the job is acked all
/// the same and the event relay publishes the event later.
async fn announce_or_relay(ctx: &State, generation: &Generation) -> anyhow::Result<()> {
    if let Err(e) = announce(ctx, generation).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "event not published; acking the job, the event relay will publish it"
        );
    }
    Ok(())
}

/// Publishes the finished generation's event unless that was confirmed
/// before, then records that it was.
pub async fn announce(ctx: &State, generation: &Generation) -> anyhow::Result<()> {
    if generation.event_published_at.is_some() {
        return Ok(());
    }
    let Some(event) = terminal_event(generation) else {
        return Ok(());
    };
    let exchange = ctx.broker.topology().events_exchange();
    let routing_key = event.event.as_str();
    let message_id = event.id.to_string();
    ctx.publisher
        .publish(
            &exchange,
            routing_key,
            &message_id,
            &EventMessage::V1(event.clone()),
        )
        .await
        .map_err(|e| anyhow::Error::new(e).context("Failed to publish the event"))?;
    let gid = generation.id;
    ctx.db
        .run(move |c| Generation::mark_event_published(c, gid).map_err(anyhow::Error::from))
        .await?;
    tracing::info!(event = routing_key, event_id = %message_id, "generation finished and announced");
    Ok(())
}

async fn load(ctx: &State, id: Uuid) -> anyhow::Result<Option<Generation>> {
    ctx.db
        .run(move |c| Generation::find(c, id).map_err(anyhow::Error::from))
        .await
}
