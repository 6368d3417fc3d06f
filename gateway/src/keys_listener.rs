//! Listens on `voiceprod.keys` (fanout) through a queue of this gateway's
//! own (exclusive, server-named, deleted with the connection) and drops
//! invalidated keys from the verification cache. After any (re)connect the
//! whole cache is cleared, because invalidations may have been missed while
//! the queue did not exist.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use shared::amqp::{Broker, Listener, run_private_listener};
use shared::messages::KeyMessage;

use crate::auth::KeyVerifier;

/// Runs until cancelled, reconnecting with capped backoff.
pub async fn run(broker: Arc<Broker>, keys: Arc<KeyVerifier>, cancel: CancellationToken) {
    let listener = Listener {
        exchange: broker.topology().keys_exchange(),
        routing_key: "",
        no_ack: false,
        what: "key invalidations",
    };
    run_private_listener(
        &broker,
        listener,
        cancel,
        |listening| {
            if listening {
                // From here on nothing is missed; what came before may have been.
                keys.clear();
            }
            keys.set_listening(listening);
        },
        |data| match serde_json::from_slice::<KeyMessage>(data) {
            Ok(KeyMessage::InvalidatedV1 { key_hashes }) => keys.invalidate_hashes(&key_hashes),
            Err(e) => {
                // Unknown message: be safe and forget everything.
                tracing::warn!(error = %e, "unreadable key message; clearing the key cache");
                keys.clear();
            }
        },
    )
    .await;
}
