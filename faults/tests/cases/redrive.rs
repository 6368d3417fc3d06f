//! (f) Jobs the broker confirmed and then lost: both jobs queues purged under
//! load (what a lost classic-queue node, a quorum queue that comes back
//! empty, or an operator's purge does). Every accepted generation still
//! completes exactly once, within the re-drive bound, and the re-drives
//! show in the gateway's metrics.

use std::time::{Duration, Instant};

use faults::checks::{accepted_ids, settle_and_check};
use faults::{Receiver, Stack};
use lapin::options::{QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::{CONCURRENCY, summary};

/// Generations posted in all.
const POSTS: usize = 400;
/// The purge waits for at least this many ready jobs.
const BACKLOG: u32 = 30;
/// Every generation completes within this of the purge.
const REDRIVE_BOUND: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn jobs_purged_from_the_queue_under_load_are_redriven_and_complete_once() {
    let stack = Stack::start("redrive", 2, &[]).await;
    let receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;
    let conn = Connection::connect(&stack.env.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    // Both lanes' queues: these short texts are interactive jobs.
    let queues = [
        format!("{}.synth.jobs", stack.case),
        format!("{}.synth.jobs.interactive", stack.case),
    ];
    let ready = || async {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut ready = 0;
        for queue in &queues {
            ready += ch
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .unwrap()
                .message_count();
        }
        ready
    };

    let load = faults::post_many(&stack, "redrive", 0..POSTS, CONCURRENCY);
    let purge = async {
        tokio::time::sleep_until((stack.ready_at + crate::QUEUES_SETTLED_AFTER).into()).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready().await < BACKLOG {
            assert!(
                Instant::now() < deadline,
                "no backlog of {BACKLOG} jobs built up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut purged = 0;
        for queue in &queues {
            purged += ch
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await
                .unwrap();
        }
        (purged, Instant::now())
    };
    let (posted, (purged, purged_at)) = tokio::join!(load, purge);
    eprintln!(
        "[faults] {} posted: {}; {purged} confirmed jobs purged",
        posted.len(),
        summary(&posted)
    );
    assert!(purged >= BACKLOG, "only {purged} jobs purged");
    assert!(
        posted.iter().all(|p| p.status == 202),
        "{}",
        summary(&posted)
    );

    settle_and_check(&stack, &receiver, &posted, REDRIVE_BOUND, true).await;
    let settled = purged_at.elapsed();
    let mut db = stack.db();
    let (redriven, max_redrives): (i64, i32) = {
        use diesel::prelude::*;
        use shared::schema::generations;
        let counts: Vec<i32> = generations::table
            .select(generations::redrives)
            .load(&mut db)
            .unwrap();
        (
            counts.iter().filter(|n| **n > 0).count() as i64,
            counts.iter().copied().max().unwrap_or(0),
        )
    };
    let metrics = reqwest::get(format!("{}/metrics", stack.gateway_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted =
        testkit::metric_value(&metrics, "voiceprod_generations_redriven_total", &[]).unwrap_or(0.0);
    eprintln!(
        "[faults] {} accepted, {purged} purged, {redriven} generations re-driven (at most {max_redrives} times each, {counted} re-drives counted), \
         all completed, announced and charged once {settled:.1?} after the purge (bound {REDRIVE_BOUND:?}), 0 lost",
        accepted_ids(&posted).len()
    );
    assert!(
        redriven >= i64::from(purged),
        "{redriven} re-driven, {purged} purged"
    );
    assert!(
        counted >= redriven as f64,
        "{counted} counted, {redriven} re-driven"
    );
}
