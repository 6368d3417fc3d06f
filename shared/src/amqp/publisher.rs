//! Publishing: persistent JSON messages, each waiting for the broker's
//! confirm, with the trace context and the publish time in its headers.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use serde::Serialize;
use tokio::sync::Mutex;

use super::{Broker, BrokerError, PUBLISHED_AT_HEADER};
use crate::trace::{TRACEPARENT, TraceContext};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes persistent JSON messages and waits for the broker's confirm.
pub struct Publisher {
    broker: Arc<Broker>,
    channel: Mutex<Option<Channel>>,
}

impl Publisher {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            channel: Mutex::new(None),
        }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    async fn confirm_channel(&self) -> Result<Channel, BrokerError> {
        let mut guard = self.channel.lock().await;
        if let Some(ch) = guard.as_ref().filter(|c| c.status().connected()) {
            return Ok(ch.clone());
        }
        let ch = self.broker.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *guard = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes `message` and returns once the broker has it on disk
    /// (publisher confirm). `mandatory` makes an unroutable message an error.
    /// The current trace context (if any) travels as the `traceparent`
    /// header, and the publish time as `x-published-at-ms`.
    pub async fn publish<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        message: &T,
    ) -> Result<(), BrokerError> {
        let body = serde_json::to_vec(message)?;
        let now = chrono::Utc::now();
        let props = BasicProperties::default()
            // 2 = persistent: written to disk, survives a broker restart.
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(message_id.to_owned()))
            .with_timestamp(now.timestamp() as u64)
            .with_headers(headers(now));
        let result = self.send(exchange, routing_key, &body, props, true).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, exchange, routing_key, message_id, "publish failed");
        }
        result
    }

    /// Publishes raw `body` as a transient message (not written to disk,
    /// not mandatory: nobody listening is fine) and waits for the confirm,
    /// so messages of one caller stay in order. For streamed audio
    /// (`crate::streams`), where the stored file is what is durable.
    pub async fn publish_transient(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), BrokerError> {
        let props = BasicProperties::default()
            .with_delivery_mode(1)
            .with_content_type("application/octet-stream".into());
        self.send(exchange, routing_key, body, props, false).await
    }

    /// One publish on the confirm channel, waiting at most
    /// [`PUBLISH_TIMEOUT`] for the confirm; after a failure the next
    /// publish starts over on a fresh channel.
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
        mandatory: bool,
    ) -> Result<(), BrokerError> {
        let result = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let ch = self.confirm_channel().await?;
            let options = BasicPublishOptions {
                mandatory,
                ..Default::default()
            };
            let confirm = ch
                .basic_publish(exchange.into(), routing_key.into(), options, body, props)
                .await?
                .await?;
            match confirm {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable),
                Confirmation::Nack(_) => Err(BrokerError::Nacked),
                Confirmation::NotRequested => Ok(()),
            }
        })
        .await
        .map_err(|_| BrokerError::Timeout)
        .and_then(|r| r);
        if result.is_err() {
            self.channel.lock().await.take();
        }
        result
    }
}

/// The headers every message carries: trace context and publish time.
fn headers(now: chrono::DateTime<chrono::Utc>) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        PUBLISHED_AT_HEADER.into(),
        AMQPValue::LongLongInt(now.timestamp_millis()),
    );
    if let Some(trace) = TraceContext::current() {
        headers.insert(
            TRACEPARENT.into(),
            AMQPValue::LongString(trace.to_string().into()),
        );
    }
    headers
}
