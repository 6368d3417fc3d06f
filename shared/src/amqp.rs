//! RabbitMQ: the topology of docs/architecture.md declared in code, a connection
//! that comes back by itself, a publisher that waits for the broker's
//! confirm, and the consumer loop every consumer runs.
//!
//! Names carry `amqp.prefix`, so each test gets a topology of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::settings::AmqpSettings;
use crate::trace::{TRACEPARENT, TraceContext};

/// Header with the publish time in milliseconds since the epoch (the AMQP
/// `timestamp` property only has seconds): the queue lag metric.
pub const PUBLISHED_AT_HEADER: &str = "x-published-at-ms";
/// Routing key of synthesis jobs on the jobs exchange.
pub const SYNTH_ROUTING_KEY: &str = "synth";
// A broker that is down refuses at once; this bounds a broker that is up
// but slow to accept (busy creating or deleting many queues).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unreachable")]
    Unreachable(#[source] lapin::Error),
    #[error("timed out talking to the broker")]
    Timeout,
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the message could not be routed to any queue")]
    Unroutable,
    #[error("could not encode the message")]
    Encode(#[from] serde_json::Error),
}

/// Exchange and queue names, and how each is declared.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    queue_expires_ms: Option<u64>,
    quorum: bool,
}

impl Topology {
    pub fn new(settings: &AmqpSettings) -> Self {
        Self {
            prefix: settings.prefix.clone(),
            delivery_limit: settings.delivery_limit,
            queue_expires_ms: settings.queue_expires_ms,
            quorum: settings.quorum_queues,
        }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// A queue's name without the deployment's prefix (a metric label).
    pub fn base_name<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }

    /// Direct exchange of synthesis jobs.
    pub fn jobs_exchange(&self) -> String {
        self.name("voiceprod.jobs")
    }
    /// Where workers compete for jobs.
    pub fn jobs_queue(&self) -> String {
        self.name("synth.jobs")
    }
    /// Dead-letter exchange of jobs that failed `delivery_limit` times or were rejected.
    pub fn jobs_dlx(&self) -> String {
        self.name("voiceprod.jobs.dlx")
    }
    /// Dead jobs, kept for an operator to look at.
    pub fn jobs_dlq(&self) -> String {
        self.name("synth.jobs.dlq")
    }
    /// Topic exchange of events (`generation.completed`, …).
    pub fn events_exchange(&self) -> String {
        self.name("voiceprod.events")
    }
    /// The dispatcher's queue of events to deliver as webhooks.
    pub fn webhooks_queue(&self) -> String {
        self.name("webhooks.events")
    }
    /// Dead-letter exchange of events that could not be read.
    pub fn events_dlx(&self) -> String {
        self.name("voiceprod.events.dlx")
    }
    /// Dead events, kept for an operator to look at.
    pub fn events_dlq(&self) -> String {
        self.name("webhooks.events.dlq")
    }
    /// Fanout exchange of key invalidations, one exclusive queue per gateway.
    pub fn keys_exchange(&self) -> String {
        self.name("voiceprod.keys")
    }

    fn queue_args(&self, quorum: bool) -> FieldTable {
        let mut args = FieldTable::default();
        if quorum && self.quorum {
            // Quorum queues replicate every message on a cluster (Raft) and
            // count redeliveries, which is what makes a delivery limit possible.
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        if let Some(ms) = self.queue_expires_ms {
            // Only tests set this: their queues vanish once unused.
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms as i64));
        }
        args
    }

    /// Declares everything; idempotent, so every service calls it on connect.
    pub async fn declare(&self, ch: &Channel) -> Result<(), BrokerError> {
        // Durable exchanges and queues survive a broker restart; together
        // with persistent messages and publisher confirms nothing is lost.
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            self.jobs_exchange().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.jobs_dlx().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.events_exchange().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.keys_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;

        let queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(self.jobs_dlq().into(), queue, self.queue_args(true))
            .await?;
        ch.queue_bind(
            self.jobs_dlq().into(),
            self.jobs_dlx().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

        let mut jobs_args = self.queue_args(true);
        // After this many deliveries a job is dead-lettered instead of
        // crashing workers forever (a poison message).
        if self.quorum {
            jobs_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
            );
        }
        jobs_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.jobs_dlx().into()),
        );
        ch.queue_declare(self.jobs_queue().into(), queue, jobs_args)
            .await?;
        ch.queue_bind(
            self.jobs_queue().into(),
            self.jobs_exchange().into(),
            SYNTH_ROUTING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

        ch.exchange_declare(
            self.events_dlx().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.queue_declare(self.events_dlq().into(), queue, self.queue_args(true))
            .await?;
        ch.queue_bind(
            self.events_dlq().into(),
            self.events_dlx().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut events_args = self.queue_args(true);
        // An event the dispatcher cannot read is dead-lettered, not dropped.
        if self.quorum {
            events_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
            );
        }
        events_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.events_dlx().into()),
        );
        ch.queue_declare(self.webhooks_queue().into(), queue, events_args)
            .await?;
        for key in ["generation.*", "voice.*", "webhook.*"] {
            ch.queue_bind(
                self.webhooks_queue().into(),
                self.events_exchange().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }
}

