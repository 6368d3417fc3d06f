//! Wakes requests that wait for a generation to finish
//! (`POST /v1/audio/speech`). This gateway binds a queue of its own
//! (exclusive, server-named, deleted with the connection) to
//! `voiceprod.events` with `generation.*`, so whichever replica holds the
//! waiting request hears the worker's `generation.completed` or
//! `generation.failed`, and broadcasts the generation's id to its waiters.
//!
//! The events only wake; PostgreSQL decides. A waiter reads the row after
//! subscribing and again on every wake-up, and also every few seconds
//! (every 250 ms while this listener is down), so an event missed during a
//! reconnect, or published before the waiter subscribed, costs at most one
//! poll interval and never a lost answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use shared::amqp::{Broker, Listener, run_private_listener};
use shared::ids::GenerationId;
use shared::messages::EventMessage;

/// Ids of generations that just finished, fanned out to this gateway's waiters.
pub struct Completions {
    tx: broadcast::Sender<GenerationId>,
    listening: AtomicBool,
}

impl Default for Completions {
    fn default() -> Self {
        Self::new()
    }
}

impl Completions {
    pub fn new() -> Self {
        // A waiter that falls this far behind sees `Lagged` and re-reads
        // its row, so the bound costs a poll, never an answer.
        let (tx, _) = broadcast::channel(1024);
        Self {
            tx,
            listening: AtomicBool::new(false),
        }
    }

    /// Subscribe before reading the row, so nothing between the two is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<GenerationId> {
        self.tx.subscribe()
    }

    /// Whether events are being heard right now (else waiters poll faster).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    fn notify(&self, id: GenerationId) {
        // No receivers is fine: nobody waits for this one here.
        let _ = self.tx.send(id);
    }
}

/// Waits until `rx` announces `id` (or lagged, so it may have): time to
/// re-read the row. Pends forever once the sender is gone.
pub async fn announced(rx: &mut broadcast::Receiver<GenerationId>, id: GenerationId) {
    loop {
        match rx.recv().await {
            Ok(done) if done == id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Runs until cancelled, reconnecting with capped backoff. No acks: a
/// wake-up lost with the connection is covered by the waiters' polling, and
/// acking each event would only cost round trips.
pub async fn run(broker: Arc<Broker>, completions: Arc<Completions>, cancel: CancellationToken) {
    let listener = Listener {
        exchange: broker.topology().events_exchange(),
        routing_key: "generation.*",
        no_ack: true,
        what: "finished generations",
    };
    run_private_listener(
        &broker,
        listener,
        cancel,
        |listening| completions.listening.store(listening, Ordering::Relaxed),
        |data| match serde_json::from_slice::<EventMessage>(data) {
            Ok(EventMessage::V1(event)) => {
                if let Some(id) = event
                    .data
                    .get("id")
                    .and_then(|v| v.as_str())
                    .and_then(GenerationId::parse)
                {
                    completions.notify(id);
                }
            }
            // Someone else's business (the dispatcher dead-letters it).
            Err(e) => tracing::debug!(error = %e, "unreadable event ignored"),
        },
    )
    .await;
}
