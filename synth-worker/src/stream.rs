//! Sending a generation's audio to the gateway as it is rendered
//! (`shared::streams`): one [`Streamer`] per render, numbering its chunks
//! and publishing them in order. A stream is best effort beside the stored
//! file: a chunk that cannot be published ends the stream (the gateway
//! notices the gap and ends its answer), never the render.

use shared::amqp::Publisher;
use shared::ids::GenerationId;
use shared::streams::{ChunkError, ChunkHeader, encode};
use uuid::Uuid;

pub struct Streamer<'a> {
    publisher: &'a Publisher,
    exchange: String,
    routing_key: String,
    header: ChunkHeader,
    /// A publish failed: the rest is not sent.
    broken: bool,
}

impl<'a> Streamer<'a> {
    pub fn new(publisher: &'a Publisher, generation_id: GenerationId, routing_key: String) -> Self {
        let exchange = publisher.broker().topology().streams_exchange();
        Self {
            publisher,
            exchange,
            routing_key,
            header: ChunkHeader {
                generation_id,
                attempt: Uuid::new_v4(),
                seq: 0,
                last: false,
                error: None,
            },
            broken: false,
        }
    }

    async fn send(&mut self, audio: &[u8]) {
        if self.broken {
            return;
        }
        let body = encode(&self.header, audio);
        match self
            .publisher
            .publish_transient(&self.exchange, &self.routing_key, &body)
            .await
        {
            Ok(()) => self.header.seq += 1,
            Err(e) => {
                tracing::warn!(error = %e, seq = self.header.seq, "stream chunk not published; the stream ends here");
                self.broken = true;
            }
        }
    }

    /// The next piece of audio (nothing is sent for an empty one).
    pub async fn chunk(&mut self, audio: &[u8]) {
        if !audio.is_empty() {
            self.send(audio).await;
        }
    }

    /// The last piece: the stream is complete.
    pub async fn finish(mut self, audio: &[u8]) {
        self.header.last = true;
        self.send(audio).await;
    }

    /// The render stopped: `retrying` if its job goes back to the queue.
    pub async fn fail(mut self, code: &str, message: &str, retrying: bool) {
        self.header.error = Some(ChunkError {
            code: code.to_owned(),
            message: message.to_owned(),
            retrying,
        });
        self.send(&[]).await;
    }
}