/// One connection per process, re-established on demand after a failure.
pub struct Broker {
    url: SecretString,
    name: String,
    topology: Topology,
    /// The current connection. Held only to read or swap it, never across
    /// an await, so readiness and the fast path never wait on a connect.
    conn: std::sync::Mutex<Option<Arc<Connection>>>,
    /// Serialises connection attempts.
    connecting: Mutex<()>,
    metrics: Metrics,
}

impl Broker {
    pub fn new(settings: &AmqpSettings, connection_name: &str) -> Arc<Self> {
        Self::with_metrics(settings, connection_name, Metrics::default())
    }

    /// A broker whose consumers record into the service's `metrics`.
    pub fn with_metrics(
        settings: &AmqpSettings,
        connection_name: &str,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            url: settings.url.clone(),
            name: connection_name.to_owned(),
            topology: Topology::new(settings),
            conn: std::sync::Mutex::new(None),
            connecting: Mutex::new(()),
            metrics,
        })
    }

    /// Where consumers record messages handled and queue lag.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The connection, if it is up.
    fn current(&self) -> Option<Arc<Connection>> {
        self.conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }

    /// Whether the connection is up right now (readiness). Never waits for
    /// a connection attempt in progress.
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// `Ok` when connected, or once connected within `wait`: for callers
    /// that answer someone (a request, a readiness probe) and must not
    /// wait for a whole connection attempt to a broker that is booting or
    /// hung. Whoever keeps trying in the background still connects.
    pub async fn connected_within(&self, wait: Duration) -> Result<(), BrokerError> {
        if self.is_connected() {
            return Ok(());
        }
        match tokio::time::timeout(wait, self.channel()).await {
            Ok(result) => result.map(drop),
            Err(_) => Err(BrokerError::Timeout),
        }
    }

    /// A new channel on the current connection, connecting (and declaring
    /// the topology) first when there is none.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        if let Some(conn) = self.current() {
            return Ok(conn.create_channel().await?);
        }
        let _connecting = self.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(conn) = self.current() {
            return Ok(conn.create_channel().await?);
        }
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(self.url.expose_secret(), props),
        )
        .await
        .map_err(|_| BrokerError::Timeout)?
        .map_err(BrokerError::Unreachable)?;
        let ch = conn.create_channel().await?;
        self.topology.declare(&ch).await?;
        tracing::info!(connection = %self.name, "connected to the broker");
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(conn));
        Ok(ch)
    }

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

    /// Closes the connection (graceful shutdown).
    pub async fn close(&self) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(conn) = conn {
            let _ = conn.close(200, "shutdown".into()).await;
        }
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
        let result = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let ch = self.confirm_channel().await?;
            let now = chrono::Utc::now();
            let props = BasicProperties::default()
                // 2 = persistent: written to disk, survives a broker restart.
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(ShortString::from(message_id.to_owned()))
                .with_timestamp(now.timestamp() as u64)
                .with_headers(headers(now));
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let confirm = ch
                .basic_publish(exchange.into(), routing_key.into(), options, &body, props)
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
        if let Err(e) = &result {
            tracing::warn!(error = %e, exchange, routing_key, message_id, "publish failed");
            // Start over with a fresh channel next time.
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

fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref().and_then(|h| h.inner().get(name))
}

/// The `traceparent` a message was published with.
fn traceparent(props: &BasicProperties) -> Option<String> {
    match header(props, TRACEPARENT)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// How long ago the message was published, if it says when.
fn queue_lag(props: &BasicProperties) -> Option<Duration> {
    let published_ms = match header(props, PUBLISHED_AT_HEADER)? {
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        _ => return None,
    };
    let lag_ms = chrono::Utc::now().timestamp_millis() - published_ms;
    // Clocks of two machines may disagree a little: never negative.
    Some(Duration::from_millis(u64::try_from(lag_ms).unwrap_or(0)))
}

/// What a handler decided about one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or nothing to do): remove it from the queue.
    Ack,
    /// Failed for now: put it back; the queue's delivery limit bounds retries.
    Retry,
    /// Cannot ever succeed (unparseable, unknown type): dead-letter it.
    Reject,
}

