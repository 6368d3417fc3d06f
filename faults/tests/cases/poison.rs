//! (e) Poison messages — a job that does not parse, a job of an unknown
//! type, an event that does not parse — are dead-lettered, and the worker
//! and the dispatcher carry on with the work behind them.

use std::time::{Duration, Instant};

use faults::checks::settle_and_check;
use faults::{Receiver, Service, Stack, post_many};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::summary;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn poison_jobs_and_events_are_dead_lettered_and_the_services_carry_on() {
    let stack = Stack::start("poison", 1, &[]).await;
    let receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;
    let worker_pid = stack.pid(Service::Worker(0));
    let dispatcher_pid = stack.pid(Service::Dispatcher);
    let prefix = format!("{}.", stack.case);
    let conn = Connection::connect(&stack.env.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();

    let poison: [(&str, &str, &[u8]); 3] = [
        (
            "voiceprod.jobs",
            "synth",
            b"{\"type\": \"synthesize.v1\", \"generationId\": ",
        ),
        (
            "voiceprod.jobs",
            "synth",
            br#"{"type": "synthesize.v9", "generationId": "gen_0"}"#,
        ),
        (
            "voiceprod.events",
            "generation.completed",
            b"\x00\xffnot an event",
        ),
    ];
    for (i, (exchange, key, body)) in poison.iter().enumerate() {
        publish(
            &ch,
            &format!("{prefix}{exchange}"),
            key,
            &format!("poison-{i}"),
            body,
        )
        .await;
    }
    // Real work behind the poison.
    let posted = post_many(&stack, "poison", 0..20, 8).await;
    assert!(
        posted.iter().all(|p| p.status == 202),
        "{}",
        summary(&posted)
    );

    // Each poison message lies in its dead-letter queue, as sent.
    let jobs_dlq = format!("{prefix}synth.jobs.dlq");
    let events_dlq = format!("{prefix}webhooks.events.dlq");
    let mut dead_jobs = [get(&ch, &jobs_dlq).await, get(&ch, &jobs_dlq).await];
    dead_jobs.sort_by_key(|(id, _)| id.clone());
    assert_eq!(dead_jobs[0], ("poison-0".to_owned(), poison[0].2.to_vec()));
    assert_eq!(dead_jobs[1], ("poison-1".to_owned(), poison[1].2.to_vec()));
    assert_eq!(
        get(&ch, &events_dlq).await,
        ("poison-2".to_owned(), poison[2].2.to_vec())
    );

    // The work behind them is done, exactly once, by the same processes.
    let settled = settle_and_check(&stack, &receiver, &posted, Duration::from_secs(60), true).await;
    assert_eq!(stack.pid(Service::Worker(0)), worker_pid);
    assert_eq!(stack.pid(Service::Dispatcher), dispatcher_pid);
    assert!(faults::stack::alive(worker_pid) && faults::stack::alive(dispatcher_pid));
    for queue in [
        format!("{prefix}synth.jobs"),
        format!("{prefix}webhooks.events"),
    ] {
        assert_eq!(depth(&ch, &queue).await, 0, "{queue} is not empty");
    }
    assert_eq!(
        depth(&ch, &jobs_dlq).await,
        0,
        "more dead jobs than the poison"
    );
    eprintln!(
        "[faults] 3 poison messages dead-lettered; 20 generations completed once ({settled:.1?})"
    );
}

async fn publish(ch: &Channel, exchange: &str, key: &str, id: &str, body: &[u8]) {
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(id.to_owned()));
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// The next message of `queue` (acked), waiting up to 30 s for one.
async fn get(ch: &Channel, queue: &str) -> (String, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let options = BasicGetOptions { no_ack: true };
        if let Some(m) = ch.basic_get(queue.into(), options).await.unwrap() {
            let id = m
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            return (id, m.delivery.data.clone());
        }
        assert!(
            Instant::now() < deadline,
            "nothing dead-lettered in {queue}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages ready in `queue` (a passive declare).
async fn depth(ch: &Channel, queue: &str) -> u32 {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}
