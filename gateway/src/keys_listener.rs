//! Listens on `voiceprod.keys` (fanout) through a queue of this gateway's
//! own (exclusive, server-named, deleted with the connection) and drops
//! invalidated keys from the verification cache. After any (re)connect the
//! whole cache is cleared, because invalidations may have been missed while
//! the queue did not exist.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::BasicAckOptions;
use tokio_util::sync::CancellationToken;

use shared::amqp::{Broker, BrokerError};
use shared::messages::KeyMessage;

use crate::auth::KeyVerifier;

/// Runs until cancelled, reconnecting with capped backoff.
pub async fn run(broker: Arc<Broker>, keys: Arc<KeyVerifier>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let result = listen(&broker, &keys, &cancel, &mut backoff).await;
        keys.set_listening(false);
        if let Err(e) = result {
            tracing::warn!(error = %e, "key invalidation listener lost the broker; reconnecting");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen(
    broker: &Broker,
    keys: &KeyVerifier,
    cancel: &CancellationToken,
    backoff: &mut Duration,
) -> Result<(), BrokerError> {
    let mut consumer = broker
        .private_consumer(&broker.topology().keys_exchange(), "", false)
        .await?;
    // From here on nothing is missed; what came before may have been.
    keys.clear();
    keys.set_listening(true);
    *backoff = Duration::from_millis(100);
    tracing::info!("listening for key invalidations");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            next = consumer.next() => {
                let delivery = match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(BrokerError::Timeout),
                };
                match serde_json::from_slice::<KeyMessage>(&delivery.data) {
                    Ok(KeyMessage::InvalidatedV1 { key_hashes }) => keys.invalidate_hashes(&key_hashes),
                    Err(e) => {
                        // Unknown message: be safe and forget everything.
                        tracing::warn!(error = %e, "unreadable key message; clearing the key cache");
                        keys.clear();
                    }
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
        }
    }
}