/// One delivery as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub data: Vec<u8>,
    pub redelivered: bool,
    pub message_id: Option<String>,
}

/// How often the broker has delivered this message before: the quorum
/// queue's `x-delivery-count` header (absent on the first delivery).
fn delivery_count(props: &BasicProperties) -> u32 {
    match header(props, "x-delivery-count").cloned() {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongInt(n)) => u32::try_from(n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongUInt(n)) => n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(n).unwrap_or(u32::MAX),
        Some(AMQPValue::ShortUInt(n)) => u32::from(n),
        _ => 0,
    }
}

/// 250 ms doubled per earlier delivery, at most 30 s.
pub fn retry_delay(previous_deliveries: u32) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << previous_deliveries.min(10));
    Duration::from_millis(ms.min(30_000))
}

/// Consumes `queue` until `cancel` fires: bounded prefetch, each delivery
/// handled on its own task, acked or nacked after the handler returns,
/// reconnecting with capped backoff when the broker goes away. On
/// cancellation it stops consuming and waits for the deliveries in flight.
pub async fn run_consumer<H, Fut>(
    broker: Arc<Broker>,
    queue: String,
    prefetch: u16,
    cancel: CancellationToken,
    handler: H,
) where
    H: Fn(Incoming) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match consume_once(&broker, &queue, prefetch, &cancel, handler.clone()).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, queue, retry_in_ms = backoff.as_millis() as u64, "consumer lost its channel; reconnecting");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume_once<H, Fut>(
    broker: &Broker,
    queue: &str,
    prefetch: u16,
    cancel: &CancellationToken,
    handler: H,
) -> Result<(), BrokerError>
where
    H: Fn(Incoming) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let ch = broker.channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let tag = format!("{queue}.{}", uuid::Uuid::new_v4().simple());
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            tag.clone().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue, consumer_tag = %tag, prefetch, "consuming");
    let mut in_flight = JoinSet::new();
    let result = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = ch.basic_cancel(tag.clone().into(), BasicCancelOptions::default()).await;
                break Ok(());
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = consumer.next() => {
                let delivery = match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(BrokerError::Amqp(e)),
                    None => break Err(BrokerError::Timeout),
                };
                let handler = handler.clone();
                let message_id = delivery.properties.message_id().as_ref().map(|m| m.to_string());
                // Continue the publisher's trace (or start one for a message without).
                let trace = crate::trace::continue_from(traceparent(&delivery.properties).as_deref());
                let span = tracing::info_span!("consume", messaging.system = "rabbitmq", messaging.operation = "process", messaging.destination = %queue, message_id = message_id.as_deref().unwrap_or(""), trace_id = %trace.trace_id(), span_id = %trace.span_id());
                let cancel = cancel.clone();
                let metrics = broker.metrics().clone();
                let label = broker.topology().base_name(queue).to_owned();
                if let Some(lag) = queue_lag(&delivery.properties) {
                    metrics.observe_queue_lag(&label, lag);
                }
                in_flight.spawn(async move {
                    let incoming = Incoming { data: delivery.data.clone(), redelivered: delivery.redelivered, message_id };
                    let outcome = trace.scope(handler(incoming)).await;
                    metrics.message_consumed(&label, match outcome {
                        Outcome::Ack => "ack",
                        Outcome::Retry => "retry",
                        Outcome::Reject => "reject",
                    });
                    if outcome == Outcome::Retry {
                        // Back off before requeueing, longer each time, so a
                        // short outage of a dependency does not burn through
                        // the queue's delivery limit in a hot loop.
                        let delay = retry_delay(delivery_count(&delivery.properties));
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                    let settled = match outcome {
                        Outcome::Ack => delivery.ack(BasicAckOptions::default()).await,
                        Outcome::Retry => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                        Outcome::Reject => delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await,
                    };
                    if let Err(e) = settled {
                        // The channel is gone; the broker redelivers it.
                        tracing::warn!(error = %e, ?outcome, "could not settle delivery");
                    }
                }.instrument(span));
            }
        }
    };
    // Finish what is in flight before closing (graceful shutdown).
    while in_flight.join_next().await.is_some() {}
    let _ = ch.close(200, "done".into()).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_thirty_seconds() {
        assert_eq!(retry_delay(0), Duration::from_millis(250));
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(3), Duration::from_secs(2));
        assert_eq!(retry_delay(7), Duration::from_secs(30));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(30));
        let total: Duration = (0..20).map(retry_delay).sum();
        assert!(total > Duration::from_secs(300), "{total:?}");
    }
}
