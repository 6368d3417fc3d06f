//! (c) PostgreSQL restarted under load: no generation that got a 202 is
//! lost; while the database is down `POST /v1/generations` answers 503
//! `database_unavailable` quickly (never hangs, never 500); every service
//! reconnects by itself.

use std::time::Duration;

use faults::{Receiver, Stack};

use crate::{check_outage, load_through_outage};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn a_postgres_restart_under_load_loses_nothing_and_answers_503_meanwhile() {
    let stack = Stack::start("database_restart", 2, &[]).await;
    let receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;

    let outage = load_through_outage(&stack, "pg", "stop", Duration::from_secs(4)).await;
    check_outage(
        &stack,
        &receiver,
        outage,
        "database_unavailable",
        Duration::from_secs(2),
    )
    .await;
}

/// The same when the PostgreSQL stops in immediate mode (crash recovery at the next start).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn a_postgres_crash_under_load_loses_nothing_and_answers_503_meanwhile() {
    let stack = Stack::start("database_crash", 2, &[]).await;
    let receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;

    let outage = load_through_outage(&stack, "pg", "kill", Duration::from_secs(4)).await;
    check_outage(
        &stack,
        &receiver,
        outage,
        "database_unavailable",
        Duration::from_secs(2),
    )
    .await;
}
