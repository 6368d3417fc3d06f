//! Audio streamed by the workers to this replica (`shared::streams`): one
//! exclusive queue, bound to `voiceprod.streams` with this replica's own
//! routing key (which streaming requests put in their job), and a map from
//! generation to the request that streams it.
//!
//! Chunks are hints on top of the stored file, like completions: a chunk
//! for nobody (the client left, or another replica's) is dropped, and a
//! request that hears no chunk is answered from the file once the
//! generation completes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use shared::amqp::{Broker, Listener, run_private_listener};
use shared::ids::GenerationId;
use shared::streams::{ChunkHeader, decode};

/// One chunk of a generation's streamed audio.
#[derive(Debug)]
pub struct Chunk {
    pub header: ChunkHeader,
    pub audio: Bytes,
}

/// The streams this replica is receiving.
pub struct Streams {
    routing_key: String,
    open: Mutex<HashMap<GenerationId, mpsc::UnboundedSender<Chunk>>>,
}

impl Default for Streams {
    fn default() -> Self {
        Self::new()
    }
}

impl Streams {
    pub fn new() -> Self {
        Self {
            routing_key: format!("gateway.{}", uuid::Uuid::new_v4()),
            open: Mutex::default(),
        }
    }

    /// The routing key a job asks its worker to stream to.
    pub fn routing_key(&self) -> &str {
        &self.routing_key
    }

    /// Receives `id`'s chunks until the returned handle is dropped. Open it
    /// before the job is published, so the first chunk is not missed.
    pub fn open(self: &Arc<Self>, id: GenerationId) -> Receiving {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id, tx);
        Receiving {
            streams: self.clone(),
            id,
            rx,
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<GenerationId, mpsc::UnboundedSender<Chunk>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver(&self, body: &[u8]) {
        let Some((header, audio)) = decode(body) else {
            tracing::debug!("unreadable stream chunk ignored");
            return;
        };
        let id = header.generation_id;
        let audio = Bytes::copy_from_slice(audio);
        if let Some(tx) = self.lock().get(&id) {
            // A receiver gone is fine: its request ended.
            let _ = tx.send(Chunk { header, audio });
        }
    }

    /// How many requests are receiving a stream here.
    pub fn receiving(&self) -> usize {
        self.lock().len()
    }
}

/// A request's end of one generation's stream.
pub struct Receiving {
    streams: Arc<Streams>,
    id: GenerationId,
    rx: mpsc::UnboundedReceiver<Chunk>,
}

impl Receiving {
    pub async fn recv(&mut self) -> Option<Chunk> {
        self.rx.recv().await
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.streams.lock().remove(&self.id);
    }
}

/// Runs until cancelled, reconnecting with capped backoff. No acks: a lost
/// chunk shows as a gap in the numbers, and the request ends its answer.
pub async fn run(broker: Arc<Broker>, streams: Arc<Streams>, cancel: CancellationToken) {
    let listener = Listener {
        exchange: broker.topology().streams_exchange(),
        routing_key: streams.routing_key(),
        no_ack: true,
        what: "streamed audio",
    };
    run_private_listener(
        &broker,
        listener,
        cancel,
        |_| {},
        |data| streams.deliver(data),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::streams::encode;

    #[tokio::test]
    async fn chunks_reach_the_request_of_their_generation_until_it_ends() {
        let streams = Arc::new(Streams::new());
        let (a, b) = (GenerationId::new(), GenerationId::new());
        let mut receiving = streams.open(a);
        let header = |id| ChunkHeader {
            generation_id: id,
            attempt: uuid::Uuid::new_v4(),
            seq: 0,
            last: false,
            error: None,
        };
        streams.deliver(&encode(&header(b), b"not yours"));
        streams.deliver(b"garbage");
        streams.deliver(&encode(&header(a), b"yours"));
        let chunk = receiving.recv().await.unwrap();
        assert_eq!(&chunk.audio[..], b"yours");
        assert_eq!(streams.receiving(), 1);
        drop(receiving);
        assert_eq!(streams.receiving(), 0);
        streams.deliver(&encode(&header(a), b"after"));
    }
}
