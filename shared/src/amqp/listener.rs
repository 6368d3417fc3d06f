//! Listeners on a queue of this replica alone (key invalidations,
//! completions): exclusive, auto-deleted, optionally without acks, and a
//! loop that reconnects and says when it (re)started listening.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError};

impl Broker {
    /// A consumer on a queue of this process alone: server-named,
    /// exclusive and auto-deleted (gone with the connection, so a crashed
    /// replica leaves nothing behind to fill up), bound to `exchange` with
    /// `routing_key`. With `no_ack` the broker does not wait for acks: for
    /// listeners whose messages are hints a lost one of which costs nothing.
    pub async fn private_consumer(
        &self,
        exchange: &str,
        routing_key: &str,
        no_ack: bool,
    ) -> Result<lapin::Consumer, BrokerError> {
        let ch = self.channel().await?;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let queue = ch
            .queue_declare("".into(), options, FieldTable::default())
            .await?;
        let name = queue.name().clone();
        ch.queue_bind(
            name.clone(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let options = BasicConsumeOptions {
            exclusive: true,
            no_ack,
            ..Default::default()
        };
        Ok(ch
            .basic_consume(name, "".into(), options, FieldTable::default())
            .await?)
    }
}

/// A listener on a private queue (see [`Broker::private_consumer`]).
pub struct Listener<'a> {
    pub exchange: String,
    pub routing_key: &'a str,
    /// The broker does not wait for acks (a lost message costs nothing).
    pub no_ack: bool,
    /// Names the listener in logs.
    pub what: &'a str,
}

/// Runs `listener` until `cancel` fires, reconnecting with capped backoff.
/// `on_state(true)` is called once consuming has started after each
/// (re)connect — messages sent while the queue did not exist are missed, so
/// the listener may need to forget what it knew — and `on_state(false)` once
/// the connection is lost. Each message's body goes to `on_message`; without
/// `no_ack` it is acked after.
pub async fn run_private_listener(
    broker: &Broker,
    listener: Listener<'_>,
    cancel: CancellationToken,
    on_state: impl Fn(bool),
    on_message: impl Fn(&[u8]),
) {
    let Listener {
        exchange,
        routing_key,
        no_ack,
        what,
    } = listener;
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let result = async {
            let mut consumer = broker
                .private_consumer(&exchange, routing_key, no_ack)
                .await?;
            on_state(true);
            backoff = Duration::from_millis(100);
            tracing::info!(listener = what, "listening");
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    next = consumer.next() => {
                        let delivery = match next {
                            Some(Ok(d)) => d,
                            Some(Err(e)) => return Err(BrokerError::from(e)),
                            None => return Err(BrokerError::Timeout),
                        };
                        on_message(&delivery.data);
                        if !no_ack {
                            let _ = delivery.ack(BasicAckOptions::default()).await;
                        }
                    }
                }
            }
        }
        .await;
        on_state(false);
        if let Err(e) = result {
            tracing::warn!(listener = what, error = %e, "listener lost the broker; reconnecting");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
