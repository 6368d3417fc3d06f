//! (d) The customer's webhook receiver is down for a while, then back:
//! every event arrives (at least once, under one `webhook-id` per
//! generation), and nothing is lost or charged twice meanwhile.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use faults::checks::settle_and_check;
use faults::{Receiver, Stack, post_many};
use shared::schema::webhook_deliveries;

use crate::{CONCURRENCY, summary};

const DOWN_FOR: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn events_sent_while_the_receiver_is_down_all_arrive_once_it_is_back() {
    let stack = Stack::start("receiver_down", 1, &[]).await;
    let mut receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;

    // Some arrive while it is up; then it goes away mid-stream.
    let mut posted = post_many(&stack, "up", 0..20, CONCURRENCY).await;
    receiver.down().await;
    let down_at = Instant::now();
    posted.extend(post_many(&stack, "down", 0..100, CONCURRENCY).await);
    assert!(
        posted.iter().all(|p| p.status == 202),
        "{}",
        summary(&posted)
    );
    // Down for a while (10 s): every event of that time is attempted,
    // refused and retried, some several times.
    let failed = wait_for_failed_attempts(&stack, 100, Duration::from_secs(60)).await;
    tokio::time::sleep(DOWN_FOR.saturating_sub(down_at.elapsed())).await;
    receiver.up();
    eprintln!(
        "[faults] receiver down for {:.1?}; {failed} deliveries had failed attempts",
        down_at.elapsed()
    );

    let settled =
        settle_and_check(&stack, &receiver, &posted, Duration::from_secs(120), false).await;
    let deliveries = receiver.deliveries().len();
    eprintln!(
        "[faults] all {} events arrived ({deliveries} deliveries) {settled:.1?} after the receiver came back",
        posted.len()
    );
}

/// Waits until at least `n` deliveries have had a failed attempt.
async fn wait_for_failed_attempts(stack: &Stack, n: i64, timeout: Duration) -> i64 {
    let started = Instant::now();
    loop {
        let url = stack.db_url.clone();
        let failed: i64 = tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).unwrap();
            webhook_deliveries::table
                .filter(webhook_deliveries::last_error.is_not_null())
                .count()
                .get_result(&mut conn)
                .unwrap()
        })
        .await
        .unwrap();
        if failed >= n {
            return failed;
        }
        assert!(
            started.elapsed() < timeout,
            "only {failed} deliveries failed while the receiver was down"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
