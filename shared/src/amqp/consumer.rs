//! The consumer loop every queue consumer runs ([`run_consumer`]): bounded
//! prefetch, a unique consumer tag, each delivery handled on its own task
//! in the publisher's trace, settled by the handler's [`Outcome`] (a retry
//! after [`retry_delay`]), reconnecting with capped backoff, draining on
//! cancellation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Broker, BrokerError, PUBLISHED_AT_HEADER};
use crate::trace::TRACEPARENT;

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

/// When the message was published, if it says (`x-published-at-ms`).
fn published_at(props: &BasicProperties) -> Option<chrono::DateTime<chrono::Utc>> {
    let published_ms = match header(props, PUBLISHED_AT_HEADER)? {
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        _ => return None,
    };
    chrono::DateTime::from_timestamp_millis(published_ms)
}

/// How long ago the message was published, if it says when.
fn queue_lag(props: &BasicProperties) -> Option<Duration> {
    let lag = chrono::Utc::now() - published_at(props)?;
    // Clocks of two machines may disagree a little: never negative.
    Some(lag.to_std().unwrap_or(Duration::ZERO))
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
    /// When the publisher sent it (its `x-published-at-ms` header).
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
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

/// The longest a consumer waits for the broker to take an ack or nack.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// 250 ms doubled per earlier delivery, at most 30 s.
pub fn retry_delay(previous_deliveries: u32) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << previous_deliveries.min(10));
    Duration::from_millis(ms.min(30_000))
}

/// Consumes `queue` until `cancel` fires: bounded prefetch, each delivery
/// handled on its own task, acked or nacked after the handler returns,
/// reconnecting with capped backoff when the broker goes away. On
/// cancellation it stops consuming at once and gives the deliveries in
/// flight `drain` to finish; those still running then are abandoned
/// unsettled, so closing the channel returns them to the queue.
///
/// Settling (ack, nack) waits at most [`SETTLE_TIMEOUT`].
pub async fn run_consumer<H, Fut>(
    broker: Arc<Broker>,
    queue: String,
    prefetch: u16,
    cancel: CancellationToken,
    drain: Duration,
    handler: H,
) where
    H: Fn(Incoming) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match consume_once(&broker, &queue, prefetch, &cancel, drain, handler.clone()).await {
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
    drain: Duration,
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
                    let incoming = Incoming { data: delivery.data.clone(), redelivered: delivery.redelivered, message_id, published_at: published_at(&delivery.properties) };
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
                    let settle = async {
                        match outcome {
                            Outcome::Ack => delivery.ack(BasicAckOptions::default()).await,
                            Outcome::Retry => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                            Outcome::Reject => delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await,
                        }
                    };
                    // Bounded: on a connection that broke mid-flight an ack
                    // may never be answered, and the reconnect waits for
                    // the deliveries in flight.
                    match tokio::time::timeout(SETTLE_TIMEOUT, settle).await {
                        Ok(Ok(_)) => {}
                        // The channel is gone; the broker redelivers it.
                        Ok(Err(e)) => tracing::warn!(error = %e, ?outcome, "could not settle delivery"),
                        Err(_) => tracing::warn!(?outcome, "settling the delivery timed out; the broker redelivers it"),
                    }
                }.instrument(span));
            }
        }
    };
    // Let what is in flight finish; once cancelled, for at most `drain`
    // (graceful, bounded shutdown): what still runs then is dropped
    // unsettled. (After a lost channel, without cancellation, the jobs in
    // flight finish their work, which outlives the channel, before the
    // reconnect.)
    let drained = {
        let all_done = async { while in_flight.join_next().await.is_some() {} };
        let deadline = async {
            cancel.cancelled().await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            _ = all_done => true,
            _ = deadline => false,
        }
    };
    if !drained {
        let abandoned = in_flight.len();
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
        tracing::warn!(
            queue,
            abandoned,
            drain_ms = drain.as_millis() as u64,
            "deliveries still in flight after the drain time; returning them to the queue"
        );
    }
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
