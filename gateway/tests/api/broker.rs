//! The production topology itself: quorum queues with a delivery limit that
//! dead-letters a job redelivered too often. (Other tests run on classic
//! queues, see `shared::settings::AmqpSettings::quorum_queues`.)

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicNackOptions};

use shared::amqp::{Broker, Publisher, SYNTH_ROUTING_KEY};
use shared::ids::GenerationId;
use shared::messages::JobMessage;

use crate::helpers::*;

async fn get(ch: &lapin::Channel, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    // A requeued message can take a moment to be visible again.
    for _ in 0..100 {
        if let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            return Some(m);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_job_redelivered_past_the_delivery_limit_is_dead_lettered_on_quorum_queues() {
    let mut settings = settings();
    settings.amqp.quorum_queues = true;
    settings.amqp.delivery_limit = 2;
    let broker = Broker::new(&settings.amqp, "topology-test");
    let topology = broker.topology().clone();
    let publisher = Publisher::new(broker.clone());
    let job = JobMessage::synthesize(GenerationId::new());
    publisher
        .publish(&topology.jobs_exchange(), SYNTH_ROUTING_KEY, "job-1", &job)
        .await
        .unwrap();
    let ch = broker.channel().await.unwrap();

    // Delivered, refused with requeue, until the limit is passed.
    let mut counts = Vec::new();
    while let Some(m) = get(&ch, &topology.jobs_queue()).await {
        let count = m
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").cloned());
        counts.push(match count {
            Some(lapin::types::AMQPValue::LongLongInt(n)) => n,
            Some(lapin::types::AMQPValue::LongInt(n)) => i64::from(n),
            other => panic!("x-delivery-count missing or odd: {other:?}"),
        });
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(counts.len() <= 5, "never dead-lettered");
    }

    // Delivered 1 + delivery_limit times, each telling how often before
    // (what the consumer's backoff reads).
    assert_eq!(counts, [0, 1, 2]);
    let dead = get(&ch, &topology.jobs_dlq())
        .await
        .expect("the job is in the dead-letter queue");
    let body: serde_json::Value = serde_json::from_slice(&dead.delivery.data).unwrap();
    assert_eq!(body["type"], "synthesize.v1");
}
